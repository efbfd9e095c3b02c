//! The PostgreSQL adapter: concurrent writers serialised only where their keys meet.
//!
//! Runs the same shared statements as the SQLite adapter (see `sqlite.rs`); what differs is
//! locking. An upsert takes transaction-scoped advisory locks on its contact key and on each
//! unify-key value (sorted, so two writers take them in the same order), then locks the
//! profile rows it touches with `FOR UPDATE` and re-checks `merged_into`. Two writers whose
//! contacts bridge the same profiles therefore run one after the other; deadlocks and
//! serialization failures are retried. An apply's swap takes the hub lock exclusively;
//! upserts take it shared. Concurrent upserts that are independent share a transaction
//! (`postgres_batch.rs`).

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
    /// Where upserts go to be batched (`postgres_batch.rs`); `None` in the workers' own
    /// store, which runs them.
    workers: Option<UpsertWorkers>,
    /// How many upserts committed in a transaction shared with others.
    batched: Arc<AtomicU64>,
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
            // sqlx pings every connection it hands out: a round trip, ~7% of a sequential
            // upsert's time. Only one that sat idle a while is pinged (one broken meanwhile,
            // say by a server restart, is then replaced); a busy one is in use too often to
            // go stale unnoticed.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    Ok(meta.idle_for < PING_AFTER_IDLE
                        || sqlx::Connection::ping(conn).await.is_ok())
                })
            })
            .after_connect(|conn, _| {
                Box::pin(async move {
                    let prepare = (1..=TIE_STATEMENTS)
                        .map(prepare_tie_sql)
                        .chain([
                            prepare_context_sql(),
                            prepare_contexts_sql(),
                            prepare_ties_sql(),
                        ])
                        .collect::<Vec<_>>()
                        .join("; ");
                    sqlx::Executor::execute(&mut *conn, prepare.as_str()).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let batched = Arc::new(AtomicU64::new(0));
        let workers = Some(Self::start_upsert_workers(&pool, &batched));
        Ok(Self {
            pool,
            workers,
            batched,
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

    /// The apply's two big reads, in the caller's snapshot, at once: the keys are read on a
    /// second connection that imports the snapshot (`pg_export_snapshot`), so both use a core
    /// each.
    async fn read_contacts_and_keys(
        &self,
        snapshot: &mut Transaction,
        hub: HubId,
        key_names: [&str; 3],
    ) -> StoreResult<(Vec<ContactProfileRow>, Vec<KeyValuesRow>)> {
        let (snapshot_id,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
            .fetch_one(&mut **snapshot)
            .await?;
        let mut keys_tx = self.begin_snapshot().await?;
        // The snapshot id is PostgreSQL's own text (hex digits and dashes).
        sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot_id}'"))
            .execute(&mut *keys_tx)
            .await?;
        let mut identifiers_query = sqlx::query_as::<_, KeyValuesRow>(APPLY_KEYS_SQL).bind(hub);
        for name in key_names {
            identifiers_query = identifiers_query.bind(name);
        }
        let contacts = sqlx::query_as::<_, ContactProfileRow>(APPLY_CONTACTS_SQL)
            .bind(hub)
            .fetch_all(&mut **snapshot);
        let (contact_rows, identifiers) =
            tokio::join!(contacts, identifiers_query.fetch_all(&mut *keys_tx));
        keys_tx.commit().await?;
        Ok((contact_rows?, identifiers?))
    }

    /// The pool upserts take a connection from.
    fn upsert_pool(&self) -> &sqlx::PgPool {
        &self.pool
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

/// The pool's size.
const MAX_CONNECTIONS: u32 = 20;

/// How long a pooled connection sits idle before it is pinged when handed out again.
const PING_AFTER_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

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

/// `n` ids in increasing order, a block (`ID_BLOCK_LEN` ids) per `nextval`: where no other
/// writer took a block in between, they follow one another.
async fn next_ids(conn: &mut Conn, _hub: HubId, n: usize) -> StoreResult<Vec<i64>> {
    let blocks = (n as u64).div_ceil(ID_BLOCK_LEN as u64) as i64;
    let starts: Vec<(i64,)> =
        sqlx::query_as("SELECT nextval('cdh_ids') FROM generate_series(1, $1) ORDER BY 1")
            .bind(blocks)
            .fetch_all(&mut *conn)
            .await?;
    Ok(starts
        .into_iter()
        .flat_map(|(start,)| start..start + ID_BLOCK_LEN)
        .take(n)
        .collect())
}

include!("postgres_upsert.rs");
include!("postgres_batch.rs");
include!("postgres_batch_sql.rs");
include!("postgres_events.rs");
include!("shared/unify.rs");
include!("shared/batch.rs");
include!("shared/write.rs");
include!("shared/upsert_plan.rs");
include!("shared/setup.rs");
include!("shared/read.rs");
include!("shared/tasks.rs");
include!("shared/apply.rs");
include!("postgres_apply.rs");
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
