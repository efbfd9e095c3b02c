//! Applying new unify keys over stored contacts: adds merges, never splits, records history.

use crate::conformance;
use crate::support::{TestStore, apply_keys, hub, upsert};

conformance!(apply_adds_merges_never_splits, apply_body);
async fn apply_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[
            ("display_email", "a@example.com"),
            ("display_mobile", "0911111111"),
        ],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[
            ("display_email", "b@example.com"),
            ("display_mobile", "0911111111"),
        ],
    )
    .await;
    let c = upsert(
        s,
        h.id,
        h.email_caac,
        "c",
        &[("display_email", "a@example.com")],
    )
    .await;
    let d = upsert(
        s,
        h.id,
        h.email_caac,
        "d",
        &[("display_email", "d@example.com"), ("customer_id", "K9")],
    )
    .await;
    assert_eq!(c.contact.profile_id, a.contact.profile_id);
    assert_ne!(b.contact.profile_id, a.contact.profile_id);

    let result = apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    assert_eq!(
        (
            result["merges"].as_i64(),
            result["profiles_before"].as_i64(),
            result["profiles_after"].as_i64()
        ),
        (Some(1), Some(3), Some(2))
    );
    for id in [a.contact.id, b.contact.id, c.contact.id] {
        assert_eq!(
            s.get_contact(h.id, id).await.unwrap().profile_id,
            a.contact.profile_id
        );
    }
    let lineage = s.lineage(h.id, a.contact.profile_id).await.unwrap();
    assert_eq!(lineage.len(), 1);
    assert_eq!(lineage[0].cause.kind, "setting");
    assert_eq!(
        (lineage[0].key_field.as_str(), lineage[0].key_value.as_str()),
        ("display_mobile", "+886911111111")
    );
    assert_eq!(lineage[0].absorbed_ids, vec![b.contact.profile_id]);
    assert!(
        s.events_after(h.id, h.org, 0, 100)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "profile.merged"
                && e.payload["merged_ids"] == serde_json::json!([b.contact.profile_id]))
    );
    crate::support::assert_invariants(s, h.id).await;

    // Dropping the email key splits nothing: merges are permanent.
    let result = apply_keys(s, h.id, h.org, &["customer_id"]).await;
    assert_eq!(result["merges"], 0);
    assert_eq!(
        s.get_contact(h.id, c.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    assert_ne!(
        s.get_contact(h.id, d.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    let history = s.unify_history(h.id, h.org).await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        s.unify_setting(h.id, h.org).await.unwrap().setting.keys,
        ["customer_id"]
    );

    // Bad settings are refused before any task runs.
    let too_many = cdh_store::model::UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: ["line_uid", "display_email", "display_mobile", "customer_id"]
            .map(String::from)
            .to_vec(),
        excluded: vec![],
    };
    assert!(matches!(
        s.start_apply(h.id, h.org, &too_many, "admin").await,
        Err(cdh_store::StoreError::Invalid(_))
    ));
    t.finish(h.id).await;
}

conformance!(excluded_values_do_not_merge, excluded_body);
async fn excluded_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let setting = cdh_store::model::UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: vec!["display_mobile".into()],
        excluded: vec![("display_mobile".into(), "02-2345-6789".into())],
    };
    let task = s.start_apply(h.id, h.org, &setting, "admin").await.unwrap();
    s.run_apply(h.id, task, &Default::default()).await.unwrap();
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_mobile", "+886223456789")],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_mobile", "(02) 2345 6789")],
    )
    .await;
    assert_ne!(a.contact.profile_id, b.contact.profile_id);
    t.finish(h.id).await;
}

conformance!(
    an_applys_merged_events_page_like_any_others,
    merged_events_body
);
/// An apply's `profile.merged` events (SQLite keeps them as one range of its ledger rows,
/// which the feed expands): one per ledger row the apply wrote, numbered on from the events
/// before them without a gap, followed by later events, and the same whatever the page size
/// or wherever a cursor stops inside them.
async fn merged_events_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    // Six pairs that share a mobile, and a trio tied through two values (one merge, two
    // ledger rows): eight ledger rows once mobile and email are keys.
    for i in 0..6 {
        let mobile = format!("09111111{i:02}");
        for side in ["a", "b"] {
            let id = format!("{side}{i}");
            upsert(s, h.id, h.email_caac, &id, &[("display_mobile", &mobile)]).await;
        }
    }
    let email = ("display_email", "trio@example.com");
    upsert(
        s,
        h.id,
        h.email_caac,
        "c0",
        &[("display_mobile", "0922222222"), email],
    )
    .await;
    upsert(
        s,
        h.id,
        h.email_caac,
        "c1",
        &[("display_mobile", "0922222222")],
    )
    .await;
    upsert(s, h.id, h.email_caac, "c2", &[email]).await;
    let before = s.events_after(h.id, h.org, 0, 10_000).await.unwrap().len();
    let result = apply_keys(s, h.id, h.org, &["display_mobile", "display_email"]).await;
    assert_eq!(result["merges"], 7, "{result}");
    upsert(s, h.id, h.email_caac, "late", &[("display_name", "Late")]).await;

    let all = s.events_after(h.id, h.org, 0, 10_000).await.unwrap();
    let seqs: Vec<i64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=all.len() as i64).collect::<Vec<_>>(), "no gaps");
    let merged = &all[before..all.len() - 1];
    assert_eq!(merged.len(), 8, "one event per ledger row: {merged:?}");
    assert!(
        merged.iter().all(|e| e.kind == "profile.merged"),
        "{merged:?}"
    );
    assert_eq!(
        all.last().unwrap().kind,
        "profile.created",
        "the later upsert's"
    );

    // Each merged event is a ledger row of the apply, and no two are the same row.
    let mut rows = Vec::new();
    for e in merged {
        let lineage = s.lineage(h.id, e.profile_id).await.unwrap();
        let row = lineage
            .iter()
            .find(|l| {
                l.cause.kind == "setting"
                    && serde_json::json!(l.absorbed_ids) == e.payload["merged_ids"]
                    && e.payload["key"] == l.key_field.as_str()
                    && e.payload["value"] == l.key_value.as_str()
            })
            .unwrap_or_else(|| panic!("no ledger row for {e:?} in {lineage:?}"));
        assert_eq!(e.payload["survivor_id"], row.survivor_id.0);
        assert_eq!(e.at, row.at);
        rows.push(row.seq);
    }
    rows.sort_unstable();
    rows.dedup();
    assert_eq!(rows.len(), merged.len(), "distinct ledger rows");

    // Any page size, from the start, reads the same feed.
    for page in [1, 2, 3, 5] {
        let mut read = Vec::new();
        let mut cursor = 0;
        loop {
            let batch = s.events_after(h.id, h.org, cursor, page).await.unwrap();
            assert!(batch.len() <= page as usize, "at most a page");
            let Some(last) = batch.last() else { break };
            cursor = last.seq;
            read.extend(batch);
        }
        assert_eq!(read, all, "pages of {page}");
    }
    // A cursor inside the merged events starts right after it.
    let inside = merged[2].seq;
    let next = s.events_after(h.id, h.org, inside, 2).await.unwrap();
    assert_eq!(next, all[before + 3..before + 5].to_vec());
    t.finish(h.id).await;
}
