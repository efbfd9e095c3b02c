//! Auto-unification on upsert: create, join, merge, survivors, timelines, blocked values, scopes.

use cdh_store::model::Unification;
use cdh_store::model::{ChannelId, HubId};
use cdh_store::model::{TaskKind, TaskStatus};

use crate::conformance;
use crate::support::{TestStore, apply_keys, channel, hub, upsert};

conformance!(create_join_merge, create_join_merge_body);
async fn create_join_merge_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "Amy@Example.com")],
    )
    .await;
    assert_eq!(a.unification, Unification::Created);
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_mobile", "0912-345-678")],
    )
    .await;
    assert_eq!(b.unification, Unification::Created);
    let c = upsert(
        s,
        h.id,
        h.email_caac,
        "c",
        &[("display_email", " amy@example.com ")],
    )
    .await;
    assert_eq!(c.unification, Unification::Joined);
    assert_eq!(c.contact.profile_id, a.contact.profile_id);
    let d = upsert(
        s,
        h.id,
        h.email_caac,
        "d",
        &[
            ("display_email", "amy@example.com"),
            ("display_mobile", "+886912345678"),
        ],
    )
    .await;
    let (pa, pb) = (a.contact.profile_id, b.contact.profile_id);
    assert_eq!(
        d.unification,
        Unification::Merged {
            survivor: pa,
            absorbed: vec![pb]
        }
    );
    // Read-your-writes: every contact now reads as the survivor's.
    for id in [a.contact.id, b.contact.id, c.contact.id, d.contact.id] {
        assert_eq!(s.get_contact(h.id, id).await.unwrap().profile_id, pa);
    }
    let lineage = s.lineage(h.id, pa).await.unwrap();
    assert_eq!(lineage.len(), 1);
    assert_eq!(
        (lineage[0].survivor_id, lineage[0].absorbed_ids.clone()),
        (pa, vec![pb])
    );
    assert_eq!(
        (lineage[0].key_field.as_str(), lineage[0].key_value.as_str()),
        ("display_mobile", "+886912345678")
    );
    assert_eq!(lineage[0].cause.kind, "contact");
    assert_eq!(lineage[0].cause.id, d.contact.id.to_string());
    let events = s.events_after(h.id, h.org, 0, 100).await.unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "profile.created",
            "profile.created",
            "profile.updated",
            "profile.merged"
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let merged = &events[3].payload;
    assert_eq!(merged["survivor_id"], pa.0);
    assert_eq!(merged["merged_ids"], serde_json::json!([pb]));
    assert_eq!(merged["key"], "display_mobile");
    let after = s
        .events_after(h.id, h.org, events[2].seq, 100)
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    // A merged-away id resolves to the survivor and says so.
    let p = s.get_profile(h.id, pb).await.unwrap();
    assert_eq!((p.id, p.merged_from), (pa, Some(pb)));
    assert_eq!(p.members.len(), 4);
    // Lookup by a value in another notation.
    let found = s
        .lookup_golden_records(h.id, h.org, "display_mobile", "0912 345 678")
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|(p, _)| p.id).collect::<Vec<_>>(),
        vec![pa]
    );
    t.finish(h.id).await;
}

conformance!(survivor_is_oldest, survivor_is_oldest_body);
async fn survivor_is_oldest_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let old = upsert(s, h.id, h.email_caac, "old", &[("customer_id", "M1")]).await;
    // The younger profile is the larger one: the survivor is still the oldest.
    let mut young = Vec::new();
    for i in 0..4 {
        young.push(
            upsert(
                s,
                h.id,
                h.email_caac,
                &format!("y{i}"),
                &[("display_email", "bo@example.com")],
            )
            .await,
        );
    }
    let bridge = upsert(
        s,
        h.id,
        h.email_caac,
        "bridge",
        &[("display_email", "bo@example.com"), ("customer_id", "M1")],
    )
    .await;
    let survivor = old.contact.profile_id;
    assert_eq!(
        bridge.unification,
        Unification::Merged {
            survivor,
            absorbed: vec![young[0].contact.profile_id]
        }
    );
    let p = s.get_profile(h.id, survivor).await.unwrap();
    assert_eq!(p.members.len(), 6);
    assert_eq!(p.oldest_contact, old.contact.id);
    // An update that adds nothing keeps the contact where it is.
    let again = upsert(s, h.id, h.email_caac, "y0", &[("display_name", "Bo")]).await;
    assert_eq!(again.unification, Unification::Unchanged);
    assert_eq!(again.contact.profile_id, survivor);
    let (_, golden) = s
        .golden_record(h.id, young[2].contact.profile_id)
        .await
        .unwrap();
    assert_eq!(golden.fields["display_name"].value, "Bo");
    t.finish(h.id).await;
}

conformance!(update_bridges_profiles, update_bridges_body);
async fn update_bridges_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let x = upsert(s, h.id, h.email_caac, "x", &[("customer_id", "M7")]).await;
    let y = upsert(
        s,
        h.id,
        h.email_caac,
        "y",
        &[("display_email", "cy@example.com")],
    )
    .await;
    let z = upsert(
        s,
        h.id,
        h.email_caac,
        "z",
        &[("display_email", "cy@example.com")],
    )
    .await;
    assert_eq!(z.contact.profile_id, y.contact.profile_id);
    // A stored contact's update brings in a value of an older profile: its own profile is
    // absorbed, and it and its profile-mate move to the survivor.
    let bridged = upsert(s, h.id, h.email_caac, "y", &[("customer_id", "M7")]).await;
    let survivor = x.contact.profile_id;
    assert_eq!(
        bridged.unification,
        Unification::Merged {
            survivor,
            absorbed: vec![y.contact.profile_id]
        }
    );
    assert_eq!(bridged.contact.id, y.contact.id);
    assert_eq!(bridged.contact.profile_id, survivor);
    let p = s.get_profile(h.id, z.contact.profile_id).await.unwrap();
    assert_eq!(p.id, survivor);
    assert_eq!(p.members.len(), 3);
    // The same update again changes nothing.
    let again = upsert(s, h.id, h.email_caac, "y", &[("customer_id", "M7")]).await;
    assert_eq!(again.unification, Unification::Unchanged);
    t.finish(h.id).await;
}

conformance!(timeline_moves_with_merge, timeline_body);
async fn timeline_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "line_uid"]).await;
    let uid = "U0123456789abcdef0123456789abcdef";
    let a = upsert(s, h.id, h.line_caac, "a", &[("line_uid", uid)]).await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_email", "cy@example.com")],
    )
    .await;
    s.add_note(h.id, a.contact.id, "note a1", "agent", 1_000)
        .await
        .unwrap();
    s.add_conversation(h.id, b.contact.id, "in", "hello b", 2_000)
        .await
        .unwrap();
    s.add_note(h.id, a.contact.id, "note a2", "agent", 3_000)
        .await
        .unwrap();
    let before = s
        .timeline(h.id, a.contact.profile_id, 10, None)
        .await
        .unwrap();
    assert_eq!(
        before
            .items
            .iter()
            .map(|e| e.text.as_str())
            .collect::<Vec<_>>(),
        ["note a2", "note a1"]
    );
    upsert(
        s,
        h.id,
        h.email_caac,
        "c",
        &[("display_email", "cy@example.com"), ("line_uid", uid)],
    )
    .await;
    // Page by page, newest first, every member's entries.
    let mut texts = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .timeline(h.id, b.contact.profile_id, 1, cursor.as_deref())
            .await
            .unwrap();
        texts.extend(page.items.iter().map(|e| e.text.clone()));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(texts, ["note a2", "hello b", "note a1"]);
    // The absorbed profile's id reads the survivor's whole timeline.
    let through_absorbed = s
        .timeline(h.id, a.contact.profile_id, 10, None)
        .await
        .unwrap();
    assert_eq!(through_absorbed.items.len(), 3);
    t.finish(h.id).await;
}

conformance!(invalid_and_blocked_never_merge, blocked_body);
async fn blocked_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(
        s,
        h.id,
        h.org,
        &["display_email", "display_mobile", "line_uid"],
    )
    .await;
    let mut profiles = Vec::new();
    for (i, (field, value)) in [
        ("display_email", "test@test.com"),
        ("display_email", "test@test.com"),
        ("display_mobile", "0000000000"),
        ("display_mobile", "0000000000"),
        ("display_email", "not an email"),
        ("display_email", "not an email"),
        ("line_uid", "U123"),
        ("line_uid", "U123"),
    ]
    .into_iter()
    .enumerate()
    {
        let r = upsert(s, h.id, h.email_caac, &format!("x{i}"), &[(field, value)]).await;
        assert_eq!(
            r.unification,
            Unification::Created,
            "{field}={value} merged"
        );
        assert_eq!(
            r.contact.invalid_fields.len(),
            1,
            "{field}={value} not flagged"
        );
        profiles.push(r.contact.profile_id);
    }
    profiles.sort_unstable();
    profiles.dedup();
    assert_eq!(profiles.len(), 8);
    t.finish(h.id).await;
}

conformance!(scopes_keep_apart, scopes_body);
async fn scopes_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let other_org = s.create_organization(h.id, "brand jp", "JP").await.unwrap();
    let other = channel(s, h.id, other_org, "email", "caac").await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "di@example.com")],
    )
    .await;
    let m = upsert(
        s,
        h.id,
        h.email_maac,
        "m",
        &[("display_email", "di@example.com")],
    )
    .await;
    let o = upsert(s, h.id, other, "o", &[("display_email", "di@example.com")]).await;
    // Products and organizations stay apart by default.
    assert_eq!(m.unification, Unification::Created);
    assert_eq!(o.unification, Unification::Created);
    // Cross-product joins CAAC and MAAC at the next apply; another organization stays apart.
    s.set_cross_product(h.id, h.org, true).await.unwrap();
    let result = apply_keys(s, h.id, h.org, &["display_email"]).await;
    assert_eq!(result["merges"], 1);
    assert_eq!(
        s.get_contact(h.id, m.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    assert_ne!(
        s.get_contact(h.id, o.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    crate::support::assert_invariants(s, h.id).await;
    // A partner connection joins the organizations, with its disclosure recorded.
    assert!(
        s.connect_organizations(h.id, &[h.org, other_org], " ", "partner")
            .await
            .is_err()
    );
    s.connect_organizations(
        h.id,
        &[h.org, other_org],
        "https://brand.example/privacy",
        "partner",
    )
    .await
    .unwrap();
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    assert_eq!(
        s.get_contact(h.id, o.contact.id).await.unwrap().profile_id,
        a.contact.profile_id
    );
    let n = upsert(s, h.id, other, "n", &[("display_email", "DI@example.com")]).await;
    assert_eq!(n.contact.profile_id, a.contact.profile_id);
    t.finish(h.id).await;
}

conformance!(tokens_and_tasks, tokens_body);
async fn tokens_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let issued = s
        .create_token(h.id, h.org, "crm", &["profiles:read".into()])
        .await
        .unwrap();
    let grant = s
        .verify_token(&issued.token)
        .await
        .unwrap()
        .expect("valid token");
    assert_eq!(
        (grant.hub_id, grant.organization_id, grant.scopes.clone()),
        (h.id, h.org, vec!["profiles:read".to_owned()])
    );
    let forged = format!("{}x", issued.token);
    assert_eq!(s.verify_token(&forged).await.unwrap(), None);
    assert_eq!(s.verify_token("cdh_1_2_nope").await.unwrap(), None);
    s.revoke_token(h.id, issued.id).await.unwrap();
    assert_eq!(s.verify_token(&issued.token).await.unwrap(), None);

    let task = s
        .start_task_exclusive(
            h.id,
            h.org,
            TaskKind::Export,
            &serde_json::json!({"format": "csv"}),
        )
        .await
        .unwrap();
    assert_eq!(
        s.get_task(h.id, task).await.unwrap().status,
        TaskStatus::Queued
    );
    s.update_task_progress(h.id, task, 5, 10).await.unwrap();
    let running = s.get_task(h.id, task).await.unwrap();
    assert_eq!(
        (running.status.as_str(), running.done, running.total),
        ("running", 5, 10)
    );
    s.finish_task(h.id, task, Err("disk full".into()))
        .await
        .unwrap();
    let failed = s.get_task(h.id, task).await.unwrap();
    assert_eq!(
        (failed.status.as_str(), failed.error.as_deref()),
        ("failed", Some("disk full"))
    );
    assert!(
        s.get_task(HubId(h.id.0 + 1), task).await.is_err(),
        "another hub sees the task"
    );
    let listed = s
        .list_tasks(h.id, h.org, &[TaskKind::Export], 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].organization_id, Some(h.org));
    t.finish(h.id).await;
}

conformance!(text_round_trips_exactly, text_round_trips_exactly_body);
/// Quotes, backslashes, semicolons and non-ASCII text come back exactly as written (PostgreSQL
/// receives an upsert's writes with their values written as literals); a NUL is refused on
/// both backends before anything is stored.
async fn text_round_trips_exactly_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let awkward = r#"O'Brien \' \\ "q" ; DROP TABLE contacts; -- $1 ? 王小明 🙂"#;
    let mut input = crate::support::input(
        h.email_caac,
        "it's \\ $2",
        &[("display_name", awkward), ("customer_id", "C-'1'")],
    );
    input.tags = Some(vec!["a'b".into(), "c\\d".into()]);
    input.custom_fields = Some([("note's".to_owned(), awkward.to_owned())].into());
    let first = s.upsert_contact(h.id, &input, "o'actor").await.unwrap();
    let stored = s.get_contact(h.id, first.contact.id).await.unwrap();
    assert_eq!(stored.external_id, "it's \\ $2");
    assert_eq!(stored.fields["display_name"].value, awkward);
    assert_eq!(stored.tags, vec!["a'b".to_owned(), "c\\d".to_owned()]);
    assert_eq!(stored.custom_fields["note's"], awkward);
    // The quoted customer id ties a second contact to the same profile.
    let second = upsert(s, h.id, h.email_caac, "other", &[("customer_id", "C-'1'")]).await;
    assert_eq!(second.unification, Unification::Joined);
    assert_eq!(second.contact.profile_id, first.contact.profile_id);

    let before = s.events_after(h.id, h.org, 0, 1000).await.unwrap().len();
    let with_nul = crate::support::input(h.email_caac, "nul", &[("display_name", "a\0b")]);
    let err = s.upsert_contact(h.id, &with_nul, "test").await.unwrap_err();
    assert!(
        matches!(&err, cdh_store::StoreError::Invalid(why) if why.contains("display_name")),
        "{err:?}"
    );
    let mut nul_tag = crate::support::input(h.email_caac, "nul", &[]);
    nul_tag.tags = Some(vec!["x\0".into()]);
    assert!(matches!(
        s.upsert_contact(h.id, &nul_tag, "test").await,
        Err(cdh_store::StoreError::Invalid(_))
    ));
    assert_eq!(
        s.events_after(h.id, h.org, 0, 1000).await.unwrap().len(),
        before
    );
    t.finish(h.id).await;
}

conformance!(
    failed_and_cancelled_upserts_leave_no_transaction_open,
    failed_and_cancelled_body
);
/// An upsert ends its own transaction: after one that fails inside it (an unknown channel,
/// found after `BEGIN`) and after ones cancelled at every point of their run, the next upsert
/// works and the invariants hold.
async fn failed_and_cancelled_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let unknown_channel =
        crate::support::input(ChannelId(9_999_999), "x", &[("display_email", "a@x.io")]);
    assert!(matches!(
        s.upsert_contact(h.id, &unknown_channel, "test").await,
        Err(cdh_store::StoreError::NotFound(_))
    ));
    let first = upsert(s, h.id, h.email_caac, "a", &[("display_email", "a@x.io")]).await;
    assert_eq!(first.unification, Unification::Created);
    for step in 0..40u64 {
        let input = crate::support::input(
            h.email_caac,
            &format!("cancelled-{step}"),
            &[("display_email", "a@x.io")],
        );
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_micros(step * 50),
            s.upsert_contact(h.id, &input, "test"),
        )
        .await;
        if let Ok(done) = cancelled {
            done.unwrap();
        }
        let after = upsert(
            s,
            h.id,
            h.email_caac,
            &format!("after-{step}"),
            &[("display_email", "a@x.io")],
        )
        .await;
        assert_eq!(after.contact.profile_id, first.contact.profile_id);
    }
    t.finish(h.id).await;
}

conformance!(
    a_contacts_profile_is_found_by_primary_keys,
    bucket_plan_body
);
async fn bucket_plan_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let first = upsert(s, h.id, h.line_caac, "a", &[("display_email", "a@x.com")]).await;
    upsert(s, h.id, h.line_caac, "b", &[("display_email", "b@x.com")]).await;
    // A merge, so the hub holds a merged profile as well as live ones.
    upsert(s, h.id, h.line_caac, "c", &[("display_email", "a@x.com")]).await;
    // Thousands of profiles in another hub, and fresh statistics, so the planner chooses with
    // numbers to go on.
    let bulk_hub = s.create_hub("bulk").await.unwrap();
    let bulk_org = s.create_organization(bulk_hub, "bulk", "TW").await.unwrap();
    let bulk_channel = channel(s, bulk_hub, bulk_org, "line", "caac").await;
    let series = if t.schema().is_some() {
        "generate_series(1, 5000) AS g(n)"
    } else {
        "(WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) \
         SELECT n FROM g) AS g"
    };
    for sql in [
        format!(
            "INSERT INTO contacts (hub_id, id, channel_id, external_id, scope, fields, tags, \
             custom_fields, invalid_fields, created_at, updated_at) \
             SELECT {bulk_hub}, 1000000 + n, {bulk_channel}, 'x' || n, 's', '{{}}', '[]', '{{}}', \
             '[]', 0, 0 FROM {series}"
        ),
        format!(
            "INSERT INTO memberships (hub_id, contact_id, bucket_id) \
             SELECT {bulk_hub}, 1000000 + n, 1000000 + n FROM {series}"
        ),
        format!(
            "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, \
             member_count, merged_into, created_at, updated_at) \
             SELECT {bulk_hub}, 1000000 + n, 1000000 + n, 1000000 + n, 1, NULL, 0, 0 \
             FROM {series}"
        ),
        "ANALYZE".to_owned(),
    ] {
        t.raw(&sql).await;
    }
    let plan = s
        .live_profile_plan(h.id, first.contact.id)
        .await
        .expect("plan");
    let text = plan.join("\n");
    // The membership's bucket names a profile, and that one its survivor: both are searched
    // by primary key.
    let by_key = if t.schema().is_some() {
        "using profiles_pkey on profiles"
    } else {
        "USING PRIMARY KEY (hub_id=? AND id=?)"
    };
    assert_eq!(text.matches(by_key).count(), 2, "{text}");
    assert!(
        !text.contains("Seq Scan on profiles")
            && !text.contains("SCAN p")
            && !text.contains("SCAN o"),
        "profiles are scanned:\n{text}"
    );
    t.finish(h.id).await;
}

conformance!(merges_move_no_membership, no_move_body);
async fn no_move_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    let a = upsert(s, h.id, h.email_caac, "a", &[("display_email", "a@x.com")]).await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_mobile", "0912345678")],
    )
    .await;
    // c bridges a's profile and b's: an upsert merges them.
    let c = upsert(
        s,
        h.id,
        h.email_caac,
        "c",
        &[
            ("display_email", "a@x.com"),
            ("display_mobile", "0912345678"),
        ],
    )
    .await;
    assert_eq!(c.contact.profile_id, a.contact.profile_id);
    // e and f share a customer id, which is no key yet: an apply merges them.
    let e = upsert(s, h.id, h.email_caac, "e", &[("customer_id", "K1")]).await;
    let f = upsert(s, h.id, h.email_caac, "f", &[("customer_id", "K1")]).await;
    assert_ne!(e.contact.profile_id, f.contact.profile_id);
    apply_keys(
        s,
        h.id,
        h.org,
        &["display_email", "display_mobile", "customer_id"],
    )
    .await;
    let f_now = s.get_contact(h.id, f.contact.id).await.unwrap();
    assert_eq!(f_now.profile_id, e.contact.profile_id);
    let b_now = s.get_contact(h.id, b.contact.id).await.unwrap();
    assert_eq!(b_now.profile_id, a.contact.profile_id);

    // Every contact's membership still names the bucket of the profile it was first placed
    // in (a new profile's bucket is its id): neither merge rewrote a membership row.
    let memberships = t
        .raw_pairs(&format!(
            "SELECT contact_id, bucket_id FROM memberships WHERE hub_id = {} ORDER BY contact_id",
            h.id
        ))
        .await;
    let placed: Vec<(i64, i64)> = [&a, &b, &c, &e, &f]
        .iter()
        .map(|u| (u.contact.id.0, u.contact.profile_id.0))
        .collect();
    assert_eq!(memberships, placed);
    t.finish(h.id).await;
}
