//! The SQLite adapter: an embedded file in WAL mode with one writer at a time.
//!
//! - [`SqliteStore`] opens the file, migrates it and implements `sql::Backend` (this module).
//! - `writer`: the writer connection (rusqlite) upserts and an apply's writes run on, on the
//!   caller's thread.
//! - `apply_write`: an apply's staged batches and its swap, as jobs on the writer connection.
//! - `bulk_read`: an apply's two big reads, over read-only rusqlite connections.
//! - `checkpoint`: copying the WAL back into the database off the write path.
//!
//! Two connections write here (sqlx's writer and the writer connection), and SQLite admits
//! one writer at a time: every write holds the store's write gate, a queue in the process,
//! for as long as its transaction lasts (the file lock's busy handler sleeps instead).
//!
//! Connections: one sqlx writer (`begin_write`, `BEGIN IMMEDIATE`), the rusqlite writer
//! connection, and a read pool of four, none pinged before use (an embedded connection does
//! not go stale; a ping is a round trip to sqlx's worker thread). WAL with
//! `synchronous=NORMAL`, a 64 MiB page cache per connection, a 1 GiB mmap, temp tables in
//! memory. An in-memory database is refused: each connection would open its own.
//!
//! What keeps writes cheap here, each measured in BENCHMARKS.md and docs/perf-log.md:
//! - few pages per upsert: `identifiers`, `memberships`, `events`, `profiles` and
//!   `merge_ledger` are `WITHOUT ROWID` (migrations 0007, 0008), since a rowid table with a
//!   composite key is two B-trees; `contacts` keeps its rowid (large rows would be copied into
//!   interior pages);
//! - an upsert on the writer connection, on the caller's thread (`writer`): through sqlx every
//!   statement was a hand-off between threads;
//! - statements sent positionally (`$n` as `?`): SQLite finds a numbered parameter by a linear
//!   scan per bind;
//! - the WAL checkpointed off the write path (`checkpoint`);
//! - SQLite built without STAT4 (`.cargo/config.toml`): with it, every cached statement whose
//!   parameter meets an indexed column was compiled again whenever its bound values changed.
//!
//! Planner guards: SQLite plans without statistics unless someone runs ANALYZE, and the server
//! never does. Migration 0009 writes the statistics ANALYZE would gather on a large hub into
//! `sqlite_stat1`, and `ORDERED_JOIN` (`CROSS JOIN`) keeps the written join order where it
//! matters; a unit test (`tests::planner_tests`) checks the plans on a new database.

mod apply_write;
mod bulk_read;
mod checkpoint;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::clock::Clock;
use crate::error::{Resource, StoreError, StoreResult};
use crate::model::HubId;
use crate::plan::unify::NewEvent;
use crate::sql::batch::{for_each_placeholder, queue_events};
use crate::sql::gates::ApplyGates;
use crate::sql::{
    Arg, Backend, Dialect, EventNumbers, Query, Row, UpsertCounters, WriteBatch, exec,
};

/// The store over an SQLite file: one writer connection (SQLite admits one writer at a
/// time, so waiting for the pool is cheaper than waiting on the file lock) and a read pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    /// Held by every write, through sqlx's writer or the writer connection, for as long as its
    /// transaction lasts. A queue in the process is cheaper than waiting on the file lock,
    /// whose busy handler sleeps.
    write_gate: Arc<tokio::sync::Mutex<()>>,
    /// A handle of the store's own on the database file, only to fsync it (`None` when it
    /// could not be opened: the checkpointer then leaves the fsync to SQLite).
    database_file: Option<Arc<std::fs::File>>,
    /// The connection upserts and an apply's writes run on.
    writer_connection: writer::WriterConnection,
    /// The database file, for the apply's reads over connections of their own.
    path: std::path::PathBuf,
    clock: Clock,
    apply_gates: Arc<ApplyGates>,
    /// Dropped with the last clone of the store, which stops the background checkpointer.
    _alive: Arc<()>,
}

/// Page cache per connection, in KiB (negative `cache_size` is KiB).
const CACHE_KIB: i64 = 64 * 1024;

/// Page cache of sqlx's writer connection, in KiB: it writes tasks, settings and imports'
/// batches, not the hot paths (upserts and applies write on the writer connection), and a
/// large cache there only keeps what an import queued (up to 32 MiB) in memory.
const SQLX_WRITER_CACHE_KIB: i64 = 8 * 1024;

/// Bytes of the file mapped into memory, so reads skip a copy through the page cache.
const MMAP_BYTES: i64 = 1 << 30;

/// WAL pages after which a commit checkpoints by itself; the background checkpointer
/// normally gets there first, off the write path.
const AUTOCHECKPOINT_PAGES: i64 = 50_000;

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and migrates it;
    /// times come from the system clock.
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with_clock(url, Clock::system()).await
    }

    /// Opens the database at `url` and migrates it; times come from `clock`.
    pub async fn open_with_clock(url: &str, clock: Clock) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true)
            .statement_cache_capacity(512)
            .pragma("cache_size", (-CACHE_KIB).to_string())
            .pragma("mmap_size", MMAP_BYTES.to_string())
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES.to_string());
        let filename = options.get_filename().to_path_buf();
        let unavailable = |e: sqlx::Error| StoreError::Unavailable {
            cause: e.to_string(),
        };
        // No ping before each acquire: an embedded connection does not go stale, and the ping
        // is a round trip to the connection's worker thread on every request.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(
                options
                    .clone()
                    .pragma("cache_size", (-SQLX_WRITER_CACHE_KIB).to_string()),
            )
            .await
            .map_err(unavailable)?;
        // The store's connections (sqlx's writer, its readers and the writer connection) must
        // open one database; in memory, each would open its own.
        if !filename.is_file() {
            writer.close().await;
            return Err(StoreError::Invalid(format!(
                "SQLite needs a database file, and `{url}` names none (an in-memory database \
                 is not shared between connections)"
            )));
        }
        sqlx::migrate!("migrations/sqlite")
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend {
                cause: format!("migration failed: {e}"),
            })?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(unavailable)?;
        let alive = Arc::new(());
        let write_gate = Arc::new(tokio::sync::Mutex::new(()));
        let database_file = std::fs::File::open(&filename).ok().map(Arc::new);
        let writer_connection = writer::WriterConnection::open(&filename)?;
        // The task holds the pools and the file, not the store, whose last clone stops it.
        checkpoint::in_background(
            pool.clone(),
            writer.clone(),
            Arc::clone(&write_gate),
            database_file.clone(),
            Arc::downgrade(&alive),
        );
        Ok(Self {
            pool,
            writer,
            write_gate,
            database_file,
            writer_connection,
            path: filename,
            clock,
            apply_gates: Arc::default(),
            _alive: alive,
        })
    }

    /// Copies the WAL into the database file now, as the background checkpointer does, so
    /// that the next write starts the WAL over (before a file-level backup, say).
    pub async fn checkpoint(&self) -> StoreResult<()> {
        checkpoint::passes(
            &self.pool,
            &self.writer,
            &self.write_gate,
            self.database_file.as_ref(),
        )
        .await
    }
}

/// A transaction of sqlx's; a write one holds the store's write gate until it ends.
pub struct GatedTransaction {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl std::ops::Deref for GatedTransaction {
    type Target = sqlx::SqliteConnection;

    fn deref(&self) -> &sqlx::SqliteConnection {
        &self.tx
    }
}

impl std::ops::DerefMut for GatedTransaction {
    fn deref_mut(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.tx
    }
}

impl Dialect for SqliteStore {
    /// SQLite's planner has no statistics on a fresh database: `CROSS JOIN` keeps the order.
    const ORDERED_JOIN: &'static str = "CROSS JOIN";
    /// SQLite locks the whole database for a writer; there are no row locks to take.
    const FOR_UPDATE: &'static str = "";
    /// No row locks: the rows a writer reads stay current until it commits.
    const ROW_LOCKS: bool = false;
    /// One writer: the hub's counter hands out ids without a round trip, and the upsert stores
    /// it back when it ends (`finish_batch`).
    const ID_BLOCK_SQL: &'static str = "h.next_id";
    const ID_BLOCK_LEN: i64 = i64::MAX;
    /// With one writer, every event is numbered as it is written, and nothing is pending. In a
    /// hub of several organizations, the realm's count of events, which grows with every write
    /// of the realm (`count_realm_events`); in a hub of one, whose every event is its one
    /// realm's, the hub's last event number, kept apart from counts by its sign (so a marker
    /// taken before a second organization came cannot equal one taken after).
    const REALM_WRITTEN: &'static str = "(CASE WHEN (SELECT count(*) FROM organizations o \
         WHERE o.hub_id = $1) > 1 THEN COALESCE((SELECT r.numbered_events FROM realms r \
         WHERE r.hub_id = $1 AND r.realm = '{realm}'), 0) \
         ELSE -1 - (SELECT h.event_seq FROM hubs h WHERE h.hub_id = $1) END)";
    const EXPLAIN: &'static str = "EXPLAIN QUERY PLAN";
    const NAME_KEY: &'static str = "lower(trim(json_extract(c.fields, '$.display_name.value')))";
}

impl Backend for SqliteStore {
    type Conn = sqlx::SqliteConnection;
    type Pooled = sqlx::pool::PoolConnection<sqlx::Sqlite>;
    type Tx = GatedTransaction;

    fn clock(&self) -> &Clock {
        &self.clock
    }

    fn apply_gates(&self) -> &ApplyGates {
        &self.apply_gates
    }

    async fn acquire(&self) -> StoreResult<Self::Pooled> {
        Ok(self.pool.acquire().await?)
    }

    /// A write transaction on the one sqlx writer connection, holding the write gate.
    /// `BEGIN IMMEDIATE` still takes the write lock up front, against writes through the read
    /// pool or other processes.
    async fn begin_write(&self) -> StoreResult<GatedTransaction> {
        let gate = Arc::clone(&self.write_gate).lock_owned().await;
        Ok(GatedTransaction {
            tx: self.writer.begin_with("BEGIN IMMEDIATE").await?,
            _gate: Some(gate),
        })
    }

    /// A read transaction: in WAL mode its first read fixes its snapshot.
    async fn begin_snapshot(&self) -> StoreResult<GatedTransaction> {
        Ok(GatedTransaction {
            tx: self.pool.begin().await?,
            _gate: None,
        })
    }

    async fn commit(tx: GatedTransaction) -> StoreResult<()> {
        Ok(tx.tx.commit().await?)
    }

    async fn fetch_all<R: Row>(
        conn: &mut sqlx::SqliteConnection,
        query: Query<'_>,
    ) -> StoreResult<Vec<R>> {
        exec::fetch_all::<sqlx::Sqlite, R>(conn, query).await
    }

    async fn fetch_optional<R: Row>(
        conn: &mut sqlx::SqliteConnection,
        query: Query<'_>,
    ) -> StoreResult<Option<R>> {
        exec::fetch_optional::<sqlx::Sqlite, R>(conn, query).await
    }

    async fn execute(conn: &mut sqlx::SqliteConnection, query: Query<'_>) -> StoreResult<u64> {
        Ok(exec::execute::<sqlx::Sqlite>(conn, &query.sql, &query.args)
            .await?
            .rows_affected())
    }

    /// The plan's steps are the last column of `EXPLAIN QUERY PLAN`'s rows.
    async fn explain(
        conn: &mut sqlx::SqliteConnection,
        query: Query<'_>,
    ) -> StoreResult<Vec<String>> {
        let rows: Vec<(i64, i64, i64, String)> = Self::fetch_all(conn, query).await?;
        Ok(rows.into_iter().map(|r| r.3).collect())
    }

    /// Consecutive statements go out as one multi-statement query of up to
    /// `BATCH_QUERY_BYTES` of SQL, so an upsert's handful of writes is one round trip to the
    /// connection's worker thread. Every `$n` becomes a positional `?` bound to the
    /// statement's n-th argument: SQLite finds a numbered parameter by a linear scan per bind,
    /// which made a large insert quadratic.
    async fn run_batch(conn: &mut sqlx::SqliteConnection, batch: WriteBatch) -> StoreResult<()> {
        let mut sql = String::new();
        let mut bound = Vec::new();
        for (statement, args) in &batch.statements {
            positional_into(&mut sql, &mut bound, statement, args);
            sql.push_str(";\n");
            if sql.len() >= BATCH_QUERY_BYTES {
                exec::execute::<sqlx::Sqlite>(conn, &sql, bound.drain(..)).await?;
                sql.clear();
            }
        }
        if !sql.is_empty() {
            exec::execute::<sqlx::Sqlite>(conn, &sql, bound).await?;
        }
        Ok(())
    }

    async fn next_id(conn: &mut sqlx::SqliteConnection, hub: HubId) -> StoreResult<i64> {
        Ok(Self::next_ids(conn, hub, 1).await?[0])
    }

    /// `n` fresh ids from the hub's counter (the writer holds the lock, so they are
    /// contiguous).
    async fn next_ids(
        conn: &mut sqlx::SqliteConnection,
        hub: HubId,
        n: usize,
    ) -> StoreResult<Vec<i64>> {
        let (end,): (i64,) = crate::sql::fetch_one::<Self, _>(
            conn,
            crate::sql::query(
                "UPDATE hubs SET next_id = next_id + $2 WHERE hub_id = $1 RETURNING next_id",
            )
            .bind(hub)
            .bind(n as i64),
            Resource::Hub,
        )
        .await?;
        Ok((end - n as i64..end).collect())
    }

    /// One writer holds the database: no lock to take.
    async fn lock_hub_shared(_conn: &mut sqlx::SqliteConnection, _hub: HubId) -> StoreResult<()> {
        Ok(())
    }
}

impl EventNumbers for SqliteStore {
    /// Nothing to move: SQLite's one writer numbers events as it writes them.
    async fn move_pending_events(
        _conn: &mut sqlx::SqliteConnection,
        _hub: HubId,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// Nothing is pending on SQLite.
    async fn sequence_events(&self, _hub: Option<HubId>) -> StoreResult<()> {
        Ok(())
    }
}

/// The statement that adds `n` events to the realm's count (`REALM_WRITTEN`) in a hub of
/// several organizations, creating the realm's row if it has none. A hub of one writes
/// nothing: each page a commit changes costs, and an index of events by realm, or this count
/// kept in every hub, cost a third of the one-writer upsert rate (BENCHMARKS.md).
pub(crate) fn count_realm_events(hub: HubId, realm: &str, n: usize) -> (&'static str, Vec<Arg>) {
    (
        "INSERT INTO realms (hub_id, realm, cross_product, numbered_events) \
         SELECT $1, $2, 0, $3 WHERE (SELECT count(*) FROM organizations o WHERE o.hub_id = $1) > 1 \
         ON CONFLICT (hub_id, realm) DO UPDATE \
         SET numbered_events = numbered_events + excluded.numbered_events",
        vec![hub.into(), realm.into(), (n as i64).into()],
    )
}

/// The queued writes of an upsert followed by its ends (see `finish_upsert`).
fn finish_batch(
    hub: HubId,
    realm: &str,
    mut batch: WriteBatch,
    counters: UpsertCounters,
    events: &[NewEvent],
    commit: bool,
) -> WriteBatch {
    batch.push(
        "UPDATE hubs SET next_id = max(next_id, $2), event_seq = event_seq + $3 \
         WHERE hub_id = $1",
        vec![
            hub.into(),
            counters.next_free_id.into(),
            (events.len() as i64).into(),
        ],
    );
    queue_events(
        &mut batch,
        hub,
        realm,
        counters.event_seq + 1,
        events,
        counters.at,
    );
    if !events.is_empty() {
        let (sql, args) = count_realm_events(hub, realm, events.len());
        batch.push(sql, args);
    }
    if commit {
        batch.push("COMMIT", Vec::new());
    }
    batch
}

/// SQL text per multi-statement query. Each statement of such a query is prepared from the
/// rest of the text, and SQLite copies that rest when it is not NUL-terminated (sqlx's is
/// not), so one huge query costs time quadratic in its length.
const BATCH_QUERY_BYTES: usize = 32 * 1024;

/// Appends `sql` to `out` with every `$n` written as `?`, and `args[n - 1]` to `bound` in the
/// same order.
fn positional_into<'a>(out: &mut String, bound: &mut Vec<&'a Arg>, sql: &str, args: &'a [Arg]) {
    for_each_placeholder(out, sql, |out, n| {
        out.push('?');
        bound.push(&args[n - 1]);
    });
}

#[cfg(test)]
mod tests;
