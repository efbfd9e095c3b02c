//! SQLite's apply ([`ApplyWrites`] for [`SqliteStore`]): its big reads over rusqlite
//! (`bulk_read`), and its writes on the writer connection: the staged batches and the swap
//! each run as one job over rusqlite, a prepared statement per row.
//!
//! The swap writes a row per changed profile, and ledger rows. Through sqlx these were
//! multi-row statements of a thousand rows, each parsed and planned afresh, which cost most of
//! the swap. Here each statement is prepared once and stepped per row: the swap reads the
//! staged profile changes back in order and writes each to `profiles` by primary key.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension, params};

use super::writer::{execute, in_transaction};
use super::{AUTOCHECKPOINT_PAGES, GatedTransaction, SqliteStore, bulk_read};
use crate::error::{Resource, StoreError, StoreResult};
use crate::merged_range::{MERGED_RANGE_KIND, MergedRange};
use crate::model::{HubId, Millis, Realm, TaskId, TaskStatus, UnifySetting};
use crate::ops::realms::realm_written_sql;
use crate::plan::apply::{ApplyPlan, ContactProfileRow, KeyValuesRow};
use crate::sql::text::{
    FINISH_TASK_SQL, INSERT_SETTING_SQL, STAGED_DONE_SQL, UNIFY_CONNECTION_SQL, swap_staged_sql,
};
use crate::sql::{ApplyWrites, Arg, Backend};

/// The staged rows: temporary tables of the writer connection, which every staged batch and
/// the swap run on, for contacts' new scopes and for profile changes. Staged rows are scratch
/// (a run that stops short of its swap starts over), so they need no place in the database
/// file: written there, every staged row went through the WAL twice, inserted and then
/// deleted by the swap.
const STAGING: &str = "temp.apply_staging";
const PROFILE_STAGING: &str = "temp.apply_profile_staging";

impl ApplyWrites for SqliteStore {
    /// Over rusqlite (see `bulk_read`). The reads run after the caller's snapshot read the
    /// hub's written-events marker, so they see at least what it saw; a write in between
    /// changes the marker, and the swap then starts the apply over.
    async fn read_contacts_and_keys(
        &self,
        _snapshot: &mut GatedTransaction,
        hub: HubId,
        key_names: [&str; 3],
    ) -> StoreResult<(Vec<ContactProfileRow>, Vec<KeyValuesRow>)> {
        bulk_read::contacts_and_keys(self.path.clone(), hub, key_names.map(str::to_owned)).await
    }

    /// Creates the staging tables on the writer's connection if it has none yet, and clears
    /// what an earlier run of the task left there.
    async fn start_staging(
        &self,
        hub: HubId,
        task: TaskId,
        _plan: &Arc<ApplyPlan>,
    ) -> StoreResult<()> {
        self.apply_job(move |conn| create_staging(conn, hub, task))
            .await
    }

    /// Stages `rows` of the plan and records them as done, in a transaction of their own.
    async fn stage_batch(
        &self,
        hub: HubId,
        task: TaskId,
        plan: &Arc<ApplyPlan>,
        rows: Range<usize>,
    ) -> StoreResult<()> {
        let plan = Arc::clone(plan);
        self.apply_job(move |conn| stage_rows(conn, hub, task, &plan, rows))
            .await
    }

    /// The one transaction that makes the apply visible, on the writer connection.
    async fn swap_in(
        &self,
        hub: HubId,
        task: TaskId,
        setting: &UnifySetting,
        actor: &str,
        plan: &Arc<ApplyPlan>,
    ) -> StoreResult<()> {
        let plan = Arc::clone(plan);
        let setting = (
            serde_json::to_string(&setting.keys)?,
            serde_json::to_string(&setting.excluded)?,
        );
        let actor = actor.to_owned();
        let now = self.clock().now();
        let permit = Arc::clone(&self.write_gate).lock_owned().await;
        self.writer_connection
            .run(permit, move |conn| {
                without_autocheckpoint(conn, |conn| {
                    in_transaction(conn, |conn| {
                        swap(conn, hub, task, &setting, &actor, &plan, now)
                    })
                })
            })
            .await
    }
}

/// Creates the staging tables if the connection has none yet, and clears what an earlier run
/// of the task left there.
fn create_staging(conn: &Connection, hub: HubId, task: TaskId) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS apply_staging (hub_id INTEGER NOT NULL, \
         task_id INTEGER NOT NULL, contact_id INTEGER NOT NULL, scope TEXT NOT NULL, \
         PRIMARY KEY (hub_id, task_id, contact_id)) WITHOUT ROWID; \
         CREATE TEMP TABLE IF NOT EXISTS apply_profile_staging (hub_id INTEGER NOT NULL, \
         task_id INTEGER NOT NULL, profile_id INTEGER NOT NULL, member_count INTEGER, \
         oldest_contact INTEGER, merged_into INTEGER, \
         PRIMARY KEY (hub_id, task_id, profile_id)) WITHOUT ROWID",
    )?;
    clear_staging(conn, hub, task)
}

/// Stages `rows` of the plan and records them as done.
fn stage_rows(
    conn: &Connection,
    hub: HubId,
    task: TaskId,
    plan: &ApplyPlan,
    rows: Range<usize>,
) -> StoreResult<()> {
    let (contacts, profiles) = plan.rows(rows.clone());
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO {STAGING} (hub_id, task_id, contact_id, scope) VALUES (?1, ?2, ?3, ?4)"
    ))?;
    for r in contacts {
        insert.execute(params![hub, task, r.contact_id, r.scope])?;
    }
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO {PROFILE_STAGING} (hub_id, task_id, profile_id, member_count, \
         oldest_contact, merged_into) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?;
    for c in profiles {
        insert.execute(params![
            hub,
            task,
            c.profile_id,
            c.member_count,
            c.oldest_contact,
            c.merged_into
        ])?;
    }
    execute(
        conn,
        STAGED_DONE_SQL,
        &[hub.into(), task.into(), (rows.end as i64).into()],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Runs `work` in a write transaction on the writer connection, holding the write gate.
    async fn apply_job<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let permit = Arc::clone(&self.write_gate).lock_owned().await;
        self.writer_connection
            .run(permit, move |conn| in_transaction(conn, work))
            .await
    }
}

/// Runs `work` with the connection's automatic checkpoint off, and turns it back on.
///
/// The swap's commit puts the whole apply in the WAL, and an automatic checkpoint runs inside
/// the commit that crosses `AUTOCHECKPOINT_PAGES`: it copied all of it back into the database
/// file on the apply's path. The background checkpointer copies it within half a second
/// instead, off the apply's path, without blocking readers or writers. Were that checkpointer
/// not running, the next commit would still checkpoint.
fn without_autocheckpoint<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("PRAGMA wal_autocheckpoint = 0")?;
    let result = work(conn);
    let restored = conn.execute_batch(&format!(
        "PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}"
    ));
    let value = result?;
    restored?;
    Ok(value)
}

/// The swap's statements: the staged columns, then each merge's profiles, ledger rows and
/// events, the setting, the hub's counters and the task.
fn swap(
    conn: &Connection,
    hub: HubId,
    task: TaskId,
    (keys, excluded): &(String, String),
    actor: &str,
    plan: &ApplyPlan,
    now: Millis,
) -> StoreResult<()> {
    // `?1` is the hub in the shared expression's `$1`.
    let marker: i64 = conn
        .prepare_cached(&format!(
            "SELECT {}",
            realm_written_sql::<SqliteStore>(&plan.covered).replace('$', "?")
        ))?
        .query_row(params![hub], |r| r.get(0))?;
    if marker != plan.marker {
        return Err(StoreError::Conflict(
            "contacts changed while the apply was computed".into(),
        ));
    }
    let (event_seq_before, next_id): (i64, i64) = conn
        .prepare_cached("SELECT h.event_seq, h.next_id FROM hubs h WHERE h.hub_id = ?1")?
        .query_row(params![hub], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or(StoreError::NotFound(Resource::Hub))?;
    let realm = plan.realm.key();
    let hub_and_task = [Arg::from(hub), Arg::from(task)];
    for columns in plan.staged_columns() {
        execute(conn, &swap_staged_sql(STAGING, columns), &hub_and_task)?;
    }
    swap_profiles(conn, hub, task, now)?;
    let version: i64 = conn
        .prepare_cached(
            "SELECT coalesce(max(version), 0) + 1 FROM unify_settings \
             WHERE hub_id = ?1 AND realm = ?2",
        )?
        .query_row(params![hub, realm], |r| r.get(0))?;
    let cause_id = version.to_string();
    let mut ledger = conn.prepare_cached(
        "INSERT INTO merge_ledger (hub_id, seq, at, survivor_id, absorbed_ids, key_field, \
         key_value, cause_kind, cause_id, actor) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'setting', ?8, ?9)",
    )?;
    let (first_seq, mut seq) = (next_id, next_id);
    for (survivor, absorbed, field, value) in plan.merge_records() {
        let absorbed_json = serde_json::to_string(absorbed)?;
        ledger.execute(params![
            hub,
            seq,
            now,
            survivor,
            absorbed_json,
            field,
            value,
            cause_id,
            actor
        ])?;
        seq += 1;
    }
    // Each ledger row is also a `profile.merged` event: one events row stands for all of
    // them, and the feed expands it (`MERGED_RANGE_KIND`).
    let merged = seq - first_seq;
    let event_seq = event_seq_before + merged;
    if merged > 0 {
        let range = serde_json::to_string(&MergedRange {
            first: event_seq_before + 1,
            ledger_seq: first_seq,
            runs: Vec::new(),
        })?;
        conn.prepare_cached(
            "INSERT INTO events (hub_id, seq, at, kind, profile_id, payload, realm) \
             VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6)",
        )?
        .execute(params![
            hub,
            event_seq,
            now,
            MERGED_RANGE_KIND,
            range,
            realm
        ])?;
        let (count_sql, count_args) =
            super::count_realm_events(hub, &realm, usize::try_from(merged).unwrap_or(0));
        execute(conn, count_sql, &count_args)?;
    }
    conn.prepare_cached("UPDATE hubs SET next_id = ?2, event_seq = ?3 WHERE hub_id = ?1")?
        .execute(params![hub, seq, event_seq])?;
    execute(
        conn,
        INSERT_SETTING_SQL,
        &[
            hub.into(),
            version.into(),
            keys.as_str().into(),
            excluded.as_str().into(),
            actor.into(),
            task.into(),
            now.into(),
            realm.as_str().into(),
            i64::from(plan.cross_product).into(),
            plan.unique_fields.as_str().into(),
        ],
    )?;
    for (sql, args) in &plan.unique.batch(hub, &realm, now).statements {
        execute(conn, sql, args)?;
    }
    if let Realm::Connection(connection) = plan.realm {
        execute(
            conn,
            UNIFY_CONNECTION_SQL,
            &[hub.into(), connection.into(), now.into()],
        )?;
    }
    clear_staging(conn, hub, task)?;
    // `?n` is SQLite's explicitly numbered parameter, so the shared statement's `$n` keep
    // their numbers, and `result` and `error` can be bound as text and NULL.
    let finished = conn
        .prepare_cached(&FINISH_TASK_SQL.replace('$', "?"))?
        .execute(params![
            hub,
            task,
            TaskStatus::Succeeded.as_str(),
            plan.result(version).to_string(),
            None::<String>,
            now
        ])?;
    if finished == 0 {
        return Err(StoreError::NotFound(Resource::Task));
    }
    Ok(())
}

/// Deletes the task's staged rows.
fn clear_staging(conn: &Connection, hub: HubId, task: TaskId) -> StoreResult<()> {
    for table in [STAGING, PROFILE_STAGING] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE hub_id = ?1 AND task_id = ?2"
        ))?
        .execute(params![hub, task])?;
    }
    Ok(())
}

/// The staged profile changes, by primary key: a survivor takes its new count and oldest
/// contact; every profile merged into an absorbed one, then the absorbed one itself, points at
/// the survivor, so resolving an old id (or a bucket) stays one read.
fn swap_profiles(conn: &Connection, hub: HubId, task: TaskId, at: i64) -> StoreResult<()> {
    let mut survivor = conn.prepare_cached(
        "UPDATE profiles SET member_count = ?3, oldest_contact = ?4, updated_at = ?5 \
         WHERE hub_id = ?1 AND id = ?2",
    )?;
    let mut repoint = conn.prepare_cached(
        "UPDATE profiles SET merged_into = ?3, updated_at = ?4 \
         WHERE hub_id = ?1 AND merged_into = ?2",
    )?;
    let mut absorb = conn.prepare_cached(
        "UPDATE profiles SET merged_into = ?3, updated_at = ?4 WHERE hub_id = ?1 AND id = ?2",
    )?;
    // The profiles something was merged into earlier, from the (partial) index of merged
    // profiles: most absorbed profiles are none of them, and a probe each cost more.
    let targets: HashSet<i64> = conn
        .prepare_cached(
            "SELECT DISTINCT merged_into FROM profiles \
             WHERE hub_id = ?1 AND merged_into IS NOT NULL",
        )?
        .query_map(params![hub], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut staged = conn.prepare_cached(&format!(
        "SELECT profile_id, member_count, oldest_contact, merged_into FROM {PROFILE_STAGING} \
         WHERE hub_id = ?1 AND task_id = ?2"
    ))?;
    let mut rows = staged.query(params![hub, task])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        match row.get::<_, Option<i64>>(3)? {
            None => {
                let (count, oldest): (i64, i64) = (row.get(1)?, row.get(2)?);
                survivor.execute(params![hub, id, count, oldest, at])?;
            }
            Some(into) => {
                if targets.contains(&id) {
                    repoint.execute(params![hub, id, into, at])?;
                }
                absorb.execute(params![hub, id, into, at])?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{AUTOCHECKPOINT_PAGES, without_autocheckpoint};
    use crate::StoreError;

    fn autocheckpoint(conn: &Connection) -> i64 {
        conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .expect("pragma")
    }

    /// The swap runs with automatic checkpoints off, and they are back on after it, whether
    /// it succeeded or failed.
    #[test]
    fn the_swap_turns_automatic_checkpoints_back_on() {
        let mut conn = Connection::open_in_memory().expect("open");
        let inside = without_autocheckpoint(&mut conn, |conn| Ok(autocheckpoint(conn)));
        assert_eq!(inside.expect("ran"), 0, "off during the work");
        assert_eq!(autocheckpoint(&conn), AUTOCHECKPOINT_PAGES, "on after it");
        let failed: crate::StoreResult<()> = without_autocheckpoint(&mut conn, |_| {
            Err(StoreError::Conflict("a write got in between".into()))
        });
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        assert_eq!(
            autocheckpoint(&conn),
            AUTOCHECKPOINT_PAGES,
            "on after a failure"
        );
    }
}
