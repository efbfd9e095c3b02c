//! Webhook endpoints: register (`POST /v1/webhooks`, the signing secret shown once), list,
//! remove, and each endpoint's delivery log. Delivery itself is the worker's
//! (`worker::webhooks`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cdh_store::model::{DeliveryLog, WebhookEndpoint, WebhookId};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{OrgCaller, Principal, Scope, new_secret};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::{ApiJson, ApiQuery};
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(list_deliveries))
}

/// An endpoint to register.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where to POST events (`http` or `https`).
    pub url: String,
}

/// A registered endpoint, with its secret (shown only here).
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhook {
    /// Its id.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// The key of the `X-CDH-Signature` HMAC; shown once, keep it.
    pub secret: String,
    /// When it was registered.
    pub created_at: String,
}

/// A registered endpoint (without its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Its id.
    pub id: String,
    /// Where events go.
    pub url: String,
    /// When it was registered.
    pub created_at: String,
}

/// The organization's endpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// The endpoints, oldest first.
    pub items: Vec<WebhookView>,
    /// Always null: the list is never paged.
    pub next_cursor: Option<String>,
}

/// One delivery try.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// The event's id (as in `GET /v1/events` and the `Idempotency-Key` header).
    pub event_id: String,
    /// Which try, from 1.
    pub attempt: u32,
    /// `succeeded` (a 2xx answer) or `failed`.
    pub outcome: DeliveryOutcome,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it failed without an answer (timeout, refused connection, ...).
    pub error: Option<String>,
    /// When it was tried.
    pub at: String,
    /// When the next try is due; null when none will be made.
    pub next_attempt_at: Option<String>,
}

/// How a try ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Succeeded,
    /// It did not.
    Failed,
}

/// An endpoint's tries.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryList {
    /// Tries, newest first.
    pub items: Vec<DeliveryView>,
    /// Always null: the newest `limit` tries are shown.
    pub next_cursor: Option<String>,
}

/// How many tries to show.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// At most this many, newest first (1 to 500, default 100).
    pub limit: Option<u32>,
}

/// Registers an endpoint that receives the events feed, signed.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = NewWebhook,
    responses(
        (status = 201, description = "Registered; the secret is shown only now", body = CreatedWebhook),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `admin`", body = ErrorBody),
        (status = 422, description = "Not an http(s) URL, or an unknown field", body = ErrorBody),
    ))]
async fn create_webhook(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewWebhook>,
) -> ApiResult<(StatusCode, axum::Json<CreatedWebhook>)> {
    let caller = principal.org(Scope::Admin)?;
    let url = parse_url(&body.url, state.config.webhook_allow_private).await?;
    let secret = new_secret("whsec_");
    let id = state
        .store
        .create_webhook(caller.hub, caller.org, &url, &secret)
        .await?;
    let created = find(&state, caller, id).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(CreatedWebhook {
            id: wire::id(id),
            url: created.url,
            secret,
            created_at: wire::time(created.created_at),
        }),
    ))
}

/// The organization's endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses(
        (status = 200, description = "The endpoints", body = WebhookList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `admin`", body = ErrorBody),
    ))]
async fn list_webhooks(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<WebhookList>> {
    let caller = principal.org(Scope::Admin)?;
    let items = state
        .store
        .list_webhooks(caller.hub, caller.org)
        .await?
        .into_iter()
        .map(|w| WebhookView {
            id: wire::id(w.id),
            url: w.url,
            created_at: wire::time(w.created_at),
        })
        .collect();
    Ok(axum::Json(WebhookList {
        items,
        next_cursor: None,
    }))
}

/// Removes an endpoint; no more events go to it.
#[utoipa::path(delete, path = "/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such endpoint for this organization", body = ErrorBody),
    ))]
async fn delete_webhook(
    State(state): State<AppState>,
    principal: Principal,
    Path(webhook_id): Path<String>,
) -> ApiResult<StatusCode> {
    let caller = principal.org(Scope::Admin)?;
    let id = wire::parse_id(&webhook_id, "webhook")?;
    find(&state, caller, id).await?;
    state.store.delete_webhook(caller.hub, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's delivery log: every try, newest first.
#[utoipa::path(get, path = "/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(("webhook_id" = String, Path, description = "The endpoint's id"), DeliveryQuery),
    responses(
        (status = 200, description = "The tries", body = DeliveryList),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "The token lacks `admin`", body = ErrorBody),
        (status = 404, description = "No such endpoint for this organization", body = ErrorBody),
        (status = 422, description = "A bad `limit`", body = ErrorBody),
    ))]
async fn list_deliveries(
    State(state): State<AppState>,
    principal: Principal,
    Path(webhook_id): Path<String>,
    ApiQuery(query): ApiQuery<DeliveryQuery>,
) -> ApiResult<axum::Json<DeliveryList>> {
    let caller = principal.org(Scope::Admin)?;
    let id = wire::parse_id(&webhook_id, "webhook")?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "`limit` must be between 1 and 500",
        ));
    }
    find(&state, caller, id).await?;
    let items = state
        .store
        .deliveries(caller.hub, id, limit)
        .await?
        .into_iter()
        .map(view_delivery)
        .collect();
    Ok(axum::Json(DeliveryList {
        items,
        next_cursor: None,
    }))
}

/// The caller's endpoint `id`; another organization's is `404`.
async fn find(state: &AppState, caller: &OrgCaller, id: WebhookId) -> ApiResult<WebhookEndpoint> {
    state
        .store
        .list_webhooks(caller.hub, caller.org)
        .await?
        .into_iter()
        .find(|w| w.id == id)
        .ok_or_else(|| ApiError::not_found("webhook"))
}

fn view_delivery(d: DeliveryLog) -> DeliveryView {
    let succeeded = d.status.is_some_and(|s| (200..300).contains(&s));
    DeliveryView {
        event_id: d.event_seq.to_string(),
        attempt: d.attempt,
        outcome: if succeeded {
            DeliveryOutcome::Succeeded
        } else {
            DeliveryOutcome::Failed
        },
        status_code: d.status,
        error: d.error,
        at: wire::time(d.at),
        next_attempt_at: wire::time_opt(d.next_attempt_at),
    }
}

/// An absolute `http` or `https` URL with a host, no user info, and a public target.
async fn parse_url(text: &str, allow_private: bool) -> ApiResult<String> {
    crate::worker::targets::check_url(text, allow_private)
        .await
        .map_err(|refusal| ApiError::invalid_field("url", refusal.message()))
}
