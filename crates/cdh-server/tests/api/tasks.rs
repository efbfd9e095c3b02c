//! Tasks: status and progress through `GET /v1/tasks/{id}`, organization scoping, and
//! tasks left unfinished by a previous process resuming at the next start.

use cdh_server::Config;
use reqwest::Method;
use serde_json::json;

use crate::support::{Backend, TestApp};

/// Runs a test body on both backends with the background worker off, so the test drives
/// tasks itself (`run_tasks`) and sees them queued until it does.
#[macro_export]
macro_rules! both_driven {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::tasks::driven($crate::support::Backend::Sqlite).await;
                super::$body(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::tasks::driven($crate::support::Backend::Postgres).await;
                super::$body(&app).await;
                app.finish().await;
            }
        }
    };
}

/// The app without its background worker, on a manual clock standing at the real time.
pub async fn driven(backend: Backend) -> TestApp {
    TestApp::start(backend, |c: &mut Config| {
        c.run_worker = false;
        c.clock = cdh_server::Clock::manual(cdh_store::Clock::system().now());
    })
    .await
}

/// Runs every queued task to its end.
pub async fn run_tasks(app: &TestApp) {
    let state = &app.handle.state;
    state.worker.run_until_idle(state).await.expect("run tasks");
}

/// Creates a contact through the API and returns its body.
pub async fn contact(
    app: &TestApp,
    admin: &str,
    channel: &str,
    external_id: &str,
    fields: serde_json::Value,
) -> serde_json::Value {
    let mut body = json!({"channel_id": channel, "external_id": external_id});
    for (k, v) in fields.as_object().expect("fields object") {
        body[k] = v.clone();
    }
    app.post("/v1/contacts", admin, body).await.expect(200).body
}

async fn task_status_and_progress(app: &TestApp) {
    let org = app.org("acme").await;
    let channel = app.channel(&org.admin, "line", "caac").await;
    for i in 0..3 {
        contact(
            app,
            &org.admin,
            &channel,
            &format!("u{i}"),
            json!({"display_name": format!("P{i}")}),
        )
        .await;
    }
    let task_id = app
        .post("/v1/exports", &org.admin, json!({"format": "jsonl"}))
        .await
        .expect(202)
        .str("task_id");
    let queued = app
        .get(&format!("/v1/tasks/{task_id}"), &org.admin)
        .await
        .expect(200);
    assert_eq!(queued.body["id"], task_id.as_str());
    assert_eq!(queued.body["kind"], "export");
    assert_eq!(queued.body["status"], "queued");
    assert_eq!(queued.body["progress"], json!({"done": 0, "total": 0}));
    assert!(queued.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert!(queued.body["started_at"].is_null());
    assert!(queued.body["finished_at"].is_null());
    assert!(queued.body.get("error").is_none());

    run_tasks(app).await;
    let done = app
        .get(&format!("/v1/tasks/{task_id}"), &org.admin)
        .await
        .expect(200);
    assert_eq!(done.body["status"], "succeeded", "{}", done.text);
    assert_eq!(done.body["progress"], json!({"done": 3, "total": 3}));
    assert!(done.body["started_at"].is_string());
    assert!(done.body["finished_at"].is_string());
}
both_driven!(a_task_reports_status_and_progress, task_status_and_progress);

async fn task_errors(app: &TestApp) {
    let org = app.org("acme").await;
    let other = app.org("other").await;
    let task_id = app
        .post("/v1/exports", &org.admin, json!({"format": "csv"}))
        .await
        .expect(202)
        .str("task_id");
    // Another organization's task, an unknown id and a non-id are all "not found".
    app.get(&format!("/v1/tasks/{task_id}"), &other.admin)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/tasks/999999999", &org.admin)
        .await
        .expect_error(404, "not_found");
    app.get("/v1/tasks/not-an-id", &org.admin)
        .await
        .expect_error(404, "not_found");
    app.call(Method::GET, &format!("/v1/tasks/{task_id}"), None, None)
        .await
        .expect_error(401, "unauthorized");
    let writer = app.token(&org.id, &org.admin, &["profiles:write"]).await;
    app.get(&format!("/v1/tasks/{task_id}"), &writer)
        .await
        .expect_error(403, "forbidden");
}
both_driven!(tasks_of_others_are_not_found, task_errors);

/// A second app on the same database stands for the next start of the server.
async fn tasks_resume(app: &TestApp) {
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
    let import = app
        .post(
            "/v1/imports",
            &org.admin,
            json!({"import_key": "customer_id", "profiles": [{"customer_id": "c1", "display_name": "Ann"}]}),
        )
        .await
        .expect(202)
        .str("task_id");
    let export = app
        .post("/v1/exports", &org.admin, json!({"format": "csv"}))
        .await
        .expect(202)
        .str("task_id");
    // The export was taken by the process that "died": it is left running.
    let store = app.handle.state.store.clone();
    let unfinished = store.unfinished_tasks().await.unwrap();
    assert_eq!(unfinished.len(), 2);
    let (hub, _) = unfinished[0];
    assert!(
        store
            .claim_task(hub, export.parse().unwrap())
            .await
            .unwrap()
    );

    let config = Config {
        listen: "127.0.0.1:0".into(),
        run_worker: true,
        ..(*app.handle.state.config).clone()
    };
    let next = cdh_server::start_with_store(config, store.clone())
        .await
        .unwrap();
    next.state.worker.run_until_idle(&next.state).await.unwrap();
    for id in [&import, &export] {
        let task = app
            .get(&format!("/v1/tasks/{id}"), &org.admin)
            .await
            .expect(200);
        assert_eq!(task.body["status"], "succeeded", "{}", task.text);
    }
    let imported = app
        .get(&format!("/v1/imports/{import}"), &org.admin)
        .await
        .expect(200);
    assert_eq!(imported.body["matched"], 1, "{}", imported.text);
    assert!(store.unfinished_tasks().await.unwrap().is_empty());
    next.shutdown().await.unwrap();
}
both_driven!(unfinished_tasks_resume_at_the_next_start, tasks_resume);
