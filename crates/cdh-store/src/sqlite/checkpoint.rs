//! Copying SQLite's WAL back into the database file off the write path, so commits rarely
//! checkpoint themselves and upsert latency stays flat.
//!
//! Two passes. The first runs from a read connection: a passive checkpoint never blocks the
//! writer, and it does the bulk of the copying. But the writer keeps appending while it runs,
//! and SQLite only rewinds the WAL when a write begins with every frame copied, so under
//! steady writes the WAL never rewound: it grew to `AUTOCHECKPOINT_PAGES` and a commit then
//! checkpointed inline, a stall every few seconds. The second pass runs on the writer
//! connection between writes and copies only what was appended meanwhile, so the next write
//! rewinds the WAL.
//!
//! SQLite fsyncs the database file only when a checkpoint reaches the end of the WAL, which
//! the first pass never does under writes; so the second pass, holding the writer, used to
//! flush every page the first one had copied, the whole of an upsert's p99. The database file
//! is therefore fsynced between the passes, off the write path, and the second pass flushes
//! only its own few pages. (An extra fsync is always safe; it changes when pages reach the
//! disk, not what SQLite promises.) BENCHMARKS.md has the figures.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::error::StoreResult;

/// How often the background checkpointer copies the WAL back into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Runs both passes every `CHECKPOINT_EVERY` until the store is dropped (`alive` gone) or a
/// pool is closed.
pub(super) fn in_background(
    pool: sqlx::SqlitePool,
    writer: sqlx::SqlitePool,
    write_gate: Arc<tokio::sync::Mutex<()>>,
    database_file: Option<Arc<std::fs::File>>,
    alive: Weak<()>,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(CHECKPOINT_EVERY).await;
            if alive.upgrade().is_none()
                || passes(&pool, &writer, &write_gate, database_file.as_ref())
                    .await
                    .is_err()
            {
                break;
            }
        }
    });
}

/// The two passes, once; an error when a pool is closed.
pub(super) async fn passes(
    pool: &sqlx::SqlitePool,
    writer: &sqlx::SqlitePool,
    write_gate: &tokio::sync::Mutex<()>,
    database_file: Option<&Arc<std::fs::File>>,
) -> StoreResult<()> {
    let copied = passive_checkpoint(pool).await?;
    if let Some(file) = database_file.filter(|_| copied > 0) {
        let file = Arc::clone(file);
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
