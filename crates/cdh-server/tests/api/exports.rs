//! Exports: CSV and JSON Lines from a snapshot taken when the task starts, one at a time per
//! organization, downloadable for 7 days and `410 export_expired` after.

use serde_json::{Value, json};

use crate::both_driven;
use crate::support::TestApp;
use crate::tasks::{contact, run_tasks};

/// Downloads a file: (status, content type, body).
async fn download(app: &TestApp, path: &str, token: &str) -> (u16, String, String) {
    let response = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, kind, response.text().await.expect("body"))
}

async fn csv_and_jsonl(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"display_name": "Ann, \"the\" first", "customer_id": "c1"}),
    )
    .await;
    let task = app
        .post("/v1/exports", &org.admin, json!({"format": "csv"}))
        .await
        .expect(202)
        .str("task_id");
    app.post("/v1/exports", &org.admin, json!({"format": "jsonl"}))
        .await
        .expect_error(409, "export_in_progress");
    // Committed before the task started: in the file.
    contact(
        app,
        &org.admin,
        &channel,
        "u2",
        json!({"display_name": "Bob"}),
    )
    .await;
    let queued = app
        .get(&format!("/v1/exports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(queued["status"], "queued");
    assert!(queued["download_url"].is_null());
    let (status, _, _) = download(app, &format!("/v1/exports/{task}/download"), &org.admin).await;
    assert_eq!(status, 409);

    run_tasks(app).await;
    // Written after the task ended: not in the file.
    contact(
        app,
        &org.admin,
        &channel,
        "u3",
        json!({"display_name": "Cid"}),
    )
    .await;
    let done = app
        .get(&format!("/v1/exports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["format"], "csv");
    assert_eq!(done["rows"], 2);
    assert_eq!(done["expired"], false);
    assert!(done["expires_at"].is_string());
    let url = done["download_url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("/v1/exports/{task}/download"));
    let (status, kind, body) = download(app, &url, &org.admin).await;
    assert_eq!(status, 200, "{body}");
    assert!(kind.starts_with("text/csv"), "{kind}");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let name_at = header.iter().position(|h| h == "display_name").unwrap();
    let names: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[name_at].to_owned())
        .collect();
    assert_eq!(names, ["Ann, \"the\" first", "Bob"]);

    let task = app
        .post("/v1/exports", &org.admin, json!({"format": "jsonl"}))
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    let (status, kind, body) =
        download(app, &format!("/v1/exports/{task}/download"), &org.admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(kind, "application/x-ndjson");
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[2]["fields"]["display_name"], "Cid");
    assert!(lines[0]["contact_ids"].is_array() && lines[0]["id"].is_string());

    // Another organization sees none of it.
    let other = app.org("other").await;
    app.get(&format!("/v1/exports/{task}"), &other.admin)
        .await
        .expect_error(404, "not_found");
    let (status, _, _) = download(app, &format!("/v1/exports/{task}/download"), &other.admin).await;
    assert_eq!(status, 404);
}
both_driven!(exports_stream_a_snapshot_as_csv_or_jsonl, csv_and_jsonl);

async fn expiry(app: &TestApp) {
    let org = app.org("acme").await;
    let task = app
        .post("/v1/exports", &org.admin, json!({"format": "csv"}))
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    let path = format!("/v1/exports/{task}/download");
    assert_eq!(download(app, &path, &org.admin).await.0, 200);
    let view = app
        .get(&format!("/v1/exports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    let finished =
        cdh_server::wire::parse_time(view["finished_at"].as_str().unwrap(), "t").unwrap();
    let week = 7 * 24 * 3600 * 1000;
    assert_eq!(view["expires_at"], cdh_server::wire::time(finished + week));
    let clock = &app.handle.state.clock;
    clock.set(finished + week - 1);
    assert_eq!(
        download(app, &path, &org.admin).await.0,
        200,
        "still within 7 days"
    );
    clock.set(finished + week);
    app.get(&path, &org.admin)
        .await
        .expect_error(410, "export_expired");
    let view = app
        .get(&format!("/v1/exports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(view["expired"], true);
    assert!(view["download_url"].is_null());
    let left: Vec<_> = std::fs::read_dir(app.data_dir().join("exports"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "the expired file is deleted");
}
both_driven!(an_export_expires_after_7_days, expiry);

async fn request_errors(app: &TestApp) {
    let org = app.org("acme").await;
    app.post("/v1/exports", &org.admin, json!({"format": "xml"}))
        .await
        .expect_error(422, "invalid_field");
    app.post(
        "/v1/exports",
        &org.admin,
        json!({"format": "csv", "updated_since": "yesterday"}),
    )
    .await
    .expect_error(422, "invalid_field");
    app.post(
        "/v1/exports",
        &org.admin,
        json!({"format": "csv", "colour": "red"}),
    )
    .await
    .expect_error(422, "unknown_field");
    app.post("/v1/exports", &org.admin, json!({}))
        .await
        .expect_error(422, "missing_field");
    app.get("/v1/exports/12345678", &org.admin)
        .await
        .expect_error(404, "not_found");
    // An import task is not an export.
    let import = app
        .post(
            "/v1/imports",
            &org.admin,
            json!({"import_key": "customer_id", "profiles": [{"customer_id": "c"}]}),
        )
        .await
        .expect(202)
        .str("task_id");
    app.get(&format!("/v1/exports/{import}"), &org.admin)
        .await
        .expect_error(404, "not_found");
}
both_driven!(export_requests_are_checked, request_errors);

async fn updated_since(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"display_name": "Old"}),
    )
    .await;
    let future = "2999-01-01T00:00:00Z";
    let task = app
        .post(
            "/v1/exports",
            &org.admin,
            json!({"format": "jsonl", "updated_since": future}),
        )
        .await
        .expect(202)
        .str("task_id");
    run_tasks(app).await;
    let done = app
        .get(&format!("/v1/exports/{task}"), &org.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(done["rows"], 0, "{done}");
}
both_driven!(an_export_can_take_only_recent_profiles, updated_since);

async fn formula_cells(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    let names = [
        "=HYPERLINK(\"http://evil.example\",\"x\")",
        "+cmd|' /C calc'!A0",
        "-1+2",
        "@SUM(A1:A2)",
        "Plain = name",
    ];
    for (i, name) in names.iter().enumerate() {
        contact(
            app,
            &org.admin,
            &channel,
            &format!("u{i}"),
            json!({"display_name": name}),
        )
        .await;
    }
    for format in ["csv", "jsonl"] {
        let task = app
            .post("/v1/exports", &org.admin, json!({"format": format}))
            .await
            .expect(202)
            .str("task_id");
        run_tasks(app).await;
        let (status, _, body) =
            download(app, &format!("/v1/exports/{task}/download"), &org.admin).await;
        assert_eq!(status, 200, "{body}");
        let mut got: Vec<String> = if format == "csv" {
            let mut reader = csv::Reader::from_reader(body.as_bytes());
            let at = reader
                .headers()
                .unwrap()
                .iter()
                .position(|h| h == "display_name")
                .unwrap();
            reader
                .records()
                .map(|r| r.unwrap()[at].to_owned())
                .collect()
        } else {
            body.lines()
                .map(|l| {
                    let v: Value = serde_json::from_str(l).unwrap();
                    v["fields"]["display_name"].as_str().unwrap().to_owned()
                })
                .collect()
        };
        got.sort();
        let mut want: Vec<String> = names
            .iter()
            .map(|n| match (format, n.as_bytes()[0]) {
                ("csv", b'=' | b'+' | b'-' | b'@') => format!("'{n}"),
                _ => (*n).to_owned(),
            })
            .collect();
        want.sort();
        assert_eq!(got, want, "{format}");
    }
}
both_driven!(csv_exports_neutralise_formula_cells, formula_cells);

/// One retention clock, the task's end plus 7 days: the sweep keeps a file however old its
/// modification time until then and removes it after (and files no export task names); a
/// file gone from the disk early is `410 export_expired`, never a 500. The CSV carries the
/// profile's identifiers.
async fn one_clock(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    contact(
        app,
        &org.admin,
        &channel,
        "u1",
        json!({"display_email": "amy@example.com", "display_name": "Amy"}),
    )
    .await;
    let admin = org.admin.as_str();
    let start = |format: &'static str| async move {
        let task = app
            .post("/v1/exports", admin, json!({"format": format}))
            .await
            .expect(202)
            .str("task_id");
        run_tasks(app).await;
        task
    };
    let kept = start("csv").await;
    let path = format!("/v1/exports/{kept}/download");
    let (status, _, body) = download(app, &path, &org.admin).await;
    assert_eq!(status, 200, "{body}");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let at = header
        .iter()
        .position(|h| h == "identifiers")
        .expect("an identifiers column");
    let row = reader.records().next().unwrap().unwrap();
    assert_eq!(&row[at], "display_email:amy@example.com", "{body}");

    let dir = app.data_dir().join("exports");
    let files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let [file] = files().try_into().expect("one export file");
    // A file last modified a month ago whose task ended now stays; a stray file goes.
    let month_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(30 * 86_400);
    std::fs::File::options()
        .write(true)
        .open(dir.join(&file))
        .unwrap()
        .set_modified(month_ago)
        .unwrap();
    std::fs::write(dir.join("stray.csv"), "x").unwrap();
    let state = &app.handle.state;
    cdh_server::worker::export::remove_expired_files(state).await;
    assert_eq!(files(), [file], "kept by its task's clock");
    assert_eq!(download(app, &path, &org.admin).await.0, 200);

    // Removed from the disk before its time: gone for the caller too, with the code.
    let lost = start("jsonl").await;
    for name in files() {
        if name.ends_with(".jsonl") {
            std::fs::remove_file(dir.join(name)).unwrap();
        }
    }
    app.get(&format!("/v1/exports/{lost}/download"), &org.admin)
        .await
        .expect_error(410, "export_expired");

    // Past its 7 days by the task's clock, the sweep removes it.
    let view = app
        .get(&format!("/v1/exports/{kept}"), &org.admin)
        .await
        .expect(200)
        .body;
    let finished =
        cdh_server::wire::parse_time(view["finished_at"].as_str().unwrap(), "t").unwrap();
    state.clock.set(finished + 7 * 24 * 3600 * 1000);
    cdh_server::worker::export::remove_expired_files(state).await;
    assert!(files().is_empty(), "{:?}", files());
}
both_driven!(exports_keep_one_retention_clock, one_clock);
