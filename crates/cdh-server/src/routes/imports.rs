//! `POST /v1/imports` (JSON or CSV) and `GET /v1/imports/{task_id}`: the vendor's bulk
//! import, as a task. The request is checked and its rows parsed here; the worker writes them.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use cdh_store::model::{FailedRow, ImportOutcome, TaskId, TaskKind};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{OrgCaller, Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::json::{ApiQuery, parse_json};
use crate::routes::tasks::{TaskAccepted, TaskView, load_task};
use crate::state::AppState;
use crate::worker::import::{ImportParams, with_rejected_rows};

pub(crate) mod rows;

#[cfg(test)]
mod fuzz_tests;

pub use rows::MAX_ROWS;

/// The largest import body: 10,000 rich profiles fit with room to spare.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_import))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .routes(routes!(get_import))
}

/// The identifier field import rows are matched by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImportKey {
    /// The LINE user id.
    LineUid,
    /// The email address (normalised).
    DisplayEmail,
    /// The mobile number (normalised to E.164).
    DisplayMobile,
    /// The connector-assigned id.
    ConnectId,
    /// The brand's member id.
    CustomerId,
}

impl ImportKey {
    /// The field's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LineUid => "line_uid",
            Self::DisplayEmail => "display_email",
            Self::DisplayMobile => "display_mobile",
            Self::ConnectId => "connect_id",
            Self::CustomerId => "customer_id",
        }
    }
}

/// What to do with rows that match no contact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnUnmatched {
    /// Count them as unmatched (the default).
    #[default]
    Report,
    /// Create them as contacts of the organization's `api` channel.
    Create,
}

/// A JSON import. Each profile is kept as its text in the body and read into a typed row
/// one at a time, so a large import never exists as a tree of JSON values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest<'a> {
    /// The field rows are matched by.
    pub import_key: ImportKey,
    /// At most 10,000 profiles: objects of fields (`display_name`, `display_email`,
    /// `display_mobile`, `line_uid`, `customer_id`, `connect_id`, `gender`, `birthday`, ...),
    /// `tags` and `custom_fields`. A field left out stays unchanged; `null` clears it.
    #[schema(value_type = Vec<Object>)]
    #[serde(borrow)]
    pub profiles: Vec<&'a serde_json::value::RawValue>,
    /// What to do with rows that match no contact (default `report`).
    #[serde(default)]
    pub on_unmatched: Option<OnUnmatched>,
}

/// Query parameters of a CSV import.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The field rows are matched by (CSV imports only; JSON imports say it in the body).
    pub import_key: Option<ImportKey>,
    /// What to do with rows that match no contact (CSV imports only).
    pub on_unmatched: Option<OnUnmatched>,
}

/// An import task with its counts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportView {
    /// The task.
    #[serde(flatten)]
    pub task: TaskView,
    /// Rows given.
    pub total: u64,
    /// Rows that matched contacts (which were overwritten).
    pub matched: u64,
    /// Rows created as contacts.
    pub created: u64,
    /// Rows that matched nothing and were not created.
    pub unmatched: u64,
    /// Rows that failed, each alone.
    pub failed_rows: Vec<FailedRowView>,
}

/// A row that failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedRowView {
    /// The row's number, from 1, in the order given.
    pub row: u64,
    /// A stable code.
    pub code: String,
    /// Why.
    pub message: String,
}

/// Queues an import of profiles matched by `import_key`.
#[utoipa::path(post, path = "/v1/imports", tag = "imports",
    params(ImportQuery),
    request_body(description = "JSON `{import_key, profiles, on_unmatched?}`, or CSV with a \
        header row and `?import_key=`", content(
        (ImportRequest = "application/json"),
        (String = "text/csv"),
    )),
    responses(
        (status = 202, description = "The import is queued", body = TaskAccepted),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `profiles:write`", body = ErrorBody),
        (status = 409, description = "An import is already in progress (`import_in_progress`)", body = ErrorBody),
        (status = 413, description = "More than 10,000 profiles (`batch_too_large`) or too big a body", body = ErrorBody),
        (status = 422, description = "A bad `import_key`, an unknown field, malformed CSV (`invalid_csv`), more than 116 CSV columns (`too_many_columns`) or a custom field name over 64 characters (`field_name_too_long`). A row with a value over 1,024 characters, more than 100 tags or more than 100 custom fields fails alone (`value_too_long`, `too_many_tags`, `too_many_custom_fields`)", body = ErrorBody),
        (status = 429, description = "More than 15 imports a minute (`rate_limited`, see `Retry-After`)", body = ErrorBody),
    ))]
async fn create_import(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiQuery(query): ApiQuery<ImportQuery>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<(StatusCode, axum::Json<TaskAccepted>)> {
    let caller = principal.org(Scope::ProfilesWrite)?;
    check_rate(&state, caller)?;
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("an import body is at most {BODY_LIMIT} bytes"),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body could not be read: {}", rejection.body_text()),
            )
        }
    })?;
    let csv_key = if is_csv(&headers) {
        Some(query.import_key.ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingField,
                "a CSV import names its key in the query: ?import_key=customer_id",
            )
            .with_details(json!({ "field": "import_key" }))
        })?)
    } else {
        None
    };
    // Reading up to 32 MiB is CPU work: it runs off the async workers, so other requests
    // (and `/healthz`) are answered meanwhile.
    let query_unmatched = query.on_unmatched;
    let (key, on_unmatched, parsed) = tokio::task::spawn_blocking(move || match csv_key {
        Some(key) => Ok((key, query_unmatched, rows::from_csv(&body)?)),
        None => {
            let request: ImportRequest<'_> = parse_json(&body)?;
            if request.profiles.len() > MAX_ROWS {
                return Err(rows::batch_too_large(request.profiles.len()));
            }
            Ok((
                request.import_key,
                request.on_unmatched.or(query_unmatched),
                rows::from_json(&request.profiles),
            ))
        }
    })
    .await
    .map_err(|e| ApiError::internal(format!("the import could not be read: {e}")))??;
    let import = import_params(caller, key, on_unmatched, parsed)?;
    let task = queue_import(&state, caller, import).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(TaskAccepted {
            task_id: crate::wire::id(task),
        }),
    ))
}

/// Refuses a 16th import within a minute (`429` with the seconds to wait).
pub(crate) fn check_rate(state: &AppState, caller: &OrgCaller) -> ApiResult<()> {
    state
        .worker
        .import_limiter()
        .check((caller.hub, caller.org), state.now())
        .map_err(|wait| {
            ApiError::new(
                ErrorCode::RateLimited,
                format!("at most 15 imports a minute per organization; retry in {wait} s"),
            )
            .with_retry_after(wait)
        })
}

/// An import ready to queue: its parameters, and its rows as the task keeps them.
pub(crate) struct ReadyImport {
    params: ImportParams,
    rows: String,
}

/// Queues an import (one at a time per organization, else `409 import_in_progress`) and
/// wakes the worker.
pub(crate) async fn queue_import(
    state: &AppState,
    caller: &OrgCaller,
    import: ReadyImport,
) -> ApiResult<TaskId> {
    let params =
        serde_json::to_value(&import.params).map_err(|e| ApiError::internal(e.to_string()))?;
    let task = state
        .store
        .start_import_task(caller.hub, caller.org, &params, import.rows)
        .await?;
    state.worker.notify();
    Ok(task)
}

/// The task parameters of parsed rows (an import with no rows is refused).
pub(crate) fn import_params(
    caller: &OrgCaller,
    key: ImportKey,
    on_unmatched: Option<OnUnmatched>,
    parsed: rows::ParsedRows,
) -> ApiResult<ReadyImport> {
    if parsed.total() == 0 {
        return Err(ApiError::invalid_field(
            "profiles",
            "the import has no profiles",
        ));
    }
    let params = ImportParams {
        organization_id: caller.org,
        import_key: key.as_str().to_owned(),
        create_unmatched: on_unmatched.unwrap_or_default() == OnUnmatched::Create,
        actor: caller.actor(),
        total: parsed.total() as u64,
        rejected_rows: parsed.rejected,
    };
    Ok(ReadyImport {
        params,
        rows: parsed.rows.finish(),
    })
}

/// An import's status and counts.
#[utoipa::path(get, path = "/v1/imports/{task_id}", tag = "imports",
    params(("task_id" = String, Path, description = "The import task's id")),
    responses(
        (status = 200, description = "The import", body = ImportView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `profiles:read`", body = ErrorBody),
        (status = 404, description = "No such import for this organization", body = ErrorBody),
    ))]
async fn get_import(
    State(state): State<AppState>,
    principal: Principal,
    Path(task_id): Path<String>,
) -> ApiResult<axum::Json<ImportView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let (_, task) = load_task(&state, caller, &task_id, Some(TaskKind::Import)).await?;
    let outcome = match &task.result {
        Some(result) => serde_json::from_value::<ImportOutcome>(result.clone())
            .map_err(|e| ApiError::internal(format!("unreadable import result: {e}")))?,
        // Not finished: the rows refused up front are known already.
        None => {
            let params: ImportParams = serde_json::from_value(task.params.clone())
                .map_err(|e| ApiError::internal(format!("unreadable import params: {e}")))?;
            with_rejected_rows(ImportOutcome::default(), params.rejected_rows, params.total)
        }
    };
    Ok(axum::Json(ImportView {
        task: TaskView::of(&task),
        total: outcome.total,
        matched: outcome.matched,
        created: outcome.created,
        unmatched: outcome.unmatched,
        failed_rows: outcome.failed_rows.into_iter().map(view_row).collect(),
    }))
}

fn view_row(f: FailedRow) -> FailedRowView {
    FailedRowView {
        row: f.row as u64,
        code: f.code,
        message: f.message,
    }
}

fn is_csv(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("text/csv"))
}
