//! The conflicts list: merges refused because they would have given a profile two values of
//! a unique field (`customer_id` by default), as JSON pages and as the vendor's CSV export
//! (`unified_contact_id, platform_type, platform_name, external_member_id, customer_id,
//! conflict_reason`, then our own columns).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cdh_store::model::{ConflictRecord, ContactId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiQuery;
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_conflicts))
        .routes(routes!(export_conflicts))
}

/// At most this many rows in one CSV response; `X-Next-Cursor` continues past it.
pub const CSV_ROWS: u32 = 100_000;

/// `GET /v1/unification/conflicts` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ConflictsQuery {
    /// The `next_cursor` of the previous page; from the start when absent.
    pub cursor: Option<String>,
    /// Page size (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// A merge refused: a contact kept out of the profile of a key value it carries.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictItemView {
    /// `customer_id_multiple` (or `<field>_multiple` for another unique field).
    pub conflict_reason: String,
    /// The contact kept out.
    pub contact_id: String,
    /// Its profile (the vendor's unified contact id).
    pub unified_contact_id: String,
    /// Its channel.
    pub channel_id: String,
    /// The channel's type (`line`, `email`, ...).
    pub platform_type: String,
    /// The channel's name.
    pub platform_name: String,
    /// The contact's id in its channel.
    pub external_member_id: String,
    /// The unify key it shares with the other profile, and the value.
    pub key: String,
    /// The shared value (normalised).
    pub value: String,
    /// The unique field whose values differ.
    pub unique_field: String,
    /// The contact's side's value of it.
    pub unique_value: String,
    /// The other profile's value of it.
    pub other_value: String,
    /// The profile the contact was kept out of.
    pub other_profile_id: String,
    /// When the merge was refused.
    pub refused_at: String,
}

/// A page of conflicts.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictPage {
    /// By contact, then key.
    pub items: Vec<ConflictItemView>,
    /// Pass as `cursor` for the next page; absent at the end.
    pub next_cursor: Option<String>,
}

fn view(c: ConflictRecord) -> ConflictItemView {
    ConflictItemView {
        conflict_reason: c.reason,
        contact_id: wire::id(c.contact_id),
        unified_contact_id: wire::id(c.profile_id),
        channel_id: wire::id(c.channel_id),
        platform_type: c.channel_type,
        platform_name: c.channel_name,
        external_member_id: c.external_id,
        key: c.field,
        value: c.value,
        unique_field: c.unique_field,
        unique_value: c.ours,
        other_value: c.theirs,
        other_profile_id: wire::id(c.held_by),
        refused_at: wire::time(c.created_at),
    }
}

/// A cursor: the last row's contact and key, as `<contact>.<key>`.
fn cursor_of(c: &ConflictRecord) -> String {
    format!("{}.{}", c.contact_id, c.field)
}

fn parse_cursor(cursor: Option<&str>) -> ApiResult<Option<(ContactId, String)>> {
    let Some(text) = cursor.filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::invalid_field("cursor", "`cursor` is not a cursor this API gave out");
    let (contact, field) = text.split_once('.').ok_or_else(bad)?;
    let contact = contact
        .parse::<i64>()
        .ok()
        .filter(|c| *c > 0)
        .ok_or_else(bad)?;
    if field.is_empty() || field.len() > 64 {
        return Err(bad());
    }
    Ok(Some((ContactId(contact), field.to_owned())))
}

/// Merges refused because they would have given a profile two values of a unique field,
/// for the caller's contacts, paged.
#[utoipa::path(get, path = "/v1/unification/conflicts", tag = "unification",
    params(ConflictsQuery),
    responses((status = 200, body = ConflictPage), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "invalid_field (cursor, limit)")))]
async fn list_conflicts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ConflictsQuery>,
) -> ApiResult<axum::Json<ConflictPage>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let after = parse_cursor(query.cursor.as_deref())?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "`limit` must be between 1 and 1000",
        ));
    }
    let rows = state
        .store
        .conflicts(caller.hub, caller.org, after, limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(cursor_of))
        .flatten();
    Ok(axum::Json(ConflictPage {
        items: rows.into_iter().map(view).collect(),
        next_cursor,
    }))
}

/// `GET /v1/unification/conflicts/export` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// The `X-Next-Cursor` of the previous response; from the start when absent.
    pub cursor: Option<String>,
}

/// The conflicts as CSV in the vendor's columns (`unified_contact_id, platform_type,
/// platform_name, external_member_id, customer_id, conflict_reason`) followed by `key,
/// value, unique_field, unique_value, other_value, other_profile_id`; at most 100,000 rows,
/// with `X-Next-Cursor` when more follow.
#[utoipa::path(get, path = "/v1/unification/conflicts/export", tag = "unification",
    params(ExportQuery),
    responses((status = 200, content_type = "text/csv", body = String),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "invalid_field (cursor)")))]
async fn export_conflicts(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ExportQuery>,
) -> ApiResult<Response> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let after = parse_cursor(query.cursor.as_deref())?;
    let (body, next) = conflicts_csv(&state, caller.hub, caller.org, after).await?;
    Ok(csv_response(body, next))
}

/// A CSV body as a download, with `X-Next-Cursor` when more rows follow.
pub(crate) fn csv_response(body: Vec<u8>, next: Option<String>) -> Response {
    let mut response = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"conflicts.csv\"",
            ),
        ],
        body,
    )
        .into_response();
    if let Some(next) = next
        && let Ok(value) = next.parse()
    {
        response.headers_mut().insert("x-next-cursor", value);
    }
    response
}

/// Up to `CSV_ROWS` conflicts of the organization after `after` as CSV, and the cursor to go
/// on from when more may follow.
pub(crate) async fn conflicts_csv(
    state: &AppState,
    hub: cdh_store::model::HubId,
    org: cdh_store::model::OrganizationId,
    mut after: Option<(ContactId, String)>,
) -> ApiResult<(Vec<u8>, Option<String>)> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let internal = |e: csv::Error| ApiError::internal(e.to_string());
    out.write_record([
        "unified_contact_id",
        "platform_type",
        "platform_name",
        "external_member_id",
        "customer_id",
        "conflict_reason",
        "key",
        "value",
        "unique_field",
        "unique_value",
        "other_value",
        "other_profile_id",
    ])
    .map_err(internal)?;
    let mut written = 0u32;
    let mut next = None;
    while written < CSV_ROWS {
        let limit = (CSV_ROWS - written).min(cdh_store::MAX_CONFLICTS_PAGE);
        let rows = state
            .store
            .conflicts(hub, org, after.clone(), limit)
            .await?;
        let full = rows.len() == limit as usize;
        for c in &rows {
            let customer_id = if c.unique_field == "customer_id" {
                c.ours.as_str()
            } else {
                ""
            };
            out.write_record([
                wire::id(c.profile_id).as_str(),
                &c.channel_type,
                &c.channel_name,
                &c.external_id,
                customer_id,
                &c.reason,
                &c.field,
                &c.value,
                &c.unique_field,
                &c.ours,
                &c.theirs,
                wire::id(c.held_by).as_str(),
            ])
            .map_err(internal)?;
        }
        written += rows.len() as u32;
        after = rows.last().map(|c| (c.contact_id, c.field.clone()));
        next = rows.last().filter(|_| full).map(cursor_of);
        if !full {
            break;
        }
    }
    let body = out
        .into_inner()
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok((body, next))
}
