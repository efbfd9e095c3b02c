//! Test fixtures: a store per test on either backend, a hub with channels, contact builders.

use cdh_store::model::TaskStatus;
use std::collections::BTreeMap;

use cdh_store::model::{
    ChannelId, ContactInput, HubId, NewChannel, OrganizationId, UnifySetting, Upserted,
};
use cdh_store::{AnyStore, ApplyOptions, Clock, PgStore, SqliteStore};

/// The PostgreSQL server the suite uses.
pub fn pg_url() -> String {
    std::env::var("CDH_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A store of one backend, and what to clean up after the test.
pub struct TestStore {
    pub store: AnyStore,
    /// The store's clock: manual, starting at the real time; a test moves it to make time
    /// pass.
    pub clock: Clock,
    _dir: Option<tempfile::TempDir>,
    sqlite_url: Option<String>,
    schema: Option<String>,
}

impl TestStore {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("hub.sqlite").display());
        let clock = Clock::manual(Clock::system().now());
        let store = SqliteStore::open_with_clock(&url, clock.clone())
            .await
            .expect("open SQLite");
        Self {
            store: AnyStore::Sqlite(store),
            clock,
            _dir: Some(dir),
            sqlite_url: Some(url),
            schema: None,
        }
    }

    /// A PostgreSQL store in a schema of its own. An unreachable server fails the test with
    /// a message saying so: the suite never passes by skipping PostgreSQL.
    pub async fn postgres() -> Self {
        let schema = format!("t_{}", rand::random::<u64>());
        let clock = Clock::manual(Clock::system().now());
        let store = match PgStore::open_with(&pg_url(), Some(&schema), clock.clone()).await {
            Ok(s) => s,
            Err(e) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                panic!(
                    "PostgreSQL is unreachable at {} ({e}); the conformance suite needs it{}. \
                     Start it or set CDH_TEST_PG_URL.",
                    pg_url(),
                    if ci { " in CI" } else { "" }
                );
            }
        };
        Self {
            store: AnyStore::Postgres(store),
            clock,
            _dir: None,
            sqlite_url: None,
            schema: Some(schema),
        }
    }

    /// The SQLite URL of this store, if it is one.
    pub fn sqlite_url(&self) -> Option<&str> {
        self.sqlite_url.as_deref()
    }

    /// The PostgreSQL schema of this store, if any.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Runs raw SQL on this store's database, behind the store's back (to corrupt it).
    pub async fn raw(&self, sql: &str) {
        self.raw_pairs(sql).await;
    }

    /// Runs a raw query of two integer columns (or none) on this store's database, behind the
    /// store's back (to see how it stores something).
    pub async fn raw_pairs(&self, sql: &str) -> Vec<(i64, i64)> {
        use sqlx::Connection;
        match (&self.sqlite_url, &self.schema) {
            (Some(url), _) => {
                let mut c = sqlx::SqliteConnection::connect(url)
                    .await
                    .expect("raw connect");
                sqlx::query_as(sql)
                    .fetch_all(&mut c)
                    .await
                    .expect("raw SQL")
            }
            (None, Some(schema)) => {
                let mut c = sqlx::PgConnection::connect(&pg_url())
                    .await
                    .expect("raw connect");
                sqlx::query(&format!("SET search_path TO {schema}"))
                    .execute(&mut c)
                    .await
                    .expect("search_path");
                sqlx::query_as(sql)
                    .fetch_all(&mut c)
                    .await
                    .expect("raw SQL")
            }
            _ => unreachable!("a store is SQLite or PostgreSQL"),
        }
    }

    /// Asserts the hub's invariants and drops the PostgreSQL schema.
    pub async fn finish(self, hub: HubId) {
        assert_invariants(&self.store, hub).await;
        if let (Some(schema), AnyStore::Postgres(pg)) = (&self.schema, &self.store) {
            pg.close().await;
            PgStore::drop_schema(&pg_url(), schema)
                .await
                .expect("drop schema");
        }
    }
}

pub async fn assert_invariants(store: &AnyStore, hub: HubId) {
    let problems = store.check_invariants(hub).await.expect("check invariants");
    assert!(
        problems.is_empty(),
        "invariants broken:\n{}",
        problems.join("\n")
    );
}

/// Runs a test body on both backends, as `<name>::sqlite` and `<name>::postgres`.
#[macro_export]
macro_rules! conformance {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                super::$body($crate::support::TestStore::sqlite().await).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                super::$body($crate::support::TestStore::postgres().await).await;
            }
        }
    };
}

/// A hub with one organization in Taiwan and channels on both products.
pub struct Hub {
    pub id: HubId,
    pub org: OrganizationId,
    pub line_caac: ChannelId,
    pub email_caac: ChannelId,
    pub email_maac: ChannelId,
}

pub async fn hub(store: &AnyStore) -> Hub {
    let id = store.create_hub("brand").await.expect("hub");
    let org = store
        .create_organization(id, "brand tw", "TW")
        .await
        .expect("org");
    Hub {
        id,
        org,
        line_caac: channel(store, id, org, "line", "caac").await,
        email_caac: channel(store, id, org, "email", "caac").await,
        email_maac: channel(store, id, org, "email", "maac").await,
    }
}

pub async fn channel(
    store: &AnyStore,
    hub: HubId,
    org: OrganizationId,
    kind: &str,
    product: &str,
) -> ChannelId {
    store
        .create_channel(
            hub,
            &NewChannel {
                organization_id: org,
                channel_type: kind.into(),
                product: product.into(),
                name: format!("{kind} {product}"),
                external_account_id: "acct".into(),
            },
        )
        .await
        .expect("channel")
}

/// Applies unify keys in the organization's realm (customer ids unique, the default) and
/// waits for the task; panics unless it succeeds.
pub async fn apply_keys(
    store: &AnyStore,
    hub: HubId,
    org: OrganizationId,
    keys: &[&str],
) -> serde_json::Value {
    let setting = UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        excluded: Vec::new(),
    };
    apply_setting(store, hub, org, &setting).await
}

/// Applies a setting in the organization's realm and waits for the task; panics unless it
/// succeeds. Returns the task's result.
pub async fn apply_setting(
    store: &AnyStore,
    hub: HubId,
    org: OrganizationId,
    setting: &UnifySetting,
) -> serde_json::Value {
    let task = store
        .start_apply(hub, org, setting, "admin")
        .await
        .expect("start apply");
    let task = store
        .run_apply(
            hub,
            task,
            &ApplyOptions {
                batch_size: 7,
                on_batch: None,
            },
        )
        .await
        .expect("run apply");
    assert_eq!(
        task.status,
        TaskStatus::Succeeded,
        "apply failed: {:?}",
        task.error
    );
    task.result.expect("result")
}

pub fn input(channel: ChannelId, external_id: &str, fields: &[(&str, &str)]) -> ContactInput {
    ContactInput {
        channel_id: channel,
        external_id: external_id.into(),
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect::<BTreeMap<_, _>>(),
        ..ContactInput::default()
    }
}

pub async fn upsert(
    store: &AnyStore,
    hub: HubId,
    channel: ChannelId,
    external_id: &str,
    fields: &[(&str, &str)],
) -> Upserted {
    store
        .upsert_contact(hub, &input(channel, external_id, fields), "test")
        .await
        .expect("upsert")
}
