//! Channels: `POST /v1/channels` (admin) and `GET /v1/channels`.

use axum::extract::State;
use axum::http::StatusCode;
use cdh_store::model::{Channel, NewChannel};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_channel, list_channels))
}

/// A channel's messaging type.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ChannelType {
    /// A LINE official account.
    Line,
    /// Facebook Messenger.
    Messenger,
    /// Instagram.
    Instagram,
    /// WhatsApp.
    Whatsapp,
    /// SMS.
    Sms,
    /// Email.
    Email,
    /// Web chat.
    Webchat,
    /// Records created through the API.
    Api,
}

/// The product a channel belongs to.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// The conversational inbox.
    Caac,
    /// Marketing automation.
    Maac,
}

/// `POST /v1/channels`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelRequest {
    /// The messaging type.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// The product.
    pub product: Product,
    /// A display name.
    pub name: String,
    /// The external account it belongs to (a LINE provider, a Facebook page, ...).
    pub external_account_id: String,
}

/// A channel.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelView {
    /// Its id.
    pub id: String,
    /// The messaging type.
    #[serde(rename = "type")]
    pub channel_type: String,
    /// The product.
    pub product: String,
    /// Its name.
    pub name: String,
    /// The external account.
    pub external_account_id: String,
    /// Creation time.
    pub created_at: String,
}

/// The organization's channels.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChannelList {
    /// The channels, oldest first.
    pub items: Vec<ChannelView>,
    /// Always null: the list is complete.
    pub next_cursor: Option<String>,
}

fn as_text<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// A channel as answered.
pub fn view(c: Channel) -> ChannelView {
    ChannelView {
        id: wire::id(c.id),
        channel_type: c.channel_type,
        product: c.product,
        name: c.name,
        external_account_id: c.external_account_id,
        created_at: wire::time(c.created_at),
    }
}

/// Creates a channel of the caller's organization (admin).
#[utoipa::path(post, path = "/v1/channels", tag = "channels", request_body = NewChannelRequest,
    responses((status = 201, body = ChannelView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_channel(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewChannelRequest>,
) -> ApiResult<(StatusCode, axum::Json<ChannelView>)> {
    let caller = principal.org(Scope::Admin)?;
    let channel = add_channel(&state, caller, body).await?;
    Ok((StatusCode::CREATED, axum::Json(view(channel))))
}

/// Adds a channel to the caller's organization (the API and the console's Settings ->
/// Channels both do it here).
pub(crate) async fn add_channel(
    state: &AppState,
    caller: &crate::auth::OrgCaller,
    body: NewChannelRequest,
) -> ApiResult<Channel> {
    if body.name.trim().is_empty() {
        return Err(ApiError::invalid_field("name", "`name` must not be empty"));
    }
    let new = NewChannel {
        organization_id: caller.org,
        channel_type: as_text(body.channel_type),
        product: as_text(body.product),
        name: body.name.trim().to_owned(),
        external_account_id: body.external_account_id.trim().to_owned(),
    };
    let id = state.store.create_channel(caller.hub, &new).await?;
    Ok(state.store.get_channel(caller.hub, id).await?)
}

/// The caller's organization's channels.
#[utoipa::path(get, path = "/v1/channels", tag = "channels",
    responses((status = 200, body = ChannelList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn list_channels(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<ChannelList>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let channels = state.store.list_channels(caller.hub, caller.org).await?;
    Ok(axum::Json(ChannelList {
        items: channels.into_iter().map(view).collect(),
        next_cursor: None,
    }))
}
