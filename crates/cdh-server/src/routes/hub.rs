//! Hub scope: `PUT /v1/hub` (cross-product unification, admin) and
//! `POST /v1/partner/connections` (the operator connects organizations of one brand).
//!
//! Both change which contacts may merge; stored contacts move into the new scope at the
//! next apply of a unify setting (with `cross_product` on, LINE contacts unify across
//! products only when `line_uid` is a key; the preview says so in its notes).

use axum::extract::State;
use axum::http::StatusCode;
use cdh_store::model::{HubId, HubSettings, OrganizationId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::state::AppState;
use crate::wire::{self, OrgRef};

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_hub, put_hub))
        .routes(routes!(connect))
}

/// A partner connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Its id.
    pub id: String,
    /// The organizations it connects.
    pub organization_ids: Vec<String>,
    /// Where the brand disclosed the data sharing.
    pub disclosure_url: String,
    /// Who connected them.
    pub actor: String,
    /// When.
    pub created_at: String,
}

/// Which contacts may merge with each other.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    /// Whether CAAC and MAAC contacts unify together.
    pub cross_product: bool,
    /// Partner connections between organizations of the brand.
    pub connections: Vec<ConnectionView>,
}

/// The scope as answered.
pub fn scope_view(settings: HubSettings, hub: HubId) -> ScopeView {
    ScopeView {
        cross_product: settings.cross_product,
        connections: settings
            .connections
            .into_iter()
            .map(|c| ConnectionView {
                id: wire::id(c.id),
                organization_ids: c
                    .organization_ids
                    .into_iter()
                    .map(|org| OrgRef { hub, org }.to_string())
                    .collect(),
                disclosure_url: c.disclosure_url,
                actor: c.actor,
                created_at: wire::time(c.at),
            })
            .collect(),
    }
}

/// `PUT /v1/hub`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HubRequest {
    /// Unify MAAC and CAAC contacts of the organization together.
    pub cross_product: bool,
}

/// The hub scope.
#[utoipa::path(get, path = "/v1/hub", tag = "hub",
    responses((status = 200, body = ScopeView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn get_hub(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<axum::Json<ScopeView>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let settings = state.store.hub_settings(caller.hub).await?;
    Ok(axum::Json(scope_view(settings, caller.hub)))
}

/// Switches cross-product unification (the admin center's "Customer data hub") on or off.
#[utoipa::path(put, path = "/v1/hub", tag = "hub", request_body = HubRequest,
    responses((status = 200, body = ScopeView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn put_hub(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<HubRequest>,
) -> ApiResult<axum::Json<ScopeView>> {
    let caller = principal.org(Scope::Admin)?;
    state
        .store
        .set_cross_product(caller.hub, body.cross_product)
        .await?;
    let settings = state.store.hub_settings(caller.hub).await?;
    Ok(axum::Json(scope_view(settings, caller.hub)))
}

/// `POST /v1/partner/connections`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRequest {
    /// Two or more organizations of one brand (created with `brand_organization_id`).
    pub organization_ids: Vec<String>,
    /// Where the brand publicly disclosed the data sharing (http or https URL).
    pub disclosure_url: String,
}

/// Connects organizations of one brand into one unification scope (the operator, as the
/// partner), recording the brand's disclosure.
#[utoipa::path(post, path = "/v1/partner/connections", tag = "hub", request_body = ConnectionRequest,
    responses((status = 201, body = ConnectionView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn connect(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ConnectionRequest>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionView>)> {
    principal.operator()?;
    let url = body.disclosure_url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 12 {
        return Err(ApiError::invalid_field(
            "disclosure_url",
            "`disclosure_url` must be the http(s) address of the brand's public disclosure",
        ));
    }
    let mut orgs = Vec::with_capacity(body.organization_ids.len());
    for id in &body.organization_ids {
        let org = OrgRef::parse(id).map_err(|_| {
            ApiError::invalid_field("organization_ids", format!("no organization {id:?}"))
        })?;
        state
            .store
            .get_organization(org.hub, org.org)
            .await
            .map_err(|_| {
                ApiError::invalid_field("organization_ids", format!("no organization {id:?}"))
            })?;
        if !orgs.contains(&org) {
            orgs.push(org);
        }
    }
    if orgs.len() < 2 {
        return Err(ApiError::invalid_field(
            "organization_ids",
            "a connection needs two or more distinct organizations",
        ));
    }
    let hub = orgs[0].hub;
    if orgs.iter().any(|o| o.hub != hub) {
        return Err(ApiError::invalid_field(
            "organization_ids",
            "these organizations are not of one brand: create them with brand_organization_id",
        ));
    }
    let ids: Vec<OrganizationId> = orgs.iter().map(|o| o.org).collect();
    let actor = principal.actor();
    let id = state
        .store
        .connect_organizations(hub, &ids, url, &actor)
        .await
        .map_err(|e| ApiError::from(e).with_field("organization_ids"))?;
    let settings = state.store.hub_settings(hub).await?;
    let view = scope_view(settings, hub)
        .connections
        .into_iter()
        .find(|c| c.id == wire::id(id))
        .ok_or_else(|| ApiError::internal("a connection just made is not listed"))?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}
