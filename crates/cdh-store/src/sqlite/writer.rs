//! SQLite's upserts ([`Upserts`] for [`SqliteStore`]) and its writer connection: an upsert
//! runs start to finish as one synchronous job over a rusqlite connection of the store's own,
//! on the caller's thread.
//!
//! Through sqlx every statement is a message to the connection's worker thread and every
//! result one back, and each wakes a thread on the other core: about twenty hand-offs per
//! upsert, which cost more than SQLite's own work. Here the whole upsert is one job. It runs
//! the same plan (`plan::contact`, `plan::unify`) and the same statements as the sqlx path
//! (`ops::upsert`); only the reads and the batch's execution are written again, over
//! rusqlite. An apply's staged batches and its swap run here too, as jobs of their own
//! (`apply_write`).
//!
//! On a multi-threaded runtime (the server's) a job runs on the calling worker thread inside
//! `block_in_place`, which hands the worker's other tasks to another thread meanwhile: nothing
//! crosses threads on the upsert's path. A thread of the writer's own cost two wake-ups per
//! upsert, one each way, and a thread woken from idle also runs colder. A current-thread
//! runtime does not
//! allow `block_in_place`; there a job runs on the blocking pool. BENCHMARKS.md has what
//! each hand-off cost.
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
    AUTOCHECKPOINT_PAGES, CACHE_KIB, MMAP_BYTES, SqliteStore, finish_batch, positional_into,
};
use crate::error::{StoreError, StoreResult};
use crate::model::{ContactId, ContactInput, HubId, Millis, Upserted};
use crate::ops::upsert::{no_live_profile, tied_profiles, with_retries};
use crate::plan::contact::{ContextRow, UpsertContext, plan_contact, reject_nul};
use crate::plan::unify::{
    NewEvent, ProfileRow, TieRow, TiedProfiles, ids_needed, main_profiles, one_writer_rows,
    plan_unification, split_tie_rows, tie_list, upserted,
};
use crate::rules::realm_of_scope;
use crate::sql::text::{tie_query_sql, upsert_context_sql};
use crate::sql::{Arg, Backend, Dialect, UpsertCounters, Upserts, WriteBatch};

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

impl Upserts for SqliteStore {
    /// One writer holds the database: no lock to take.
    async fn lock_hub_and_contact(
        _conn: &mut sqlx::SqliteConnection,
        _hub: HubId,
        _contact_key: i64,
    ) -> StoreResult<()> {
        Ok(())
    }

    /// The tie query; with one writer there are no value locks to take and no rows to lock.
    async fn lock_values_and_tie(
        conn: &mut sqlx::SqliteConnection,
        hub: HubId,
        scope: &str,
        contact: ContactId,
        key_values: &[&(String, String)],
        _value_locks: Vec<i64>,
        own: bool,
    ) -> StoreResult<TiedProfiles> {
        tied_profiles::<Self>(conn, hub, scope, contact, key_values, own).await
    }

    /// The queued writes, the hub's id counter and event numbers, the events themselves and
    /// with `commit` the commit, in one multi-statement query. SQLite has one writer, so the
    /// event number the upsert read is still the hub's last.
    async fn finish_upsert(
        conn: &mut sqlx::SqliteConnection,
        hub: HubId,
        realm: &str,
        batch: WriteBatch,
        counters: UpsertCounters,
        events: &[NewEvent],
        commit: bool,
    ) -> StoreResult<()> {
        Self::run_batch(
            conn,
            finish_batch(hub, realm, batch, counters, events, commit),
        )
        .await
    }

    /// One writer runs upserts one at a time, so nothing is gained by batching them: each
    /// runs on the writer connection, holding the write gate until it has committed.
    async fn upsert(&self, hub: HubId, input: &ContactInput, actor: &str) -> StoreResult<Upserted> {
        reject_nul(input)?;
        with_retries(|| async {
            let permit = Arc::clone(&self.write_gate).lock_owned().await;
            let (input, actor, now) = (input.clone(), actor.to_owned(), self.clock().now());
            self.writer_connection
                .run(permit, move |conn| upsert(conn, hub, &input, &actor, now))
                .await
        })
        .await
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

/// One auto-unifying upsert at `now` in a transaction of its own: the sqlx path's
/// `upsert_locked` with `own_transaction`, over this connection.
pub(super) fn upsert(
    conn: &mut Connection,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
    now: Millis,
) -> StoreResult<Upserted> {
    in_transaction(conn, |conn| {
        upsert_in_transaction(conn, hub, input, actor, now)
    })
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
    now: Millis,
) -> StoreResult<Upserted> {
    let context =
        UpsertContext::from_row(read_context(conn, hub, input)?, SqliteStore::ID_BLOCK_LEN)?;
    let mut plan = plan_contact(hub, input, context, now)?;
    let key_values: Vec<&(String, String)> = plan.key_values.iter().collect();
    // One writer: the tie query reads the stored contact's own profile too, and the rows it
    // reads stay current until the commit.
    let own = !plan.is_new;
    let mut main = Vec::new();
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
        let sql = tie_query_sql::<SqliteStore>(key_values.len(), own);
        let rows = query(conn, &sql, &args, |r| {
            Ok(TieRow::unlocked((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            )))
        })?;
        main = main_profiles(&rows, key_values.len());
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
    let settled = plan_unification(
        hub, &mut plan, locked, &ties, &main, current, fresh_ids, actor,
    )?;
    let counters = UpsertCounters {
        next_free_id: plan.ids.next,
        event_seq: plan.event_seq,
        at: plan.now,
    };
    let batch = finish_batch(
        hub,
        realm_of_scope(&plan.scope),
        std::mem::take(&mut plan.batch),
        counters,
        &settled.events,
        false,
    );
    run_batch(conn, &batch)?;
    Ok(upserted(plan, input, settled))
}

/// The upsert's context row (`ContextRow`, by position), none when the channel is not the
/// hub's.
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
    let mut rows = query(conn, &upsert_context_sql::<SqliteStore>(), &args, |r| {
        Ok(ContextRow {
            organization_id: r.get(0)?,
            channel_type: r.get(1)?,
            product: r.get(2)?,
            region: r.get(3)?,
            connection_id: r.get(4)?,
            cross_product: r.get(5)?,
            first_id: r.get(6)?,
            setting_keys: r.get(7)?,
            setting_excluded: r.get(8)?,
            setting_unique: r.get(9)?,
            contact_id: r.get(10)?,
            fields: r.get(11)?,
            tags: r.get(12)?,
            custom_fields: r.get(13)?,
            created_at: r.get(14)?,
            event_seq: r.get(15)?,
        })
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

/// `sql` with `$n` written as positional `?`, and the arguments in that order (see
/// `SqliteStore::run_batch` for why).
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
            Arg::NullInt | Arg::NullText => ValueRef::Null,
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
