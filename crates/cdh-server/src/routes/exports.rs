//! `POST /v1/exports`, `GET /v1/exports/{task_id}` and its download: the organization's
//! profiles as CSV or JSON Lines, from a snapshot taken when the task starts, kept 7 days.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::json::ApiJson;
use crate::routes::tasks::{TaskAccepted, TaskStatus, TaskView, load_task, queue_exclusive};
use crate::state::AppState;
use crate::wire;
use crate::worker::export::{self, ExportFormat, ExportParams, ExportResult};
use cdh_store::model::{TaskKind, TaskStatus as StoredStatus};

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_export))
        .routes(routes!(get_export))
        .routes(routes!(download_export))
}

/// An export to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// `csv` or `jsonl`.
    pub format: ExportFormatName,
    /// Only profiles updated at or after this time (RFC 3339).
    #[serde(default)]
    pub updated_since: Option<String>,
}

/// An export file's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormatName {
    /// Comma-separated values with a header row; lists joined with `;`.
    Csv,
    /// One JSON object per line, shaped like `GET /v1/profiles/{id}`.
    Jsonl,
}

impl From<ExportFormatName> for ExportFormat {
    fn from(f: ExportFormatName) -> Self {
        match f {
            ExportFormatName::Csv => Self::Csv,
            ExportFormatName::Jsonl => Self::Jsonl,
        }
    }
}

/// An export task, with its file once it is ready.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportView {
    /// The task.
    #[serde(flatten)]
    pub task: TaskView,
    /// The file's format.
    pub format: ExportFormatName,
    /// Profiles written (when finished).
    pub rows: Option<u64>,
    /// The file's size in bytes (when finished).
    pub bytes: Option<u64>,
    /// Where to download the file (when finished and not yet expired).
    pub download_url: Option<String>,
    /// Until when the file can be downloaded (when finished).
    pub expires_at: Option<String>,
    /// Whether the file is past its 7 days.
    pub expired: bool,
}

/// Queues an export of the organization's profiles.
#[utoipa::path(post, path = "/v1/exports", tag = "exports",
    request_body = ExportRequest,
    responses(
        (status = 202, description = "The export is queued", body = TaskAccepted),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `profiles:read`", body = ErrorBody),
        (status = 409, description = "An export is already in progress (`export_in_progress`)", body = ErrorBody),
        (status = 422, description = "A bad format or time, or an unknown field", body = ErrorBody),
    ))]
async fn create_export(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<ExportRequest>,
) -> ApiResult<(StatusCode, axum::Json<TaskAccepted>)> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let updated_since = request
        .updated_since
        .as_deref()
        .map(|t| wire::parse_time(t, "updated_since"))
        .transpose()?;
    queue_exclusive(
        &state,
        caller,
        TaskKind::Export,
        &export_request(caller, request.format, updated_since),
    )
    .await
}

/// The task parameters of an export of the caller's organization.
pub(crate) fn export_request(
    caller: &crate::auth::OrgCaller,
    format: ExportFormatName,
    updated_since: Option<cdh_store::model::Millis>,
) -> ExportParams {
    ExportParams {
        organization_id: caller.org,
        format: format.into(),
        updated_since,
    }
}

/// An export's status and, once it is ready, its download link.
#[utoipa::path(get, path = "/v1/exports/{task_id}", tag = "exports",
    params(("task_id" = String, Path, description = "The export task's id")),
    responses(
        (status = 200, description = "The export", body = ExportView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `profiles:read`", body = ErrorBody),
        (status = 404, description = "No such export for this organization", body = ErrorBody),
    ))]
async fn get_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(task_id): Path<String>,
) -> ApiResult<axum::Json<ExportView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let (_, task) = load_task(&state, caller, &task_id, Some(TaskKind::Export)).await?;
    let params = export_params(&task)?;
    let view = TaskView::of(&task);
    let result: Option<ExportResult> = match (&task.result, view.status) {
        (Some(r), TaskStatus::Succeeded) => Some(
            serde_json::from_value(r.clone())
                .map_err(|e| ApiError::internal(format!("unreadable export result: {e}")))?,
        ),
        _ => None,
    };
    let expired = result.is_some() && export::is_expired(task.finished_at, state.now());
    let ready = result.is_some() && !expired;
    Ok(axum::Json(ExportView {
        format: match params.format {
            ExportFormat::Csv => ExportFormatName::Csv,
            ExportFormat::Jsonl => ExportFormatName::Jsonl,
        },
        rows: result.as_ref().map(|r| r.rows),
        bytes: result.as_ref().map(|r| r.bytes),
        download_url: ready.then(|| format!("/v1/exports/{}/download", view.id)),
        expires_at: result
            .as_ref()
            .and(task.finished_at)
            .map(|at| wire::time(at + export::RETENTION_MS)),
        expired,
        task: view,
    }))
}

/// The export's file (CSV or JSON Lines), for 7 days after it was made.
#[utoipa::path(get, path = "/v1/exports/{task_id}/download", tag = "exports",
    params(("task_id" = String, Path, description = "The export task's id")),
    responses(
        (status = 200, description = "The file", content(
            (String = "text/csv"),
            (String = "application/x-ndjson"),
        )),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `profiles:read`", body = ErrorBody),
        (status = 404, description = "No such export for this organization", body = ErrorBody),
        (status = 409, description = "The export has not finished (or failed)", body = ErrorBody),
        (status = 410, description = "The file is past its 7 days (`export_expired`)", body = ErrorBody),
    ))]
async fn download_export(
    State(state): State<AppState>,
    principal: Principal,
    Path(task_id): Path<String>,
) -> ApiResult<Response> {
    let caller = principal.org(Scope::ProfilesRead)?;
    export_file(&state, caller, &task_id).await
}

/// The finished export's file as a download (the API and the console both answer with it).
pub(crate) async fn export_file(
    state: &AppState,
    caller: &crate::auth::OrgCaller,
    task_id: &str,
) -> ApiResult<Response> {
    let (hub, task) = load_task(state, caller, task_id, Some(TaskKind::Export)).await?;
    let params = export_params(&task)?;
    if task.status != StoredStatus::Succeeded {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            format!(
                "the export is {}; its file is ready once it has succeeded",
                task.status
            ),
        )
        .with_details(json!({ "status": task.status.as_str() })));
    }
    let path = export::file_path(state, hub, task.id, params.format);
    if export::is_expired(task.finished_at, state.now()) {
        // The sweep may not have run yet; the file goes now.
        let _ = tokio::fs::remove_file(&path).await;
        return Err(ApiError::new(
            ErrorCode::ExportExpired,
            "the export's file was kept 7 days and is gone; start a new export",
        ));
    }
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            // Removed from the server's disk (by hand, or a data folder restored without it):
            // for the caller the file is gone as an expired one is.
            tracing::warn!(path = %path.display(), "a finished export's file is missing");
            ApiError::new(
                ErrorCode::ExportExpired,
                "the export's file is no longer on the server; start a new export",
            )
        } else {
            ApiError::internal(format!("export file {}: {e}", path.display()))
        }
    })?;
    let name = format!("export-{}.{}", task.id, params.format.extension());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                params.format.content_type().to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::new(file)),
    )
        .into_response())
}

fn export_params(task: &cdh_store::model::Task) -> ApiResult<ExportParams> {
    serde_json::from_value(task.params.clone())
        .map_err(|e| ApiError::internal(format!("unreadable export params: {e}")))
}
