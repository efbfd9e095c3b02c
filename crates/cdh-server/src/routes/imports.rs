//! `POST /v1/imports` (JSON or CSV) and `GET /v1/imports/{task_id}`: the vendor's bulk
//! import, as a task. The request is checked and its rows parsed here; the worker writes them.

use std::collections::VecDeque;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use cdh_store::model::{FailedRow, ImportChunk, ImportOutcome, TaskId, TaskKind};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{OrgCaller, Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::json::{ApiQuery, parse_json_reader};
use crate::routes::tasks::{TaskAccepted, TaskView, load_task};
use crate::state::AppState;
use crate::worker::import::{ImportParams, with_rejected_rows};

pub(crate) mod rows;

#[cfg(test)]
mod fuzz_tests;

pub use rows::MAX_ROWS;

/// The largest import body: 10,000 rich profiles fit with room to spare.
pub const BODY_LIMIT: usize = 32 * 1024 * 1024;

/// The routes of this group. `POST /v1/imports` reads its body itself, held to
/// [`BODY_LIMIT`] (`read_body`).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_import))
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
    /// Whether rows matching no contact may become contacts: not for `customer_id` and
    /// `connect_id`, which the vendor defines as keys of existing contacts only (a brand's
    /// member id or a connector's link says who a contact is, not where to reach them).
    pub fn may_create(self) -> bool {
        !matches!(self, Self::CustomerId | Self::ConnectId)
    }

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
    /// Create them as contacts of the organization's `api` channel (imports by
    /// `display_email`, `display_mobile` or `line_uid` only; by `customer_id` or `connect_id`
    /// it is `422 update_only_key`).
    Create,
}

/// A JSON import. Each profile becomes a typed row as the body is read (`JsonProfiles`), so
/// a large import never exists as a tree of JSON values.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// The field rows are matched by.
    pub import_key: ImportKey,
    /// At most 10,000 profiles: objects of fields (`display_name`, `display_email`,
    /// `display_mobile`, `line_uid`, `customer_id`, `connect_id`, `gender`, `birthday`, ...),
    /// `tags` and `custom_fields`. A field left out stays unchanged; `null` clears it.
    #[schema(value_type = Vec<Object>)]
    pub profiles: rows::JsonProfiles,
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
    body: Body,
) -> ApiResult<(StatusCode, axum::Json<TaskAccepted>)> {
    let caller = principal.org(Scope::ProfilesWrite)?;
    check_rate(&state, caller)?;
    let body = read_body(&headers, body).await?;
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
        Some(key) => Ok((key, query_unmatched, rows::from_csv(body)?)),
        None => {
            let request: ImportRequest = parse_json_reader(body)?;
            let profiles = request.profiles;
            if profiles.given > MAX_ROWS {
                return Err(rows::batch_too_large(profiles.given));
            }
            Ok((
                request.import_key,
                request.on_unmatched.or(query_unmatched),
                profiles.parsed,
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

/// Reads an import's body, at most [`BODY_LIMIT`] bytes (`413 payload_too_large` beyond,
/// before or while reading), as the pieces it arrived in: the parser reads them in turn and
/// lets each go once read, so the body and the rows made of it are not held whole together
/// (axum's `Bytes` extractor would also copy the pieces into one buffer, holding it twice).
async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<FramesReader> {
    use http_body_util::BodyExt;
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("an import body is at most {BODY_LIMIT} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(too_large());
    }
    let mut frames = VecDeque::new();
    let mut read = 0;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("the body could not be read: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            read += data.len();
            if read > BODY_LIMIT {
                return Err(too_large());
            }
            frames.push_back(data);
        }
    }
    Ok(FramesReader::new(frames))
}

/// A body as the pieces it arrived in, read in order; each piece is dropped once read.
#[derive(Debug, Default)]
pub(crate) struct FramesReader {
    frames: VecDeque<Bytes>,
}

impl FramesReader {
    /// Reads `frames` in order.
    pub(crate) fn new(mut frames: VecDeque<Bytes>) -> Self {
        // An empty piece would read as the end.
        frames.retain(|f| !f.is_empty());
        Self { frames }
    }
}

impl std::io::Read for FramesReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(front) = self.frames.front_mut() else {
            return Ok(0);
        };
        let n = front.len().min(buf.len());
        buf[..n].copy_from_slice(&front[..n]);
        if n == front.len() {
            self.frames.pop_front();
        } else {
            *front = front.slice(n..);
        }
        Ok(n)
    }
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
    rows: Vec<ImportChunk>,
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
        .start_import_task(caller.hub, caller.org, &params, &import.rows)
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
    let create_unmatched = on_unmatched.unwrap_or_default() == OnUnmatched::Create;
    if create_unmatched && !key.may_create() {
        return Err(ApiError::new(
            ErrorCode::UpdateOnlyKey,
            format!(
                "an import by {} only updates existing contacts; on_unmatched \"create\" \
                 needs import_key display_email, display_mobile or line_uid",
                key.as_str()
            ),
        )
        .with_details(json!({"field": "on_unmatched"})));
    }
    let params = ImportParams {
        organization_id: caller.org,
        import_key: key.as_str().to_owned(),
        create_unmatched,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A body is held to the limit whether or not it declares its length, and read whole, in
    /// order, when within it.
    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_declared_or_not() {
        use std::io::Read;
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, (BODY_LIMIT + 1).into());
        let e = read_body(&declared, Body::empty()).await.unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        // Undeclared (chunked): refused once what arrived passes the limit.
        let e = read_body(&HeaderMap::new(), Body::from(vec![b'x'; BODY_LIMIT + 1]))
            .await
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PayloadTooLarge);
        let mut read = String::new();
        read_body(&HeaderMap::new(), Body::from("{\"a\": 1}"))
            .await
            .unwrap()
            .read_to_string(&mut read)
            .unwrap();
        assert_eq!(read, "{\"a\": 1}");
    }

    /// Pieces are read in order across reads of any size, and an empty piece is not the end.
    #[test]
    fn frames_read_in_order_past_empty_pieces() {
        use std::io::Read;
        let frames = ["ab", "", "cde", "f"]
            .into_iter()
            .map(|piece| Bytes::from_static(piece.as_bytes()))
            .collect();
        let mut reader = FramesReader::new(frames);
        let mut buf = [0u8; 2];
        let mut out = Vec::new();
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        assert_eq!(out, b"abcdef");
    }
}
