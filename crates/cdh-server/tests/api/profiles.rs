//! Profiles: by id, lookup by normalised key, list with cursor pages, timeline, lineage,
//! manual edits, merged-away ids; and a snapshot of the profile JSON shape.

use serde_json::json;

use crate::both_manual;
use crate::support::TestApp;

async fn profiles(app: &TestApp) {
    let org = app.org("brand").await;
    // Same brand (same hub) so ids of both organizations live side by side.
    let other = app.org_in_brand("other", &org).await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let web = app.channel(&org.admin, "webchat", "caac").await;
    let a = app
        .contact(
            &org.admin,
            &line,
            "U1",
            json!({"display_name": "Amy", "display_mobile": "0912-345-678",
                   "updated_at": "2026-01-01T00:00:00Z"}),
        )
        .await
        .expect(200);
    let b = app
        .contact(
            &org.admin,
            &web,
            "w1",
            json!({"display_name": "Amy Lin", "display_mobile": "+886912345678",
                   "gender": "female", "updated_at": "2026-01-02T00:00:00Z"}),
        )
        .await
        .expect(200);
    // No unify keys yet: nothing merges.
    assert_ne!(a.str("profile_id"), b.str("profile_id"));

    // Lookup normalises: the national form finds both.
    let found = app
        .get("/v1/profiles?display_mobile=0912-345-678", &org.admin)
        .await
        .expect(200);
    assert_eq!(
        found.body["items"].as_array().unwrap().len(),
        2,
        "{}",
        found.text
    );
    let theirs = app
        .get("/v1/profiles?display_mobile=0912345678", &other.admin)
        .await
        .expect(200);
    assert_eq!(
        theirs.body["items"],
        json!([]),
        "another organization sees none of ours"
    );
    app.get("/v1/profiles?nickname=x", &org.admin)
        .await
        .expect_error(422, "unknown_field");

    app.unify(&org, &["display_mobile"]).await;
    let survivor = app
        .get(&format!("/v1/profiles/{}", a.str("profile_id")), &org.admin)
        .await
        .expect(200);
    let merged = app
        .get(&format!("/v1/profiles/{}", b.str("profile_id")), &org.admin)
        .await
        .expect(200);
    assert_eq!(merged.str("id"), survivor.str("id"));
    assert_eq!(merged.str("merged_from"), b.str("profile_id"));
    assert_eq!(survivor.body["fields"]["display_name"], "Amy Lin");
    assert_eq!(survivor.body["channels"].as_array().unwrap().len(), 2);
    let phone = survivor.body["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["field"] == "display_mobile")
        .unwrap()
        .clone();
    assert_eq!(phone["value"], "+886912345678");
    assert_eq!(phone["is_unify_key"], true);
    insta::assert_json_snapshot!("profile_view", survivor.body, {
        ".id" => "[id]", ".merged_from" => "[id]", ".contact_ids[]" => "[id]",
        ".channels[].channel_id" => "[id]", ".channels[].contact_id" => "[id]",
        ".created_at" => "[time]", ".updated_at" => "[time]",
    });
    let pid = survivor.str("id");
    app.get(&format!("/v1/profiles/{pid}"), &other.admin)
        .await
        .expect_error(404, "not_found");

    // Timeline: newest first across both contacts.
    for (contact, at) in [
        (a.str("id"), "2026-01-03T00:00:00Z"),
        (b.str("id"), "2026-01-04T00:00:00Z"),
    ] {
        app.post(
            &format!("/v1/contacts/{contact}/conversations"),
            &org.admin,
            json!({"direction": "in", "text": format!("at {at}"), "sent_at": at}),
        )
        .await
        .expect(201);
    }
    let timeline = app
        .get(&format!("/v1/profiles/{pid}/timeline?limit=1"), &org.admin)
        .await
        .expect(200);
    assert_eq!(timeline.body["items"][0]["text"], "at 2026-01-04T00:00:00Z");
    let cursor = timeline.str("next_cursor");
    let next = app
        .get(
            &format!("/v1/profiles/{pid}/timeline?limit=1&cursor={cursor}"),
            &org.admin,
        )
        .await
        .expect(200);
    assert_eq!(next.body["items"][0]["text"], "at 2026-01-03T00:00:00Z");

    // Lineage: the merge, its key and value, its cause.
    let lineage = app
        .get(&format!("/v1/profiles/{pid}/lineage"), &org.admin)
        .await
        .expect(200);
    let entry = &lineage.body["items"][0];
    assert_eq!(entry["key"], "display_mobile");
    assert_eq!(entry["value"], "+886912345678");
    assert_eq!(entry["cause"]["kind"], "setting");

    // A manual edit by an admin; a reader may not.
    let reader = app.token(&org.id, &org.admin, &["profiles:read"]).await;
    app.patch(
        &format!("/v1/profiles/{pid}"),
        &reader,
        json!({"fields": {"display_name": "A"}}),
    )
    .await
    .expect_error(403, "forbidden");
    let edited = app
        .patch(
            &format!("/v1/profiles/{pid}"),
            &org.admin,
            json!({"fields": {"display_name": "Amy L."}}),
        )
        .await
        .expect(200);
    assert_eq!(edited.body["fields"]["display_name"], "Amy L.");

    // The list by update time, one per page.
    let page = app
        .get(
            "/v1/profiles?updated_since=2020-01-01T00:00:00Z&limit=1",
            &org.admin,
        )
        .await
        .expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    app.get("/v1/profiles?updated_since=soon", &org.admin)
        .await
        .expect_error(422, "invalid_field");
    app.get("/v1/profiles?limit=0", &org.admin)
        .await
        .expect_error(422, "invalid_field");
}
both_manual!(profiles_read_lookup_list_timeline_lineage_edit, profiles);
