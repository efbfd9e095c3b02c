//! Profiles (the unified contacts): by id (merged-away ids resolve to the survivor), lookup by
//! a normalised key value, list by update time, timeline, lineage and manual edits.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use cdh_core::GoldenRecord;
use cdh_store::model::{LedgerEntry, Profile, TimelineEntry};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::{OrgCaller, Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_profiles))
        .routes(routes!(get_profile, patch_profile))
        .routes(routes!(timeline))
        .routes(routes!(lineage))
}

/// An identifier value of a profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifierView {
    /// The field.
    pub field: String,
    /// The normalised value (or the raw one when invalid).
    pub value: String,
    /// Whether the field is a unify key now.
    pub is_unify_key: bool,
    /// Whether the value is valid (invalid values never merge).
    pub valid: bool,
}

/// One channel contact of a profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileChannel {
    /// The channel.
    pub channel_id: String,
    /// Its messaging type.
    #[serde(rename = "type")]
    pub channel_type: String,
    /// Its product.
    pub product: String,
    /// The contact on it.
    pub contact_id: String,
}

/// A unified profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileView {
    /// Its id.
    pub id: String,
    /// The id asked for, when it was merged into this profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_from: Option<String>,
    /// Merged field values (newest non-empty wins; an admin's manual value wins until the
    /// admin clears it).
    pub fields: BTreeMap<String, String>,
    /// The fields whose value an admin set by hand (absent when none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub manual_fields: Vec<String>,
    /// Every distinct identifier value of its contacts.
    pub identifiers: Vec<IdentifierView>,
    /// Its channel contacts, oldest first.
    pub channels: Vec<ProfileChannel>,
    /// Its contacts, oldest first.
    pub contact_ids: Vec<String>,
    /// The union of its contacts' tags.
    pub tags: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

/// A page of profiles.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileList {
    /// The profiles.
    pub items: Vec<ProfileView>,
    /// Where the next page starts, or null at the end.
    pub next_cursor: Option<String>,
}

/// A profile as answered.
pub fn view(profile: Profile, golden: GoldenRecord) -> ProfileView {
    ProfileView {
        id: wire::id(profile.id),
        merged_from: profile.merged_from.map(wire::id),
        manual_fields: golden
            .fields
            .iter()
            .filter(|(_, v)| v.source == cdh_store::model::MANUAL_SOURCE)
            .map(|(k, _)| k.clone())
            .collect(),
        fields: golden
            .fields
            .into_iter()
            .map(|(k, v)| (k, v.value))
            .collect(),
        identifiers: golden
            .identifiers
            .into_iter()
            .map(|i| IdentifierView {
                field: i.field.name().to_owned(),
                value: i.value,
                is_unify_key: i.is_unify_key,
                valid: i.valid,
            })
            .collect(),
        contact_ids: profile
            .members
            .iter()
            .map(|m| wire::id(m.contact_id))
            .collect(),
        channels: profile
            .members
            .into_iter()
            .map(|m| ProfileChannel {
                channel_id: wire::id(m.channel_id),
                channel_type: m.channel_type,
                product: m.product,
                contact_id: wire::id(m.contact_id),
            })
            .collect(),
        tags: golden.tags,
        created_at: wire::time(profile.created_at),
        updated_at: wire::time(profile.updated_at),
    }
}

/// The profile (resolved to its survivor) if the caller may see it.
pub(crate) async fn visible(state: &AppState, caller: &OrgCaller, id: &str) -> ApiResult<Profile> {
    let id = wire::parse_id(id, "profile")?;
    let profile = state.store.get_profile(caller.hub, id).await?;
    access::visible_profile(state, caller, &profile).await?;
    Ok(profile)
}

/// A profile; an id merged into another answers the survivor with `merged_from`.
#[utoipa::path(get, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "The profile")),
    responses((status = 200, body = ProfileView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ProfileView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    // One read: the merged record carries the profile (resolved to its survivor) to check.
    let id = wire::parse_id(&id, "profile")?;
    let (profile, golden) = state.store.golden_record(caller.hub, id).await?;
    access::visible_profile(&state, caller, &profile).await?;
    Ok(axum::Json(view(profile, golden)))
}

/// `GET /v1/profiles`: a lookup by one key value, or a list by update time.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProfileQuery {
    /// Look up by LINE uid.
    pub line_uid: Option<String>,
    /// Look up by email (normalised).
    pub display_email: Option<String>,
    /// Look up by phone (normalised to E.164 with the organization's region).
    pub display_mobile: Option<String>,
    /// Look up by the brand's member id.
    pub customer_id: Option<String>,
    /// Look up by connect id.
    pub connect_id: Option<String>,
    /// List profiles updated at or after this time (RFC 3339).
    pub updated_since: Option<String>,
    /// Page size (1 to 200, default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Finds profiles by a normalised key value, or lists them by update time.
#[utoipa::path(get, path = "/v1/profiles", tag = "profiles", params(ProfileQuery),
    responses((status = 200, body = ProfileList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn list_profiles(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<ProfileQuery>,
) -> ApiResult<axum::Json<ProfileList>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let keys: Vec<(&str, &String)> = [
        ("line_uid", &query.line_uid),
        ("display_email", &query.display_email),
        ("display_mobile", &query.display_mobile),
        ("customer_id", &query.customer_id),
        ("connect_id", &query.connect_id),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.as_ref().map(|v| (name, v)))
    .collect();
    if keys.len() > 1 || (keys.len() == 1 && query.updated_since.is_some()) {
        return Err(ApiError::invalid_field(
            keys[0].0,
            "give one key to look up by, or updated_since to list, not several",
        ));
    }
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "`limit` must be between 1 and 200",
        ));
    }
    if let Some((field, value)) = keys.first() {
        // Found through a contact of the caller's organization, so each one is visible.
        let found = state
            .store
            .lookup_golden_records(caller.hub, caller.org, field, value)
            .await?;
        let items = found
            .into_iter()
            .map(|(profile, golden)| view(profile, golden))
            .collect();
        return Ok(axum::Json(ProfileList {
            items,
            next_cursor: None,
        }));
    }
    let since = query
        .updated_since
        .as_deref()
        .map(|t| wire::parse_time(t, "updated_since"))
        .transpose()?;
    let page = state
        .store
        .list_profiles(
            caller.hub,
            caller.org,
            since,
            limit,
            query.cursor.as_deref(),
        )
        .await
        .map_err(|e| match e {
            cdh_store::StoreError::Invalid(_) => {
                ApiError::invalid_field("cursor", "`cursor` is not one this API gave out")
            }
            other => other.into(),
        })?;
    // Listed profiles are live, so none carries `merged_from`.
    let items = page
        .items
        .into_iter()
        .map(|(profile, golden)| view(profile, golden))
        .collect();
    Ok(axum::Json(ProfileList {
        items,
        next_cursor: page.next_cursor,
    }))
}

/// `PATCH /v1/profiles/{id}`: field values to set, or `null` to clear.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    /// Merged field values to override, by field name.
    pub fields: BTreeMap<String, Option<String>>,
}

/// Edits a profile by hand (admin). An identifier (`display_email`, `display_mobile`,
/// `customer_id`, `connect_id`) is written to every contact of the profile, so lookups find
/// the new value and unification runs on it (`line_uid` cannot be edited; an invalid value is
/// 422). Any other field gets a manual value that wins over the contacts' writes until the
/// admin clears it with `null`; `manual_fields` lists them.
#[utoipa::path(patch, path = "/v1/profiles/{id}", tag = "profiles",
    params(("id" = String, Path, description = "The profile")), request_body = ProfilePatch,
    responses((status = 200, body = ProfileView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn patch_profile(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ProfilePatch>,
) -> ApiResult<axum::Json<ProfileView>> {
    let caller = principal.org(Scope::Admin)?;
    let profile = visible(&state, caller, &id).await?;
    let (stored, golden) = state
        .store
        .patch_profile(caller.hub, profile.id, &body.fields, &caller.actor())
        .await?;
    let mut shown = view(stored, golden);
    shown.merged_from = profile.merged_from.map(wire::id);
    Ok(axum::Json(shown))
}

/// A note or conversation record in a profile's timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineItemView {
    /// `note` or `conversation`.
    pub kind: String,
    /// The contact it is attached to.
    pub contact_id: String,
    /// The contact's channel (its source).
    pub channel_id: String,
    /// The text.
    pub text: String,
    /// The note's author, or the conversation's direction (`in`/`out`).
    pub author: String,
    /// When.
    pub at: String,
}

/// A page of a timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelinePage {
    /// Newest first.
    pub items: Vec<TimelineItemView>,
    /// Where the next page starts, or null at the end.
    pub next_cursor: Option<String>,
}

/// Paging of a timeline.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Page size (1 to 200, default 50).
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

pub(crate) fn timeline_item(e: TimelineEntry) -> TimelineItemView {
    TimelineItemView {
        kind: e.kind,
        contact_id: wire::id(e.contact_id),
        channel_id: wire::id(e.channel_id),
        text: e.text,
        author: e.author,
        at: wire::time(e.at),
    }
}

/// Notes and conversations of all the profile's contacts, newest first.
#[utoipa::path(get, path = "/v1/profiles/{id}/timeline", tag = "profiles",
    params(("id" = String, Path, description = "The profile"), PageQuery),
    responses((status = 200, body = TimelinePage), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn timeline(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> ApiResult<axum::Json<TimelinePage>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let profile = visible(&state, caller, &id).await?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "`limit` must be between 1 and 200",
        ));
    }
    let page = state
        .store
        .timeline(caller.hub, profile.id, limit, query.cursor.as_deref())
        .await
        .map_err(|e| match e {
            cdh_store::StoreError::Invalid(_) => {
                ApiError::invalid_field("cursor", "`cursor` is not one this API gave out")
            }
            other => other.into(),
        })?;
    Ok(axum::Json(TimelinePage {
        items: page.items.into_iter().map(timeline_item).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Why a merge happened.
#[derive(Debug, Serialize, ToSchema)]
pub struct CauseView {
    /// `setting` (an applied unify setting), `import` or `contact` (an auto-unified write).
    pub kind: String,
    /// The setting version, import task or contact id.
    pub id: String,
}

/// One merge that formed the profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct LineageEntry {
    /// When.
    pub at: String,
    /// The profile that lived on.
    pub survivor_id: String,
    /// The profiles merged into it.
    pub merged_ids: Vec<String>,
    /// The unify key that tied them.
    pub key: String,
    /// The normalised value that tied them.
    pub value: String,
    /// Which setting, import or write caused it.
    pub cause: CauseView,
    /// Who did it.
    pub actor: String,
}

/// The merges that formed a profile.
#[derive(Debug, Serialize, ToSchema)]
pub struct Lineage {
    /// The profile.
    pub profile_id: String,
    /// Oldest first.
    pub items: Vec<LineageEntry>,
}

pub(crate) fn lineage_entry(e: LedgerEntry) -> LineageEntry {
    LineageEntry {
        at: wire::time(e.at),
        survivor_id: wire::id(e.survivor_id),
        merged_ids: e.absorbed_ids.into_iter().map(wire::id).collect(),
        key: e.key_field,
        value: e.key_value,
        cause: CauseView {
            kind: e.cause.kind,
            id: e.cause.id,
        },
        actor: e.cause.actor,
    }
}

/// Every merge that formed the profile: when, which key and value, why, who.
#[utoipa::path(get, path = "/v1/profiles/{id}/lineage", tag = "profiles",
    params(("id" = String, Path, description = "The profile")),
    responses((status = 200, body = Lineage), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn lineage(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Lineage>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let profile = visible(&state, caller, &id).await?;
    let entries = state.store.lineage(caller.hub, profile.id).await?;
    Ok(axum::Json(Lineage {
        profile_id: wire::id(profile.id),
        items: entries.into_iter().map(lineage_entry).collect(),
    }))
}
