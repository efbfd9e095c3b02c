//! Runs an import task: the rows parsed by `POST /v1/imports`, queued apart from the task's
//! params, are written by the store, which reads them a chunk at a time, and the rows the
//! request already refused are added to the outcome's failures.

use cdh_store::model::{FailedRow, HubId, ImportOutcome, ImportRows, OrganizationId, Task};
use serde::{Deserialize, Serialize};

use super::{TaskError, TaskOutcome};
use crate::metrics::Counter;
use crate::state::AppState;

/// What an import task is asked to do (its stored `params`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportParams {
    /// The organization importing.
    pub organization_id: OrganizationId,
    /// The identifier field rows are matched by.
    pub import_key: String,
    /// Whether unmatched rows become contacts of the organization's `api` channel.
    pub create_unmatched: bool,
    /// Who asked.
    pub actor: String,
    /// Rows in all, refused ones included.
    pub total: u64,
    /// Rows the request refused before queueing (unknown field, wrong type, ...).
    pub rejected_rows: Vec<FailedRow>,
}

/// Runs the import and returns its outcome as the task's result.
pub async fn run(state: &AppState, hub: HubId, task: &Task) -> TaskOutcome {
    let params: ImportParams = serde_json::from_value(task.params.clone()).map_err(|e| {
        TaskError::Failed(format!(
            "the import's stored parameters are unreadable: {e}"
        ))
    })?;
    let outcome = state
        .store
        .import_rows(
            hub,
            params.organization_id,
            &params.import_key,
            ImportRows::Queued,
            params.create_unmatched,
            &params.actor,
            Some(task.id),
        )
        .await?;
    state.metrics.count(
        Counter::ContactsWritten,
        &["import", "created"],
        outcome.created,
    );
    state.metrics.count(
        Counter::ContactsWritten,
        &["import", "updated"],
        outcome.matched,
    );
    let outcome = with_rejected_rows(outcome, params.rejected_rows, params.total);
    state
        .store
        .update_task_progress(hub, task.id, to_i64(outcome.total), to_i64(outcome.total))
        .await?;
    Ok(Some(
        serde_json::to_value(outcome).map_err(|e| TaskError::Failed(e.to_string()))?,
    ))
}

/// The store's outcome plus the rows refused up front, failures in row order.
pub fn with_rejected_rows(
    mut outcome: ImportOutcome,
    rejected: Vec<FailedRow>,
    total: u64,
) -> ImportOutcome {
    outcome.failed_rows.extend(rejected);
    outcome.failed_rows.sort_by_key(|f| f.row);
    outcome.total = total;
    outcome
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
