//! Webhook endpoints: events after registration delivered one at a time, in order, with
//! retries recorded; bad endpoints rejected.

use cdh_store::Resource;
use cdh_store::StoreError;
use cdh_store::model::{OrganizationId, WebhookId};

use crate::conformance;
use crate::support::{TestStore, hub, upsert};

const SECRET: &str = "0123456789abcdef0123";

conformance!(webhooks_deliver_in_order_with_retries, deliver_body);
async fn deliver_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    upsert(
        s,
        h.id,
        h.email_caac,
        "before",
        &[("display_email", "b@example.com")],
    )
    .await;
    let hook = s
        .create_webhook(h.id, h.org, "https://crm.example/hook", SECRET)
        .await
        .unwrap();
    let listed = s.list_webhooks(h.id, h.org).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id, listed[0].url.as_str()),
        (hook, "https://crm.example/hook")
    );
    let ours = |d: &Vec<cdh_store::model::Delivery>| {
        d.iter()
            .filter(|d| d.hub_id == h.id)
            .cloned()
            .collect::<Vec<_>>()
    };
    // Nothing happened since registration.
    assert!(ours(&s.due_deliveries(i64::MAX, 1000).await.unwrap()).is_empty());

    upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "a@example.com")],
    )
    .await;
    upsert(
        s,
        h.id,
        h.email_caac,
        "c",
        &[("display_email", "c@example.com")],
    )
    .await;
    let events = s
        .events_after(h.id, h.org, listed[0].delivered_seq, 10)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);

    let due = ours(&s.due_deliveries(1_000, 1000).await.unwrap());
    assert_eq!(due.len(), 1, "one event at a time per endpoint");
    assert_eq!(
        (due[0].event.seq, due[0].attempt, due[0].secret.as_str()),
        (events[0].seq, 1, SECRET)
    );
    // The first try fails: retried at 5000, not before.
    s.record_delivery(
        h.id,
        hook,
        events[0].seq,
        1,
        Err("connection refused".into()),
        Some(5_000),
    )
    .await
    .unwrap();
    assert!(ours(&s.due_deliveries(4_999, 1000).await.unwrap()).is_empty());
    let due = ours(&s.due_deliveries(5_000, 1000).await.unwrap());
    assert_eq!((due[0].event.seq, due[0].attempt), (events[0].seq, 2));
    s.record_delivery(h.id, hook, events[0].seq, 2, Ok(200), None)
        .await
        .unwrap();
    let due = ours(&s.due_deliveries(5_000, 1000).await.unwrap());
    assert_eq!((due[0].event.seq, due[0].attempt), (events[1].seq, 1));
    s.record_delivery(h.id, hook, events[1].seq, 1, Ok(204), None)
        .await
        .unwrap();
    assert!(ours(&s.due_deliveries(i64::MAX, 1000).await.unwrap()).is_empty());

    let log = s.deliveries(h.id, hook, 10).await.unwrap();
    let tries: Vec<(i64, u32, Option<u16>)> = log
        .iter()
        .map(|l| (l.event_seq, l.attempt, l.status))
        .collect();
    assert_eq!(
        tries,
        vec![
            (events[1].seq, 1, Some(204)),
            (events[0].seq, 2, Some(200)),
            (events[0].seq, 1, None)
        ]
    );
    assert_eq!(log[2].error.as_deref(), Some("connection refused"));
    assert_eq!(log[2].next_attempt_at, Some(5_000));
    // Recording an event already passed is refused.
    assert!(matches!(
        s.record_delivery(h.id, hook, events[0].seq, 3, Ok(200), None)
            .await,
        Err(StoreError::Conflict(_))
    ));

    s.delete_webhook(h.id, hook).await.unwrap();
    assert!(s.list_webhooks(h.id, h.org).await.unwrap().is_empty());
    assert_eq!(
        s.delete_webhook(h.id, hook).await,
        Err(StoreError::NotFound(Resource::Webhook))
    );
    assert_eq!(
        s.record_delivery(h.id, hook, events[1].seq + 1, 1, Ok(200), None)
            .await,
        Err(StoreError::NotFound(Resource::Webhook))
    );
    t.finish(h.id).await;
}

conformance!(webhooks_reject_bad_endpoints, bad_body);
async fn bad_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let code = |r: Result<WebhookId, StoreError>| r.unwrap_err().code();
    assert_eq!(
        code(s.create_webhook(h.id, h.org, "ftp://x", SECRET).await),
        "invalid_url"
    );
    assert_eq!(
        code(s.create_webhook(h.id, h.org, "https://a b", SECRET).await),
        "invalid_url"
    );
    assert_eq!(
        code(s.create_webhook(h.id, h.org, "https://x", "short").await),
        "invalid_secret"
    );
    assert_eq!(
        s.create_webhook(h.id, OrganizationId(i64::MAX), "https://x", SECRET)
            .await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    assert!(s.list_webhooks(h.id, h.org).await.unwrap().is_empty());
    t.finish(h.id).await;
}
