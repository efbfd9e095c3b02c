//! PostgreSQL's upserts ([`Upserts`] for [`PgStore`]): one upsert in three round trips: its transaction begins with the contact's
//! context (`cdh_context`), takes the value locks and runs the tie query in another
//! (`cdh_tie_<n>`), and ends with its writes, events and `COMMIT` as one simple-protocol query
//! (`finish_upsert`). Upserts that overlap share transactions instead (`batch`).

use sqlx::Row as _;

use super::{MAX_CONNECTIONS, PgStore, hub_lock, lock_keys};
use crate::error::{StoreError, StoreResult};
use crate::model::{ContactId, ContactInput, HubId, Upserted};
use crate::ops::upsert::{tied_profiles, upsert_locked};
use crate::plan::contact::{ContextRow, UpsertContext, reject_nul};
use crate::plan::unify::{NewEvent, TieRow, TiedProfiles, main_profiles, tied_rows};
use crate::rules::contact_lock_key;
use crate::sql::batch::for_each_placeholder;
use crate::sql::text::{tie_query_sql, upsert_context_sql};
use crate::sql::{Arg, Backend, Dialect, UpsertCounters, Upserts, WriteBatch};

/// The statements every connection prepares when it connects: the tie query for each count
/// of values, the upsert's context, and the batch's two (`batch_sql`).
pub(super) fn prepared_statements() -> String {
    (1..=TIE_STATEMENTS)
        .map(prepare_tie_sql)
        .chain([
            prepare_context_sql(),
            super::batch_sql::prepare_contexts_sql(),
            super::batch_sql::prepare_ties_sql(),
        ])
        .collect::<Vec<_>>()
        .join("; ")
}

/// One attempt at an upsert; the caller retries on contention.
pub(super) async fn upsert_attempt(
    store: &PgStore,
    hub: HubId,
    input: &ContactInput,
    actor: &str,
) -> StoreResult<Upserted> {
    let contact_key = contact_lock_key(hub, input.channel_id, &input.external_id);
    let mut lost = 0;
    let (mut tx, context) = loop {
        let mut tx = UpsertTx {
            conn: store.pool.acquire().await?,
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
    let now = store.clock().now();
    match upsert_locked::<PgStore>(&mut tx.conn, hub, input, context, actor, true, now).await {
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

impl Upserts for PgStore {
    /// The hub lock (shared) and the contact's key lock, in one round trip.
    async fn lock_hub_and_contact(
        conn: &mut sqlx::PgConnection,
        hub: HubId,
        contact_key: i64,
    ) -> StoreResult<()> {
        let (a, b) = hub_lock(hub);
        sqlx::query("SELECT pg_advisory_xact_lock_shared($1, $2), pg_advisory_xact_lock($3)")
            .bind(a)
            .bind(b)
            .bind(contact_key)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// The value locks and the tie query in one round trip through a prepared statement
    /// (`lock_values_and_tie_prepared`), where one fits; else the locks, then the tie query.
    async fn lock_values_and_tie(
        conn: &mut sqlx::PgConnection,
        hub: HubId,
        scope: &str,
        contact: ContactId,
        key_values: &[&(String, String)],
        value_locks: Vec<i64>,
        own: bool,
    ) -> StoreResult<TiedProfiles> {
        if own || key_values.is_empty() || key_values.len() > TIE_STATEMENTS {
            lock_keys(conn, value_locks).await?;
            return tied_profiles::<Self>(conn, hub, scope, contact, key_values, own).await;
        }
        lock_values_and_tie_prepared(conn, hub, scope, contact, key_values, value_locks).await
    }

    /// Ends an upsert in one round trip: the queued writes, then the events (into
    /// `pending_events`: see `events`), and with `commit` the commit, go out as one
    /// simple-protocol query with their values written as literals. PostgreSQL takes one
    /// statement with parameters per round trip, and round trips, not the statements' own
    /// work, were most of a sequential upsert's time.
    async fn finish_upsert(
        conn: &mut sqlx::PgConnection,
        hub: HubId,
        realm: &str,
        batch: WriteBatch,
        counters: UpsertCounters,
        events: &[NewEvent],
        commit: bool,
    ) -> StoreResult<()> {
        let mut sql = String::new();
        for (statement, args) in &batch.statements {
            inline_into(&mut sql, statement, args)?;
            sql.push_str(";\n");
        }
        if !events.is_empty() {
            super::events::events_statement_into(&mut sql, hub, realm, events, counters.at)?;
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

    /// An upsert: run in the caller's task when no other is under way (and always by a
    /// worker's own store), else handed to the workers to share a transaction (`batch`).
    async fn upsert(&self, hub: HubId, input: &ContactInput, actor: &str) -> StoreResult<Upserted> {
        let Some(workers) = &self.workers else {
            return self.upsert_with_retry(hub, input, actor).await;
        };
        // With no other upsert under way there is nothing to batch with: this one runs here,
        // without the trip through a worker (one sequential client stays as fast).
        let in_flight = workers.enter();
        if in_flight.alone {
            return self.upsert_with_retry(hub, input, actor).await;
        }
        reject_nul(input)?;
        workers.hand_over(hub, input, actor).await
    }
}

/// Appends `sql` with each `$n` written as the literal of `args[n - 1]`.
pub(super) fn inline_into(out: &mut String, sql: &str, args: &[Arg]) -> StoreResult<()> {
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
        Arg::NullInt | Arg::NullText => out.push_str("NULL"),
    });
    result
}

/// A string literal: quotes doubled, nothing else escaped (the connection sets
/// `standard_conforming_strings`, so a backslash is an ordinary character). A NUL could not
/// be stored in a text column anyway, and would end the query message early.
pub(super) fn text_literal_into(out: &mut String, text: &str) -> StoreResult<()> {
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
pub(super) const TIE_STATEMENTS: usize = 3;

/// `PREPARE cdh_tie_<n>`: the tie query over `n` values, locking the profiles it finds
/// (`FOR UPDATE`, in id order, as `lock_profiles` does). A profile merged while this waited for
/// its lock comes back with `merged_into` set, and the upsert follows it to its survivor.
fn prepare_tie_sql(n: usize) -> String {
    let types = vec!["text, text"; n].join(", ");
    format!(
        "PREPARE cdh_tie_{n} (bigint, text, bigint, {types}) AS \
         SELECT t.k, t.refused, p.id, p.oldest_contact, p.member_count, p.unique_values, \
         p.merged_into \
         FROM ({}) AS t JOIN profiles p ON p.hub_id = $1 AND p.id = t.id \
         ORDER BY p.id, t.k FOR UPDATE OF p",
        tie_query_sql::<PgStore>(n, false)
    )
}

/// Takes the value locks (ascending) and runs the tie query over one to `TIE_STATEMENTS`
/// values, locking the profiles it finds, in one round trip: a simple query of two
/// statements, the locks then `EXECUTE cdh_tie_<n>`. Two statements, because in READ
/// COMMITTED each sees what was committed when it started: the tie query must start after the
/// locks are held. The prepared statement keeps its plan, where the same query sent as literal
/// text was planned afresh every time.
async fn lock_values_and_tie_prepared(
    conn: &mut sqlx::PgConnection,
    hub: HubId,
    scope: &str,
    contact: ContactId,
    key_values: &[&(String, String)],
    mut value_locks: Vec<i64>,
) -> StoreResult<TiedProfiles> {
    use std::fmt::Write;
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
    // The lock statement's rows have one column; the tie query's have seven.
    let mut tie: Vec<TieRow> = rows
        .iter()
        .filter(|r| r.len() == 7)
        .map(|r| {
            Ok(TieRow {
                k: r.try_get(0)?,
                refused: r.try_get::<i64, _>(1)? != 0,
                id: r.try_get(2)?,
                oldest_contact: r.try_get(3)?,
                member_count: r.try_get(4)?,
                unique_values: r.try_get(5)?,
                merged_into: r.try_get(6)?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()?;
    tie.sort_unstable();
    let main = main_profiles(&tie, key_values.len());
    Ok(TiedProfiles {
        tied: tied_rows(tie, key_values),
        own: None,
        main,
        locked: true,
    })
}

/// `PREPARE cdh_context`: the upsert's first read (`upsert_context_sql`), kept planned on every
/// connection so that `begin_upsert` can send it with its `BEGIN`.
fn prepare_context_sql() -> String {
    format!(
        "PREPARE cdh_context (bigint, bigint, text) AS {}",
        upsert_context_sql::<PgStore>()
    )
}

/// Begins an upsert's transaction and reads its context, in one round trip: the hub lock
/// (shared) and the contact's key lock are taken in the implicit transaction that `BEGIN` then
/// turns into an explicit one, and `EXECUTE cdh_context` reads under them. The caller rolls
/// back on an error, whichever statement failed.
async fn begin_upsert(
    conn: &mut sqlx::PgConnection,
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
        .find(|r| r.len() > 2)
        .map(ContextRow::from_row)
        .transpose()
        .map_err(|e| BeginError::Failed(e.into()))?;
    UpsertContext::from_row(row, PgStore::ID_BLOCK_LEN).map_err(BeginError::Failed)
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
pub(super) struct UpsertTx {
    pub conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    pub open: bool,
}

impl UpsertTx {
    /// Rolls back after an error; the connection is closed if that fails too.
    pub async fn rollback(&mut self) {
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
