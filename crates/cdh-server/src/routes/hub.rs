//! Hub scope: `PUT /v1/hub` (cross-product unification, admin) and
//! `POST /v1/partner/connections` (the operator connects organizations of one brand).
//!
//! Both change which contacts may merge, from the next apply of a unify setting on: stored
//! contacts move into the new scope then, and new contacts keep unifying in the applied scope
//! until then (`cross_product_applied` says which is in force). An organization sees and changes only its own realm: its
//! own scope, or its connection's (with `cross_product` on, LINE contacts unify across
//! products only when `line_uid` is a key; the preview says so in its notes).

use axum::extract::State;
use axum::http::StatusCode;
use cdh_store::model::{Connection, HubId, OrganizationId, RealmSettings};
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
    /// When the connected organizations' first shared setting was applied (until then each
    /// unifies its own contacts under its own setting).
    pub unified_at: Option<String>,
}

/// Which contacts may merge with each other.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScopeView {
    /// Whether CAAC and MAAC contacts unify together, as last switched: it takes effect with
    /// the next apply of a unify setting (preview it first).
    pub cross_product: bool,
    /// The switch in force: as the last apply applied it (false before any). New contacts
    /// unify by this one until the next apply.
    pub cross_product_applied: bool,
    /// The organizations whose contacts unify together: the caller's alone, or every
    /// organization of its partner connection.
    pub organization_ids: Vec<String>,
    /// The partner connection the caller's organization is in (none, or one).
    pub connections: Vec<ConnectionView>,
}

/// A connection as answered.
pub fn connection_view(c: Connection, hub: HubId) -> ConnectionView {
    ConnectionView {
        id: wire::id(c.id),
        organization_ids: c
            .organization_ids
            .into_iter()
            .map(|org| OrgRef { hub, org }.to_string())
            .collect(),
        disclosure_url: c.disclosure_url,
        actor: c.actor,
        created_at: wire::time(c.at),
        unified_at: c.unified_at.map(wire::time),
    }
}

/// The scope of an organization's realm as answered: nothing about organizations outside it.
pub fn scope_view(settings: RealmSettings, hub: HubId) -> ScopeView {
    ScopeView {
        cross_product: settings.cross_product,
        cross_product_applied: settings.cross_product_applied,
        organization_ids: settings
            .organizations
            .iter()
            .map(|&org| OrgRef { hub, org }.to_string())
            .collect(),
        connections: settings
            .connection
            .into_iter()
            .map(|c| connection_view(c, hub))
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
    let settings = state.store.realm_settings(caller.hub, caller.org).await?;
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
        .set_cross_product(caller.hub, caller.org, body.cross_product)
        .await?;
    let settings = state.store.realm_settings(caller.hub, caller.org).await?;
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
              (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "already_connected"),
              (status = 422, body = ErrorBody)))]
async fn connect(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ConnectionRequest>,
) -> ApiResult<(StatusCode, axum::Json<ConnectionView>)> {
    principal.operator()?;
    let url = disclosure_url(&body.disclosure_url)?;
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
    let connection = state
        .store
        .connect_organizations(hub, &ids, &url, &actor)
        .await
        .map_err(|e| ApiError::from(e).with_field("organization_ids"))?;
    Ok((
        StatusCode::CREATED,
        axum::Json(connection_view(connection, hub)),
    ))
}

/// At most this many characters in a disclosure address.
const MAX_DISCLOSURE_URL: usize = 2048;

/// The disclosure address, if it is an absolute http(s) URL with a host.
fn disclosure_url(given: &str) -> ApiResult<String> {
    let refuse = || {
        ApiError::invalid_field(
            "disclosure_url",
            "`disclosure_url` must be the absolute http(s) address (with a host) of the brand's \
             public disclosure",
        )
    };
    let given = given.trim();
    if given.len() > MAX_DISCLOSURE_URL || crate::limits::has_hidden_chars(given) {
        return Err(refuse());
    }
    // `https:///x` would parse with `x` as its host: the host must follow `//` at once.
    let host_follows = given
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.starts_with('/') && !rest.starts_with('\\'));
    if !host_follows {
        return Err(refuse());
    }
    let url = url::Url::parse(given).map_err(|_| refuse())?;
    let has_host = url.host_str().is_some_and(|h| !h.is_empty());
    if !matches!(url.scheme(), "http" | "https") || !has_host || !url.username().is_empty() {
        return Err(refuse());
    }
    Ok(url.to_string())
}
