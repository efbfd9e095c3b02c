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

/// That profile `p` is live. `profiles_by_bucket` holds live profiles only (migration 0012), and
/// PostgreSQL uses a partial index only where a query states its predicate as written.
const P_IS_LIVE: &str = "p.merged_into IS NULL";

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
        let contacts_sql = apply_contacts_sql();
        let contacts = sqlx::query_as::<_, ContactProfileRow>(&contacts_sql)
            .bind(hub)
            .fetch_all(&mut **snapshot);
        let (contact_rows, identifiers) =
            tokio::join!(contacts, identifiers_query.fetch_all(&mut *keys_tx));
        keys_tx.commit().await?;
        Ok((contact_rows?, identifiers?))
    }

    /// One attempt at an upsert; the caller retries on contention.
    async fn upsert_attempt(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let contact_key = contact_lock_key(hub, input.channel_id, &input.external_id);
        let mut lost = 0;
        let (mut tx, context) = loop {
            let mut tx = UpsertTx {
                conn: self.upsert_pool().acquire().await?,
                open: true,
            };
            match begin_upsert(&mut tx.conn, hub, contact_key, input).await {
                Ok(context) => break (tx, context),
                // The pool pings only connections idle a while (`PING_AFTER_IDLE`); one the
                // server closed sooner fails here, before the upsert wrote anything, and the
                // upsert starts again on another (`tx`, dropped open, closes this one).
                Err(BeginError::ConnectionLost(e)) => {
                    lost += 1;
                    if lost > MAX_LOST_CONNECTIONS {
                        return Err(e);
                    }
                }
                Err(BeginError::Failed(e)) => {
                    // The statement that failed may have come before the `BEGIN` or after it.
                    tx.rollback().await;
                    return Err(e);
                }
            }
        };
        match upsert_locked(&mut tx.conn, hub, input, context, actor, true).await {
            Ok(upserted) => {
                tx.open = false;
                Ok(upserted)
            }
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        }
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

/// Ends an upsert in one round trip: the queued writes, then the events (into
/// `pending_events`: see `move_pending_events`), and with `commit` the commit, go out as one
/// simple-protocol query with their values written as literals. PostgreSQL takes one
/// statement with parameters per round trip, and round trips, not the statements' own work,
/// were most of a sequential upsert's time.
async fn finish_upsert(
    conn: &mut Conn,
    hub: HubId,
    batch: WriteBatch,
    _counters: (i64, i64),
    events: &[(String, ProfileId, serde_json::Value)],
    commit: bool,
) -> StoreResult<()> {
    let mut sql = String::new();
    for (statement, args) in &batch.statements {
        inline_into(&mut sql, statement, args)?;
        sql.push_str(";\n");
    }
    if !events.is_empty() {
        events_statement_into(&mut sql, hub, events)?;
    }
    if commit {
        sql.push_str("COMMIT;\n");
    }
    if !sql.is_empty() {
        // A query without arguments goes out as a simple query, several statements in one.
        sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
    }
    Ok(())
}

/// Appends `sql` with each `$n` written as the literal of `args[n - 1]`.
fn inline_into(out: &mut String, sql: &str, args: &[Arg]) -> StoreResult<()> {
    use std::fmt::Write;
    let mut result = Ok(());
    for_each_placeholder(out, sql, |out, n| match &args[n - 1] {
        // Parenthesised, so `a -$1` cannot become a `--` comment.
        Arg::Int(v) if *v < 0 => {
            let _ = write!(out, "({v})");
        }
        Arg::Int(v) => {
            let _ = write!(out, "{v}");
        }
        Arg::Text(t) => {
            if let Err(e) = text_literal_into(out, t) {
                result = Err(e);
            }
        }
    });
    result
}

/// A string literal: quotes doubled, nothing else escaped (the connection sets
/// `standard_conforming_strings`, so a backslash is an ordinary character). A NUL could not
/// be stored in a text column anyway, and would end the query message early.
fn text_literal_into(out: &mut String, text: &str) -> StoreResult<()> {
    if text.contains('\0') {
        return Err(StoreError::Invalid(
            "text values cannot contain the NUL character (U+0000)".to_owned(),
        ));
    }
    out.push('\'');
    for c in text.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    Ok(())
}

/// Value counts with a tie statement prepared on every connection (see `open_in_schema`); a
/// contact has at most one value per unify key, and there are at most three keys.
const TIE_STATEMENTS: usize = 3;

/// `PREPARE cdh_tie_<n>`: the tie query over `n` values, locking the profiles it finds
/// (`FOR UPDATE`, in id order, as `lock_profiles` does). A profile merged while this waited for
/// its lock comes back with `merged_into` set, and the upsert follows it to its survivor.
fn prepare_tie_sql(n: usize) -> String {
    let types = vec!["text, text"; n].join(", ");
    format!(
        "PREPARE cdh_tie_{n} (bigint, text, bigint, {types}) AS \
         SELECT t.k, p.id, p.oldest_contact, p.bucket_id, p.member_count, p.merged_into \
         FROM ({}) AS t JOIN profiles p ON p.hub_id = $1 AND p.id = t.id \
         ORDER BY p.id, t.k FOR UPDATE OF p",
        tie_query_sql(n, false)
    )
}

/// Takes the value locks (ascending) and runs the tie query, locking the profiles it finds, in
/// one round trip: a simple query of two statements, the locks then `EXECUTE cdh_tie_<n>`.
/// Two statements, because in READ COMMITTED each sees what was committed when it started: the
/// tie query must start after the locks are held. The prepared statement keeps its plan, where
/// the same query sent as literal text was planned afresh every time (~1.8 ms).
async fn lock_values_and_tie(
    conn: &mut Conn,
    hub: HubId,
    scope: &str,
    contact: ContactId,
    key_values: &[&(String, String)],
    mut value_locks: Vec<i64>,
    own: bool,
) -> StoreResult<TiedProfiles> {
    use sqlx::Row;
    use std::fmt::Write;
    if own || key_values.is_empty() || key_values.len() > TIE_STATEMENTS {
        lock_keys(conn, value_locks).await?;
        let (tied, own) = tied_profiles(conn, hub, scope, contact, key_values, own).await?;
        return Ok((tied, own, false));
    }
    value_locks.sort_unstable();
    value_locks.dedup();
    let keys = value_locks
        .iter()
        .map(|k| format!("({k})"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = format!(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(ARRAY[{keys}]::bigint[]) AS k \
         ORDER BY 1) AS s; EXECUTE cdh_tie_{}({hub}, ",
        key_values.len()
    );
    text_literal_into(&mut sql, scope)?;
    let _ = write!(sql, ", {contact}");
    for (field, value) in key_values {
        sql.push_str(", ");
        text_literal_into(&mut sql, field)?;
        sql.push_str(", ");
        text_literal_into(&mut sql, value)?;
    }
    sql.push(')');
    // A query without arguments goes out as a simple query, both statements in one message.
    let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str()).await?;
    // The lock statement's rows have one column; the tie query's have six.
    let mut tie: Vec<TieRow> = rows
        .iter()
        .filter(|r| r.len() == 6)
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?;
    tie.sort_unstable();
    Ok((tied_rows(tie, key_values), None, true))
}

/// `PREPARE cdh_context`: the upsert's first read (`upsert_context_sql`), kept planned on every
/// connection so that `begin_upsert` can send it with its `BEGIN`.
fn prepare_context_sql() -> String {
    format!(
        "PREPARE cdh_context (bigint, bigint, text) AS {}",
        upsert_context_sql()
    )
}

/// Begins an upsert's transaction and reads its context, in one round trip: the hub lock
/// (shared) and the contact's key lock are taken in the implicit transaction that `BEGIN` then
/// turns into an explicit one, and `EXECUTE cdh_context` reads under them. The caller rolls
/// back on an error, whichever statement failed.
async fn begin_upsert(
    conn: &mut Conn,
    hub: HubId,
    contact_key: i64,
    input: &ContactInput,
) -> Result<UpsertContext, BeginError> {
    use sqlx::FromRow;
    let (a, b) = hub_lock(hub);
    let mut sql = format!(
        "SELECT pg_advisory_xact_lock_shared({a}, {b}), pg_advisory_xact_lock({contact_key}); \
         BEGIN; EXECUTE cdh_context({hub}, {}, ",
        input.channel_id
    );
    text_literal_into(&mut sql, &input.external_id).map_err(BeginError::Failed)?;
    sql.push(')');
    // A query without arguments goes out as a simple query, its statements in one message.
    let rows = sqlx::Executor::fetch_all(&mut *conn, sql.as_str())
        .await
        .map_err(|e| {
            if connection_lost(&e) {
                BeginError::ConnectionLost(e.into())
            } else {
                BeginError::Failed(e.into())
            }
        })?;
    // The lock statement's row has two columns; the context's has fifteen.
    let row = rows
        .iter()
        .find(|r| sqlx::Row::len(*r) > 2)
        .map(ContextRow::from_row)
        .transpose()
        .map_err(|e| BeginError::Failed(e.into()))?;
    upsert_context(row).map_err(BeginError::Failed)
}

/// Why an upsert's first round trip failed.
enum BeginError {
    /// The connection was closed (by the server, or the network): nothing was written.
    ConnectionLost(StoreError),
    Failed(StoreError),
}

/// How many closed connections one upsert replaces before it gives up: the pool's size, so
/// that a server restart, which closes them all, costs no upsert.
const MAX_LOST_CONNECTIONS: u32 = MAX_CONNECTIONS;

/// Whether `e` says the connection is gone: an I/O error, or the server's notice that it is
/// closing the session (SQLSTATE class 08, connection exception, or 57P01-57P03, shutdown).
fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || matches!(&*c, "57P01" | "57P02" | "57P03")),
        _ => false,
    }
}

/// An upsert's transaction, begun and ended by hand so that the commit goes out with the last
/// writes (sqlx's `Transaction` commits in a round trip of its own). Dropped while open, when
/// the caller's future is cancelled mid-upsert, the connection is closed rather than returned
/// to the pool inside a transaction.
struct UpsertTx {
    conn: sqlx::pool::PoolConnection<Db>,
    open: bool,
}

impl UpsertTx {
    /// Rolls back after an error; the connection is closed if that fails too.
    async fn rollback(&mut self) {
        if sqlx::Executor::execute(&mut *self.conn, "ROLLBACK")
            .await
            .is_ok()
        {
            self.open = false;
        }
    }
}

impl Drop for UpsertTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
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
