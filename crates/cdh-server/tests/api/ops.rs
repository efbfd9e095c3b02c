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

    let metrics = app
        .call(Method::GET, "/metrics", None, None)
        .await
        .expect(200);
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
