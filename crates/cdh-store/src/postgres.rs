//! The PostgreSQL adapter: concurrent writers serialised only where their keys meet.
//!
//! Runs the same shared statements as the SQLite adapter (see `sqlite.rs`); what differs is
//! locking. An upsert takes transaction-scoped advisory locks on its contact key and on each
//! unify-key value (sorted, so two writers take them in the same order), then locks the
//! profile rows it touches with `FOR UPDATE` and re-checks `merged_into`. Two writers whose
//! contacts bridge the same profiles therefore run one after the other; deadlocks and
//! serialization failures are retried. An apply's swap takes the hub lock exclusively;
//! upserts take it shared.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

include!("shared/prelude.rs");
include!("shared/api_prelude.rs");

type Conn = sqlx::PgConnection;
type Db = sqlx::Postgres;
type ThisStore = PgStore;
type Transaction = sqlx::Transaction<'static, sqlx::Postgres>;

/// PostgreSQL plans joins from statistics; the written order needs no enforcing.
const ORDERED_JOIN: &str = "JOIN";

const FOR_UPDATE: &str = " FOR UPDATE";

/// The store over a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    /// Connects to `url` (`postgres://...`) and migrates the database.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_in_schema(url, None).await
    }

    /// Connects with `search_path` set to `schema` (created if missing) and migrates it;
    /// lets several hubs' test databases share one server.
    pub async fn open_in_schema(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        if let Some(schema) = schema {
            if !schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(StoreError::Invalid(format!("bad schema name {schema}")));
            }
            let setup = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(|e| StoreError::Unavailable {
                    cause: e.to_string(),
                })?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&setup)
                .await?;
            setup.close().await;
            options = options.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable {
                cause: e.to_string(),
            })?;
        sqlx::migrate!("migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend {
                cause: format!("migration failed: {e}"),
            })?;
        Ok(Self { pool })
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn begin_write(&self) -> StoreResult<Transaction> {
        Ok(self.pool.begin().await?)
    }

    /// A read-only transaction that sees one snapshot throughout.
    async fn begin_snapshot(&self) -> StoreResult<Transaction> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }
}

/// The hub lock's two 32-bit keys: a key space apart from the 64-bit value locks.
fn hub_lock(hub: HubId) -> (i32, i32) {
    ((hub >> 32) as i32, hub as i32)
}

async fn lock_hub_shared(conn: &mut Conn, hub: HubId) -> StoreResult<()> {
    let (a, b) = hub_lock(hub);
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
        .bind(a)
        .bind(b)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn lock_hub_exclusive(conn: &mut Conn, hub: HubId) -> StoreResult<()> {
    let (a, b) = hub_lock(hub);
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(a)
        .bind(b)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the advisory locks in ascending order, in one round trip.
async fn lock_keys(conn: &mut Conn, mut keys: Vec<i64>) -> StoreResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    keys.sort_unstable();
    keys.dedup();
    sqlx::query(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS s",
    )
    .bind(keys)
    .fetch_all(&mut *conn)
    .await?;
    Ok(())
}

/// The hub lock (shared) and the contact's key lock, in one round trip.
async fn lock_hub_and_contact(conn: &mut Conn, hub: HubId, contact: i64) -> StoreResult<()> {
    let (a, b) = hub_lock(hub);
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2), pg_advisory_xact_lock($3)")
        .bind(a)
        .bind(b)
        .bind(contact)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// `cdh_ids` steps by `ID_BLOCK_LEN` (migration 0002), so one `nextval` is a block of ids.
const ID_BLOCK_SQL: &str = "nextval('cdh_ids')";

const ID_BLOCK_LEN: i64 = 8;

/// Concurrent writers: profile rows are re-read under `FOR UPDATE`.
const ROW_LOCKS: bool = true;

/// Ends an upsert: runs the queued writes, then takes event numbers from the hub row last, so
/// the row is held to commit and event numbers follow commit order.
async fn finish_upsert(
    conn: &mut Conn,
    hub: HubId,
    batch: WriteBatch,
    _next_free: i64,
    _event_seq: i64,
    events: &[(String, ProfileId, serde_json::Value)],
) -> StoreResult<()> {
    run_batch(conn, batch).await?;
    append_events(conn, hub, events).await
}

/// Runs the queued statements one after the other: PostgreSQL takes one statement with
/// parameters per message.
async fn run_batch(conn: &mut Conn, batch: WriteBatch) -> StoreResult<()> {
    for (statement, args) in &batch.statements {
        let mut query = sqlx::query(statement);
        for arg in args {
            query = bind_arg(query, arg);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

async fn next_id(conn: &mut Conn, _hub: HubId) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as("SELECT nextval('cdh_ids')")
        .fetch_one(&mut *conn)
        .await?;
    Ok(id)
}

async fn next_ids(conn: &mut Conn, _hub: HubId, n: usize) -> StoreResult<Vec<i64>> {
    let ids: Vec<(i64,)> = sqlx::query_as("SELECT nextval('cdh_ids') FROM generate_series(1, $1)")
        .bind(n as i64)
        .fetch_all(&mut *conn)
        .await?;
    Ok(ids.into_iter().map(|r| r.0).collect())
}

/// Writes staged rows with `COPY ... FROM STDIN` (text format; scope names hold no tabs,
/// newlines or backslashes, so they need no escaping).
async fn write_staging(
    conn: &mut Conn,
    hub: HubId,
    task: TaskId,
    rows: &[StagedRow],
) -> StoreResult<()> {
    let mut data = String::with_capacity(rows.len() * 40);
    for r in rows {
        use std::fmt::Write;
        let bucket = r
            .bucket_id
            .map_or_else(|| "\\N".to_owned(), |b| b.to_string());
        let scope = r.scope.as_deref().unwrap_or("\\N");
        let _ = writeln!(data, "{hub}\t{task}\t{}\t{bucket}\t{scope}", r.contact_id);
    }
    let mut copy = conn
        .copy_in_raw(
            "COPY apply_staging (hub_id, task_id, contact_id, bucket_id, scope) FROM STDIN",
        )
        .await?;
    copy.send(data.into_bytes()).await?;
    copy.finish().await?;
    Ok(())
}

/// A numbered placeholder.
fn param(i: usize) -> String {
    format!("${i}")
}

include!("shared/unify.rs");
include!("shared/batch.rs");
include!("shared/write.rs");
include!("shared/setup.rs");
include!("shared/read.rs");
include!("shared/tasks.rs");
include!("shared/apply.rs");
include!("shared/check.rs");
include!("shared/lookups.rs");
include!("shared/preview.rs");
include!("shared/profiles.rs");
include!("shared/task_queue.rs");
include!("shared/import.rs");
include!("shared/export.rs");
include!("shared/webhooks.rs");
include!("shared/users.rs");
include!("shared/port_impl.rs");
// Last: it ends with its unit tests.
include!("shared/name_search.rs");
