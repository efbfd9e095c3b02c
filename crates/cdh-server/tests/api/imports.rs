//! Imports: JSON and CSV, matched rows overwritten (absent unchanged, null cleared), bad rows
//! failing alone, unmatched rows reported or created, and every limit of the contract.

use reqwest::Method;
use serde_json::{Value, json};

use crate::both_driven;
use crate::support::{Reply, TestApp};
use crate::tasks::{contact, run_tasks};

async fn post_csv(app: &TestApp, query: &str, token: &str, csv: &str) -> Reply {
    let response = app
        .client
        .post(app.url(&format!("/v1/imports{query}")))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv.to_owned())
        .send()
        .await
        .expect("send");
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.expect("body");
    Reply {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

async fn import_and_wait(app: &TestApp, token: &str, body: Value) -> Value {
    let task = app
        .post("/v1/imports", token, body)
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    app.get(&format!("/v1/imports/{task}"), token)
        .await
        .expect(200)
        .body
}

fn field<'a>(contact: &'a Value, name: &str) -> &'a Value {
    &contact["fields"][name]
}

async fn json_import(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    let ann = contact(app, &org.admin, &channel, "u1", json!({
        "customer_id": "c1", "display_name": "Ann", "gender": "female", "display_email": "ann@example.com",
    }))
    .await;
    contact(
        app,
        &org.admin,
        &channel,
        "u2",
        json!({"customer_id": "c2", "display_name": "Bob"}),
    )
    .await;

    let task = app
        .post(
            "/v1/imports",
            &org.admin,
            json!({
                "import_key": "customer_id",
                "profiles": [
                    {"customer_id": "c1", "display_name": "Annie", "gender": null, "tags": ["vip"]},
                    {"customer_id": "c9", "display_name": "Nobody"},
                    {"customer_id": "c2", "nmae": "typo"},
                ],
            }),
        )
        .await
        .expect(202)
        .str("task_id");
    let queued = app
        .get(&format!("/v1/imports/{task}"), &org.admin)
        .await
        .expect(200);
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.body["kind"], "import");
    assert_eq!(queued.body["total"], 3);
    run_tasks(app).await;
    let done = app
        .get(&format!("/v1/imports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(
        (
            done["total"].clone(),
            done["matched"].clone(),
            done["created"].clone(),
            done["unmatched"].clone()
        ),
        (json!(3), json!(1), json!(0), json!(1)),
        "{done}"
    );
    let failed = done["failed_rows"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{done}");
    assert_eq!(failed[0]["row"], 3);
    assert_eq!(failed[0]["code"], "unknown_field");
    assert!(failed[0]["message"].as_str().unwrap().contains("nmae"));
    assert!(done["started_at"].is_string() && done["finished_at"].is_string());

    // Provided: overwritten; explicitly null: cleared; not provided: unchanged.
    let ann = app
        .get(
            &format!("/v1/contacts/{}", ann["id"].as_str().unwrap()),
            &org.admin,
        )
        .await
        .expect(200)
        .body;
    assert!(
        field(&ann, "display_name").to_string().contains("Annie"),
        "{ann}"
    );
    assert!(field(&ann, "gender").is_null(), "{ann}");
    assert!(
        field(&ann, "display_email")
            .to_string()
            .contains("ann@example.com"),
        "{ann}"
    );
    assert_eq!(ann["tags"], json!(["vip"]));
    // The unmatched row was reported, not created.
    let nobody = app
        .get("/v1/profiles?customer_id=c9", &org.admin)
        .await
        .expect(200);
    assert!(!nobody.text.contains("Nobody"), "{}", nobody.text);
}
both_driven!(
    a_json_import_overwrites_matched_contacts_and_fails_bad_rows_alone,
    json_import
);

async fn create_unmatched(app: &TestApp) {
    let org = app.org("acme").await;
    let done = import_and_wait(
        app,
        &org.admin,
        json!({
            "import_key": "display_email",
            "on_unmatched": "create",
            "profiles": [{"display_email": "new@example.com", "display_name": "New"}],
        }),
    )
    .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["created"], 1, "{done}");
    let found = app
        .get("/v1/profiles?display_email=new@example.com", &org.admin)
        .await
        .expect(200);
    assert!(found.text.contains("New"), "{}", found.text);
}
both_driven!(unmatched_rows_are_created_when_asked, create_unmatched);

/// `customer_id` and `connect_id` name existing contacts only (the vendor's rule): an import
/// by them that asks to create is refused whole, in JSON and CSV alike, and creates nothing.
async fn update_only_keys(app: &TestApp) {
    let org = app.org("acme").await;
    for key in ["customer_id", "connect_id"] {
        let refused = app
            .post(
                "/v1/imports",
                &org.admin,
                json!({
                    "import_key": key,
                    "on_unmatched": "create",
                    "profiles": [{key: "M-1", "display_email": "m1@example.com"}],
                }),
            )
            .await
            .expect_error(422, "update_only_key");
        assert_eq!(refused.body["error"]["details"]["field"], "on_unmatched");
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(key)),
            "{}",
            refused.body
        );
        post_csv(
            app,
            &format!("?import_key={key}&on_unmatched=create"),
            &org.admin,
            &format!("{key},display_email\nM-1,m1@example.com\n"),
        )
        .await
        .expect_error(422, "update_only_key");
        // Reporting the unmatched rows is what such an import is for.
        let done = import_and_wait(
            app,
            &org.admin,
            json!({"import_key": key, "profiles": [{key: "M-1"}]}),
        )
        .await;
        assert_eq!(done["unmatched"], 1, "{done}");
        assert_eq!(done["created"], 0, "{done}");
    }
    let found = app
        .get("/v1/profiles?display_email=m1@example.com", &org.admin)
        .await
        .expect(200);
    assert_eq!(found.body["items"], json!([]), "nothing was created");
}
both_driven!(
    imports_by_customer_or_connect_id_never_create,
    update_only_keys
);

async fn csv_import(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    let c = contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"customer_id": "c1", "display_name": "Ann"}),
    )
    .await;
    let task = post_csv(
        app,
        "?import_key=customer_id",
        &org.admin,
        "customer_id,display_name,tags\nc1,Ann CSV,a;b\nc7,Gone,\n",
    )
    .await
    .expect(202)
    .str("task_id");
    run_tasks(app).await;
    let done = app
        .get(&format!("/v1/imports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(
        (done["matched"].clone(), done["unmatched"].clone()),
        (json!(1), json!(1)),
        "{done}"
    );
    let c = app
        .get(
            &format!("/v1/contacts/{}", c["id"].as_str().unwrap()),
            &org.admin,
        )
        .await
        .expect(200)
        .body;
    assert!(
        field(&c, "display_name").to_string().contains("Ann CSV"),
        "{c}"
    );
    assert_eq!(c["tags"], json!(["a", "b"]));

    // Malformed CSV is refused whole, naming the line; nothing is queued.
    let bad = post_csv(
        app,
        "?import_key=customer_id",
        &org.admin,
        "customer_id,display_name\nc1,Ann\nc2,Bob,extra\n",
    )
    .await
    .expect_error(422, "invalid_csv");
    assert_eq!(bad.body["error"]["details"]["line"], 3);
    assert!(
        bad.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3")
    );
    post_csv(
        app,
        "?import_key=customer_id",
        &org.admin,
        "customer_id,nmae\nc1,x\n",
    )
    .await
    .expect_error(422, "unknown_field");
    post_csv(app, "", &org.admin, "customer_id\nc1\n")
        .await
        .expect_error(422, "missing_field");
    post_csv(app, "?import_key=email", &org.admin, "customer_id\nc1\n")
        .await
        .expect_error(422, "invalid_field");
}
both_driven!(
    a_csv_import_lands_and_malformed_csv_names_the_line,
    csv_import
);

async fn request_errors(app: &TestApp) {
    let org = app.org("acme").await;
    let other = app.org("other").await;
    app.post(
        "/v1/imports",
        &org.admin,
        json!({"import_key": "email", "profiles": [{}]}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.post(
        "/v1/imports",
        &org.admin,
        json!({"import_key": "customer_id", "profiles": [], "extra": 1}),
    )
    .await
    .expect_error(422, "unknown_field");
    app.post(
        "/v1/imports",
        &org.admin,
        json!({"import_key": "customer_id", "profiles": []}),
    )
    .await
    .expect_error(422, "invalid_field");
    let too_many: Vec<Value> = (0..10_001)
        .map(|i| json!({"customer_id": format!("c{i}")}))
        .collect();
    let big = app
        .post(
            "/v1/imports",
            &org.admin,
            json!({"import_key": "customer_id", "profiles": too_many}),
        )
        .await
        .expect_error(413, "batch_too_large");
    assert_eq!(big.body["error"]["details"]["limit"], 10_000);
    app.call_raw(
        Method::POST,
        "/v1/imports",
        &org.admin,
        b"{not json".to_vec(),
    )
    .await
    .expect_error(400, "invalid_json");
    app.call(Method::POST, "/v1/imports", None, Some(json!({})))
        .await
        .expect_error(401, "unauthorized");
    let reader = app.token(&org.id, &org.admin, &["profiles:read"]).await;
    app.post(
        "/v1/imports",
        &reader,
        json!({"import_key": "customer_id", "profiles": [{}]}),
    )
    .await
    .expect_error(403, "forbidden");

    // One import at a time per organization; another organization is not held up.
    let body = json!({"import_key": "customer_id", "profiles": [{"customer_id": "c1"}]});
    let first = app
        .post("/v1/imports", &org.admin, body.clone())
        .await
        .expect(202)
        .str("task_id");
    let busy = app
        .post("/v1/imports", &org.admin, body.clone())
        .await
        .expect_error(409, "import_in_progress");
    assert_eq!(busy.body["error"]["details"]["task_id"], first.as_str());
    app.post("/v1/imports", &other.admin, body.clone())
        .await
        .expect(202);
    app.get(&format!("/v1/imports/{first}"), &other.admin)
        .await
        .expect_error(404, "not_found");
    run_tasks(app).await;
    app.post("/v1/imports", &org.admin, body).await.expect(202);
}
both_driven!(import_requests_are_checked, request_errors);

async fn rate_limit(app: &TestApp) {
    let org = app.org("acme").await;
    let other = app.org("other").await;
    // Requests count whatever their outcome; these are refused for their empty key.
    let body = json!({"import_key": "nope", "profiles": [{}]});
    for _ in 0..15 {
        app.post("/v1/imports", &org.admin, body.clone())
            .await
            .expect(422);
    }
    let limited = app
        .post("/v1/imports", &org.admin, body.clone())
        .await
        .expect_error(429, "rate_limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    app.post("/v1/imports", &other.admin, body.clone())
        .await
        .expect(422);
    // A minute later the window has room again.
    let clock = &app.handle.state.clock;
    clock.set(clock.now() + 60_000);
    app.post("/v1/imports", &org.admin, body).await.expect(422);
}
both_driven!(imports_are_limited_to_15_a_minute, rate_limit);

async fn caps(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"customer_id": "c1"}),
    )
    .await;
    // A body declared over 32 MiB is refused from its head, before a byte of it is read.
    let (status, body) =
        crate::bootstrap::send_declared_body(app, "/v1/imports", &org.admin, (32 << 20) + 1, false)
            .await;
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("\"payload_too_large\""), "{body}");
    // A header of 200,000 columns is refused whole, after one linear look at it.
    let header: Vec<String> = (0..200_000)
        .map(|i| format!("custom_fields.f{i}"))
        .collect();
    let csv = format!("customer_id,{}\nc1\n", header.join(","));
    post_csv(app, "?import_key=customer_id", &org.admin, &csv)
        .await
        .expect_error(422, "too_many_columns");
    // Rows past a limit fail alone, with their codes and without their values; the rest land.
    let outcome = import_and_wait(
        app,
        &org.admin,
        json!({"import_key": "customer_id", "profiles": [
            {"customer_id": "c1", "display_name": "Ann"},
            {"customer_id": "c2", "display_name": "y".repeat(1025)},
            {"customer_id": "c3", "tags": (0..101).map(|i| i.to_string()).collect::<Vec<_>>()},
        ]}),
    )
    .await;
    assert_eq!(outcome["matched"], 1, "{outcome}");
    let codes: Vec<(u64, &str)> = outcome["failed_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["row"].as_u64().unwrap(), f["code"].as_str().unwrap()))
        .collect();
    assert_eq!(codes, [(2, "value_too_long"), (3, "too_many_tags")]);
    assert!(!outcome.to_string().contains("yyyy"), "{outcome}");
    // The finished task keeps no row.
    let task = outcome["id"]
        .as_str()
        .or(outcome["task_id"].as_str())
        .unwrap();
    let hub: cdh_store::model::HubId = org.id.split('-').next().unwrap().parse().unwrap();
    let stored = app
        .handle
        .state
        .store
        .get_task(hub, task.parse().unwrap())
        .await
        .unwrap();
    assert!(stored.params.get("rows").is_none(), "{}", stored.params);
    let rows = app
        .handle
        .state
        .store
        .import_task_rows(hub, task.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(rows, [], "a finished import keeps its rows");
    assert!(
        !stored.params.to_string().contains("Ann"),
        "{}",
        stored.params
    );
}
both_driven!(imports_are_held_to_caps_and_keep_no_rows, caps);
