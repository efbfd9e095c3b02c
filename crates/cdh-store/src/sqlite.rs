//! The SQLite adapter: an embedded file in WAL mode with one writer at a time.
//!
//! The shared logic lives in `shared/*.rs` and is included here and in `postgres.rs`, each
//! time over this backend's concrete types: the two adapters run the same statements and
//! differ only in the few functions below (locking, ids, bulk writes).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

include!("shared/prelude.rs");

type Conn = sqlx::SqliteConnection;
type ThisStore = SqliteStore;
type Transaction = sqlx::Transaction<'static, sqlx::Sqlite>;

/// SQLite locks the whole database for a writer; there are no row locks to take.
/// SQLite's planner has no statistics on a fresh database and, every index leading with
/// `hub_id`, may start a join from the wrong table; `CROSS JOIN` keeps the written order.
const ORDERED_JOIN: &str = "CROSS JOIN";

const FOR_UPDATE: &str = "";

/// Staged rows per multi-row INSERT (5 parameters each, far below SQLite's 32766).
const STAGING_ROWS_PER_INSERT: usize = 1000;

/// The store over an SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url` (`sqlite://path`) and migrates it.
    pub async fn open(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Invalid(format!("bad SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable {
                cause: e.to_string(),
            })?;
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend {
                cause: format!("migration failed: {e}"),
            })?;
        Ok(Self { pool })
    }

    /// A write transaction that takes the database's write lock up front, so two writers
    /// never both read and then fail to upgrade.
    async fn begin_write(&self) -> StoreResult<Transaction> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// A read transaction: in WAL mode its first read fixes its snapshot.
    async fn begin_snapshot(&self) -> StoreResult<Transaction> {
        Ok(self.pool.begin().await?)
    }
}

async fn lock_hub_shared(_conn: &mut Conn, _hub: HubId) -> StoreResult<()> {
    Ok(())
}

async fn lock_hub_exclusive(_conn: &mut Conn, _hub: HubId) -> StoreResult<()> {
    Ok(())
}

async fn lock_keys(_conn: &mut Conn, _keys: Vec<i64>) -> StoreResult<()> {
    Ok(())
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

async fn write_staging(
    conn: &mut Conn,
    hub: HubId,
    task: TaskId,
    rows: &[StagedRow],
) -> StoreResult<()> {
    for chunk in rows.chunks(STAGING_ROWS_PER_INSERT) {
        let values = (0..chunk.len())
            .map(|i| format!("($1, $2, ${}, ${}, ${})", 3 + i * 3, 4 + i * 3, 5 + i * 3))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "INSERT INTO apply_staging (hub_id, task_id, contact_id, bucket_id, scope) VALUES {values}"
        );
        let mut q = sqlx::query(&sql).bind(hub).bind(task);
        for r in chunk {
            q = q.bind(r.contact_id).bind(r.bucket_id).bind(r.scope.clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

include!("shared/unify.rs");
include!("shared/write.rs");
include!("shared/setup.rs");
include!("shared/read.rs");
include!("shared/tasks.rs");
include!("shared/apply.rs");
include!("shared/check.rs");
include!("shared/port_impl.rs");
