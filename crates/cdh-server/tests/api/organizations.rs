//! Organizations of one brand share a hub but are separate worlds until a partner connects
//! them: settings, previews, applies, tasks, events and webhooks of one are invisible to the
//! other (404), and none of its values reaches the other. After a connection they share one
//! setting that an admin of any of them manages.

use serde_json::{Value, json};

use crate::both_driven;
use crate::support::{OPERATOR, Org, TestApp};
use crate::tasks::{contact, run_tasks};
use crate::webhooks::{deliver, receiver};

/// Values only organization A's customers carry.
const A_EMAIL: &str = "secret.alice@a-brand.example";
const A_PHONE: &str = "+886912000111";

/// Two organizations of one brand, not connected; A has two contacts sharing an email and a
/// phone, B one contact of its own.
async fn brand(app: &TestApp) -> (Org, Org) {
    let a = app.org("Brand A").await;
    let b = app.org_in_brand("Brand B", &a).await;
    let a_line = app.channel(&a.admin, "line", "caac").await;
    let a_mail = app.channel(&a.admin, "email", "caac").await;
    let b_line = app.channel(&b.admin, "line", "caac").await;
    contact(
        app,
        &a.admin,
        &a_line,
        "a-u1",
        json!({"display_email": A_EMAIL, "display_mobile": A_PHONE}),
    )
    .await;
    contact(
        app,
        &a.admin,
        &a_mail,
        "a-m1",
        json!({"display_email": A_EMAIL, "display_mobile": A_PHONE}),
    )
    .await;
    contact(
        app,
        &b.admin,
        &b_line,
        "b-u1",
        json!({"display_email": "bob@b-brand.example"}),
    )
    .await;
    (a, b)
}

fn assert_no_a_values(body: &Value, what: &str) {
    let text = body.to_string();
    assert!(
        !text.contains("secret.alice") && !text.contains("912000111"),
        "{what} leaks A's values: {text}"
    );
}

async fn separate_until_connected(app: &TestApp) {
    let (a, b) = brand(app).await;
    // B's preview with the lowest threshold: only B's own contact is counted or shown.
    let b_preview = app
        .post(
            "/v1/unification/previews",
            &b.admin,
            json!({"keys": ["display_email", "display_mobile"], "suspicious_threshold": 1}),
        )
        .await
        .expect(201);
    assert_no_a_values(&b_preview.body, "B's preview");
    assert_eq!(b_preview.body["profiles_before"], 1, "{}", b_preview.body);
    // A's preview and apply; B can neither read nor apply them, nor see the task.
    let a_preview = app
        .post(
            "/v1/unification/previews",
            &a.admin,
            json!({"keys": ["display_email"]}),
        )
        .await
        .expect(201);
    assert_eq!(a_preview.body["profiles_before"], 2, "{}", a_preview.body);
    assert_eq!(a_preview.body["profiles_after"], 1, "{}", a_preview.body);
    let a_preview_id = a_preview.str("preview_id");
    app.post(
        "/v1/unification/apply",
        &b.admin,
        json!({"preview_id": a_preview_id}),
    )
    .await
    .expect_error(404, "not_found");
    let task = app
        .post(
            "/v1/unification/apply",
            &a.admin,
            json!({"preview_id": a_preview_id}),
        )
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    app.get(&format!("/v1/tasks/{task}"), &a.admin)
        .await
        .expect(200);
    let foreign = app.get(&format!("/v1/tasks/{task}"), &b.admin).await;
    assert_no_a_values(&foreign.body, "B's read of A's task");
    foreign.expect_error(404, "not_found");
    // A's merge is in A's feed with A's email; B's feed has none of it.
    let a_events = app.get("/v1/events", &a.admin).await.expect(200);
    assert!(
        a_events.body.to_string().contains(A_EMAIL),
        "{}",
        a_events.body
    );
    let b_events = app.get("/v1/events", &b.admin).await.expect(200);
    assert_no_a_values(&b_events.body, "B's events");
    assert!(
        b_events.body["items"]
            .as_array()
            .is_some_and(|items| !items.is_empty()),
        "B sees its own events: {}",
        b_events.body
    );
    // B's settings are B's: its switch and keys leave A's alone, and A's history names A only.
    let b_hub = app
        .put("/v1/hub", &b.admin, json!({"cross_product": true}))
        .await
        .expect(200);
    assert_eq!(b_hub.body["cross_product"], true);
    assert_eq!(b_hub.body["organization_ids"], json!([b.id]));
    let a_hub = app.get("/v1/hub", &a.admin).await.expect(200);
    assert_eq!(a_hub.body["cross_product"], false, "{}", a_hub.body);
    assert_eq!(a_hub.body["connections"], json!([]));
    app.unify(&b, &["display_mobile"]).await;
    let a_unification = app.get("/v1/unification", &a.admin).await.expect(200);
    assert_eq!(a_unification.body["keys"], json!(["display_email"]));
    let b_unification = app.get("/v1/unification", &b.admin).await.expect(200);
    assert_eq!(b_unification.body["keys"], json!(["display_mobile"]));
    assert_no_a_values(&b_unification.body, "B's unification");
    let a_actors: Vec<&str> = a_unification.body["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["actor"].as_str())
        .collect();
    assert!(
        a_actors
            .iter()
            .any(|actor| actor.ends_with(&format!(" of {}", a.id))),
        "{a_actors:?}"
    );
    assert!(
        a_actors
            .iter()
            .all(|actor| !actor.contains(&format!(" of {}", b.id))),
        "A's history names B: {a_actors:?}"
    );
}
both_driven!(
    organizations_of_one_brand_are_separate_until_connected,
    separate_until_connected
);

async fn webhooks_of_one_organization(app: &TestApp) {
    let a = app.org("Brand A").await;
    let b = app.org_in_brand("Brand B", &a).await;
    let (url, received) = receiver(vec![]).await;
    app.post("/v1/webhooks", &b.admin, json!({"url": url}))
        .await
        .expect(201);
    let a_line = app.channel(&a.admin, "line", "caac").await;
    let b_line = app.channel(&b.admin, "line", "caac").await;
    contact(
        app,
        &a.admin,
        &a_line,
        "a-u1",
        json!({"display_email": A_EMAIL}),
    )
    .await;
    let bob = contact(
        app,
        &b.admin,
        &b_line,
        "b-u1",
        json!({"display_email": "bob@b-brand.example"}),
    )
    .await;
    contact(
        app,
        &a.admin,
        &a_line,
        "a-u2",
        json!({"display_email": A_EMAIL}),
    )
    .await;
    app.unify(&a, &["display_email"]).await;
    deliver(app).await;
    let got = received.lock().unwrap().clone();
    let bodies: Vec<String> = got
        .iter()
        .map(|(_, _, body)| String::from_utf8_lossy(body).into_owned())
        .collect();
    // B's one contact made one profile: that event, and none of A's three (two created, one
    // merged) reach B.
    let bob_profile = bob["profile_id"].as_str().unwrap();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert!(
        bodies[0].contains(&format!("\"profile_id\":\"{bob_profile}\"")),
        "B's webhook gets B's events: {bodies:?}"
    );
    assert!(
        bodies.iter().all(|b| !b.contains("secret.alice")),
        "B's webhook got A's events: {bodies:?}"
    );
}
both_driven!(
    a_webhook_gets_its_own_organizations_events_only,
    webhooks_of_one_organization
);

async fn connected_organizations(app: &TestApp) {
    let (a, b) = brand(app).await;
    let ids = json!([a.id, b.id]);
    let disclosure = "https://brand.example/privacy";
    for bad in [
        "https://",
        "https:///privacy",
        "ftp://brand.example/privacy",
        "//brand.example/privacy",
        "brand.example/privacy",
        "https://user:pw@brand.example/privacy",
        "https://brand.example/\u{202e}privacy",
    ] {
        app.post(
            "/v1/partner/connections",
            OPERATOR,
            json!({"organization_ids": ids, "disclosure_url": bad}),
        )
        .await
        .expect_error(422, "invalid_field");
    }
    let connection = app
        .post(
            "/v1/partner/connections",
            OPERATOR,
            json!({"organization_ids": ids, "disclosure_url": disclosure}),
        )
        .await
        .expect(201);
    assert_eq!(connection.body["unified_at"], Value::Null);
    app.post(
        "/v1/partner/connections",
        OPERATOR,
        json!({"organization_ids": [b.id, a.id], "disclosure_url": disclosure}),
    )
    .await
    .expect_error(409, "already_connected");
    // Both see the connection and one scope of both organizations.
    for org in [&a, &b] {
        let hub = app.get("/v1/hub", &org.admin).await.expect(200);
        assert_eq!(hub.body["organization_ids"], ids, "{}", hub.body);
        assert_eq!(hub.body["connections"][0]["id"], connection.body["id"]);
    }
    // B's admin applies the shared setting: A's and B's contacts sharing an email merge, and
    // A sees the setting B applied, with B's actor.
    let c_line = app.channel(&b.admin, "email", "caac").await;
    let shared = contact(
        app,
        &b.admin,
        &c_line,
        "b-u2",
        json!({"display_email": A_EMAIL}),
    )
    .await;
    app.unify(&b, &["display_email"]).await;
    let a_unification = app.get("/v1/unification", &a.admin).await.expect(200);
    assert_eq!(a_unification.body["keys"], json!(["display_email"]));
    let last = a_unification.body["history"]
        .as_array()
        .and_then(|h| h.last().cloned())
        .unwrap();
    assert!(
        last["actor"]
            .as_str()
            .is_some_and(|actor| actor.ends_with(&format!(" of {}", b.id))),
        "{last}"
    );
    let hub = app.get("/v1/hub", &a.admin).await.expect(200);
    assert!(
        hub.body["connections"][0]["unified_at"].is_string(),
        "{}",
        hub.body
    );
    let profile = app
        .get(
            &format!("/v1/profiles/{}", shared["profile_id"].as_str().unwrap()),
            &a.admin,
        )
        .await
        .expect(200);
    assert!(
        profile.body["contact_ids"]
            .as_array()
            .is_some_and(|c| c.len() == 3),
        "{}",
        profile.body
    );
}
both_driven!(
    connected_organizations_share_one_setting,
    connected_organizations
);
