//! Unification settings: the keys in force and their history, previews (exact, with
//! suspicious values and exclusions), and applying exactly what a preview showed.

use axum::extract::State;
use axum::http::StatusCode;
use cdh_store::model::{AppliedSetting, ChainLink, ContactId, StoredPreview, UnifySetting};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::json::ApiJson;
use crate::routes::hub::{ScopeView, scope_view};
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_unification))
        .routes(routes!(create_preview))
        .routes(routes!(apply))
}

/// At most this many unify keys at a time.
pub const MAX_KEYS: usize = 3;

/// A value excluded from merging.
#[derive(Clone, Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExcludedValue {
    /// The field.
    pub field: String,
    /// The value, as given (normalised like its field when compared).
    pub value: String,
}

/// An applied setting.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingView {
    /// Its version (0 is the initial "no keys").
    pub version: i64,
    /// The unify keys.
    pub keys: Vec<String>,
    /// The values excluded from merging.
    pub excluded_values: Vec<ExcludedValue>,
    /// The fields a profile may hold only one value of.
    pub unique_fields: Vec<String>,
    /// Who applied it.
    pub actor: String,
    /// When.
    pub applied_at: String,
}

/// `GET /v1/unification`.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnificationView {
    /// The unify keys in force (0 to 3).
    pub keys: Vec<String>,
    /// The values excluded from merging.
    pub excluded_values: Vec<ExcludedValue>,
    /// The fields a profile may hold only one value of: a merge that would give it a second
    /// is refused and listed at `GET /v1/unification/conflicts`.
    pub unique_fields: Vec<String>,
    /// The version in force.
    pub version: i64,
    /// Which contacts may merge with each other.
    pub scope: ScopeView,
    /// Every applied setting, oldest first.
    pub history: Vec<SettingView>,
}

fn excluded(pairs: Vec<(String, String)>) -> Vec<ExcludedValue> {
    pairs
        .into_iter()
        .map(|(field, value)| ExcludedValue { field, value })
        .collect()
}

pub(crate) fn setting_view(s: AppliedSetting) -> SettingView {
    SettingView {
        version: s.version,
        keys: s.setting.keys,
        excluded_values: excluded(s.setting.excluded),
        unique_fields: s.setting.unique_fields,
        actor: s.actor,
        applied_at: wire::time(s.applied_at),
    }
}

/// The unify keys in force, the scope, and the history of applied settings.
#[utoipa::path(get, path = "/v1/unification", tag = "unification",
    responses((status = 200, body = UnificationView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn get_unification(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<UnificationView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let current = state.store.unify_setting(caller.hub, caller.org).await?;
    let history = state.store.unify_history(caller.hub, caller.org).await?;
    let settings = state.store.realm_settings(caller.hub, caller.org).await?;
    Ok(axum::Json(UnificationView {
        keys: current.setting.keys,
        excluded_values: excluded(current.setting.excluded),
        unique_fields: current.setting.unique_fields,
        version: current.version,
        scope: scope_view(settings, caller.hub),
        history: history.into_iter().map(setting_view).collect(),
    }))
}

/// `POST /v1/unification/previews`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// 0 to 3 identifier fields.
    pub keys: Vec<String>,
    /// Values that must never merge.
    #[serde(default)]
    pub excluded_values: Vec<ExcludedValue>,
    /// A value on more contacts than this is flagged as suspicious (default 20).
    #[serde(default)]
    pub suspicious_threshold: Option<u32>,
    /// Fields a profile may hold only one value of (built-in identifier fields): a merge that
    /// would give it a second is refused. The setting in force's when absent
    /// (`["customer_id"]` at first).
    #[serde(default)]
    pub unique_fields: Option<Vec<String>>,
}

/// A resulting profile, by size.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewProfileView {
    /// Contacts it would hold.
    pub n_contacts: u32,
    /// Its first contacts (at most 20), oldest first.
    pub contact_ids: Vec<String>,
}

/// A value on suspiciously many contacts.
#[derive(Debug, Serialize, ToSchema)]
pub struct SuspiciousView {
    /// The field.
    pub field: String,
    /// The normalised value.
    pub value: String,
    /// How many contacts carry it.
    pub n_contacts: u32,
}

/// One link of a chain: the contact reached and what tied it to the previous one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainLinkView {
    /// The contact reached.
    pub contact_id: String,
    /// `start`, `value` (a shared key value) or `profile` (already one profile).
    pub tie: String,
    /// The field of the shared value.
    pub field: Option<String>,
    /// The shared normalised value.
    pub value: Option<String>,
}

/// A sample merge and the chain of values that ties it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SampleView {
    /// The contacts of the resulting profile.
    pub contact_ids: Vec<String>,
    /// The chain from the oldest to the farthest contact.
    pub chain: Vec<ChainLinkView>,
}

/// A merge the setting would refuse: it would give a profile two values of a unique field.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConflictView {
    /// `customer_id_multiple` and the like.
    pub conflict_reason: String,
    /// The unique field.
    pub field: String,
    /// The refused contact's side's value, then the other side's.
    pub values: Vec<String>,
    /// The contacts along the chain, from the refused contact.
    pub contact_ids: Vec<String>,
    /// The chain of shared values that would have merged them.
    pub chain: Vec<ChainLinkView>,
}

/// What applying a setting would do, exactly.
#[derive(Debug, Serialize, ToSchema)]
pub struct PreviewView {
    /// Give it to `POST /v1/unification/apply`.
    pub preview_id: String,
    /// The keys previewed.
    pub keys: Vec<String>,
    /// The values excluded.
    pub excluded_values: Vec<ExcludedValue>,
    /// The unique fields previewed.
    pub unique_fields: Vec<String>,
    /// Profiles now.
    pub profiles_before: u64,
    /// Profiles after applying.
    pub profiles_after: u64,
    /// Contacts in a profile that would gain members.
    pub contacts_merged: u64,
    /// The largest resulting profiles.
    pub largest_profiles: Vec<PreviewProfileView>,
    /// Values that look shared by many people.
    pub suspicious_values: Vec<SuspiciousView>,
    /// Sample merges with their chains.
    pub samples: Vec<SampleView>,
    /// How many merges the setting would refuse (unique fields).
    pub n_conflicts: u64,
    /// Some of them, evenly spaced (at most 20).
    pub conflicts: Vec<ConflictView>,
    /// Remarks (for example, cross-product LINE contacts need `line_uid` as a key).
    pub notes: Vec<String>,
    /// When it was computed.
    pub created_at: String,
}

fn chain(links: Vec<ChainLink>) -> Vec<ChainLinkView> {
    links
        .into_iter()
        .map(|l| ChainLinkView {
            contact_id: wire::id(l.contact_id),
            tie: l.tie,
            field: l.field,
            value: l.value,
        })
        .collect()
}

fn ids(ids: Vec<ContactId>) -> Vec<String> {
    ids.into_iter().map(wire::id).collect()
}

pub(crate) fn preview_view(p: StoredPreview) -> PreviewView {
    let r = p.report;
    PreviewView {
        preview_id: wire::id(p.id),
        keys: p.keys,
        excluded_values: excluded(p.excluded),
        unique_fields: p.unique_fields,
        profiles_before: r.profiles_before,
        profiles_after: r.profiles_after,
        contacts_merged: r.contacts_merged,
        largest_profiles: r
            .largest_profiles
            .into_iter()
            .map(|l| PreviewProfileView {
                n_contacts: l.n_contacts,
                contact_ids: ids(l.contact_ids),
            })
            .collect(),
        suspicious_values: r
            .suspicious_values
            .into_iter()
            .map(|s| SuspiciousView {
                field: s.field,
                value: s.value,
                n_contacts: s.n_contacts,
            })
            .collect(),
        samples: r
            .samples
            .into_iter()
            .map(|s| SampleView {
                contact_ids: ids(s.contact_ids),
                chain: chain(s.chain),
            })
            .collect(),
        conflicts: r
            .conflicts
            .into_iter()
            .map(|c| ConflictView {
                conflict_reason: c.reason,
                field: c.field,
                values: c.values,
                contact_ids: ids(c.contact_ids),
                chain: chain(c.chain),
            })
            .collect(),
        n_conflicts: r.n_conflicts,
        notes: r.notes,
        created_at: wire::time(p.created_at),
    }
}

/// Computes exactly what a setting would merge, without changing anything (admin).
#[utoipa::path(post, path = "/v1/unification/previews", tag = "unification",
    request_body = PreviewRequest,
    responses((status = 201, body = PreviewView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "too_many_keys, unknown_key, duplicate_key, ...")))]
async fn create_preview(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<PreviewRequest>,
) -> ApiResult<(StatusCode, axum::Json<PreviewView>)> {
    let caller = principal.org(Scope::Admin)?;
    if body.keys.len() > MAX_KEYS {
        return Err(ApiError::new(
            ErrorCode::TooManyKeys,
            format!(
                "at most {MAX_KEYS} unify keys at a time ({} given)",
                body.keys.len()
            ),
        )
        .with_details(serde_json::json!({ "field": "keys", "max": MAX_KEYS })));
    }
    let unique_fields = match body.unique_fields {
        Some(fields) => {
            let fields: Vec<String> = fields.iter().map(|f| f.trim().to_owned()).collect();
            cdh_store::rules::parse_unique_fields(&fields)
                .map_err(|e| ApiError::from(e).with_field("unique_fields"))?;
            fields
        }
        None => {
            state
                .store
                .unify_setting(caller.hub, caller.org)
                .await?
                .setting
                .unique_fields
        }
    };
    let setting = UnifySetting {
        unique_fields,
        keys: body.keys.iter().map(|k| k.trim().to_owned()).collect(),
        excluded: body
            .excluded_values
            .into_iter()
            .map(|e| (e.field.trim().to_owned(), e.value))
            .collect(),
    };
    let preview = state
        .store
        .create_preview(
            caller.hub,
            caller.org,
            &setting,
            body.suspicious_threshold.unwrap_or(20),
        )
        .await
        .map_err(|e| ApiError::from(e).with_field("keys"))?;
    Ok((StatusCode::CREATED, axum::Json(preview_view(preview))))
}

/// `POST /v1/unification/apply`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The preview to apply, exactly as it was shown.
    pub preview_id: String,
}

/// The queued task.
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskRef {
    /// Follow it at `GET /v1/tasks/{task_id}`.
    pub task_id: String,
}

/// Applies exactly what a preview showed, as a task; `409 preview_stale` if contacts
/// changed since. Merges are permanent.
#[utoipa::path(post, path = "/v1/unification/apply", tag = "unification",
    request_body = ApplyRequest,
    responses((status = 202, body = TaskRef), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "preview_stale")))]
async fn apply(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ApplyRequest>,
) -> ApiResult<(StatusCode, axum::Json<TaskRef>)> {
    let caller = principal.org(Scope::Admin)?;
    let preview = wire::parse_id(&body.preview_id, "preview")?;
    let task = state
        .store
        .apply_preview(caller.hub, caller.org, preview, &caller.actor())
        .await?;
    state.worker.notify();
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(TaskRef {
            task_id: wire::id(task),
        }),
    ))
}
