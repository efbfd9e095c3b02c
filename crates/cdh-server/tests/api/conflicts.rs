//! Conflicts refused and listed, as the vendor does: contacts whose customer ids differ are
//! never merged, by the upsert, the import or the apply, and the preview counts them;
//! `GET /v1/unification/conflicts` pages them and `.../export` gives the vendor's CSV.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_manual;
use crate::support::{OPERATOR, TestApp};
use crate::tasks::{contact, run_tasks};

const EMAIL: &str = "shared@shop.tw";

fn ids(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["external_member_id"].as_str().unwrap_or(""))
        .collect()
}

both_manual!(customer_ids_that_differ_never_merge, refused_body);
async fn refused_body(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    // Written before any key: the preview says what an apply would refuse.
    let m1 = contact(
        app,
        &org.admin,
        &line,
        "u1",
        json!({"display_email": EMAIL, "customer_id": "M-1"}),
    )
    .await;
    let m2 = contact(
        app,
        &org.admin,
        &line,
        "u2",
        json!({"display_email": EMAIL, "customer_id": "M-2"}),
    )
    .await;
    let preview = app
        .post(
            "/v1/unification/previews",
            &org.admin,
            json!({"keys": ["display_email"]}),
        )
        .await
        .expect(201);
    assert_eq!(preview.body["unique_fields"], json!(["customer_id"]));
    assert_eq!(preview.body["profiles_after"], 2, "{}", preview.body);
    assert_eq!(preview.body["n_conflicts"], 1);
    let conflict = &preview.body["conflicts"][0];
    assert_eq!(conflict["conflict_reason"], "customer_id_multiple");
    assert_eq!(conflict["values"], json!(["M-2", "M-1"]));
    assert_eq!(conflict["chain"][1]["field"], "display_email");
    let task = app
        .post(
            "/v1/unification/apply",
            &org.admin,
            json!({"preview_id": preview.str("preview_id")}),
        )
        .await
        .expect(202)
        .str("task_id");
    app.run_apply(&org, &task).await;
    let profile_of = |c: &Value| c["profile_id"].as_str().unwrap_or("").to_owned();
    let u1 = app
        .get(
            &format!("/v1/contacts/{}", m1["id"].as_str().unwrap()),
            &org.admin,
        )
        .await
        .expect(200)
        .body;
    let u2 = app
        .get(
            &format!("/v1/contacts/{}", m2["id"].as_str().unwrap()),
            &org.admin,
        )
        .await
        .expect(200)
        .body;
    assert_ne!(profile_of(&u1), profile_of(&u2), "M-1 and M-2 stay apart");

    // The upsert refuses the same way and says so; a contact without a customer id joins
    // the older profile.
    let m3 = app
        .post("/v1/contacts", &org.admin, json!({"channel_id": line, "external_id": "u3", "display_email": EMAIL, "customer_id": "M-3"}))
        .await
        .expect(200)
        .body;
    assert_eq!(m3["unification"]["outcome"], "created", "{m3}");
    assert_eq!(m3["unification"]["refused_merges"], 2);
    let plain = contact(
        app,
        &org.admin,
        &line,
        "u4",
        json!({"display_email": EMAIL}),
    )
    .await;
    assert_eq!(profile_of(&plain), profile_of(&u1));

    // An import by email refuses too (its row carries M-4).
    let task = app
        .post(
            "/v1/imports",
            &org.admin,
            json!({
                "import_key": "display_email",
                "on_unmatched": "create",
                "profiles": [{"display_email": "other@shop.tw", "customer_id": "M-4"}],
            }),
        )
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    app.get(&format!("/v1/imports/{task}"), &org.admin)
        .await
        .expect(200);
    let bridge = app
        .post("/v1/contacts", &org.admin, json!({"channel_id": line, "external_id": "u5", "display_email": "other@shop.tw", "customer_id": "M-1"}))
        .await
        .expect(200)
        .body;
    assert_eq!(bridge["unification"]["refused_merges"], 1, "{bridge}");

    // Listed, by contact: u2, u3 (kept out of u1's profile) and u5 (out of the imported one).
    let page = app
        .get("/v1/unification/conflicts", &org.admin)
        .await
        .expect(200);
    assert_eq!(ids(&page.body), ["u2", "u3", "u5"], "{}", page.body);
    let first = &page.body["items"][0];
    assert_eq!(first["conflict_reason"], "customer_id_multiple");
    assert_eq!(first["platform_type"], "line");
    assert_eq!(
        (
            first["unique_value"].as_str(),
            first["other_value"].as_str()
        ),
        (Some("M-2"), Some("M-1"))
    );
    assert_eq!(first["other_profile_id"], json!(profile_of(&u1)));
    assert_eq!(first["unified_contact_id"], json!(profile_of(&u2)));
    assert!(page.body["next_cursor"].is_null());
    let one = app
        .get("/v1/unification/conflicts?limit=2", &org.admin)
        .await
        .expect(200);
    let cursor = one.body["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let rest = app
        .get(
            &format!("/v1/unification/conflicts?limit=2&cursor={cursor}"),
            &org.admin,
        )
        .await
        .expect(200);
    assert_eq!(ids(&rest.body), ["u5"]);

    // The vendor's export.
    let csv = app
        .get("/v1/unification/conflicts/export", &org.admin)
        .await
        .expect(200);
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "unified_contact_id,platform_type,platform_name,external_member_id,customer_id,conflict_reason,key,value,unique_field,unique_value,other_value,other_profile_id"
        )
    );
    let row: Vec<&str> = lines.next().expect("a row").split(',').collect();
    assert_eq!(
        (row[1], row[3], row[4], row[5]),
        ("line", "u2", "M-2", "customer_id_multiple")
    );
    assert_eq!(csv.text.lines().count(), 4);
    assert!(csv.headers.get("x-next-cursor").is_none());

    // Another organization sees none of it.
    let other = app.org("other").await;
    let theirs = app
        .get("/v1/unification/conflicts", &other.admin)
        .await
        .expect(200);
    assert!(ids(&theirs.body).is_empty());

    // Counted in /metrics: every merge refused (u3 twice, u4 twice though it joined u1's
    // profile, u5 once), and the conflict the apply left.
    let metrics = app
        .call(Method::GET, "/metrics", Some(OPERATOR), None)
        .await
        .expect(200);
    assert!(
        metrics
            .text
            .contains("cdh_conflicts_refused_total{source=\"upsert\"} 5"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("cdh_conflicts_refused_total{source=\"apply\"} 1"),
        "{}",
        metrics.text
    );
}

both_manual!(
    unique_fields_are_a_setting_and_bad_input_is_refused,
    setting_body
);
async fn setting_body(app: &TestApp) {
    let org = app.org("brand").await;
    let line = app.channel(&org.admin, "line", "caac").await;
    contact(
        app,
        &org.admin,
        &line,
        "u1",
        json!({"display_email": EMAIL, "customer_id": "M-1"}),
    )
    .await;
    contact(
        app,
        &org.admin,
        &line,
        "u2",
        json!({"display_email": EMAIL, "customer_id": "M-2"}),
    )
    .await;
    app.post(
        "/v1/unification/previews",
        &org.admin,
        json!({"keys": ["display_email"], "unique_fields": ["vip_no"]}),
    )
    .await
    .expect_error(422, "unknown_key");
    app.post(
        "/v1/unification/previews",
        &org.admin,
        json!({"keys": ["display_email"], "unique_fields": ["customer_id", "customer_id"]}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.get("/v1/unification/conflicts?cursor=nonsense", &org.admin)
        .await
        .expect_error(422, "invalid_field");
    app.get("/v1/unification/conflicts?limit=0", &org.admin)
        .await
        .expect_error(422, "invalid_field");
    app.get("/v1/unification/conflicts?page=2", &org.admin)
        .await
        .expect_error(422, "unknown_field");
    app.get("/v1/unification/conflicts", "not-a-token")
        .await
        .expect_error(401, "unauthorized");
    // No unique field: the brand chose to merge on the email alone.
    let preview = app
        .post(
            "/v1/unification/previews",
            &org.admin,
            json!({"keys": ["display_email"], "unique_fields": []}),
        )
        .await
        .expect(201);
    assert_eq!(preview.body["profiles_after"], 1);
    assert_eq!(preview.body["n_conflicts"], 0);
    let task = app
        .post(
            "/v1/unification/apply",
            &org.admin,
            json!({"preview_id": preview.str("preview_id")}),
        )
        .await
        .expect(202)
        .str("task_id");
    app.run_apply(&org, &task).await;
    let setting = app.get("/v1/unification", &org.admin).await.expect(200);
    assert_eq!(setting.body["unique_fields"], json!([]));
    assert_eq!(setting.body["history"][0]["unique_fields"], json!([]));
    // A later preview keeps the setting's unique fields unless told otherwise.
    let again = app
        .post(
            "/v1/unification/previews",
            &org.admin,
            json!({"keys": ["display_email"]}),
        )
        .await
        .expect(201);
    assert_eq!(again.body["unique_fields"], json!([]));
}
