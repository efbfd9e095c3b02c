//! The SQLite adapter: an embedded file in WAL mode with one writer at a time.
//!
//! The shared logic lives in `shared/*.rs` and is included here and in `postgres.rs`, each
//! time over this backend's concrete types: the two adapters run the same statements and
//! differ only in the few functions below (locking, ids, bulk writes).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

mod apply_write;
mod bulk_read;
mod writer;

include!("shared/prelude.rs");
include!("shared/api_prelude.rs");

type Conn = sqlx::SqliteConnection;
type Db = sqlx::Sqlite;
type ThisStore = SqliteStore;
type Transaction = GatedTransaction;

/// SQLite locks the whole database for a writer; there are no row locks to take.
/// SQLite's planner has no statistics on a fresh database and, every index leading with
/// `hub_id`, may start a join from the wrong table; `CROSS JOIN` keeps the written order.
const ORDERED_JOIN: &str = "CROSS JOIN";

const FOR_UPDATE: &str = "";

/// The store over an SQLite file: one writer connection (SQLite admits one writer at a
/// time, so waiting for the pool is cheaper than waiting on the file lock) and a read pool.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    /// Held by every write, through sqlx's writer or the writer connection, for as long as its
    /// transaction lasts: SQLite admits one writer at a time, and two connections write here.
    /// A queue in the process is cheaper than waiting on the file lock, whose busy handler
    /// sleeps.
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// A handle of the store's own on the database file, only to fsync it (`None` when it
    /// could not be opened: the checkpointer then leaves the fsync to SQLite).
    database_file: Option<std::sync::Arc<std::fs::File>>,
    /// The connection upserts and an apply's writes run on (`writer`).
    writer_connection: writer::WriterConnection,
    /// The database file, for the apply's reads over a connection of their own.
    path: std::path::PathBuf,
    /// Dropped with the last clone of the store, which stops the background checkpointer.
    _alive: std::sync::Arc<()>,
}

/// A transaction of sqlx's; a write one holds the store's write gate until it ends.
struct GatedTransaction {
    tx: sqlx::Transaction<'static, sqlx::Sqlite>,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl GatedTransaction {
    async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for GatedTransaction {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        &self.tx
    }
}

impl std::ops::DerefMut for GatedTransaction {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.tx
    }
}

/// Page cache per connection, in KiB (negative `cache_size` is KiB).
const CACHE_KIB: i64 = 64 * 1024;

/// Bytes of the file mapped into memory, so reads skip a copy through the page cache.
const MMAP_BYTES: i64 = 1 << 30;

/// WAL pages after which a commit checkpoints by itself; the background checkpointer
/// (`checkpoint_in_background`) normally gets there first, off the write path.
const AUTOCHECKPOINT_PAGES: i64 = 50_000;

/// How often the background checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
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
        // is a round trip to the connection's worker thread (~50 µs) on every request.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options.clone())
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
        let alive = std::sync::Arc::new(());
        let write_gate = std::sync::Arc::new(tokio::sync::Mutex::new(()));
        let database_file = std::fs::File::open(&filename).ok().map(std::sync::Arc::new);
        let writer_connection = writer::WriterConnection::open(&filename)?;
        let path = filename.clone();
        // The task holds the pools and the file, not the store, whose last clone stops it.
        checkpoint_in_background(
            pool.clone(),
            writer.clone(),
            std::sync::Arc::clone(&write_gate),
            database_file.clone(),
            std::sync::Arc::downgrade(&alive),
        );
        Ok(Self {
            pool,
            writer,
            write_gate,
            database_file,
            writer_connection,
            path,
            _alive: alive,
        })
    }

    /// Copies the WAL into the database file now, as the background checkpointer does every
    /// `CHECKPOINT_EVERY`, so that the next write starts the WAL over (before a file-level
    /// backup, say).
    pub async fn checkpoint(&self) -> StoreResult<()> {
        checkpoint_passes(
            &self.pool,
            &self.writer,
            &self.write_gate,
            self.database_file.as_ref(),
        )
        .await
    }

    /// An upsert: one writer runs them one at a time, so nothing is gained by batching.
    async fn upsert_one(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        self.upsert_with_retry(hub, input, actor).await
    }

    /// One attempt at an upsert: on the writer connection, holding the write gate until it has
    /// committed (see `writer`).
    async fn upsert_attempt(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        let permit = std::sync::Arc::clone(&self.write_gate).lock_owned().await;
        let (input, actor) = (input.clone(), actor.to_owned());
        self.writer_connection
            .run(permit, move |conn| {
                writer::upsert(conn, hub, &input, &actor)
            })
            .await
    }

    /// The apply's two big reads, over rusqlite (see `bulk_read`). They run after the
    /// caller's snapshot read the hub's written-events marker, so they see at least what it
    /// saw; a write in between changes the marker, and the swap then starts the apply over.
    async fn read_contacts_and_keys(
        &self,
        _snapshot: &mut Transaction,
        hub: HubId,
        key_names: [&str; 3],
    ) -> StoreResult<(Vec<ContactProfileRow>, Vec<KeyValuesRow>)> {
        bulk_read::contacts_and_keys(self.path.clone(), hub, key_names.map(str::to_owned)).await
    }

    /// A write transaction on the one sqlx writer connection, holding the write gate.
    /// `BEGIN IMMEDIATE` still takes the write lock up front, against writes through the read
    /// pool or other processes.
    async fn begin_write(&self) -> StoreResult<Transaction> {
        let gate = std::sync::Arc::clone(&self.write_gate).lock_owned().await;
        Ok(GatedTransaction {
            tx: self.writer.begin_with("BEGIN IMMEDIATE").await?,
            _gate: Some(gate),
        })
    }

    /// A read transaction: in WAL mode its first read fixes its snapshot.
    async fn begin_snapshot(&self) -> StoreResult<Transaction> {
        Ok(GatedTransaction {
            tx: self.pool.begin().await?,
            _gate: None,
        })
    }
}

/// Copies the WAL into the database every `CHECKPOINT_EVERY`, so commits rarely checkpoint
/// themselves and upsert latency stays flat. Stops when the pools are closed or dropped.
///
/// Two passes. The first runs from a read connection: a passive checkpoint never blocks the
/// writer, and it does the bulk of the copying. But the writer keeps appending while it runs,
/// and SQLite only rewinds the WAL when a write begins with every frame copied, so under
/// steady writes the WAL never rewound: it grew to `AUTOCHECKPOINT_PAGES` and a commit then
/// checkpointed inline, a ~150 ms stall every few seconds at 500 upserts/s. The second pass
/// runs on the writer connection between writes and copies only what was appended meanwhile,
/// so the next write rewinds the WAL.
///
/// SQLite fsyncs the database file only when a checkpoint reaches the end of the WAL, which
/// the first pass never does under writes; so the second pass, holding the writer, used to
/// flush every page the first one had copied: 20-30 ms at 500 upserts/s on 1M contacts, the
/// whole of POST's p99. The database file is therefore fsynced between the passes, off the
/// write path, and the second pass flushes only its own few pages. (An extra fsync is always
/// safe; it changes when pages reach the disk, not what SQLite promises.)
fn checkpoint_in_background(
    pool: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
    database_file: Option<std::sync::Arc<std::fs::File>>,
    alive: std::sync::Weak<()>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if alive.upgrade().is_none()
                || checkpoint_passes(&pool, &writer, &write_gate, database_file.as_ref())
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
}

/// The two passes of `checkpoint_in_background`, once; an error when a pool is closed.
async fn checkpoint_passes(
    pool: &sqlx::SqlitePool,
    writer: &sqlx::SqlitePool,
    write_gate: &tokio::sync::Mutex<()>,
    database_file: Option<&std::sync::Arc<std::fs::File>>,
) -> StoreResult<()> {
    let copied = passive_checkpoint(pool).await?;
    if let Some(file) = database_file.filter(|_| copied > 0) {
        let file = std::sync::Arc::clone(file);
        // A failed fsync here is not an error: the second pass fsyncs again.
        let _ = tokio::task::spawn_blocking(move || file.sync_data()).await;
    }
    let _between_writes = write_gate.lock().await;
    passive_checkpoint(writer).await?;
    Ok(())
}

/// `PRAGMA wal_checkpoint(PASSIVE)` on a connection of `pool`; the frames it copied.
async fn passive_checkpoint(pool: &sqlx::SqlitePool) -> StoreResult<i64> {
    let (_busy, _log, copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(pool)
        .await?;
    Ok(copied)
}

/// SQLite has one writer: the hub's counter can hand out ids without a round trip, the
/// upsert stores it back in `finish_upsert`.
const ID_BLOCK_SQL: &str = "h.next_id";

const ID_BLOCK_LEN: i64 = i64::MAX;

/// No row locks: the rows a writer reads stay current until it commits.
const ROW_LOCKS: bool = false;

async fn lock_hub_and_contact(_conn: &mut Conn, _hub: HubId, _contact: i64) -> StoreResult<()> {
    Ok(())
}

/// Ends an upsert: the hub's id counter and event numbers, the events themselves and with
/// `commit` the commit, join the queued writes, and all of them go to the database in one
/// multi-statement query. SQLite
/// has one writer, so `event_seq` as the upsert read it is still the hub's last event number.
async fn finish_upsert(
    conn: &mut Conn,
    hub: HubId,
    batch: WriteBatch,
    ids_and_events: (i64, i64),
    events: &[(String, ProfileId, serde_json::Value)],
    commit: bool,
) -> StoreResult<()> {
    run_batch(
        conn,
        finish_batch(hub, batch, ids_and_events, events, commit),
    )
    .await
}

/// The queued writes of an upsert followed by its ends (see `finish_upsert`).
fn finish_batch(
    hub: HubId,
    mut batch: WriteBatch,
    (next_free, event_seq): (i64, i64),
    events: &[(String, ProfileId, serde_json::Value)],
    commit: bool,
) -> WriteBatch {
    batch.push(
        "UPDATE hubs SET next_id = max(next_id, $2), event_seq = event_seq + $3 \
         WHERE hub_id = $1",
        vec![hub.into(), next_free.into(), (events.len() as i64).into()],
    );
    queue_events(&mut batch, hub, event_seq + 1, events);
    if commit {
        batch.push("COMMIT", Vec::new());
    }
    batch
}

/// The events a hub has had written: with one writer, every event is numbered as it is
/// written, and nothing is pending. Over `hubs h`.
const WRITTEN_EVENTS: &str = "h.event_seq";

/// Nothing to move: SQLite's one writer numbers events as it writes them (see the PostgreSQL
/// adapter for why it does not).
async fn move_pending_events(_conn: &mut Conn, _hub: HubId) -> StoreResult<()> {
    Ok(())
}

impl SqliteStore {
    /// Nothing is pending on SQLite.
    async fn sequence_events(&self, _hub: Option<HubId>) -> StoreResult<()> {
        Ok(())
    }
}

/// Runs the queued statements as few queries as is cheap: consecutive statements go out as
/// one multi-statement query of up to `BATCH_QUERY_BYTES` of SQL, so an upsert's handful of
/// writes is one round trip to the connection's worker thread. Every `$n` becomes a
/// positional `?` bound to the statement's n-th argument: SQLite finds a numbered parameter
/// by a linear scan per bind, which made a 1,000-row insert quadratic.
async fn run_batch(conn: &mut Conn, batch: WriteBatch) -> StoreResult<()> {
    let mut sql = String::new();
    let mut bound = Vec::new();
    for (statement, args) in &batch.statements {
        positional_into(&mut sql, &mut bound, statement, args);
        sql.push_str(";\n");
        if sql.len() >= BATCH_QUERY_BYTES {
            execute_positional(conn, &sql, &bound).await?;
            sql.clear();
            bound.clear();
        }
    }
    if !sql.is_empty() {
        execute_positional(conn, &sql, &bound).await?;
    }
    Ok(())
}

/// SQL text per multi-statement query. Each statement of such a query is prepared from the
/// rest of the text, and SQLite copies that rest when it is not NUL-terminated (sqlx's is
/// not), so one huge query costs time quadratic in its length: an apply's 250 event inserts
/// of 1,000 rows each took 5.4 s as one query and 2.1 s in queries of this size.
const BATCH_QUERY_BYTES: usize = 32 * 1024;

async fn execute_positional(conn: &mut Conn, sql: &str, bound: &[&Arg]) -> StoreResult<()> {
    let mut query = sqlx::query(sql);
    for &arg in bound {
        query = bind_arg(query, arg);
    }
    query.execute(&mut *conn).await?;
    Ok(())
}

/// Appends `sql` to `out` with every `$n` written as `?`, and `args[n - 1]` to `bound` in the
/// same order.
fn positional_into<'a>(out: &mut String, bound: &mut Vec<&'a Arg>, sql: &str, args: &'a [Arg]) {
    for_each_placeholder(out, sql, |out, n| {
        out.push('?');
        bound.push(&args[n - 1]);
    });
}

async fn lock_hub_shared(_conn: &mut Conn, _hub: HubId) -> StoreResult<()> {
    Ok(())
}

/// The tie query; with one writer there are no value locks to take and no rows to lock.
async fn lock_values_and_tie(
    conn: &mut Conn,
    hub: HubId,
    scope: &str,
    contact: ContactId,
    key_values: &[&(String, String)],
    _value_locks: Vec<i64>,
    own: bool,
) -> StoreResult<TiedProfiles> {
    let (tied, own) = tied_profiles(conn, hub, scope, contact, key_values, own).await?;
    Ok((tied, own, false))
}

async fn next_id(conn: &mut Conn, hub: HubId) -> StoreResult<i64> {
    Ok(next_ids(conn, hub, 1).await?[0])
}

/// `n` fresh ids from the hub's counter (the writer holds the lock, so they are contiguous).
async fn next_ids(conn: &mut Conn, hub: HubId, n: usize) -> StoreResult<Vec<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "UPDATE hubs SET next_id = next_id + $2 WHERE hub_id = $1 RETURNING next_id",
    )
    .bind(hub)
    .bind(n as i64)
    .fetch_optional(&mut *conn)
    .await?;
    let (end,) = row.ok_or(StoreError::NotFound("hub"))?;
    Ok((end - n as i64..end).collect())
}

include!("shared/unify.rs");
include!("shared/batch.rs");
include!("shared/write.rs");
include!("shared/upsert_plan.rs");
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

#[cfg(test)]
mod batch_tests {
    use super::{Arg, positional_into};

    fn value(arg: &Arg) -> String {
        match arg {
            Arg::Int(i) => i.to_string(),
            Arg::Text(t) => t.clone(),
        }
    }

    #[test]
    fn placeholders_become_positional_with_their_arguments_in_order() {
        let first = [Arg::from(7), Arg::from("a"), Arg::from(9)];
        let second = [Arg::from("x"), Arg::from("y")];
        let mut sql = String::new();
        let mut bound = Vec::new();
        positional_into(
            &mut sql,
            &mut bound,
            "UPDATE t SET a = $3 WHERE h = $1 AND b = $1",
            &first,
        );
        sql.push(';');
        positional_into(
            &mut sql,
            &mut bound,
            "INSERT INTO t VALUES ($2, 'x$', $1)",
            &second,
        );
        assert_eq!(
            sql,
            "UPDATE t SET a = ? WHERE h = ? AND b = ?;INSERT INTO t VALUES (?, 'x$', ?)"
        );
        let values: Vec<String> = bound.into_iter().map(value).collect();
        assert_eq!(values, ["9", "7", "7", "y", "x"]);
    }
}

#[cfg(test)]
mod planner_tests {
    use super::{ORDERED_JOIN, SqliteStore, to_live_profile};

    /// How SQLite plans `sql` on `store`'s read connections, one line per step.
    async fn plan(store: &SqliteStore, sql: &str) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query_as(&explain).bind(1_i64);
        if sql.contains("$2") {
            query = query.bind(2_i64);
        }
        let rows: Vec<(i64, i64, i64, String)> = query.fetch_all(&store.pool).await.unwrap();
        rows.into_iter().map(|r| r.3).collect()
    }

    /// A new database has never been analyzed. Without statistics SQLite once joined a
    /// membership to its profile by scanning the hub's profiles through the primary key
    /// (migration 0009) instead of searching it.
    #[tokio::test]
    async fn a_new_database_joins_memberships_to_profiles_by_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("hub.db").display());
        let store = SqliteStore::open(&url).await.unwrap();
        let live_profile = to_live_profile();
        for sql in [
            // A contact's profile (reads, upserts).
            format!(
                "SELECT p.id FROM memberships m {live_profile} \
                 WHERE m.hub_id = $1 AND m.contact_id = $2"
            ),
            // Every contact's profile (previews).
            format!(
                "SELECT m.contact_id, p.id FROM memberships m {live_profile} WHERE m.hub_id = $1"
            ),
            // The profiles of a key value (lookups).
            format!(
                "SELECT p.id FROM identifiers i {ORDERED_JOIN} memberships m \
                 ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {live_profile} \
                 WHERE i.hub_id = $1 AND i.field = 'email' AND i.value = $2"
            ),
        ] {
            let steps = plan(&store, &sql).await;
            let profile_steps: Vec<&String> = steps
                .iter()
                .filter(|s| s.contains(" o ") || s.contains(" p "))
                .collect();
            assert_eq!(
                profile_steps,
                [
                    "SEARCH o USING PRIMARY KEY (hub_id=? AND id=?)",
                    "SEARCH p USING PRIMARY KEY (hub_id=? AND id=?)"
                ],
                "{sql}: {steps:?}"
            );
        }
    }
}
