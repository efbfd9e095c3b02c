//! SQLite's writer thread: upserts run start to finish on a thread that owns a connection of
//! its own (rusqlite), so an upsert crosses threads twice instead of once per statement.
//!
//! Through sqlx every statement is a message to the connection's worker thread and every
//! result one back, and each wakes a thread on the other core: about twenty hand-offs per
//! upsert, which cost more than SQLite's own work. Here the caller sends the whole upsert as
//! one job and awaits one reply. The job runs the same plan (`shared/upsert_plan.rs`) and the
//! same statements as the sqlx path; only the reads and the batch's execution are written
//! again, over rusqlite.
//! An apply's staged batches and its swap run here too, as jobs of their own
//! (`apply_write.rs`).
//!
//! SQLite admits one writer at a time, and this connection is a second writer beside sqlx's.
//! An upsert therefore holds the store's write gate, which every sqlx write transaction
//! holds too, from before its job is queued until the job has committed: neither connection
//! ever waits on the file lock for the other. (The sqlx writer pool's one connection would do
//! as a gate, but returning it to the pool pings its worker thread: two more hand-offs.)

use std::sync::mpsc;

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, OpenFlags, ToSql, params_from_iter};

use super::{
    AUTOCHECKPOINT_PAGES, Arg, CACHE_KIB, ContactInput, ContextRow, HubId, MMAP_BYTES, ProfileRow,
    StoreError, StoreResult, Upserted, WriteBatch, finish_batch, ids_needed, no_live_profile,
    one_writer_rows, plan_contact, plan_unification, positional_into, split_tie_rows, tie_list,
    tie_query_sql, upsert_context, upsert_context_sql, upserted,
};

/// A job for the writer thread: runs on its connection, and sends its own reply.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Prepared statements the connection keeps: an upsert's dozen shapes and an apply's
/// fifteen or so, with room to spare.
const STATEMENT_CACHE: usize = 256;

/// The thread and the queue of its jobs; the thread ends when the last clone of the store
/// drops this.
#[derive(Debug)]
pub(super) struct WriterThread {
    jobs: mpsc::Sender<Job>,
}

impl WriterThread {
    /// Opens a connection to the database file at `path`, set up as sqlx's are, and starts
    /// the thread that owns it.
    pub(super) fn start(path: &std::path::Path) -> StoreResult<Self> {
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
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("cdh-sqlite-writer".to_owned())
            .spawn(move || {
                let mut conn = conn;
                for job in queue {
                    // A job that panics (a bug) fails its own caller, whose reply is dropped,
                    // and not every upsert after it: its transaction is rolled back and the
                    // thread goes on.
                    let run = std::panic::AssertUnwindSafe(|| job(&mut conn));
                    if std::panic::catch_unwind(run).is_err() && !conn.is_autocommit() {
                        let _ = conn.execute_batch("ROLLBACK");
                    }
                }
            })
            .map_err(|e| StoreError::Backend {
                cause: format!("could not start the SQLite writer thread: {e}"),
            })?;
        Ok(Self { jobs })
    }

    /// Runs `work` on the writer thread and waits for its result. `permit` (the write gate's
    /// guard) is dropped on the thread once `work` is done, even when the caller stopped
    /// waiting.
    pub(super) async fn run<T, P>(
        &self,
        permit: P,
        work: impl FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T>
    where
        T: Send + 'static,
        P: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = work(conn);
            drop(permit);
            // The caller may have stopped waiting; the work is done either way.
            let _ = reply.send(result);
        });
        let stopped = || StoreError::Unavailable {
            cause: "the SQLite writer thread has stopped".to_owned(),
        };
        self.jobs.send(job).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
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
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
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
    use super::WriterThread;

    /// A job that panics mid-transaction fails its caller only: the transaction is rolled
    /// back, and the next job runs on the same thread.
    #[tokio::test]
    async fn a_panicking_job_leaves_the_thread_working() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("w.sqlite");
        rusqlite::Connection::open(&path)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x INTEGER)"))
            .expect("create");
        let thread = WriterThread::start(&path).expect("start");
        let failed = thread
            .run((), |conn| -> crate::StoreResult<()> {
                conn.execute_batch("BEGIN; INSERT INTO t VALUES (1)")?;
                panic!("a bug in a job");
            })
            .await;
        assert!(failed.is_err(), "the caller hears of the failure");
        let rows = thread
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
}
