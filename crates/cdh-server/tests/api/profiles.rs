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

/// An admin's edit holds: a manual value wins over later contact writes until the admin
/// clears it with `null`; an identifier edit is written to every contact of the profile, so
/// lookups find the new value and unification runs on it. Bad edits change nothing.
async fn manual_edits(app: &TestApp) {
    let org = app.org("brand").await;
    let sms = app.channel(&org.admin, "sms", "caac").await;
    let mail = app.channel(&org.admin, "email", "caac").await;
    let first = app
        .contact(
            &org.admin,
            &sms,
            "s1",
            json!({"display_email": "amy@example.com", "gender": "female"}),
        )
        .await
        .expect(200);
    let second = app
        .contact(
            &org.admin,
            &mail,
            "m1",
            json!({"display_email": "amy@example.com"}),
        )
        .await
        .expect(200);
    app.unify(&org, &["display_email"]).await;
    let pid = first.str("profile_id");
    let path = format!("/v1/profiles/{pid}");

    // A manual value holds through a contact's write of the field.
    let edited = app
        .patch(&path, &org.admin, json!({"fields": {"gender": "male"}}))
        .await
        .expect(200);
    assert_eq!(edited.body["fields"]["gender"], "male");
    assert_eq!(edited.body["manual_fields"], json!(["gender"]));
    app.contact(&org.admin, &sms, "s1", json!({"gender": "female"}))
        .await
        .expect(200);
    let profile = app.get(&path, &org.admin).await.expect(200);
    assert_eq!(profile.body["fields"]["gender"], "male", "{}", profile.body);
    // `null` returns the field to its merged value.
    let cleared = app
        .patch(&path, &org.admin, json!({"fields": {"gender": null}}))
        .await
        .expect(200);
    assert_eq!(
        cleared.body["fields"]["gender"], "female",
        "{}",
        cleared.body
    );
    assert!(
        cleared.body.get("manual_fields").is_none(),
        "{}",
        cleared.body
    );

    // An email edit reaches every contact: lookups find the new value, not the old one.
    let moved = app
        .patch(
            &path,
            &org.admin,
            json!({"fields": {"display_email": " Amy.Lin@Example.com "}}),
        )
        .await
        .expect(200);
    assert!(
        moved.body["identifiers"].as_array().is_some_and(|ids| ids
            .iter()
            .any(|i| i["field"] == "display_email" && i["value"] == "amy.lin@example.com")),
        "{}",
        moved.body
    );
    for contact in [&first, &second] {
        let stored = app
            .get(&format!("/v1/contacts/{}", contact.str("id")), &org.admin)
            .await
            .expect(200);
        // Stored as written, as a contact's own write is; identifiers are normalised.
        assert_eq!(
            stored.body["fields"]["display_email"], " Amy.Lin@Example.com ",
            "{}",
            stored.text
        );
    }
    let found = app
        .get("/v1/profiles?display_email=amy.lin@example.com", &org.admin)
        .await
        .expect(200);
    assert_eq!(found.body["items"][0]["id"], pid.as_str());
    let old = app
        .get("/v1/profiles?display_email=amy@example.com", &org.admin)
        .await
        .expect(200);
    assert_eq!(old.body["items"], json!([]));

    // Unification runs on the edited value: another profile holding it joins.
    let other = app
        .contact(
            &org.admin,
            &sms,
            "s9",
            json!({"display_email": "lin@example.com"}),
        )
        .await
        .expect(200);
    assert_ne!(other.str("profile_id"), pid);
    let merged = app
        .patch(
            &path,
            &org.admin,
            json!({"fields": {"display_email": "lin@example.com"}}),
        )
        .await
        .expect(200);
    let survivor = merged.str("id");
    let other_now = app
        .get(
            &format!("/v1/profiles/{}", other.str("profile_id")),
            &org.admin,
        )
        .await
        .expect(200);
    assert_eq!(other_now.str("id"), survivor);
    assert_eq!(
        other_now.body["contact_ids"].as_array().map(Vec::len),
        Some(3),
        "{}",
        other_now.body
    );

    // Bad edits are refused whole and change nothing.
    let before = app.get(&path, &org.admin).await.expect(200).body;
    for bad in [
        json!({"line_uid": "U1234567890abcdef1234567890abcdef"}),
        json!({"display_mobile": "not a phone", "gender": "other"}),
        json!({"display_email": null}),
    ] {
        app.patch(&path, &org.admin, json!({"fields": bad}))
            .await
            .expect_error(422, "invalid_field");
    }
    let after = app.get(&path, &org.admin).await.expect(200).body;
    assert_eq!(before["fields"], after["fields"]);
    assert_eq!(before["identifiers"], after["identifiers"]);
}
both_manual!(
    manual_edits_hold_and_identifier_edits_reach_the_contacts,
    manual_edits
);
