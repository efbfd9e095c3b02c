//! The tutorial's scenarios end to end through the API.
//!
//! Scenario 1: one organization's CAAC channels unify on the keys the admin picks.
//! Scenario 2: with the hub on, CAAC and MAAC contacts unify, LINE contacts across products
//! only when `line_uid` is a key.

use serde_json::json;

use crate::both_manual;
use crate::support::TestApp;

const UID: &str = "U0123456789abcdef0123456789abcdef";

async fn scenario_1(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    let fb = app.channel(&org.admin, "messenger", "caac").await;
    let ig = app.channel(&org.admin, "instagram", "caac").await;
    let a = app
        .contact(
            &org.admin,
            &line,
            UID,
            json!({"line_uid": UID, "display_mobile": "0912-345-678"}),
        )
        .await
        .expect(200);
    let b = app
        .contact(
            &org.admin,
            &fb,
            "psid-1",
            json!({"display_mobile": "+886 912 345 678",
                                                   "display_email": "amy@example.com"}),
        )
        .await
        .expect(200);
    let c = app
        .contact(
            &org.admin,
            &ig,
            "ig-1",
            json!({"display_email": " AMY@example.com"}),
        )
        .await
        .expect(200);
    app.post(
        &format!("/v1/contacts/{}/notes", a.str("id")),
        &org.admin,
        json!({"text": "prefers LINE", "author": "agent"}),
    )
    .await
    .expect(201);

    // Edit -> choose keys -> Apply shows the rules and what merges -> confirm.
    let preview = app.unify(&org, &["display_mobile", "display_email"]).await;
    assert_eq!(preview["profiles_before"], 3);
    assert_eq!(preview["profiles_after"], 1);
    assert!(!preview["samples"].as_array().unwrap().is_empty());

    let profile = app
        .get(&format!("/v1/profiles/{}", c.str("profile_id")), &org.admin)
        .await
        .expect(200);
    assert_eq!(profile.body["channels"].as_array().unwrap().len(), 3);
    assert_eq!(profile.str("id"), a.str("profile_id"));
    let keyed: Vec<_> = profile.body["identifiers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["is_unify_key"] == true)
        .map(|i| i["field"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        keyed.contains(&"display_mobile".to_owned()) && keyed.contains(&"display_email".to_owned())
    );
    let timeline = app
        .get(
            &format!("/v1/profiles/{}/timeline", profile.str("id")),
            &org.admin,
        )
        .await
        .expect(200);
    assert_eq!(timeline.body["items"][0]["text"], "prefers LINE");

    // New contacts unify automatically, before the response returns.
    let d = app
        .contact(
            &org.admin,
            &fb,
            "psid-2",
            json!({"display_email": "amy@example.com"}),
        )
        .await
        .expect(200);
    assert_eq!(d.str("profile_id"), profile.str("id"));
    assert_eq!(d.body["unification"]["outcome"], "joined");
    let _ = b;
}
both_manual!(scenario_1_one_caac_organization, scenario_1);

async fn scenario_2(app: &TestApp) {
    let org = app.org("brand").await;
    let line_caac = app.channel(&org.admin, "line", "caac").await;
    let line_maac = app.channel(&org.admin, "line", "maac").await;
    let mail_caac = app.channel(&org.admin, "email", "caac").await;
    let mail_maac = app.channel(&org.admin, "email", "maac").await;
    let l1 = app
        .contact(&org.admin, &line_caac, UID, json!({"line_uid": UID}))
        .await
        .expect(200);
    let l2 = app
        .contact(&org.admin, &line_maac, UID, json!({"line_uid": UID}))
        .await
        .expect(200);
    let m1 = app
        .contact(
            &org.admin,
            &mail_caac,
            "m1",
            json!({"display_email": "bo@example.com"}),
        )
        .await
        .expect(200);
    let m2 = app
        .contact(
            &org.admin,
            &mail_maac,
            "m2",
            json!({"display_email": "bo@example.com"}),
        )
        .await
        .expect(200);

    // Without the hub, products stay apart.
    app.unify(&org, &["display_email", "line_uid"]).await;
    let p = |r: &crate::support::Reply| r.str("profile_id");
    let profile_of = |id: String| {
        let org = org.clone();
        async move {
            app.get(&format!("/v1/profiles/{id}"), &org.admin)
                .await
                .expect(200)
                .str("id")
        }
    };
    assert_ne!(profile_of(p(&m1)).await, profile_of(p(&m2)).await);

    // Hub on, keys without line_uid: email contacts join across products, LINE ones do not.
    let hub = app
        .put("/v1/hub", &org.admin, json!({"cross_product": true}))
        .await
        .expect(200);
    assert_eq!(hub.body["cross_product"], true);
    app.put("/v1/hub", &org.admin, json!({"cross_product": "yes"}))
        .await
        .expect_error(422, "invalid_field");
    let preview = app.unify(&org, &["display_email"]).await;
    assert!(
        preview["notes"].as_array().is_some_and(|n| !n.is_empty()),
        "the preview warns that LINE needs line_uid: {preview}"
    );
    assert_eq!(profile_of(p(&m1)).await, profile_of(p(&m2)).await);
    assert_ne!(profile_of(p(&l1)).await, profile_of(p(&l2)).await);

    // With line_uid as a key, LINE contacts unify across products too.
    app.unify(&org, &["display_email", "line_uid"]).await;
    assert_eq!(profile_of(p(&l1)).await, profile_of(p(&l2)).await);
    let unification = app.get("/v1/unification", &org.admin).await.expect(200);
    assert_eq!(unification.body["scope"]["cross_product"], true);
}
both_manual!(scenario_2_caac_and_maac_with_the_hub, scenario_2);
