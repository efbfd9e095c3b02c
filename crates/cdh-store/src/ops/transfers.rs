//! [`Transfers`] for every backend: imports (the vendor's semantics, pieces in `ops::import`)
//! and exports of an organization's profiles.
//!
//! An import checks its rows first so a bad row fails alone, then writes the rest in batched
//! transactions; a batch that still fails is redone row by row, so only the bad row is lost.
//! Every write saves the import's checkpoint in its own transaction, so an import resumed
//! after a crash starts after its last committed write and counts as if never interrupted.
//! An export reads one snapshot, so the file holds every write committed before it started
//! and nothing after.

use async_trait::async_trait;
use cdh_core::IdentifierField;

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{
    ExportRow, FailedRow, HubId, ImportOutcome, ImportRows, Millis, OrganizationId, ProfileId,
    TaskId, UnifySetting,
};
use crate::ops::golden::golden_many;
use crate::ops::import::{
    CheckedRow, IMPORT_BATCH, IMPORT_KEYS, ImportCheckpoint, ImportState, ImportTarget, ReadyRow,
    RowOutcome, check_import_row, import_one, import_row_alone, match_contacts,
    organization_scopes, row_failure,
};
use crate::ops::import_chunks::RowReader;
use crate::ops::profiles::list_start;
use crate::ops::setup::ensure_organization;
use crate::ops::tasks::task_progress;
use crate::port::{ExportSink, Setup, Tasks, Transfers};
use crate::rules::normalizer;
use crate::sql::text::org_profiles_sql;
use crate::sql::{Adapter, query};

/// Profile ids an export reads per round trip while walking its snapshot.
const EXPORT_PAGE: i64 = 1000;

#[async_trait]
impl<B: Adapter> Transfers for B {
    async fn import_rows(
        &self,
        hub: HubId,
        org: OrganizationId,
        import_key: &str,
        rows: ImportRows<'_>,
        create: bool,
        actor: &str,
        task: Option<TaskId>,
    ) -> StoreResult<ImportOutcome> {
        if !IMPORT_KEYS.contains(&import_key) {
            return Err(StoreError::rejected(
                Rejection::InvalidImportKey,
                format!(
                    "import_key must be one of {}, not `{import_key}`",
                    IMPORT_KEYS.join(", ")
                ),
            ));
        }
        let key =
            IdentifierField::built_in(import_key).ok_or(StoreError::NotFound(Resource::Field))?;
        let organization = self.get_organization(hub, org).await?;
        let empty = UnifySetting {
            unique_fields: crate::model::default_unique_fields(),
            keys: Vec::new(),
            excluded: Vec::new(),
        };
        let mut normalizer = normalizer(&organization.default_region, &empty)?;
        let mut rows = RowReader::open(self, hub, rows, task).await?;
        let mut outcome = ImportOutcome {
            total: rows.len() as u64,
            ..ImportOutcome::default()
        };
        // Checked one by one, keeping only what writing needs: a row's position and key value.
        let mut ready: Vec<CheckedRow> = Vec::with_capacity(rows.len());
        for index in 0..rows.len() {
            let row = rows.row(index).await?;
            match check_import_row(&row, &key, &mut normalizer) {
                Ok(key_value) => ready.push(CheckedRow { index, key_value }),
                Err(failed) => outcome.failed_rows.push(failed),
            }
            if index % IMPORT_BATCH == IMPORT_BATCH - 1 {
                // Parsing is CPU work on an async worker: let other requests in between.
                tokio::task::yield_now().await;
            }
        }
        let scopes = {
            let mut conn = self.acquire().await?;
            organization_scopes::<B>(&mut conn, hub, org).await?
        };
        let target = ImportTarget {
            hub,
            org,
            key: import_key,
            create,
            actor,
            clock: self.clock(),
        };
        let total = rows.len() as i64;
        // Resumed after a crash, the import goes on after its last committed write.
        let mut tally = match task {
            Some(task) => {
                let mut conn = self.acquire().await?;
                ImportCheckpoint::load::<B>(&mut conn, hub, task).await?
            }
            None => ImportCheckpoint::default(),
        };
        let start = tally.ready_done.min(ready.len());
        let checked_failures = outcome.failed_rows.len() as i64;
        let mut state = ImportState::default();
        for checked in ready[start..].chunks(IMPORT_BATCH) {
            // The batch's rows are read again, typed, only while it is written.
            let mut loaded = Vec::with_capacity(checked.len());
            for c in checked {
                loaded.push(rows.row(c.index).await?);
            }
            let batch: Vec<ReadyRow<'_>> = checked
                .iter()
                .zip(&loaded)
                .map(|(c, row)| ReadyRow {
                    row,
                    key_value: c.key_value.clone(),
                })
                .collect();
            let _open = self.apply_gates().enter(hub).await;
            let mut tx = self.begin_write().await?;
            let values: Vec<&str> = batch.iter().map(|r| r.key_value.as_str()).collect();
            // Rows of this batch see what earlier rows of it created; a batch that fails is
            // rolled back, so it works on a copy of the state.
            let mut batch_state = state.fork();
            let written: StoreResult<ImportCheckpoint> = async {
                let matches =
                    match_contacts::<B>(&mut tx, hub, org, &scopes, key.name(), &values).await?;
                let mut results = Vec::with_capacity(batch.len());
                for r in &batch {
                    let seen_before = state.created.contains(&r.key_value);
                    let mut row =
                        import_one::<B>(&mut tx, &target, r, &matches, &mut batch_state).await?;
                    if seen_before && matches!(row, RowOutcome::Created) {
                        row = RowOutcome::Matched;
                    }
                    batch_state.note(r, &row);
                    results.push(row);
                }
                let next = tally.after(&results);
                if let Some(task) = task {
                    let done = checked_failures + next.ready_done as i64;
                    B::execute(
                        &mut tx,
                        task_progress(hub, task, done, total, self.clock().now()),
                    )
                    .await?;
                    B::execute(&mut tx, next.save(hub, task)?).await?;
                }
                Ok(next)
            }
            .await;
            match written {
                Ok(next) => {
                    B::commit(tx).await?;
                    state.api_channel = batch_state.api_channel;
                    state.created.extend(batch_state.created);
                    tally = next;
                }
                Err(_) => {
                    // Redo the batch one row per transaction, so only bad rows are lost; each
                    // row's transaction saves the checkpoint after it.
                    drop(tx);
                    for r in &batch {
                        let base = task.map(|task| (task, &tally));
                        match import_row_alone(self, &target, &scopes, r, &state, base).await {
                            Ok(row) => {
                                state.note(r, &row);
                                tally = tally.after(&[row]);
                            }
                            Err(e) => match row_failure(&e) {
                                Some(code) => {
                                    tally.outcome.failed_rows.push(FailedRow {
                                        row: r.row.row,
                                        code: code.to_owned(),
                                        message: e.to_string(),
                                    });
                                    tally.ready_done += 1;
                                }
                                None => return Err(e),
                            },
                        }
                    }
                    if let Some(task) = task {
                        let done = checked_failures + tally.ready_done as i64;
                        self.update_task_progress(hub, task, done, total).await?;
                    }
                }
            }
        }
        if let Some(task) = task
            && ready.is_empty()
        {
            self.update_task_progress(hub, task, checked_failures, total)
                .await?;
        }
        let counted = tally.outcome;
        outcome.matched = counted.matched;
        outcome.created = counted.created;
        outcome.unmatched = counted.unmatched;
        outcome.failed_rows.extend(counted.failed_rows);
        outcome.failed_rows.sort_by_key(|f| f.row);
        Ok(outcome)
    }

    async fn export_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        sink: ExportSink<'_>,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_snapshot().await?;
        ensure_organization::<B>(&mut tx, hub, org).await?;
        let (mut after_at, start_id) = list_start(updated_since, None)?;
        // Before the first page, an id below every profile's.
        let mut after_id = ProfileId(start_id);
        let mut written = 0u64;
        loop {
            let page: Vec<(ProfileId, i64)> = B::fetch_all(
                &mut tx,
                query(org_profiles_sql::<B>(true))
                    .bind(hub)
                    .bind(after_at)
                    .bind(after_id)
                    .bind(org)
                    .bind(EXPORT_PAGE),
            )
            .await?;
            let Some(&(last_id, last_at)) = page.last() else {
                break;
            };
            let ids: Vec<ProfileId> = page.iter().map(|r| r.0).collect();
            for (profile, golden) in golden_many::<B>(&mut tx, hub, &ids).await? {
                sink(ExportRow { profile, golden }).map_err(|message| {
                    StoreError::rejected(
                        Rejection::ExportWriteFailed,
                        format!("export stopped: {message}"),
                    )
                })?;
                written += 1;
            }
            (after_at, after_id) = (last_at, last_id);
        }
        B::commit(tx).await?;
        Ok(written)
    }
}
