//! Channels, contact upserts (absent keeps, null clears, invalid values flagged), notes and
//! conversations, and organization isolation.

use serde_json::json;

use crate::both_manual;
use crate::support::TestApp;

async fn channels(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let list = app.get("/v1/channels", &org.admin).await.expect(200);
    assert_eq!(list.body["items"][0]["id"], line.as_str());
    assert_eq!(list.body["items"][0]["type"], "line");
    app.post(
        "/v1/channels",
        &org.admin,
        json!({"type": "fax", "product": "caac", "name": "x", "external_account_id": "p"}),
    )
    .await
    .expect_error(422, "invalid_field");
}
both_manual!(channels_are_created_and_listed, channels);

async fn contacts(app: &TestApp) {
    let org = app.org("brand").await;
    // Same brand (same hub) so ids of both organizations live side by side.
    let other = app.org_in_brand("other", &org).await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let theirs = app.channel(&other.admin, "line", "caac").await;

    let created = app
        .contact(
            &org.admin,
            &line,
            "U1",
            json!({"display_name": "Amy", "display_mobile": "not a phone",
                   "display_email": "Amy@Example.com ", "tags": ["vip"]}),
        )
        .await
        .expect(200);
    let id = created.str("id");
    assert!(!created.str("profile_id").is_empty());
    assert_eq!(created.body["unification"]["outcome"], "created");
    assert_eq!(created.body["fields"]["display_name"], "Amy");
    let invalid = created.body["invalid_fields"].as_array().unwrap();
    assert!(
        invalid.iter().any(|f| f["field"] == "display_mobile"),
        "{}",
        created.text
    );

    // Absent fields keep their value; null clears.
    let updated = app
        .contact(&org.admin, &line, "U1", json!({"display_name": null}))
        .await
        .expect(200);
    assert_eq!(updated.str("id"), id);
    assert!(
        updated.body["fields"].get("display_name").is_none(),
        "{}",
        updated.text
    );
    assert_eq!(updated.body["fields"]["display_email"], "Amy@Example.com ");

    let fetched = app
        .get(&format!("/v1/contacts/{id}"), &org.admin)
        .await
        .expect(200);
    assert_eq!(fetched.body["tags"], json!(["vip"]));
    app.get(&format!("/v1/contacts/{id}"), &other.admin)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/contacts/abc", &org.admin)
        .await
        .expect_error(404, "not_found");

    // Writing to another organization's channel names no channel of ours.
    app.contact(&org.admin, &theirs, "U2", json!({}))
        .await
        .expect_error(422, "invalid_field");
    app.contact(&org.admin, &line, "U3", json!({"nickname": "x"}))
        .await
        .expect_error(422, "unknown_field");
    app.contact(&org.admin, &line, "U3", json!({"updated_at": "yesterday"}))
        .await
        .expect_error(422, "invalid_field");

    let note = app
        .post(
            &format!("/v1/contacts/{id}/notes"),
            &org.admin,
            json!({"text": "called back", "author": "agent 7"}),
        )
        .await
        .expect(201);
    assert_eq!(note.body["kind"], "note");
    app.post(
        &format!("/v1/contacts/{id}/conversations"),
        &org.admin,
        json!({"direction": "in", "text": "hello", "sent_at": "2026-01-02T03:04:05Z"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/v1/contacts/{id}/conversations"),
        &org.admin,
        json!({"direction": "sideways", "text": "hello", "sent_at": "2026-01-02T03:04:05Z"}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.post(
        &format!("/v1/contacts/{id}/notes"),
        &other.admin,
        json!({"text": "x", "author": "y"}),
    )
    .await
    .expect_error(404, "not_found");
}
both_manual!(contacts_upsert_read_and_annotate, contacts);

async fn limits(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let long = "x".repeat(1025);
    let many_tags: Vec<String> = (0..101).map(|i| format!("t{i}")).collect();
    let many_fields: serde_json::Map<String, serde_json::Value> =
        (0..101).map(|i| (format!("f{i}"), json!("v"))).collect();
    for (fields, code, field) in [
        (
            json!({"display_name": long}),
            "value_too_long",
            "display_name",
        ),
        (json!({"tags": many_tags}), "too_many_tags", "tags"),
        (
            json!({"custom_fields": many_fields}),
            "too_many_custom_fields",
            "custom_fields",
        ),
        (
            json!({"custom_fields": {"n".repeat(65): "v"}}),
            "field_name_too_long",
            "custom_fields",
        ),
        (
            json!({"custom_fields": {"tier": long}}),
            "value_too_long",
            "custom_fields.tier",
        ),
    ] {
        let reply = app.contact(&org.admin, &line, "u1", fields).await;
        assert_eq!(
            reply.body["error"]["details"]["field"], field,
            "{}",
            reply.text
        );
        assert!(
            !reply.text.contains("xxxx"),
            "the value is not echoed: {}",
            reply.text
        );
        reply.expect_error(422, code);
    }
    // Nothing was written by the refused requests; the limit itself passes.
    app.get("/v1/profiles", &org.admin).await.expect(200).body["items"]
        .as_array()
        .map(|items| assert!(items.is_empty()))
        .unwrap();
    app.contact(
        &org.admin,
        &line,
        "u1",
        json!({"display_name": "x".repeat(1024)}),
    )
    .await
    .expect(200);
}
both_manual!(contact_writes_are_held_to_limits, limits);
