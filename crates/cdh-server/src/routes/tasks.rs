//! `GET /v1/tasks/{task_id}`: any long operation's status and progress, and the task view
//! the imports and exports endpoints extend.

use axum::extract::{Path, State};
use cdh_store::model::{HubId, Task, TaskId, TaskKind as StoredKind, TaskStatus as StoredStatus};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{OrgCaller, Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_task))
}

/// A long operation (apply, import, export).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct TaskView {
    /// The task's id.
    pub id: String,
    /// What it does.
    pub kind: TaskKind,
    /// Where it stands.
    pub status: TaskStatus,
    /// Units done of units in all (contacts for an apply, rows for imports and exports).
    pub progress: Progress,
    /// Why it failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When it was queued.
    pub created_at: String,
    /// When it started running.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
}

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// Applies a unification setting.
    Apply,
    /// Imports profiles.
    Import,
    /// Exports profiles to a file.
    Export,
}

/// Where a task stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Waiting for the worker.
    Queued,
    /// Being run.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended with an error.
    Failed,
}

/// Units done of units in all.
#[derive(Clone, Copy, Debug, Serialize, ToSchema)]
pub struct Progress {
    /// Units done.
    pub done: i64,
    /// Units in all (0 while unknown).
    pub total: i64,
}

impl TaskView {
    /// The view of a stored task.
    pub fn of(task: &Task) -> Self {
        Self {
            id: wire::id(task.id),
            kind: match task.kind {
                StoredKind::Apply => TaskKind::Apply,
                StoredKind::Import => TaskKind::Import,
                StoredKind::Export => TaskKind::Export,
            },
            status: match task.status {
                StoredStatus::Queued => TaskStatus::Queued,
                StoredStatus::Running => TaskStatus::Running,
                StoredStatus::Succeeded => TaskStatus::Succeeded,
                StoredStatus::Failed => TaskStatus::Failed,
            },
            progress: Progress {
                done: task.done,
                total: task.total,
            },
            error: task.error.clone(),
            created_at: wire::time(task.created_at),
            started_at: wire::time_opt(task.started_at),
            finished_at: wire::time_opt(task.finished_at),
        }
    }
}

/// The answer to a queued task.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskAccepted {
    /// The task to follow.
    pub task_id: String,
}

/// Queues the caller organization's task of `kind` (import or export; one at a time per
/// organization, else `409 <kind>_in_progress`) and wakes the worker.
pub async fn queue_exclusive_task(
    state: &AppState,
    caller: &OrgCaller,
    kind: StoredKind,
    params: &impl Serialize,
) -> ApiResult<TaskId> {
    let params = serde_json::to_value(params).map_err(|e| ApiError::internal(e.to_string()))?;
    let task = state
        .store
        .start_task_exclusive(caller.hub, caller.org, kind, &params)
        .await?;
    state.worker.notify();
    Ok(task)
}

/// [`queue_exclusive_task`], answered `202 {task_id}`.
pub async fn queue_exclusive(
    state: &AppState,
    caller: &OrgCaller,
    kind: StoredKind,
    params: &impl Serialize,
) -> ApiResult<(axum::http::StatusCode, axum::Json<TaskAccepted>)> {
    let task = queue_exclusive_task(state, caller, kind, params).await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(TaskAccepted {
            task_id: wire::id(task),
        }),
    ))
}

/// The caller's task `id` of `kind` (any kind when `None`); another organization's task, a
/// task of another kind, or an id that names nothing, is `404`.
pub async fn load_task(
    state: &AppState,
    caller: &OrgCaller,
    id: &str,
    kind: Option<StoredKind>,
) -> ApiResult<(HubId, Task)> {
    let what = kind.map_or("task", StoredKind::as_str);
    let id = wire::parse_id(id, what)?;
    // The store decides what an organization may see: its own imports and exports, and
    // the applies of its realm.
    let task = match state
        .store
        .organization_task(caller.hub, caller.org, id)
        .await
    {
        Ok(task) => task,
        Err(cdh_store::StoreError::NotFound(_)) => return Err(ApiError::not_found(what)),
        Err(e) => return Err(e.into()),
    };
    if kind.is_some_and(|k| k != task.kind) {
        return Err(ApiError::not_found(what));
    }
    Ok((caller.hub, task))
}

/// A task's status and progress.
#[utoipa::path(get, path = "/v1/tasks/{task_id}", tag = "tasks",
    params(("task_id" = String, Path, description = "The task's id")),
    responses(
        (status = 200, description = "The task", body = TaskView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `profiles:read`", body = ErrorBody),
        (status = 404, description = "No such task for this organization", body = ErrorBody),
    ))]
async fn get_task(
    State(state): State<AppState>,
    principal: Principal,
    Path(task_id): Path<String>,
) -> ApiResult<axum::Json<TaskView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let (_, task) = load_task(&state, caller, &task_id, None).await?;
    Ok(axum::Json(TaskView::of(&task)))
}
