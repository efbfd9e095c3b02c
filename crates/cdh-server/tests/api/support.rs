//! Test fixtures: the app on a fresh database of either backend, an HTTP client, helpers to
//! create organizations, tokens and channels through the API.

#![allow(dead_code)]

use cdh_server::{AppHandle, Config};
use cdh_store::{AnyStore, PgStore, SqliteStore};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The operator token every test app is started with.
pub const OPERATOR: &str = "operator-secret-for-tests-0123456789abcdef";

/// The PostgreSQL server the suite uses.
pub fn pg_url() -> String {
    std::env::var("CDH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which database a test app runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running app on its own database, and a client for it.
pub struct TestApp {
    pub handle: AppHandle,
    pub client: reqwest::Client,
    pub backend: Backend,
    dir: tempfile::TempDir,
    pub schema: Option<String>,
}

/// An organization created through the API, with an admin token.
#[derive(Clone, Debug)]
pub struct Org {
    pub id: String,
    pub admin: String,
}

/// A response: status, headers and the JSON body (`Value::Null` when not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// The error code of an error body.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an error status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Self {
        let reply = self.expect(status);
        assert_eq!(reply.code(), code, "body: {}", reply.text);
        assert!(
            reply.body["error"]["message"].is_string(),
            "body: {}",
            reply.text
        );
        assert!(
            reply.body["error"]["details"].is_object(),
            "body: {}",
            reply.text
        );
        reply
    }

    /// A string field of the body.
    #[track_caller]
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string `{field}` in {}", self.text))
            .to_owned()
    }
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::start(Backend::Sqlite, |_| {}).await
    }

    pub async fn postgres() -> Self {
        Self::start(Backend::Postgres, |_| {}).await
    }

    /// Starts the app on a fresh database; `tweak` adjusts the configuration first.
    pub async fn start(backend: Backend, tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            listen: "127.0.0.1:0".into(),
            operator_token: Some(OPERATOR.into()),
            data_dir: dir.path().join("data"),
            // The tests' webhook receivers listen on loopback.
            webhook_allow_private: true,
            ..Config::default()
        };
        tweak(&mut config);
        // The store takes its time from the app's clock, so a test that sets one moves both.
        let clock = config.clock.clone();
        let (store, schema) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("hub.sqlite").display());
                config.database_url = url.clone();
                (
                    AnyStore::Sqlite(
                        SqliteStore::open_with_clock(&url, clock)
                            .await
                            .expect("open SQLite"),
                    ),
                    None,
                )
            }
            Backend::Postgres => {
                let schema = format!("t_{}", rand::random::<u64>());
                let store = match PgStore::open_with(&pg_url(), Some(&schema), clock).await {
                    Ok(s) => s,
                    Err(e) => panic!(
                        "PostgreSQL is unreachable at {} ({e}); the API suite needs it. \
                         Start it or set CDH_TEST_PG_URL.",
                        pg_url()
                    ),
                };
                config.database_url = pg_url();
                (AnyStore::Postgres(store), Some(schema))
            }
        };
        let handle = cdh_server::start_with_store(config, store)
            .await
            .expect("start the app");
        Self {
            handle,
            client: reqwest::Client::new(),
            backend,
            dir,
            schema,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.handle.url(path)
    }

    /// The app's data directory.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.handle.state.config.data_dir.clone()
    }

    /// Sends a request with an optional token and JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::reply(request.send().await.expect("send")).await
    }

    /// Sends raw bytes as the body.
    pub async fn call_raw(&self, method: Method, path: &str, token: &str, body: Vec<u8>) -> Reply {
        let request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body);
        Self::reply(request.send().await.expect("send")).await
    }

    async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Reply {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn put(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PUT, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates an organization (as the operator) and an admin token for it.
    pub async fn org(&self, name: &str) -> Org {
        let id = self
            .post(
                "/v1/organizations",
                OPERATOR,
                json!({"name": name, "default_region": "TW"}),
            )
            .await
            .expect(201)
            .str("id");
        let admin = self.token(&id, OPERATOR, &["admin"]).await;
        Org { id, admin }
    }

    /// Creates an organization of the same brand as `brand` (in its hub), with an admin token.
    pub async fn org_in_brand(&self, name: &str, brand: &Org) -> Org {
        let id = self
            .post(
                "/v1/organizations",
                OPERATOR,
                json!({"name": name, "default_region": "TW", "brand_organization_id": brand.id}),
            )
            .await
            .expect(201)
            .str("id");
        let admin = self.token(&id, OPERATOR, &["admin"]).await;
        Org { id, admin }
    }

    /// Issues a token with `scopes` for an organization.
    pub async fn token(&self, org: &str, by: &str, scopes: &[&str]) -> String {
        self.post(
            &format!("/v1/organizations/{org}/tokens"),
            by,
            json!({"name": format!("{scopes:?}"), "scopes": scopes}),
        )
        .await
        .expect(201)
        .str("token")
    }

    /// Creates a channel and returns its id.
    pub async fn channel(&self, admin: &str, kind: &str, product: &str) -> String {
        self.post(
            "/v1/channels",
            admin,
            json!({"type": kind, "product": product, "name": format!("{kind} {product}"),
                   "external_account_id": "acct-1"}),
        )
        .await
        .expect(201)
        .str("id")
    }

    /// Stops the app and drops the PostgreSQL schema.
    pub async fn finish(self) {
        let store = self.handle.state.store.clone();
        self.handle.shutdown().await.expect("graceful shutdown");
        if let (Some(schema), AnyStore::Postgres(pg)) = (&self.schema, &store) {
            pg.close().await;
            PgStore::drop_schema(&pg_url(), schema)
                .await
                .expect("drop schema");
        }
        drop(self.dir);
    }
}

impl TestApp {
    /// Upserts a contact: `fields` is merged into `{channel_id, external_id}`.
    pub async fn contact(
        &self,
        token: &str,
        channel: &str,
        external_id: &str,
        fields: Value,
    ) -> Reply {
        let mut body = json!({"channel_id": channel, "external_id": external_id});
        if let (Some(map), Some(extra)) = (body.as_object_mut(), fields.as_object()) {
            map.extend(extra.clone());
        }
        self.post("/v1/contacts", token, body).await
    }

    /// Runs queued tasks until none is left (the background worker, when there is one, may
    /// take the task first: either way it has ended when this returns), then checks the apply.
    pub async fn run_apply(&self, org: &Org, task_id: &str) {
        let hub: cdh_store::model::HubId = org.id.split('-').next().unwrap().parse().unwrap();
        let state = &self.handle.state;
        state.worker.run_until_idle(state).await.expect("run tasks");
        let task = state
            .store
            .get_task(hub, task_id.parse().unwrap())
            .await
            .expect("read the task");
        assert_eq!(
            task.status,
            cdh_store::model::TaskStatus::Succeeded,
            "apply failed: {:?}",
            task.error
        );
    }

    /// Previews `keys` and applies the preview, running the task by hand; returns the preview.
    pub async fn unify(&self, org: &Org, keys: &[&str]) -> Value {
        let preview = self
            .post(
                "/v1/unification/previews",
                &org.admin,
                json!({"keys": keys}),
            )
            .await
            .expect(201);
        let task = self
            .post(
                "/v1/unification/apply",
                &org.admin,
                json!({"preview_id": preview.str("preview_id")}),
            )
            .await
            .expect(202)
            .str("task_id");
        self.run_apply(org, &task).await;
        preview.body
    }
}

/// Runs a test body on both backends with no background worker: tasks run by hand.
#[macro_export]
macro_rules! both_manual {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::start($crate::support::Backend::Sqlite, |c| {
                    c.run_worker = false
                })
                .await;
                super::$body(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app =
                    $crate::support::TestApp::start($crate::support::Backend::Postgres, |c| {
                        c.run_worker = false
                    })
                    .await;
                super::$body(&app).await;
                app.finish().await;
            }
        }
    };
}

/// Runs a test body on both backends, as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::support::TestApp::sqlite().await;
                super::$body(&app).await;
                app.finish().await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::support::TestApp::postgres().await;
                super::$body(&app).await;
                app.finish().await;
            }
        }
    };
}
