//! Unification settings: previews (errors, suspicious values, exclusions), apply as a task,
//! `409 preview_stale`, the events feed that follows merges.

use serde_json::json;

use crate::both_manual;
use crate::support::TestApp;

async fn previews(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let initial = app.get("/v1/unification", &org.admin).await.expect(200);
    assert_eq!(initial.body["keys"], json!([]));
    assert_eq!(initial.body["scope"]["cross_product"], false);

    app.post(
        "/v1/unification/previews",
        &org.admin,
        json!({"keys": ["line_uid", "display_email", "display_mobile", "customer_id"]}),
    )
    .await
    .expect_error(422, "too_many_keys");
    let unknown = app
        .post(
            "/v1/unification/previews",
            &org.admin,
            json!({"keys": ["shoe_size"]}),
        )
        .await
        .expect_error(422, "unknown_key");
    assert_eq!(unknown.body["error"]["details"]["field"], "keys");
    app.post(
        "/v1/unification/previews",
        &org.admin,
        json!({"keys": ["display_email", "display_email"]}),
    )
    .await
    .expect_error(422, "duplicate_key");

    // A shop phone shared by many contacts is flagged, and can be excluded.
    for i in 0..4 {
        app.contact(
            &org.admin,
            &line,
            &format!("U{i}"),
            json!({"display_mobile": "02-2345-6789"}),
        )
        .await
        .expect(200);
    }
    let preview = app
        .post(
            "/v1/unification/previews",
            &org.admin,
            json!({"keys": ["display_mobile"], "suspicious_threshold": 3}),
        )
        .await
        .expect(201);
    assert_eq!(preview.body["profiles_before"], 4);
    assert_eq!(preview.body["profiles_after"], 1);
    assert_eq!(
        preview.body["suspicious_values"][0]["value"],
        "+886223456789"
    );
    let excluded = app
        .post(
            "/v1/unification/previews",
            &org.admin,
            json!({"keys": ["display_mobile"],
                   "excluded_values": [{"field": "display_mobile", "value": "02-2345-6789"}]}),
        )
        .await
        .expect(201);
    assert_eq!(excluded.body["profiles_after"], 4, "{}", excluded.text);

    // Stale: a contact changed after the preview.
    app.contact(
        &org.admin,
        &line,
        "U9",
        json!({"display_mobile": "0911111111"}),
    )
    .await
    .expect(200);
    app.post(
        "/v1/unification/apply",
        &org.admin,
        json!({"preview_id": preview.str("preview_id")}),
    )
    .await
    .expect_error(409, "preview_stale");
    app.post(
        "/v1/unification/apply",
        &org.admin,
        json!({"preview_id": "424242"}),
    )
    .await
    .expect_error(404, "not_found");

    // The excluded-value setting applied: history and events follow.
    let fresh = app.unify(&org, &["display_mobile"]).await;
    assert_eq!(fresh["keys"], json!(["display_mobile"]));
    let now = app.get("/v1/unification", &org.admin).await.expect(200);
    assert_eq!(now.body["keys"], json!(["display_mobile"]));
    let history = now.body["history"].as_array().unwrap();
    assert_eq!(history.last().unwrap()["keys"], json!(["display_mobile"]));
    let events = app
        .get("/v1/events?limit=1000", &org.admin)
        .await
        .expect(200);
    let merged = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "profile.merged")
        .expect("a merge event")
        .clone();
    assert!(merged["data"]["survivor_id"].is_string());
    assert_eq!(merged["data"]["key"], "display_mobile");
    let cursor = events.str("next_cursor");
    let after = app
        .get(&format!("/v1/events?after={cursor}"), &org.admin)
        .await
        .expect(200);
    assert_eq!(after.body["items"], json!([]));
    assert_eq!(after.str("next_cursor"), cursor);
    app.get("/v1/events?after=x", &org.admin)
        .await
        .expect_error(422, "invalid_field");
}
both_manual!(previews_apply_and_events, previews);
