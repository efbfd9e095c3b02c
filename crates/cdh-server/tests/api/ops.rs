//! Health, metrics, the OpenAPI document, unknown routes and methods, graceful shutdown.

use reqwest::Method;
use serde_json::json;

use crate::both;
use crate::support::{OPERATOR, TestApp};

async fn health_metrics_and_openapi(app: &TestApp) {
    let health = app
        .call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = app
        .call(Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    assert_eq!(ready.body, json!({"status": "ready"}));

    let doc = app
        .call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200);
    assert!(
        doc.body["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc.text
    );
    assert!(doc.body["paths"]["/healthz"]["get"].is_object());
    assert!(doc.body["paths"]["/readyz"]["get"].is_object());
    for (path, method) in [
        ("/v1/organizations", "post"),
        ("/v1/organizations/{id}/tokens", "post"),
        ("/v1/organizations/{id}/tokens/{token_id}", "delete"),
        ("/v1/channels", "get"),
        ("/v1/contacts", "post"),
        ("/v1/contacts/{id}/notes", "post"),
        ("/v1/profiles", "get"),
        ("/v1/profiles/{id}", "patch"),
        ("/v1/profiles/{id}/lineage", "get"),
        ("/v1/unification/previews", "post"),
        ("/v1/unification/apply", "post"),
        ("/v1/hub", "put"),
        ("/v1/partner/connections", "post"),
        ("/v1/events", "get"),
    ] {
        assert!(
            doc.body["paths"][path][method].is_object(),
            "{method} {path} is missing from /openapi.json"
        );
    }

    // Metrics are the operator's: no token is 401, an organization's token 403.
    app.call(Method::GET, "/metrics", None, None)
        .await
        .expect_error(401, "unauthorized");
    let org = app.org("brand").await;
    app.call(Method::GET, "/metrics", Some(&org.admin), None)
        .await
        .expect_error(403, "forbidden");
    // A method a client invents is counted under one label, however many it invents.
    for invented in ["FROB", "BREW", "X-DELETE-ALL"] {
        let method = Method::from_bytes(invented.as_bytes()).unwrap();
        app.call(method, "/v1/channels", None, None).await;
    }
    let metrics = app
        .call(Method::GET, "/metrics", Some(OPERATOR), None)
        .await
        .expect(200);
    assert!(
        metrics.text.contains(
            "cdh_http_requests_total{method=\"other\",route=\"/v1/channels\",status=\"405\"} 3"
        ),
        "{}",
        metrics.text
    );
    for invented in ["FROB", "BREW", "X-DELETE-ALL"] {
        assert!(
            !metrics.text.contains(invented),
            "{invented} became a label"
        );
    }
    assert!(
        metrics.text.contains(
            "cdh_http_requests_total{method=\"GET\",route=\"/healthz\",status=\"200\"} 1"
        ),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("cdh_http_request_duration_seconds_bucket")
    );
}
both!(health_metrics_and_openapi_work, health_metrics_and_openapi);

async fn unknown_routes_and_methods(app: &TestApp) {
    app.get("/v1/nothing-here", OPERATOR)
        .await
        .expect_error(404, "not_found");
    app.call(Method::DELETE, "/healthz", None, None)
        .await
        .expect_error(405, "method_not_allowed");
}
both!(
    unknown_routes_and_methods_are_json_errors,
    unknown_routes_and_methods
);

/// A request the server has begun (it asked for the body with `100 Continue`) when shutdown
/// is signalled still gets its answer, its write lands, and only then does the server stop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let app = TestApp::sqlite().await;
    let org = app.org("Brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let body =
        json!({"channel_id": line, "external_id": "late", "display_name": "In flight"}).to_string();
    let mut socket = tokio::net::TcpStream::connect(app.handle.addr)
        .await
        .unwrap();
    let head = format!(
        "POST /v1/contacts HTTP/1.1\r\nhost: cdh\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nexpect: 100-continue\r\n\r\n",
        org.admin,
        body.len()
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("100 Continue") {
        let n = socket.read(&mut buf).await.unwrap();
        assert!(n > 0, "the server closed before asking for the body");
        seen.extend_from_slice(&buf[..n]);
    }

    // The handler is reading the body: stop the server now, then send the body.
    let store = app.handle.state.store.clone();
    let TestApp { handle, .. } = app;
    let stopping = tokio::spawn(handle.shutdown());
    socket.write_all(body.as_bytes()).await.unwrap();
    let mut reply = Vec::new();
    socket.read_to_end(&mut reply).await.unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.contains("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("In flight"), "{reply}");
    stopping.await.unwrap().expect("a clean shutdown");

    // The write is in the database.
    let json_start = reply.find('{').expect("a JSON body");
    let json_end = reply.rfind('}').expect("a JSON body");
    let contact: serde_json::Value = serde_json::from_str(&reply[json_start..=json_end])
        .unwrap_or_else(|e| panic!("{e}: {reply}"));
    let hub: cdh_store::model::HubId = org.id.split('-').next().unwrap().parse().unwrap();
    let id: cdh_store::model::ContactId = contact["id"].as_str().unwrap().parse().unwrap();
    let stored = store
        .get_contact(hub, id)
        .await
        .expect("the contact was stored");
    assert_eq!(stored.external_id, "late");
}

/// With an address of its own, `/metrics` answers there without a token, and still needs the
/// operator's on the main address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_on_an_address_of_their_own() {
    let app = crate::support::TestApp::start(crate::support::Backend::Sqlite, |c| {
        c.metrics_listen = Some("127.0.0.1:0".into())
    })
    .await;
    let addr = app.handle.metrics_addr.expect("a metrics address");
    let scraped = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("scrape");
    assert_eq!(scraped.status(), 200);
    assert!(scraped.text().await.unwrap().contains("cdh_store_up 1"));
    app.call(Method::GET, "/metrics", None, None)
        .await
        .expect_error(401, "unauthorized");
    app.finish().await;
}

/// `/readyz` asks the database: with the store's schema gone it is 503 with a code, while
/// `/healthz` (the process) still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = TestApp::postgres().await;
    app.call(Method::GET, "/readyz", None, None)
        .await
        .expect(200);
    let schema = app.schema.clone().expect("a PostgreSQL app has a schema");
    cdh_store::PgStore::drop_schema(&crate::support::pg_url(), &schema)
        .await
        .expect("drop the schema");
    let gone = app
        .call(Method::GET, "/readyz", None, None)
        .await
        .expect_error(503, "unavailable");
    assert!(
        gone.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("database")),
        "{}",
        gone.body
    );
    assert!(
        !gone.text.contains(&schema),
        "no detail of the database: {}",
        gone.text
    );
    app.call(Method::GET, "/healthz", None, None)
        .await
        .expect(200);
    app.finish().await;
}

/// `/metrics` counts what the hub did: contacts written by outcome, merges by source, tasks
/// by kind and status, webhook deliveries by outcome.
async fn counts_of_work(app: &TestApp) {
    let org = app.org("brand").await;
    // One endpoint that answers 200, one that answers 500.
    for answers in [vec![], vec![500; 4]] {
        let (url, _received) = crate::webhooks::receiver(answers).await;
        app.post("/v1/webhooks", &org.admin, json!({"url": url}))
            .await
            .expect(201);
    }
    let sms = app.channel(&org.admin, "sms", "caac").await;
    let mail = app.channel(&org.admin, "email", "caac").await;
    app.contact(
        &org.admin,
        &sms,
        "s1",
        json!({"display_email": "amy@example.com"}),
    )
    .await
    .expect(200);
    app.contact(
        &org.admin,
        &mail,
        "m1",
        json!({"display_email": "amy@example.com"}),
    )
    .await
    .expect(200);
    app.unify(&org, &["display_email"]).await;
    app.contact(
        &org.admin,
        &sms,
        "s2",
        json!({"display_email": "amy@example.com"}),
    )
    .await
    .expect(200);
    // Each due endpoint gets its next event.
    crate::webhooks::deliver(app).await;
    let metrics = app
        .call(Method::GET, "/metrics", Some(OPERATOR), None)
        .await
        .expect(200)
        .text;
    for line in [
        "cdh_contacts_written_total{source=\"api\",outcome=\"created\"} 2",
        "cdh_contacts_written_total{source=\"api\",outcome=\"joined\"} 1",
        "cdh_merges_total{source=\"apply\"} 1",
        "cdh_tasks_finished_total{kind=\"apply\",status=\"succeeded\"} 1",
        "cdh_webhook_deliveries_total{outcome=\"failed\"} 1",
        "# TYPE cdh_merges_total counter",
    ] {
        assert!(metrics.contains(line), "`{line}` missing from:\n{metrics}");
    }
    // The endpoint that answers 200 gets every event of the feed, one delivery each.
    let feed = app.get("/v1/events", &org.admin).await.expect(200);
    let n_events = feed.body["items"].as_array().map_or(0, Vec::len);
    assert!(n_events > 0, "{}", feed.body);
    let delivered = format!("cdh_webhook_deliveries_total{{outcome=\"delivered\"}} {n_events}\n");
    assert!(
        metrics.contains(&delivered),
        "`{delivered}` missing from:\n{metrics}"
    );
}
crate::both_manual!(metrics_count_the_hubs_work, counts_of_work);
