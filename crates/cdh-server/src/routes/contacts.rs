//! Contacts: upsert (`POST /v1/contacts`, auto-unified before the response), read, notes and
//! conversation records.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cdh_store::model::{Contact, ContactInput, Unification};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access;
use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::json::ApiJson;
use crate::metrics::Counter;
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upsert_contact))
        .routes(routes!(get_contact))
        .routes(routes!(add_note))
        .routes(routes!(add_conversation))
}

/// `POST /v1/contacts`: a field left out keeps its stored value; `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactRequest {
    /// The channel it was seen on.
    pub channel_id: String,
    /// The channel-scoped id (LINE uid, page-scoped id, phone, ...).
    pub external_id: String,
    /// Display name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_name: Option<Option<String>>,
    /// Email (identifier).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_email: Option<Option<String>>,
    /// Mobile phone, national or E.164 (identifier).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub display_mobile: Option<Option<String>>,
    /// The phone as the channel supplied it; never used to merge.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub original_mobile: Option<Option<String>>,
    /// LINE user id, `U` + 32 hex (identifier).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub line_uid: Option<Option<String>>,
    /// The brand's member id (identifier).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub customer_id: Option<Option<String>>,
    /// A connector's tie id (identifier).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub connect_id: Option<Option<String>>,
    /// Gender.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub gender: Option<Option<String>>,
    /// Birthday.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub birthday: Option<Option<String>>,
    /// Tags (replace the stored ones when given).
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    /// Custom fields (replace the stored ones when given).
    #[serde(default)]
    pub custom_fields: Option<BTreeMap<String, String>>,
    /// When the source changed these fields (RFC 3339); older writes lose field by field.
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// Keeps "absent" (`None`) apart from "null" (`Some(None)`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// An identifier value that cannot be used to merge.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidFieldView {
    /// The field.
    pub field: String,
    /// Why (`not_a_phone`, `placeholder`, ...).
    pub reason: String,
}

/// A contact.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    /// Its id.
    pub id: String,
    /// Its channel.
    pub channel_id: String,
    /// Its channel-scoped id.
    pub external_id: String,
    /// The profile it is unified into.
    pub profile_id: String,
    /// Its fields as given.
    pub fields: BTreeMap<String, String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its custom fields.
    pub custom_fields: BTreeMap<String, String>,
    /// Identifier values stored as given but never used to merge.
    pub invalid_fields: Vec<InvalidFieldView>,
    /// Creation time.
    pub created_at: String,
    /// Last update.
    pub updated_at: String,
}

/// The answer to an upsert: the contact and what unification did.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertedView {
    /// The contact.
    #[serde(flatten)]
    pub contact: ContactView,
    /// What happened to profiles.
    pub unification: UpsertOutcomeView,
}

/// What an upsert did to profiles.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertOutcomeView {
    /// `created`, `joined`, `unchanged` or `merged`.
    pub outcome: String,
    /// Profiles merged into `profile_id` by this write.
    pub merged_profile_ids: Vec<String>,
    /// Profiles this contact shares a key value with but was kept out of, because together
    /// they would hold two values of a unique field (`GET /v1/unification/conflicts`).
    pub refused_merges: usize,
}

/// A contact as answered.
pub fn view(c: Contact) -> ContactView {
    ContactView {
        id: wire::id(c.id),
        channel_id: wire::id(c.channel_id),
        external_id: c.external_id,
        profile_id: wire::id(c.profile_id),
        fields: c.fields.into_iter().map(|(k, v)| (k, v.value)).collect(),
        tags: c.tags,
        custom_fields: c.custom_fields,
        invalid_fields: c
            .invalid_fields
            .into_iter()
            .map(|f| InvalidFieldView {
                field: f.field,
                reason: f.reason,
            })
            .collect(),
        created_at: wire::time(c.created_at),
        updated_at: wire::time(c.updated_at),
    }
}

/// Inserts or updates a contact by `(channel_id, external_id)` and unifies it before
/// answering: `profile_id` reflects every merge this write caused.
#[utoipa::path(post, path = "/v1/contacts", tag = "contacts", request_body = ContactRequest,
    responses((status = 200, body = UpsertedView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 413, body = ErrorBody),
              (status = 422, body = ErrorBody, description = "invalid_field, value_too_long (1,024 characters), too_many_tags (100), too_many_custom_fields (100), field_name_too_long (64), ...")))]
async fn upsert_contact(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ContactRequest>,
) -> ApiResult<axum::Json<UpsertedView>> {
    let caller = principal.org(Scope::ProfilesWrite)?;
    let channel_id = wire::parse_id(&body.channel_id, "channel").map_err(|_| no_such_channel())?;
    access::own_channel(&state, caller, channel_id)
        .await
        .map_err(|e| match e.code {
            crate::ErrorCode::NotFound => no_such_channel(),
            _ => e,
        })?;
    let external_id = body.external_id.trim();
    if external_id.is_empty() {
        return Err(ApiError::invalid_field(
            "external_id",
            "`external_id` must not be empty",
        ));
    }
    let updated_at = body
        .updated_at
        .as_deref()
        .map(|t| wire::parse_time(t, "updated_at"))
        .transpose()?;
    let mut fields = BTreeMap::new();
    for (name, value) in [
        ("display_name", body.display_name),
        ("display_email", body.display_email),
        ("display_mobile", body.display_mobile),
        ("original_mobile", body.original_mobile),
        ("line_uid", body.line_uid),
        ("customer_id", body.customer_id),
        ("connect_id", body.connect_id),
        ("gender", body.gender),
        ("birthday", body.birthday),
    ] {
        if let Some(value) = value {
            fields.insert(name.to_owned(), value);
        }
    }
    crate::limits::check_contact(&fields, body.tags.as_deref(), body.custom_fields.as_ref())
        .map_err(|exceeded| {
            ApiError::new(ErrorCode::Rejected(exceeded.code), exceeded.message)
                .with_field(&exceeded.field)
        })?;
    let input = ContactInput {
        channel_id,
        external_id: external_id.to_owned(),
        fields,
        tags: body.tags,
        custom_fields: body.custom_fields,
        updated_at,
    };
    let upserted = state
        .store
        .upsert_contact(caller.hub, &input, &caller.actor())
        .await?;
    let (outcome, merged) = match upserted.unification {
        Unification::Created => ("created", Vec::new()),
        Unification::Joined => ("joined", Vec::new()),
        Unification::Unchanged => ("unchanged", Vec::new()),
        Unification::Merged { absorbed, .. } => ("merged", absorbed),
    };
    state
        .metrics
        .count(Counter::ContactsWritten, &["api", outcome], 1);
    state
        .metrics
        .count(Counter::Merges, &["upsert"], merged.len() as u64);
    state.metrics.count(
        Counter::ConflictsRefused,
        &["upsert"],
        upserted.n_refused as u64,
    );
    Ok(axum::Json(UpsertedView {
        contact: view(upserted.contact),
        unification: UpsertOutcomeView {
            outcome: outcome.into(),
            merged_profile_ids: merged.into_iter().map(wire::id).collect(),
            refused_merges: upserted.n_refused,
        },
    }))
}

fn no_such_channel() -> ApiError {
    ApiError::invalid_field(
        "channel_id",
        "`channel_id` names no channel of this organization",
    )
}

/// A contact of the caller's organization.
#[utoipa::path(get, path = "/v1/contacts/{id}", tag = "contacts",
    params(("id" = String, Path, description = "The contact")),
    responses((status = 200, body = ContactView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_contact(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<ContactView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let id = wire::parse_id(&id, "contact")?;
    let contact = access::own_contact(&state, caller, id).await?;
    Ok(axum::Json(view(contact)))
}

/// `POST /v1/contacts/{id}/notes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNote {
    /// The note.
    pub text: String,
    /// Who wrote it.
    pub author: String,
}

/// `POST /v1/contacts/{id}/conversations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConversation {
    /// `in` (from the customer) or `out` (to the customer).
    pub direction: Direction,
    /// The message.
    pub text: String,
    /// When it was sent (RFC 3339).
    pub sent_at: String,
}

/// A message's direction.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// From the customer.
    In,
    /// To the customer.
    Out,
}

/// A note or conversation record as stored.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineRecord {
    /// Its id.
    pub id: String,
    /// `note` or `conversation`.
    pub kind: String,
    /// The contact it is attached to.
    pub contact_id: String,
    /// The text.
    pub text: String,
    /// The note's author, or the conversation's direction (`in`/`out`).
    pub author: String,
    /// When.
    pub at: String,
}

/// Adds a note to a contact.
#[utoipa::path(post, path = "/v1/contacts/{id}/notes", tag = "contacts",
    params(("id" = String, Path, description = "The contact")), request_body = NewNote,
    responses((status = 201, body = TimelineRecord), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn add_note(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewNote>,
) -> ApiResult<(StatusCode, axum::Json<TimelineRecord>)> {
    let caller = principal.org(Scope::ProfilesWrite)?;
    let id = wire::parse_id(&id, "contact")?;
    access::own_contact(&state, caller, id).await?;
    if body.text.trim().is_empty() {
        return Err(ApiError::invalid_field("text", "`text` must not be empty"));
    }
    let at = state.now();
    let entry = state
        .store
        .add_note(caller.hub, id, &body.text, &body.author, at)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TimelineRecord {
            id: wire::id(entry),
            kind: "note".into(),
            contact_id: wire::id(id),
            text: body.text,
            author: body.author,
            at: wire::time(at),
        }),
    ))
}

/// Adds a conversation record to a contact.
#[utoipa::path(post, path = "/v1/contacts/{id}/conversations", tag = "contacts",
    params(("id" = String, Path, description = "The contact")), request_body = NewConversation,
    responses((status = 201, body = TimelineRecord), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn add_conversation(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewConversation>,
) -> ApiResult<(StatusCode, axum::Json<TimelineRecord>)> {
    let caller = principal.org(Scope::ProfilesWrite)?;
    let id = wire::parse_id(&id, "contact")?;
    access::own_contact(&state, caller, id).await?;
    let sent_at = wire::parse_time(&body.sent_at, "sent_at")?;
    let direction = match body.direction {
        Direction::In => "in",
        Direction::Out => "out",
    };
    let entry = state
        .store
        .add_conversation(caller.hub, id, direction, &body.text, sent_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(TimelineRecord {
            id: wire::id(entry),
            kind: "conversation".into(),
            contact_id: wire::id(id),
            text: body.text,
            author: direction.into(),
            at: wire::time(sent_at),
        }),
    ))
}
