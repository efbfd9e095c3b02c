//! Applying new unify keys over stored contacts: adds merges, never splits, records history.

use cdh_store::Store;

use crate::conformance;
use crate::support::{TestStore, apply_keys, hub, upsert};

conformance!(apply_adds_merges_never_splits, apply_body);
async fn apply_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, &["display_email"]).await;
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

    let result = apply_keys(s, h.id, &["display_email", "display_mobile"]).await;
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
        s.events_after(h.id, 0, 100)
            .await
            .unwrap()
            .iter()
            .any(|e| e.kind == "profile.merged"
                && e.payload["merged_ids"] == serde_json::json!([b.contact.profile_id]))
    );
    crate::support::assert_invariants(s, h.id).await;

    // Dropping the email key splits nothing: merges are permanent.
    let result = apply_keys(s, h.id, &["customer_id"]).await;
    assert_eq!(result["merges"], 0);
    assert_eq!(
        s.get_contact(h.id, c.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    assert_ne!(
        s.get_contact(h.id, d.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    let history = s.unify_history(h.id).await.unwrap();
    assert_eq!(
        history.iter().map(|v| v.version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        s.unify_setting(h.id).await.unwrap().setting.keys,
        ["customer_id"]
    );

    // Bad settings are refused before any task runs.
    let too_many = cdh_store::model::UnifySetting {
        keys: ["line_uid", "display_email", "display_mobile", "customer_id"]
            .map(String::from)
            .to_vec(),
        excluded: vec![],
    };
    assert!(matches!(
        s.start_apply(h.id, &too_many, "admin").await,
        Err(cdh_store::StoreError::Invalid(_))
    ));
    t.finish(h.id).await;
}

conformance!(excluded_values_do_not_merge, excluded_body);
async fn excluded_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let setting = cdh_store::model::UnifySetting {
        keys: vec!["display_mobile".into()],
        excluded: vec![("display_mobile".into(), "02-2345-6789".into())],
    };
    let task = s.start_apply(h.id, &setting, "admin").await.unwrap();
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
