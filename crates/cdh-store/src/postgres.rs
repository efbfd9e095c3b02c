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
        // Upserts send their writes with values written as literals (see `finish_upsert`).
        options = options.options([("standard_conforming_strings", "on")]);
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
/// simple-protocol query with their values written as literals. PostgreSQL takes one statement with parameters per round trip,
/// and round trips, not the statements' own work, were most of a sequential upsert's time.
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

/// One statement that queues the events in `pending_events`. They take no number from the hub
/// row: that row, updated by every writer and held to commit, made concurrent upserts commit
/// one at a time (16 clients: ~490/s with it, ~2,000/s without, at 100k stored). Ids come
/// from `cdh_ids` in the order listed, so one upsert's events keep their order.
fn events_statement_into(
    out: &mut String,
    hub: HubId,
    events: &[(String, ProfileId, serde_json::Value)],
) -> StoreResult<()> {
    use std::fmt::Write;
    let _ = write!(
        out,
        "INSERT INTO pending_events (hub_id, id, at, kind, profile_id, payload) \
         SELECT {hub}, nextval('cdh_ids'), {at}, v.kind, v.profile_id, v.payload \
         FROM (VALUES ",
        at = now_ms()
    );
    for (i, (kind, profile, payload)) in events.iter().enumerate() {
        let _ = write!(out, "{}({}, ", if i > 0 { ", " } else { "" }, i + 1);
        text_literal_into(out, kind)?;
        let _ = write!(out, ", CAST({profile} AS BIGINT), ");
        text_literal_into(out, &payload.to_string())?;
        out.push(')');
    }
    out.push_str(") AS v (i, kind, profile_id, payload);\n");
    Ok(())
}

/// The events a hub has had written, numbered or not: moving pending events into the feed
/// leaves the sum unchanged, and every contact write adds to it. Over `hubs h`.
const WRITTEN_EVENTS: &str = "(h.event_seq + (SELECT COUNT(*) FROM pending_events pe \
     WHERE pe.hub_id = h.hub_id))";

/// Numbers the hub's committed pending events after its last event and moves them into the
/// feed, in their id order. The hub row is locked first and held to commit, as by every writer
/// that numbers events, so numbers follow commit order and a reader never sees a number below
/// one it has already read appear later. Run before an event is numbered (`append_events`)
/// and before the feed is read (`sequence_events`); pending events of transactions still open
/// are not visible here and are numbered by a later call.
async fn move_pending_events(conn: &mut Conn, hub: HubId) -> StoreResult<()> {
    sqlx::query("SELECT event_seq FROM hubs WHERE hub_id = $1 FOR UPDATE")
        .bind(hub)
        .fetch_optional(&mut *conn)
        .await?;
    sqlx::query(
        "WITH moved AS (DELETE FROM pending_events WHERE hub_id = $1 \
           RETURNING id, at, kind, profile_id, payload), \
         numbered AS (SELECT m.*, row_number() OVER (ORDER BY m.id) AS i, \
           count(*) OVER () AS n FROM moved m), \
         h AS (UPDATE hubs SET event_seq = event_seq + (SELECT count(*) FROM moved) \
           WHERE hub_id = $1 RETURNING event_seq) \
         INSERT INTO events (hub_id, seq, at, kind, profile_id, payload) \
         SELECT $1, h.event_seq - m.n + m.i, m.at, m.kind, m.profile_id, m.payload \
         FROM numbered m, h",
    )
    .bind(hub)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

impl PgStore {
    /// Moves committed pending events into the feed, for `hub` or for every hub that has
    /// some, each hub in a transaction of its own. Cheap when none are pending.
    async fn sequence_events(&self, hub: Option<HubId>) -> StoreResult<()> {
        let hubs: Vec<(i64,)> = match hub {
            Some(hub) => {
                sqlx::query_as("SELECT hub_id FROM pending_events WHERE hub_id = $1 LIMIT 1")
                    .bind(hub)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as("SELECT DISTINCT hub_id FROM pending_events")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        for (hub,) in hubs {
            let mut tx = self.pool.begin().await?;
            move_pending_events(&mut tx, hub).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}

/// Nothing goes before an upsert's first read: `begin_upsert` began the transaction.
const BEGIN_WITH_CONTEXT: &str = "";

/// Begins an upsert's transaction with the hub lock (shared) and the contact's key lock in the
/// same round trip: the locks are taken in the implicit transaction that `BEGIN` then turns
/// into an explicit one, and a lock that fails leaves no transaction open.
async fn begin_upsert(conn: &mut Conn, hub: HubId, contact_key: i64) -> StoreResult<()> {
    let (a, b) = hub_lock(hub);
    let sql = format!(
        "SELECT pg_advisory_xact_lock_shared({a}, {b}), pg_advisory_xact_lock({contact_key}); BEGIN"
    );
    sqlx::Executor::execute(&mut *conn, sql.as_str()).await?;
    Ok(())
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
