//! PostgreSQL's apply ([`ApplyWrites`] for [`PgStore`]): its two big reads at once, then
//! its writes: profile changes and contacts' new scopes go in by `COPY` (into
//! `apply_profile_staging` and `apply_staging`), the swap is a few set-based statements over
//! both, its ledger rows go in by `COPY` too, and its events as one merged range
//! (`merged_range`). (SQLite writes its own on its writer connection, `sqlite::apply_write`.)

use std::ops::Range;
use std::sync::Arc;

use super::{PgStore, lock_hub_exclusive};
use crate::error::{StoreError, StoreResult};
use crate::merged_range::{MERGED_RANGE_KIND, MergedRange};
use crate::model::{HubId, Millis, ProfileId, Realm, TaskId, UnifySetting};
use crate::ops::feed::take_event_numbers;
use crate::ops::realms::realm_written;
use crate::ops::setup::load_setting;
use crate::ops::tasks::finish_task;
use crate::plan::apply::{ApplyPlan, ProfileChange, StagedRow};
use crate::plan::apply::{ContactProfileRow, KeyValuesRow};
use crate::sql::text::{APPLY_CONTACTS_SQL, APPLY_KEYS_SQL};
use crate::sql::text::{
    INSERT_SETTING_SQL, STAGED_DONE_SQL, UNIFY_CONNECTION_SQL, swap_staged_sql,
};
use crate::sql::{ApplyWrites, Backend, query};

type Conn = sqlx::PgConnection;

impl ApplyWrites for PgStore {
    /// The apply's two big reads, in the caller's snapshot, at once: the keys are read on a
    /// second connection that imports the snapshot (`pg_export_snapshot`), so both use a core
    /// each.
    async fn read_contacts_and_keys(
        &self,
        snapshot: &mut sqlx::Transaction<'static, sqlx::Postgres>,
        hub: HubId,
        key_names: [&str; 3],
    ) -> StoreResult<(Vec<ContactProfileRow>, Vec<KeyValuesRow>)> {
        let (snapshot_id,): (String,) = sqlx::query_as("SELECT pg_export_snapshot()")
            .fetch_one(&mut **snapshot)
            .await?;
        let mut keys_tx = self.begin_snapshot().await?;
        // The snapshot id is PostgreSQL's own text (hex digits and dashes).
        sqlx::query(&format!("SET TRANSACTION SNAPSHOT '{snapshot_id}'"))
            .execute(&mut *keys_tx)
            .await?;
        let keys = key_names
            .iter()
            .fold(query(APPLY_KEYS_SQL).bind(hub), |q, name| q.bind(*name));
        let contacts = Self::fetch_all(&mut **snapshot, query(APPLY_CONTACTS_SQL).bind(hub));
        let (contact_rows, key_rows) = tokio::join!(contacts, Self::fetch_all(&mut keys_tx, keys));
        keys_tx.commit().await?;
        Ok((contact_rows?, key_rows?))
    }

    /// Clears what an earlier run of the task left staged.
    async fn start_staging(
        &self,
        hub: HubId,
        task_id: TaskId,
        _plan: &Arc<ApplyPlan>,
    ) -> StoreResult<()> {
        let store = self;
        let mut tx = store.begin_write().await?;
        for table in ["apply_staging", "apply_profile_staging"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE hub_id = $1 AND task_id = $2"
            ))
            .bind(hub)
            .bind(task_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stages `rows` of the plan and records them as done, in a transaction of their own.
    async fn stage_batch(
        &self,
        hub: HubId,
        task_id: TaskId,
        plan: &Arc<ApplyPlan>,
        rows: Range<usize>,
    ) -> StoreResult<()> {
        let store = self;
        let mut tx = store.begin_write().await?;
        let (contacts, profiles) = plan.rows(rows.clone());
        if !contacts.is_empty() {
            write_staging(&mut tx, hub, task_id, contacts).await?;
        }
        if !profiles.is_empty() {
            write_profile_staging(&mut tx, hub, task_id, profiles).await?;
        }
        sqlx::query(STAGED_DONE_SQL)
            .bind(hub)
            .bind(task_id)
            .bind(rows.end as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The one transaction that makes the apply visible.
    async fn swap_in(
        &self,
        hub: HubId,
        task_id: TaskId,
        setting: &UnifySetting,
        actor: &str,
        plan: &Arc<ApplyPlan>,
    ) -> StoreResult<()> {
        let store = self;
        let mut tx = store.begin_write().await?;
        let conn: &mut Conn = &mut tx;
        lock_hub_exclusive(conn, hub).await?;
        let marker = realm_written::<PgStore>(conn, hub, &plan.covered).await?;
        if marker != plan.marker {
            return Err(StoreError::Conflict(
                "contacts changed while the apply was computed".into(),
            ));
        }
        for columns in plan.staged_columns() {
            sqlx::query(&swap_staged_sql("apply_staging", columns))
                .bind(hub)
                .bind(task_id)
                .execute(&mut *conn)
                .await?;
        }
        let now = store.clock().now();
        let version = load_setting::<PgStore>(conn, hub, plan.realm)
            .await?
            .version
            + 1;
        let cause_id = version.to_string();
        let ledger: Vec<_> = plan.merge_records().collect();
        let seqs = PgStore::next_ids(conn, hub, ledger.len()).await?;
        swap_profiles(conn, hub, task_id, now).await?;
        insert_setting_ledger(conn, hub, &seqs, &ledger, now, &cause_id, actor).await?;
        sqlx::query(INSERT_SETTING_SQL)
            .bind(hub)
            .bind(version)
            .bind(serde_json::to_string(&setting.keys)?)
            .bind(serde_json::to_string(&setting.excluded)?)
            .bind(actor.to_owned())
            .bind(task_id)
            .bind(now)
            .bind(plan.realm.key())
            .bind(i64::from(plan.cross_product))
            .bind(plan.unique_fields.as_str())
            .execute(&mut *conn)
            .await?;
        PgStore::run_batch(conn, plan.unique.batch(hub, &plan.realm.key(), now)).await?;
        if let Realm::Connection(connection) = plan.realm {
            sqlx::query(UNIFY_CONNECTION_SQL)
                .bind(hub)
                .bind(connection)
                .bind(now)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query("DELETE FROM apply_staging WHERE hub_id = $1 AND task_id = $2")
            .bind(hub)
            .bind(task_id)
            .execute(&mut *conn)
            .await?;
        let finished = PgStore::execute(
            conn,
            finish_task(hub, task_id, Ok(plan.result(version)), now),
        )
        .await?;
        if finished == 0 {
            return Err(StoreError::NotFound(crate::error::Resource::Task));
        }
        append_merged_range(conn, hub, &plan.realm.key(), &seqs[..ledger.len()], now).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Writes staged rows with `COPY ... FROM STDIN`.
async fn write_staging(
    conn: &mut Conn,
    hub: HubId,
    task: TaskId,
    rows: &[StagedRow],
) -> StoreResult<()> {
    use std::fmt::Write;
    let mut copy = CopyRows::start(
        conn,
        "COPY apply_staging (hub_id, task_id, contact_id, scope) FROM STDIN",
    )
    .await?;
    for r in rows {
        let line = copy.row();
        let _ = write!(line, "{hub}\t{task}\t{}\t", r.contact_id);
        copy_text(line, &r.scope);
        line.push('\n');
        copy.flush_if_full().await?;
    }
    copy.finish().await
}

/// Stages profile changes: a survivor's new count and oldest contact (`merged_into` NULL), an
/// absorbed profile's survivor.
async fn write_profile_staging(
    conn: &mut Conn,
    hub: HubId,
    task: TaskId,
    changes: &[ProfileChange],
) -> StoreResult<()> {
    use std::fmt::Write;
    let mut copy = CopyRows::start(
        conn,
        "COPY apply_profile_staging (hub_id, task_id, profile_id, member_count, \
         oldest_contact, merged_into) FROM STDIN",
    )
    .await?;
    for c in changes {
        let line = copy.row();
        let _ = write!(line, "{hub}\t{task}\t{}", c.profile_id);
        let ids = [
            c.member_count,
            c.oldest_contact.map(i64::from),
            c.merged_into.map(i64::from),
        ];
        for value in ids {
            let _ = match value {
                Some(v) => write!(line, "\t{v}"),
                None => line.write_str("\t\\N"),
            };
        }
        line.push('\n');
        copy.flush_if_full().await?;
    }
    copy.finish().await
}

/// Applies the staged profile changes: survivors take their new counts; every
/// profile merged into an absorbed one, then the absorbed ones, point at the survivor, so
/// resolving an old id stays one read.
async fn swap_profiles(conn: &mut Conn, hub: HubId, task: TaskId, at: Millis) -> StoreResult<()> {
    for sql in [
        "UPDATE profiles SET member_count = s.member_count, \
         oldest_contact = s.oldest_contact, updated_at = $3 FROM apply_profile_staging s \
         WHERE profiles.hub_id = $1 AND s.hub_id = $1 AND s.task_id = $2 \
         AND s.profile_id = profiles.id AND s.merged_into IS NULL",
        // From the profiles merged before, through the partial `profiles_by_merged_into`:
        // over a hub with none, nothing is read. (From the staged side, as an IN list, the
        // statement looked up every absorbed profile.)
        "UPDATE profiles SET merged_into = s.merged_into, updated_at = $3 \
         FROM apply_profile_staging s WHERE profiles.hub_id = $1 \
         AND profiles.merged_into IS NOT NULL AND s.hub_id = $1 AND s.task_id = $2 \
         AND s.profile_id = profiles.merged_into AND s.merged_into IS NOT NULL",
        "UPDATE profiles SET merged_into = s.merged_into, updated_at = $3 \
         FROM apply_profile_staging s WHERE profiles.hub_id = $1 AND s.hub_id = $1 \
         AND s.task_id = $2 AND s.profile_id = profiles.id AND s.merged_into IS NOT NULL",
        "DELETE FROM apply_profile_staging WHERE hub_id = $1 AND task_id = $2 AND $3 = $3",
    ] {
        sqlx::query(sql)
            .bind(hub)
            .bind(task)
            .bind(at)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The apply's ledger rows (survivor, absorbed, field, value), by `COPY`: multi-row inserts
/// of ten parameters a row cost several times more (BENCHMARKS.md).
#[allow(clippy::too_many_arguments)]
async fn insert_setting_ledger(
    conn: &mut Conn,
    hub: HubId,
    seqs: &[i64],
    rows: &[(ProfileId, &Vec<ProfileId>, &str, &str)],
    at: Millis,
    cause_id: &str,
    actor: &str,
) -> StoreResult<()> {
    use std::fmt::Write;
    if seqs.len() < rows.len() {
        return Err(StoreError::Corrupt("ran out of ledger ids".into()));
    }
    let mut copy = CopyRows::start(
        conn,
        "COPY merge_ledger (hub_id, seq, at, survivor_id, absorbed_ids, key_field, key_value, \
         cause_kind, cause_id, actor) FROM STDIN",
    )
    .await?;
    for ((survivor, absorbed, field, value), seq) in rows.iter().zip(seqs) {
        let line = copy.row();
        let _ = write!(line, "{hub}\t{seq}\t{at}\t{survivor}\t");
        for text in [
            &serde_json::to_string(absorbed)?,
            *field,
            *value,
            "setting",
            cause_id,
        ] {
            copy_text(line, text);
            line.push('\t');
        }
        copy_text(line, actor);
        line.push('\n');
        copy.flush_if_full().await?;
    }
    copy.finish().await
}

/// Appends the apply's `profile.merged` events, one per ledger row numbered `ledger_seqs`,
/// after the hub's last: as one events row of kind `MERGED_RANGE_KIND` that the feed expands.
/// A row per event, even by `COPY`, cost a large part of an apply (BENCHMARKS.md).
async fn append_merged_range(
    conn: &mut Conn,
    hub: HubId,
    realm: &str,
    ledger_seqs: &[i64],
    at: Millis,
) -> StoreResult<()> {
    if ledger_seqs.is_empty() {
        return Ok(());
    }
    let first = take_event_numbers::<PgStore>(conn, hub, realm, ledger_seqs.len()).await?;
    let range = MergedRange::new(first, ledger_seqs)
        .ok_or_else(|| StoreError::Corrupt("ledger ids out of order".into()))?;
    let last = first + ledger_seqs.len() as i64 - 1;
    sqlx::query(
        "INSERT INTO events (hub_id, seq, at, kind, profile_id, payload, realm) \
         VALUES ($1, $2, $3, $4, 0, $5, $6)",
    )
    .bind(hub)
    .bind(last)
    .bind(at)
    .bind(MERGED_RANGE_KIND)
    .bind(serde_json::to_string(&range)?)
    .bind(realm)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rows sent to a `COPY ... FROM STDIN` (text format) a buffer at a time.
struct CopyRows<'c> {
    copy: sqlx::postgres::PgCopyIn<&'c mut Conn>,
    buffer: String,
}

/// Bytes of rows sent per message.
const COPY_BUFFER: usize = 1 << 20;

impl<'c> CopyRows<'c> {
    async fn start(conn: &'c mut Conn, statement: &str) -> StoreResult<Self> {
        Ok(Self {
            copy: conn.copy_in_raw(statement).await?,
            buffer: String::with_capacity(COPY_BUFFER + 4096),
        })
    }

    /// Where the next row is written, fields tab-separated and ending in a newline.
    fn row(&mut self) -> &mut String {
        &mut self.buffer
    }

    async fn flush_if_full(&mut self) -> StoreResult<()> {
        if self.buffer.len() >= COPY_BUFFER {
            self.copy
                .send(std::mem::take(&mut self.buffer).into_bytes())
                .await?;
            self.buffer.reserve(COPY_BUFFER + 4096);
        }
        Ok(())
    }

    async fn finish(mut self) -> StoreResult<()> {
        if !self.buffer.is_empty() {
            self.copy.send(self.buffer.into_bytes()).await?;
        }
        self.copy.finish().await?;
        Ok(())
    }
}

/// Appends `text` as one field of a `COPY` text-format row: backslash, tab, newline and
/// carriage return escaped.
fn copy_text(line: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => line.push_str("\\\\"),
            '\t' => line.push_str("\\t"),
            '\n' => line.push_str("\\n"),
            '\r' => line.push_str("\\r"),
            c => line.push(c),
        }
    }
}
