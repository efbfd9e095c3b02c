//! Webhooks: registering endpoints (secret shown once), and delivery to a real receiver on a
//! local port: signed, with an idempotency key, retried with backoff after a failure, every
//! try in the endpoint's delivery log.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::both_driven;
use crate::support::TestApp;
use crate::tasks::contact;

/// What a receiver got: (signature header, idempotency key, body).
pub type Received = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

/// A receiver on port 0 that answers `answers[i]` to its i-th request (200 after the list).
pub async fn receiver(answers: Vec<u16>) -> (String, Received) {
    let received: Received = Arc::default();
    let state = (received.clone(), Arc::new(answers));
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((received, answers)): State<(Received, Arc<Vec<u16>>)>,
                 headers: HeaderMap,
                 body: Bytes| async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .map(|v| v.to_str().unwrap().to_owned())
                            .unwrap_or_default()
                    };
                    let mut seen = received.lock().unwrap();
                    seen.push((
                        header("x-cdh-signature"),
                        header("idempotency-key"),
                        body.to_vec(),
                    ));
                    let status = answers.get(seen.len() - 1).copied().unwrap_or(200);
                    StatusCode::from_u16(status).unwrap()
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), received)
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

pub async fn deliver(app: &TestApp) -> usize {
    let state = &app.handle.state;
    state
        .worker
        .deliver_webhooks_now(state)
        .await
        .expect("deliver")
}

async fn endpoints(app: &TestApp) {
    let org = app.org("acme").await;
    let other = app.org("other").await;
    let created = app
        .post(
            "/v1/webhooks",
            &org.admin,
            json!({"url": "https://crm.example.com/hooks"}),
        )
        .await
        .expect(201);
    let id = created.str("id");
    assert!(created.str("secret").len() >= 32);
    assert_eq!(created.body["url"], "https://crm.example.com/hooks");
    let list = app.get("/v1/webhooks", &org.admin).await.expect(200);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(list.body["items"][0]["id"], id.as_str());
    assert!(
        list.body["items"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    assert!(!list.text.contains(&created.str("secret")));
    let log = app
        .get(&format!("/v1/webhooks/{id}/deliveries"), &org.admin)
        .await
        .expect(200);
    assert_eq!(log.body["items"], json!([]));

    // Another organization cannot see, read or delete it.
    assert_eq!(
        app.get("/v1/webhooks", &other.admin).await.expect(200).body["items"],
        json!([])
    );
    app.get(&format!("/v1/webhooks/{id}/deliveries"), &other.admin)
        .await
        .expect_error(404, "not_found");
    app.delete(&format!("/v1/webhooks/{id}"), &other.admin)
        .await
        .expect_error(404, "not_found");

    for bad in ["not a url", "ftp://example.com/x", "mailto:a@b.c"] {
        app.post("/v1/webhooks", &org.admin, json!({"url": bad}))
            .await
            .expect_error(422, "invalid_field");
    }
    app.post(
        "/v1/webhooks",
        &org.admin,
        json!({"url": "https://x.example", "events": []}),
    )
    .await
    .expect_error(422, "unknown_field");
    app.get(&format!("/v1/webhooks/{id}/deliveries?limit=0"), &org.admin)
        .await
        .expect_error(422, "invalid_field");
    let writer = app.token(&org.id, &org.admin, &["profiles:write"]).await;
    app.get("/v1/webhooks", &writer)
        .await
        .expect_error(403, "forbidden");
    app.call(Method::GET, "/v1/webhooks", None, None)
        .await
        .expect_error(401, "unauthorized");

    app.delete(&format!("/v1/webhooks/{id}"), &org.admin)
        .await
        .expect(204);
    app.delete(&format!("/v1/webhooks/{id}"), &org.admin)
        .await
        .expect_error(404, "not_found");
    assert_eq!(
        app.get("/v1/webhooks", &org.admin).await.expect(200).body["items"],
        json!([])
    );
}
both_driven!(
    webhook_endpoints_are_registered_listed_and_removed,
    endpoints
);

async fn signed_delivery(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    let (url, received) = receiver(vec![]).await;
    let hook = app
        .post("/v1/webhooks", &org.admin, json!({"url": url}))
        .await
        .expect(201);
    let secret = hook.str("secret");
    let c = contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"display_name": "Ann"}),
    )
    .await;

    assert!(deliver(app).await >= 1);
    let seen = received.lock().unwrap().clone();
    assert!(!seen.is_empty());
    let (signature, key, body) = &seen[0];
    assert_eq!(
        signature,
        &sign(&secret, body),
        "the signature is the HMAC of the body"
    );
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "profile.created", "{event}");
    assert_eq!(event["profile_id"], c["profile_id"]);
    assert_eq!(
        &event["id"],
        key.as_str(),
        "the idempotency key is the event id"
    );
    assert_ne!(sign("another secret", body), *signature);

    let log = app
        .get(
            &format!("/v1/webhooks/{}/deliveries", hook.str("id")),
            &org.admin,
        )
        .await
        .expect(200);
    let first = &log.body["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(first["outcome"], "succeeded", "{}", log.text);
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["status_code"], 200);
    assert_eq!(first["event_id"], key.as_str());
    // Nothing is due any more.
    assert_eq!(deliver(app).await, 0);
}
both_driven!(
    events_are_delivered_signed_with_an_idempotency_key,
    signed_delivery
);

async fn retried_delivery(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    let (url, received) = receiver(vec![500]).await;
    let hook = app
        .post("/v1/webhooks", &org.admin, json!({"url": url}))
        .await
        .expect(201)
        .str("id");
    contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"display_name": "Ann"}),
    )
    .await;

    assert_eq!(deliver(app).await, 1, "one try, which fails");
    let log = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), &org.admin)
        .await
        .expect(200)
        .body;
    let failed = log["items"][0].clone();
    assert_eq!(failed["outcome"], "failed", "{log}");
    assert_eq!(failed["status_code"], 500);
    let retry_at =
        cdh_server::wire::parse_time(failed["next_attempt_at"].as_str().unwrap(), "t").unwrap();
    let now = app.handle.state.clock.now();
    assert_eq!(
        retry_at,
        now + cdh_server::worker::webhooks::FIRST_RETRY_DELAY_MS
    );

    // Not due yet: nothing is sent.
    assert_eq!(deliver(app).await, 0);
    app.handle.state.clock.set(retry_at);
    assert!(deliver(app).await >= 1);
    let log = app
        .get(&format!("/v1/webhooks/{hook}/deliveries"), &org.admin)
        .await
        .expect(200)
        .body;
    let items = log["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{log}");
    assert_eq!(
        (items[0]["attempt"].clone(), items[0]["outcome"].clone()),
        (json!(2), json!("succeeded"))
    );
    assert_eq!(
        (items[1]["attempt"].clone(), items[1]["outcome"].clone()),
        (json!(1), json!("failed"))
    );
    let seen = received.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].1, seen[1].1,
        "the same idempotency key on both tries"
    );
    assert_eq!(seen[0].2, seen[1].2, "the same body on both tries");
}
both_driven!(a_failed_delivery_is_retried_with_backoff, retried_delivery);

/// With the default setting (private ranges closed), internal targets are refused when
/// registered; one stored before the setting changed (or written straight into the store) is
/// refused when a delivery connects, and its log says so without a word about the port.
#[tokio::test]
async fn webhooks_reach_public_addresses_only_by_default() {
    // No background worker: the test delivers itself, and a worker delivering the same
    // attempt at the same moment made it fail now and then ("already recorded").
    let app = TestApp::start(crate::support::Backend::Sqlite, |c| {
        c.webhook_allow_private = false;
        c.run_worker = false;
    })
    .await;
    let org = app.org("acme").await;
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://10.0.0.1/hook",
        "http://[fd00::1]/hook",
        "http://0.0.0.0/hook",
        "http://localhost:8080/hook",
        "http://2130706433/hook",
        "http://[::ffff:127.0.0.1]/hook",
    ] {
        let reply = app
            .post("/v1/webhooks", &org.admin, json!({"url": url}))
            .await
            .expect_error(422, "invalid_field");
        assert!(
            reply.text.contains("public address"),
            "{url}: {}",
            reply.text
        );
    }
    app.post(
        "/v1/webhooks",
        &org.admin,
        json!({"url": "https://user:pass@8.8.8.8/hook"}),
    )
    .await
    .expect_error(422, "invalid_field");

    // A receiver that is really listening on loopback, and one port that is closed: both
    // refused with the same words, so the log cannot be used to scan ports.
    let (open, received) = receiver(vec![]).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        format!("http://127.0.0.1:{port}/hook")
    };
    let (hub, org_id) = {
        let (hub, org_id) = org.id.split_once('-').unwrap();
        (
            hub.parse::<cdh_store::model::HubId>().unwrap(),
            org_id.parse::<cdh_store::model::OrganizationId>().unwrap(),
        )
    };
    let store = &app.handle.state.store;
    let mut hooks = Vec::new();
    for url in [&open, &closed] {
        let id = store
            .create_webhook(hub, org_id, url, "whsec_test_secret_for_refusal")
            .await
            .unwrap();
        hooks.push(id);
    }
    let channel = app.channel(&org.admin, "line", "caac").await;
    contact(
        &app,
        &org.admin,
        &channel,
        "u1",
        json!({"display_name": "Ann"}),
    )
    .await;
    assert_eq!(deliver(&app).await, 2, "one try per endpoint");
    assert!(
        received.lock().unwrap().is_empty(),
        "nothing reached loopback"
    );
    for id in hooks {
        let log = app
            .get(&format!("/v1/webhooks/{id}/deliveries"), &org.admin)
            .await
            .expect(200)
            .body;
        let item = &log["items"][0];
        assert_eq!(item["outcome"], "failed", "{log}");
        assert_eq!(item["error"], "refused: private address", "{log}");
    }
    app.finish().await;
}
