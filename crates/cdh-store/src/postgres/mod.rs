//! The PostgreSQL adapter: concurrent writers serialised only where their keys meet.
//!
//! An upsert takes transaction-scoped advisory locks on its contact key and on each unify-key
//! value (sorted, so two writers take them in the same order), then locks the profile rows it
//! touches with `FOR UPDATE` and re-checks `merged_into`. Two writers whose contacts bridge
//! the same profiles therefore run one after the other; deadlocks and serialization failures
//! are retried. An apply's swap takes the hub lock exclusively; upserts take it shared.
//!
//! Connections: a pool of `MAX_CONNECTIONS`, named `cdh` (`cdh <schema>` in a schema of their
//! own) in `pg_stat_activity`; migrations run first on a connection of their own, then every
//! pooled connection prepares the upsert's statements as it connects. A connection is pinged
//! before it is handed out only when it sat idle a while (`PING_AFTER_IDLE`): sqlx pings every
//! one by default, a round trip per upsert. The append-only logs (`merge_ledger`,
//! `pending_events`, `events`) have no foreign key to `hubs` (migration 0011): PostgreSQL
//! checks one row by row with a trigger that locks the hub's row, and every path that writes
//! them has read its hub first; hubs are never deleted.
//!
//! - [`PgStore`] connects, migrates and implements `sql::Backend` (this module).
//! - `upsert`: one upsert in three round trips (`sql::Upserts`).
//! - `batch`, `batch_sql`: concurrent upserts that are independent share a transaction.
//! - `events`: events queued unnumbered by upserts, numbered in commit order later
//!   (`sql::EventNumbers`).
//! - `apply`: an apply's reads, its staging by `COPY` and its set-based swap
//!   (`sql::ApplyWrites`).

mod apply;
mod batch;
mod batch_sql;
mod events;
mod upsert;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::clock::Clock;
use crate::error::{StoreError, StoreResult};
use crate::model::HubId;
use crate::sql::gates::ApplyGates;
use crate::sql::{Backend, Dialect, Query, Row, WriteBatch, exec};

use batch::UpsertWorkers;

/// The store over a PostgreSQL database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: sqlx::PgPool,
    /// Where upserts go to be batched (`batch`); `None` in the workers' own store, which runs
    /// them.
    workers: Option<UpsertWorkers>,
    /// How many upserts committed in a transaction shared with others.
    batched: Arc<AtomicU64>,
    clock: Clock,
    apply_gates: Arc<ApplyGates>,
}

/// The pool's size.
const MAX_CONNECTIONS: u32 = 20;

/// How long a pooled connection sits idle before it is pinged when handed out again.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

impl PgStore {
    /// Connects to `url` (`postgres://...`) and migrates the database.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with(url, None, Clock::system()).await
    }

    /// Connects with `search_path` set to `schema` (created if missing) and migrates it;
    /// lets several hubs' test databases share one server.
    pub async fn open_in_schema(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        Self::open_with(url, schema, Clock::system()).await
    }

    /// Connects (in `schema`, if given), migrates, and takes times from `clock`.
    pub async fn open_with(url: &str, schema: Option<&str>, clock: Clock) -> StoreResult<Self> {
        let mut options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            let setup = one_connection(options.clone()).await?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .execute(&setup)
                .await?;
            setup.close().await;
            options = options.options([("search_path", schema)]);
        }
        // Named in `pg_stat_activity` (unless the URL names it), with the schema if any.
        if options.get_application_name().is_none() {
            let name = schema.map_or_else(|| "cdh".to_owned(), |s| format!("cdh {s}"));
            options = options.application_name(&name);
        }
        // Upserts send their writes with values written as literals (see `finish_upsert`).
        options = options.options([("standard_conforming_strings", "on")]);
        let unavailable = |e: sqlx::Error| StoreError::Unavailable {
            cause: e.to_string(),
        };
        // Migrations run first, on a connection of their own: the pool's connections prepare
        // statements over the tables as they connect.
        let migrator = one_connection(options.clone()).await?;
        sqlx::migrate!("migrations/postgres")
            .run(&migrator)
            .await
            .map_err(|e| StoreError::Backend {
                cause: format!("migration failed: {e}"),
            })?;
        migrator.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            // sqlx pings every connection it hands out, a round trip of a sequential upsert's
            // few. Only one that sat idle a while is pinged (one broken meanwhile, say by a
            // server restart, is then replaced); a busy one is in use too often to go stale
            // unnoticed.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    Ok(meta.idle_for < PING_AFTER_IDLE
                        || sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, upsert::prepared_statements().as_str())
                        .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let batched = Arc::new(AtomicU64::new(0));
        let apply_gates = Arc::new(ApplyGates::default());
        let workers = Some(batch::start_upsert_workers(
            &pool,
            &batched,
            &clock,
            &apply_gates,
        ));
        Ok(Self {
            pool,
            workers,
            batched,
            clock,
            apply_gates,
        })
    }

    /// Drops a schema that `open_in_schema` made, with everything in it (tests and benches
    /// use one each). A session can still be running a statement after its pool closed (one
    /// cut off by a shutdown goes on until its backend notices) and meet the drop in a
    /// deadlock, which PostgreSQL ends by failing one side: the drop is then tried again.
    pub async fn drop_schema(url: &str, schema: &str) -> StoreResult<()> {
        check_schema_name(schema)?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad PostgreSQL URL: {e}")))?;
        let pool = one_connection(options).await?;
        let mut attempt = 0;
        let dropped = loop {
            match sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&pool)
                .await
            {
                Err(sqlx::Error::Database(e))
                    if e.code().as_deref() == Some("40P01") && attempt < 5 =>
                {
                    attempt += 1
                }
                other => break other,
            }
        };
        pool.close().await;
        dropped?;
        Ok(())
    }

    /// Closes the pool's connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A schema name is written into statements, so only letters, digits and `_` pass.
fn check_schema_name(schema: &str) -> StoreResult<()> {
    if schema
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("bad schema name {schema}")))
    }
}

/// A pool of one connection, for set-up work (a schema, the migrations).
async fn one_connection(options: PgConnectOptions) -> StoreResult<sqlx::PgPool> {
    PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| StoreError::Unavailable {
            cause: e.to_string(),
        })
}

/// The hub lock's two 32-bit keys: a key space apart from the 64-bit value locks.
fn hub_lock(hub: HubId) -> (i32, i32) {
    ((hub.0 >> 32) as i32, hub.0 as i32)
}

async fn lock_hub_exclusive(conn: &mut sqlx::PgConnection, hub: HubId) -> StoreResult<()> {
    let (a, b) = hub_lock(hub);
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(a)
        .bind(b)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Takes the advisory locks in ascending order, in one round trip.
async fn lock_keys(conn: &mut sqlx::PgConnection, mut keys: Vec<i64>) -> StoreResult<()> {
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

impl Dialect for PgStore {
    /// PostgreSQL plans joins from statistics; the written order needs no enforcing.
    const ORDERED_JOIN: &'static str = "JOIN";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    /// Concurrent writers: profile rows are re-read under `FOR UPDATE`.
    const ROW_LOCKS: bool = true;
    /// `cdh_ids` steps by `ID_BLOCK_LEN` (migration 0002), so one `nextval` is a block of ids.
    const ID_BLOCK_SQL: &'static str = "nextval('cdh_ids')";
    const ID_BLOCK_LEN: i64 = 8;
    /// The realm's numbered events (counted as they are numbered, `realms.numbered_events`)
    /// and its pending ones: numbering moves one from the second to the first and leaves the
    /// sum unchanged; every contact write adds to it (see `events`).
    const REALM_WRITTEN: &'static str = "(COALESCE((SELECT r.numbered_events FROM realms r \
         WHERE r.hub_id = $1 AND r.realm = '{realm}'), 0) + (SELECT COUNT(*) FROM pending_events pe \
         WHERE pe.hub_id = $1 AND pe.realm = '{realm}'))";
    const EXPLAIN: &'static str = "EXPLAIN";
    const NAME_KEY: &'static str =
        "lower(trim(c.fields::jsonb -> 'display_name' ->> 'value') COLLATE \"C\")";
}

impl Backend for PgStore {
    type Conn = sqlx::PgConnection;
    type Pooled = sqlx::pool::PoolConnection<sqlx::Postgres>;
    type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn apply_gates(&self) -> &ApplyGates {
        &self.apply_gates
    }

    async fn acquire(&self) -> StoreResult<Self::Pooled> {
        Ok(self.pool.acquire().await?)
    }

    async fn begin_write(&self) -> StoreResult<Self::Tx> {
        Ok(self.pool.begin().await?)
    }

    /// A read-only transaction that sees one snapshot throughout.
    async fn begin_snapshot(&self) -> StoreResult<Self::Tx> {
        Ok(self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?)
    }

    async fn commit(tx: Self::Tx) -> StoreResult<()> {
        Ok(tx.commit().await?)
    }

    async fn fetch_all<R: Row>(
        conn: &mut sqlx::PgConnection,
        query: Query<'_>,
    ) -> StoreResult<Vec<R>> {
        exec::fetch_all::<sqlx::Postgres, R>(conn, query).await
    }

    async fn fetch_optional<R: Row>(
        conn: &mut sqlx::PgConnection,
        query: Query<'_>,
    ) -> StoreResult<Option<R>> {
        exec::fetch_optional::<sqlx::Postgres, R>(conn, query).await
    }

    async fn execute(conn: &mut sqlx::PgConnection, query: Query<'_>) -> StoreResult<u64> {
        Ok(
            exec::execute::<sqlx::Postgres>(conn, &query.sql, &query.args)
                .await?
                .rows_affected(),
        )
    }

    /// `EXPLAIN`'s rows are one column, a step each.
    async fn explain(conn: &mut sqlx::PgConnection, query: Query<'_>) -> StoreResult<Vec<String>> {
        let rows: Vec<(String,)> = Self::fetch_all(conn, query).await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The queued statements one after the other: PostgreSQL takes one statement with
    /// parameters per message.
    async fn run_batch(conn: &mut sqlx::PgConnection, batch: WriteBatch) -> StoreResult<()> {
        for (statement, args) in &batch.statements {
            exec::execute::<sqlx::Postgres>(conn, statement, args).await?;
        }
        Ok(())
    }

    async fn next_id(conn: &mut sqlx::PgConnection, _hub: HubId) -> StoreResult<i64> {
        let (id,): (i64,) = sqlx::query_as("SELECT nextval('cdh_ids')")
            .fetch_one(&mut *conn)
            .await?;
        Ok(id)
    }

    /// `n` ids in increasing order, a block (`ID_BLOCK_LEN` ids) per `nextval`: where no other
    /// writer took a block in between, they follow one another.
    async fn next_ids(
        conn: &mut sqlx::PgConnection,
        _hub: HubId,
        n: usize,
    ) -> StoreResult<Vec<i64>> {
        let blocks = (n as u64).div_ceil(Self::ID_BLOCK_LEN as u64) as i64;
        let starts: Vec<(i64,)> =
            sqlx::query_as("SELECT nextval('cdh_ids') FROM generate_series(1, $1) ORDER BY 1")
                .bind(blocks)
                .fetch_all(&mut *conn)
                .await?;
        Ok(starts
            .into_iter()
            .flat_map(|(start,)| start..start + Self::ID_BLOCK_LEN)
            .take(n)
            .collect())
    }

    async fn lock_hub_shared(conn: &mut sqlx::PgConnection, hub: HubId) -> StoreResult<()> {
        let (a, b) = hub_lock(hub);
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2)")
            .bind(a)
            .bind(b)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }
}
