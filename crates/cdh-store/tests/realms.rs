//! Organizations of one hub (one brand) are separate until a partner connects them: settings,
//! cross-product, previews, applies, tasks, events and webhook deliveries of one never show
//! the other's, and one's writes never make the other's preview stale. Connected, they share
//! one realm; each goes on under its own setting until the realm's first apply.

use cdh_store::model::{
    ChannelId, HubId, OrganizationId, Realm, TaskKind, TaskStatus, Unification, UnifySetting,
};
use cdh_store::{AnyStore, ApplyOptions, Rejection, Resource, StoreError};

use crate::conformance;
use crate::support::{TestStore, apply_keys, channel, hub, upsert};

fn setting(keys: &[&str]) -> UnifySetting {
    UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        excluded: Vec::new(),
    }
}

/// Runs an apply task to its end; panics unless it succeeds.
async fn run(s: &AnyStore, hub: HubId, task: cdh_store::model::TaskId) {
    let done = s
        .run_apply(hub, task, &ApplyOptions::default())
        .await
        .expect("run apply");
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
}

/// A second organization of the hub with an email channel.
async fn second_org(s: &AnyStore, hub: HubId) -> (OrganizationId, ChannelId) {
    let org = s.create_organization(hub, "brand jp", "TW").await.unwrap();
    (org, channel(s, hub, org, "email", "caac").await)
}

conformance!(
    organizations_of_a_hub_are_separate_until_connected,
    separate_body
);
async fn separate_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let (b, b_email) = second_org(s, h.id).await;
    // A shares one address among many contacts; B has contacts of its own.
    for i in 0..3 {
        upsert(
            s,
            h.id,
            h.email_caac,
            &format!("a{i}"),
            &[("display_email", "shared@a.example")],
        )
        .await;
    }
    upsert(s, h.id, b_email, "b0", &[("display_email", "b@b.example")]).await;
    upsert(s, h.id, b_email, "b1", &[("display_email", "b@b.example")]).await;

    // A applies a setting: B's is untouched, and B's contacts did not merge.
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    assert_eq!(s.unify_setting(h.id, h.org).await.unwrap().version, 1);
    assert_eq!(s.unify_setting(h.id, b).await.unwrap().version, 0);
    assert!(s.unify_history(h.id, b).await.unwrap().is_empty());
    let b1 = upsert(s, h.id, b_email, "b2", &[("display_email", "b@b.example")]).await;
    assert_eq!(b1.unification, Unification::Created, "B has no keys yet");
    // Cross-product is each organization's own switch.
    s.set_cross_product(h.id, b, true).await.unwrap();
    assert!(!s.realm_settings(h.id, h.org).await.unwrap().cross_product);

    // B's preview sees B's contacts only: none of A's values, counts or samples.
    let preview = s
        .create_preview(h.id, b, &setting(&["display_email"]), 1)
        .await
        .unwrap();
    assert_eq!(preview.report.profiles_before, 3, "{:?}", preview.report);
    assert_eq!(preview.report.profiles_after, 1);
    let text = serde_json::to_string(&preview.report).unwrap();
    assert!(!text.contains("shared@a.example"), "{text}");
    assert!(text.contains("b@b.example"), "{text}");
    // A custom field only A's contacts carry is unknown to B.
    upsert_custom(s, h.id, h.email_caac, "a-member", "member_no", "M1").await;
    assert!(matches!(
        s.create_preview(h.id, b, &setting(&["member_no"]), 20)
            .await,
        Err(StoreError::Rejected {
            reason: Rejection::UnknownField,
            ..
        })
    ));

    // A cannot read or apply B's preview; A's writes do not make it stale.
    assert_eq!(
        s.get_preview(h.id, h.org, preview.id).await,
        Err(StoreError::NotFound(Resource::Preview))
    );
    assert_eq!(
        s.apply_preview(h.id, h.org, preview.id, "a-admin").await,
        Err(StoreError::NotFound(Resource::Preview))
    );
    upsert(
        s,
        h.id,
        h.email_caac,
        "a9",
        &[("display_email", "x@a.example")],
    )
    .await;
    let task = s
        .apply_preview(h.id, b, preview.id, "b-admin")
        .await
        .expect("A's writes leave B's preview fresh");
    run(s, h.id, task).await;
    assert_eq!(s.unify_setting(h.id, b).await.unwrap().version, 1);
    assert_eq!(
        s.unify_setting(h.id, h.org).await.unwrap().setting.keys,
        ["display_email"]
    );

    // B's apply is B's task: A cannot see it, nor list it.
    assert_eq!(
        s.organization_task(h.id, h.org, task).await.map(|t| t.id),
        Err(StoreError::NotFound(Resource::Task))
    );
    assert_eq!(
        s.organization_task(h.id, b, task).await.unwrap().realm,
        Some(Realm::Organization(b))
    );
    let kinds = [TaskKind::Apply];
    let a_tasks = s.list_tasks(h.id, h.org, &kinds, 100).await.unwrap();
    assert!(a_tasks.iter().all(|t| t.id != task), "{a_tasks:?}");
    assert_eq!(s.list_tasks(h.id, b, &kinds, 100).await.unwrap().len(), 1);

    // Each organization's feed holds its own events only.
    let a_events = s.events_after(h.id, h.org, 0, 1000).await.unwrap();
    let b_events = s.events_after(h.id, b, 0, 1000).await.unwrap();
    let a_text =
        serde_json::to_string(&a_events.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    let b_text =
        serde_json::to_string(&b_events.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    assert!(a_text.contains("shared@a.example") && !a_text.contains("b@b.example"));
    assert!(b_text.contains("b@b.example") && !b_text.contains("shared@a.example"));
    assert!(
        a_events
            .iter()
            .all(|a| b_events.iter().all(|b| a.seq != b.seq)),
        "no event in both feeds"
    );
    t.finish(h.id).await;
}

conformance!(
    a_feed_page_scans_past_other_organizations_events,
    feed_scan_body
);
/// The feed reads a hub's events in order and keeps the reader's: a page of one event finds
/// B's among A's, and the page after it moves past A's later events without showing them.
async fn feed_scan_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let (b, b_email) = second_org(s, h.id).await;
    let a_write = |i: usize| async move {
        upsert(
            s,
            h.id,
            h.email_caac,
            &format!("a{i}"),
            &[("display_email", &format!("a{i}@a.example"))],
        )
        .await;
    };
    for i in 0..5 {
        a_write(i).await;
    }
    let b0 = upsert(s, h.id, b_email, "b0", &[("display_email", "b@b.example")]).await;
    for i in 5..7 {
        a_write(i).await;
    }
    let b_page = s.events_page(h.id, b, 0, 1).await.unwrap();
    let [b_event] = b_page.events.as_slice() else {
        panic!("one event of B's: {:?}", b_page.events);
    };
    assert_eq!(b_event.profile_id, b0.contact.profile_id, "{b_event:?}");
    assert_eq!(b_page.next_after, b_event.seq);
    let rest = s.events_page(h.id, b, b_event.seq, 1).await.unwrap();
    assert!(rest.events.is_empty(), "{:?}", rest.events);
    let a_all = s.events_after(h.id, h.org, 0, 1000).await.unwrap();
    assert_eq!(a_all.len(), 7, "{a_all:?}");
    assert!(a_all.iter().all(|e| e.seq != b_event.seq));
    assert_eq!(rest.next_after, a_all.last().unwrap().seq, "moved past A's");
    let a_page = s.events_page(h.id, h.org, 0, 3).await.unwrap();
    assert_eq!(a_page.events, a_all[..3]);
    assert_eq!(a_page.next_after, a_all[2].seq);
    t.finish(h.id).await;
}

/// Upserts a contact with one custom field.
async fn upsert_custom(
    s: &AnyStore,
    hub: HubId,
    channel: ChannelId,
    external_id: &str,
    field: &str,
    value: &str,
) {
    let mut input = crate::support::input(channel, external_id, &[]);
    input.custom_fields = Some([(field.to_owned(), value.to_owned())].into());
    s.upsert_contact(hub, &input, "test").await.unwrap();
}

conformance!(
    connected_organizations_share_one_realm_from_its_first_apply,
    connected_body
);
async fn connected_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let (b, b_email) = second_org(s, h.id).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let a0 = upsert(
        s,
        h.id,
        h.email_caac,
        "a0",
        &[("display_email", "ann@x.example")],
    )
    .await;
    let b0 = upsert(
        s,
        h.id,
        b_email,
        "b0",
        &[("display_email", "ann@x.example")],
    )
    .await;
    assert_ne!(a0.contact.profile_id, b0.contact.profile_id);

    let connection = s
        .connect_organizations(
            h.id,
            &[h.org, b],
            "https://brand.example/privacy",
            "partner",
        )
        .await
        .unwrap();
    // Connecting either again is refused, with its own code.
    assert!(matches!(
        s.connect_organizations(
            h.id,
            &[b, h.org],
            "https://brand.example/privacy",
            "partner"
        )
        .await,
        Err(StoreError::Rejected {
            reason: Rejection::AlreadyConnected,
            ..
        })
    ));
    // Both address the connection's realm, which has no setting yet...
    let realm = Realm::Connection(connection.id);
    assert_eq!(s.realm_settings(h.id, b).await.unwrap().realm, realm);
    assert_eq!(s.unify_setting(h.id, b).await.unwrap().version, 0);
    assert_eq!(s.unify_setting(h.id, h.org).await.unwrap().version, 0);
    // ...and until its first apply, A goes on unifying under its own setting.
    let a1 = upsert(
        s,
        h.id,
        h.email_caac,
        "a1",
        &[("display_email", "ann@x.example")],
    )
    .await;
    assert_eq!(a1.contact.profile_id, a0.contact.profile_id);
    let b1 = upsert(
        s,
        h.id,
        b_email,
        "b1",
        &[("display_email", "ann@x.example")],
    )
    .await;
    assert_eq!(b1.unification, Unification::Created);

    // The realm's first apply, by B's admin, merges across the organizations.
    let preview = s
        .create_preview(h.id, b, &setting(&["display_email"]), 20)
        .await
        .unwrap();
    assert_eq!(preview.report.profiles_after, 1, "{:?}", preview.report);
    let task = s
        .apply_preview(h.id, b, preview.id, "b-admin")
        .await
        .unwrap();
    run(s, h.id, task).await;
    let settings = s.realm_settings(h.id, h.org).await.unwrap();
    assert!(settings.connection.unwrap().unified_at.is_some());
    for c in [&a0, &b0, &b1] {
        assert_eq!(
            s.get_contact(h.id, c.contact.id).await.unwrap().profile_id,
            a0.contact.profile_id
        );
    }
    // A's admin sees the realm's setting and task; new contacts of either join.
    let applied = s.unify_setting(h.id, h.org).await.unwrap();
    assert_eq!((applied.version, applied.actor.as_str()), (1, "b-admin"));
    assert_eq!(
        s.organization_task(h.id, h.org, task).await.unwrap().id,
        task
    );
    let b2 = upsert(
        s,
        h.id,
        b_email,
        "b2",
        &[("display_email", "ANN@x.example")],
    )
    .await;
    assert_eq!(b2.contact.profile_id, a0.contact.profile_id);
    // Both see the merge; each still sees its own events from before.
    let merged = |events: &[cdh_store::model::Event]| {
        events.iter().filter(|e| e.kind == "profile.merged").count()
    };
    let a_events = s.events_after(h.id, h.org, 0, 1000).await.unwrap();
    let b_events = s.events_after(h.id, b, 0, 1000).await.unwrap();
    assert!(merged(&a_events) >= 1 && merged(&b_events) >= 1);
    assert!(
        a_events
            .iter()
            .any(|e| e.payload["contact_id"] == a1.contact.id.0)
    );
    assert!(
        !b_events
            .iter()
            .any(|e| e.payload["contact_id"] == a1.contact.id.0)
    );

    // From now on, events about a profile go to the organizations with a contact in it: a
    // profile of A's contacts alone is A's business, in the feed and at B's webhook.
    let hook = s
        .create_webhook(h.id, b, "https://b.example/hook", "0123456789abcdef0123")
        .await
        .unwrap();
    let solo = upsert(
        s,
        h.id,
        h.email_caac,
        "a-solo",
        &[("display_email", "solo@x.example")],
    )
    .await;
    let solo_profile = solo.contact.profile_id;
    let about_solo = |events: &[cdh_store::model::Event]| {
        events
            .iter()
            .filter(|e| e.profile_id == solo_profile)
            .count()
    };
    let a_events = s.events_after(h.id, h.org, 0, 1000).await.unwrap();
    assert!(about_solo(&a_events) >= 1, "{a_events:?}");
    let b_page = s.events_page(h.id, b, 0, 1000).await.unwrap();
    assert_eq!(about_solo(&b_page.events), 0, "{:?}", b_page.events);
    // B's cursor moves past the events it does not see all the same.
    assert_eq!(b_page.next_after, a_events.last().unwrap().seq);
    let after_b = b_page.events.last().unwrap().seq;
    let b_rest = s.events_page(h.id, b, after_b, 1).await.unwrap();
    assert!(b_rest.events.is_empty(), "{:?}", b_rest.events);
    assert_eq!(b_rest.next_after, b_page.next_after);
    let delivered = drain_deliveries(s, h.id, hook).await;
    assert!(!delivered.contains(&solo_profile), "{delivered:?}");
    let listed = s.list_webhooks(h.id, b).await.unwrap();
    assert_eq!(listed[0].delivered_seq, b_page.next_after, "moved past");
    // Once B holds a contact in that profile, B sees its whole history, and its webhook
    // receives what happens to it.
    let b_solo = upsert(
        s,
        h.id,
        b_email,
        "b-solo",
        &[("display_email", "solo@x.example")],
    )
    .await;
    assert_eq!(b_solo.contact.profile_id, solo_profile);
    let b_events = s.events_after(h.id, b, 0, 1000).await.unwrap();
    assert!(about_solo(&b_events) >= 2, "{b_events:?}");
    assert!(
        drain_deliveries(s, h.id, hook)
            .await
            .contains(&solo_profile)
    );
    t.finish(h.id).await;
}

/// Delivers everything due to `hook` (each try a success); the profiles of the events sent.
async fn drain_deliveries(
    s: &AnyStore,
    hub: cdh_store::model::HubId,
    hook: cdh_store::model::WebhookId,
) -> Vec<cdh_store::model::ProfileId> {
    let mut profiles = Vec::new();
    for _ in 0..10_000 {
        let due: Vec<_> = s
            .due_deliveries(i64::MAX, 1000)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.hub_id == hub && d.endpoint_id == hook)
            .collect();
        let Some(d) = due.into_iter().next() else {
            return profiles;
        };
        s.record_delivery(hub, hook, d.event.seq, d.attempt, Ok(200), None)
            .await
            .unwrap();
        profiles.push(d.event.profile_id);
    }
    panic!("deliveries never ran out");
}

conformance!(
    a_webhook_receives_its_organizations_events_only,
    webhook_body
);
async fn webhook_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let (b, b_email) = second_org(s, h.id).await;
    let hook = s
        .create_webhook(h.id, b, "https://b.example/hook", "0123456789abcdef0123")
        .await
        .unwrap();
    let ours = |d: Vec<cdh_store::model::Delivery>| {
        d.into_iter()
            .filter(|d| d.hub_id == h.id)
            .collect::<Vec<_>>()
    };
    for i in 0..5 {
        upsert(
            s,
            h.id,
            h.email_caac,
            &format!("a{i}"),
            &[("display_email", "a@a.example")],
        )
        .await;
    }
    // Only A wrote: B's endpoint has nothing due, and it moved past A's events, so it does
    // not stay due.
    assert!(ours(s.due_deliveries(i64::MAX, 1000).await.unwrap()).is_empty());
    let listed = s.list_webhooks(h.id, b).await.unwrap();
    assert!(listed[0].delivered_seq >= 5, "{listed:?}");
    let b0 = upsert(s, h.id, b_email, "b0", &[("display_email", "b@b.example")]).await;
    let due = ours(s.due_deliveries(i64::MAX, 1000).await.unwrap());
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].endpoint_id, due[0].event.profile_id),
        (hook, b0.contact.profile_id)
    );
    t.finish(h.id).await;
}

conformance!(
    applies_of_one_organization_queue_one_after_another,
    queued_applies_body
);
async fn queued_applies_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    // Two applies asked before either runs: both are queued (an apply takes no import or
    // export slot), and they run in order.
    let first = s
        .start_apply(h.id, h.org, &setting(&["display_email"]), "admin")
        .await
        .unwrap();
    let second = s
        .start_apply(h.id, h.org, &setting(&["display_mobile"]), "admin")
        .await
        .unwrap();
    let queued = s.get_task(h.id, second).await.unwrap();
    assert_eq!(queued.organization_id, None);
    assert_eq!(queued.realm, Some(Realm::Organization(h.org)));
    run(s, h.id, first).await;
    run(s, h.id, second).await;
    let current = s.unify_setting(h.id, h.org).await.unwrap();
    assert_eq!(current.setting.keys, ["display_mobile"]);
    assert_eq!(
        s.organization_task(h.id, h.org, second).await.unwrap().id,
        second
    );
    t.finish(h.id).await;
}
