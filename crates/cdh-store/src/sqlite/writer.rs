//! SQLite's writer connection: an upsert runs start to finish as one synchronous job over a
//! rusqlite connection of the store's own, on the caller's thread.
//!
//! Through sqlx every statement is a message to the connection's worker thread and every
//! result one back, and each wakes a thread on the other core: about twenty hand-offs per
//! upsert, which cost more than SQLite's own work. Here the whole upsert is one job. It runs
//! the same plan (`shared/upsert_plan.rs`) and the same statements as the sqlx path; only the
//! reads and the batch's execution are written again, over rusqlite. An apply's staged
//! batches and its swap run here too, as jobs of their own (`apply_write.rs`).
//!
//! On a multi-threaded runtime (the server's) a job runs on the calling worker thread inside
//! `block_in_place`, which hands the worker's other tasks to another thread meanwhile: nothing
//! crosses threads on the upsert's path. A thread of the writer's own cost two wake-ups per
//! upsert, one each way, and a thread woken from idle also runs colder: ~100 µs of a ~250 µs
//! upsert (BENCHMARKS.md, "Upserts on the caller's thread"). A current-thread runtime does not
//! allow `block_in_place`; there a job runs on the blocking pool.
//!
//! SQLite admits one writer at a time, and this connection is a second writer beside sqlx's.
//! A job therefore holds the store's write gate, which every sqlx write transaction holds
//! too, from before it starts until it has committed: neither connection ever waits on the
//! file lock for the other, and the connection's mutex is never contended.

use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, params_from_iter};
use tokio::runtime::{Handle, RuntimeFlavor};

use super::{
    AUTOCHECKPOINT_PAGES, Arg, CACHE_KIB, ContactInput, ContextRow, HubId, MMAP_BYTES, ProfileRow,
    StoreError, StoreResult, Upserted, WriteBatch, finish_batch, ids_needed, no_live_profile,
    one_writer_rows, plan_contact, plan_unification, positional_into, split_tie_rows, tie_list,
    tie_query_sql, upsert_context, upsert_context_sql, upserted,
};

/// Prepared statements the connection keeps: an upsert's dozen shapes and an apply's
/// fifteen or so, with room to spare.
const STATEMENT_CACHE: usize = 256;

/// The connection upserts and an apply's writes run on; clones of the store share it.
#[derive(Clone, Debug)]
pub(super) struct WriterConnection {
    conn: Arc<Mutex<Connection>>,
}

impl WriterConnection {
    /// Opens a connection to the database file at `path`, set up as sqlx's are.
    pub(super) fn open(path: &std::path::Path) -> StoreResult<Self> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; \
             PRAGMA cache_size = {}; PRAGMA mmap_size = {MMAP_BYTES}; \
             PRAGMA temp_store = memory; PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES};",
            -CACHE_KIB
        ))?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `work` on the connection: on this thread in a multi-threaded runtime, on the
    /// blocking pool in a current-thread one. `permit` (the write gate's guard) is dropped
    /// once `work` is done, even when a caller on the blocking pool stopped waiting.
    pub(super) async fn run<T, P>(
        &self,
        permit: P,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        P: Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let job = move || {
            let result = run_job(&conn, work);
            drop(permit);
            result
        };
        match Handle::current().runtime_flavor() {
            RuntimeFlavor::CurrentThread => {
                tokio::task::spawn_blocking(job)
                    .await
                    .map_err(|e| StoreError::Unavailable {
                        cause: format!("a write on SQLite's writer connection did not finish: {e}"),
                    })?
            }
            _ => tokio::task::block_in_place(job),
        }
    }
}

/// Runs `work` holding the connection. A job that panics (a bug) fails its own caller, and
/// not every write after it: its transaction is rolled back, and the connection goes on.
fn run_job<T>(
    conn: &Mutex<Connection>,
    work: impl FnOnce(&mut Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
    let conn = &mut *conn;
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(conn))) {
        Ok(result) => result,
        Err(_) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(StoreError::Backend {
                cause: "a write on SQLite's writer connection panicked; its transaction was \
                        rolled back"
                    .to_owned(),
            })
        }
    }
}

/// One auto-unifying upsert in a transaction of its own: the sqlx path's `upsert_locked`
/// with `own_transaction`, over this connection.
pub(super) fn upsert(
    conn: &mut Connection,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
) -> StoreResult<Upserted> {
    in_transaction(conn, |conn| upsert_in_transaction(conn, hub, input, actor))
}

/// Runs `work` in a write transaction (`BEGIN IMMEDIATE`): commits when it succeeds, rolls
/// back when it fails.
pub(super) fn in_transaction<T>(
    conn: &mut Connection,
    work: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = work(conn).and_then(|done| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(done)
    });
    if result.is_err() && !conn.is_autocommit() {
        // A failed rollback leaves the transaction open; the next BEGIN then fails, loudly.
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

fn upsert_in_transaction(
    conn: &Connection,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
) -> StoreResult<Upserted> {
    let context = upsert_context(read_context(conn, hub, input)?)?;
    let mut plan = plan_contact(hub, input, context)?;
    let key_values: Vec<&(String, String)> = plan.key_values.iter().collect();
    // One writer: the tie query reads the stored contact's own profile too, and the rows it
    // reads stay current until the commit.
    let own = !plan.is_new;
    let (tied, own_row) = if key_values.is_empty() && !own {
        (Vec::new(), None)
    } else {
        let mut args: Vec<Arg> = vec![
            hub.into(),
            plan.scope.as_str().into(),
            plan.contact_id.into(),
        ];
        for (f, v) in &key_values {
            args.push(f.as_str().into());
            args.push(v.as_str().into());
        }
        let rows = query(conn, &tie_query_sql(key_values.len(), own), &args, |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?;
        split_tie_rows(rows, &key_values)
    };
    let current = match &own_row {
        _ if plan.is_new => None,
        Some(row) => Some(row.id),
        None => return Err(no_live_profile(plan.contact_id)),
    };
    let ties = tie_list(&tied, current);
    let locked: Vec<ProfileRow> = one_writer_rows(tied, own_row);
    let fresh_ids = plan.ids.take_local(ids_needed(locked.len()))?;
    let settled = plan_unification(hub, &mut plan, locked, &ties, fresh_ids, actor)?;
    let batch = finish_batch(
        hub,
        std::mem::take(&mut plan.batch),
        (plan.ids.next, plan.event_seq),
        &settled.2,
        false,
    );
    run_batch(conn, &batch)?;
    Ok(upserted(plan, input, settled))
}

/// The upsert's context row, none when the channel is not the hub's.
fn read_context(
    conn: &Connection,
    hub: HubId,
    input: &ContactInput,
) -> StoreResult<Option<ContextRow>> {
    let args = [
        Arg::from(hub),
        Arg::from(input.channel_id),
        Arg::from(input.external_id.as_str()),
    ];
    let mut rows = query(conn, &upsert_context_sql(), &args, |r| {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
            r.get(8)?,
            r.get(9)?,
            r.get(10)?,
            r.get(11)?,
            r.get(12)?,
            r.get(13)?,
            r.get(14)?,
        ))
    })?;
    Ok(rows.pop())
}

/// Runs one statement with `$n` placeholders over `args`, each row through `row` (also the
/// apply's big reads, `bulk_read`).
pub(super) fn query<T>(
    conn: &Connection,
    sql: &str,
    args: &[Arg],
    row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> StoreResult<Vec<T>> {
    let (sql, bound) = positional(sql, args);
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_map(params_from_iter(bound), row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<T>>>()?)
}

/// Runs the queued statements in order, each prepared once per connection.
fn run_batch(conn: &Connection, batch: &WriteBatch) -> StoreResult<()> {
    for (sql, args) in &batch.statements {
        execute(conn, sql, args)?;
    }
    Ok(())
}

/// Runs one statement with `$n` placeholders over `args`; the number of rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, args: &[Arg]) -> StoreResult<usize> {
    let (sql, bound) = positional(sql, args);
    Ok(conn
        .prepare_cached(&sql)?
        .execute(params_from_iter(bound))?)
}

/// `sql` with `$n` written as positional `?`, and the arguments in that order (see the sqlx
/// path's `run_batch` for why).
fn positional<'a>(sql: &str, args: &'a [Arg]) -> (String, Vec<&'a Arg>) {
    let mut out = String::with_capacity(sql.len());
    let mut bound = Vec::with_capacity(args.len());
    positional_into(&mut out, &mut bound, sql, args);
    (out, bound)
}

impl ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Int(value) => ValueRef::Integer(*value),
            Arg::Text(value) => ValueRef::Text(value.as_bytes()),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::WriterConnection;

    /// A job that panics mid-transaction fails its caller only: the transaction is rolled
    /// back, and the next job runs on the same connection.
    async fn a_panicking_job_fails_its_caller_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.sqlite");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
            .expect("create");
        let writer = WriterConnection::open(&path).expect("open");
        let failed = writer
            .run((), |conn| -> crate::StoreResult<()> {
                conn.execute_batch("BEGIN; INSERT INTO t VALUES (1)")?;
                panic!("a bug in a job");
            })
            .await;
        assert!(failed.is_err(), "the caller hears of the failure");
        let rows = writer
            .run((), |conn| {
                conn.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT")?;
                Ok(conn.query_row("SELECT group_concat(x) FROM t", [], |r| {
                    r.get::<_, String>(0)
                })?)
            })
            .await
            .expect("the next job runs");
        assert_eq!(rows, "2", "the panicked job's insert was rolled back");
    }

    /// On the server's runtime the job runs on the caller's thread (`block_in_place`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_multi_threaded_runtime() {
        a_panicking_job_fails_its_caller_only().await;
    }

    /// A current-thread runtime forbids `block_in_place`: the job runs on the blocking pool.
    #[tokio::test(flavor = "current_thread")]
    async fn on_a_current_thread_runtime() {
        a_panicking_job_fails_its_caller_only().await;
    }
}
