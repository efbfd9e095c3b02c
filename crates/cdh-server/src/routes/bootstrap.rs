//! Bootstrap: organizations (created by the operator) and their API tokens.
//!
//! Each organization gets a hub of its own, unless `brand_organization_id` names an existing
//! organization of the same brand: the new one then joins that hub, so that a partner can
//! later connect them (`POST /v1/partner/connections`). Unify settings and the hub scope are
//! per hub. Organization ids carry their hub (`"<hub>-<org>"`, see `wire`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cdh_core::Region;
use cdh_store::model::TokenInfo;
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
        .routes(routes!(create_organization))
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
}

/// `POST /v1/organizations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrganization {
    /// A display name.
    pub name: String,
    /// The ISO 3166 region national phone numbers are read in (`TW`).
    pub default_region: String,
    /// An existing organization of the same brand whose hub the new one joins.
    #[serde(default)]
    pub brand_organization_id: Option<String>,
}

/// An organization.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrganizationView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its phone region.
    pub default_region: String,
    /// Creation time.
    pub created_at: String,
}

/// `POST /v1/organizations/{id}/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// A name to recognise it by.
    pub name: String,
    /// Some of `profiles:read`, `profiles:write`, `admin`.
    pub scopes: Vec<String>,
}

/// A token as issued: the secret is shown only in this response.
#[derive(Debug, Serialize, ToSchema)]
pub struct IssuedTokenView {
    /// The token's id (for revocation).
    pub id: String,
    /// The secret to send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// A token without its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: String,
    /// Revocation time, if revoked.
    pub revoked_at: Option<String>,
}

/// A list of tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    /// The tokens, oldest first.
    pub items: Vec<TokenView>,
    /// Always null: the list is complete.
    pub next_cursor: Option<String>,
}

/// Creates an organization (operator only).
#[utoipa::path(post, path = "/v1/organizations", tag = "bootstrap", request_body = NewOrganization,
    responses((status = 201, body = OrganizationView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_organization(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<NewOrganization>,
) -> ApiResult<(StatusCode, axum::Json<OrganizationView>)> {
    principal.operator()?;
    let name = body.name.trim();
    if name.is_empty() {
        return Err(ApiError::invalid_field("name", "`name` must not be empty"));
    }
    let region = body.default_region.trim().to_ascii_uppercase();
    if Region::parse(&region).is_err() {
        return Err(ApiError::invalid_field(
            "default_region",
            format!("`default_region` must be an ISO 3166 region code such as TW, not {region:?}"),
        ));
    }
    let hub = match &body.brand_organization_id {
        Some(brand) => {
            let brand = OrgRef::parse(brand).map_err(|_| unknown_brand())?;
            state
                .store
                .get_organization(brand.hub, brand.org)
                .await
                .map_err(|e| match e {
                    cdh_store::StoreError::NotFound(_) => unknown_brand(),
                    other => other.into(),
                })?;
            brand.hub
        }
        None => state.store.create_hub(name).await?,
    };
    let org = state.store.create_organization(hub, name, &region).await?;
    let stored = state.store.get_organization(hub, org).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(OrganizationView {
            id: OrgRef { hub, org }.to_string(),
            name: stored.name,
            default_region: stored.default_region,
            created_at: wire::time(stored.created_at),
        }),
    ))
}

fn unknown_brand() -> ApiError {
    ApiError::invalid_field(
        "brand_organization_id",
        "`brand_organization_id` names no organization",
    )
}

/// The organization of the path, if the caller may manage it (its tokens, its users): the
/// operator, or the organization's own admin. Another organization's admin is told it does
/// not exist.
pub(crate) async fn managed_org(
    state: &AppState,
    principal: &Principal,
    id: &str,
) -> ApiResult<OrgRef> {
    let target = OrgRef::parse(id)?;
    match principal {
        Principal::Operator => {}
        Principal::Organization(caller) => {
            if caller.hub != target.hub || caller.org != target.org {
                return Err(ApiError::not_found("organization"));
            }
            principal.org(Scope::Admin)?;
        }
    }
    state.store.get_organization(target.hub, target.org).await?;
    Ok(target)
}

/// Issues a token (operator, or the organization's admin). The secret is shown only here.
#[utoipa::path(post, path = "/v1/organizations/{id}/tokens", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization")), request_body = NewToken,
    responses((status = 201, body = IssuedTokenView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewToken>,
) -> ApiResult<(StatusCode, axum::Json<IssuedTokenView>)> {
    let org = managed_org(&state, &principal, &id).await?;
    let scopes = checked_scopes(&body.name, &body.scopes)?;
    let issued = state
        .store
        .create_token(org.hub, org.org, body.name.trim(), &scopes)
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(IssuedTokenView {
            id: wire::id(issued.id),
            token: issued.token,
            name: body.name.trim().to_owned(),
            scopes,
        }),
    ))
}

/// Lists an organization's tokens, without their secrets.
#[utoipa::path(get, path = "/v1/organizations/{id}/tokens", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization")),
    responses((status = 200, body = TokenList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<TokenList>> {
    let org = managed_org(&state, &principal, &id).await?;
    let tokens = state.store.list_tokens(org.hub, org.org).await?;
    Ok(axum::Json(TokenList {
        items: tokens.into_iter().map(token_view).collect(),
        next_cursor: None,
    }))
}

/// A token request's scopes, sorted and without repeats, once its name and scopes are valid.
pub(crate) fn checked_scopes(name: &str, scopes: &[String]) -> ApiResult<Vec<String>> {
    if name.trim().is_empty() {
        return Err(ApiError::invalid_field("name", "`name` must not be empty"));
    }
    if scopes.is_empty() {
        return Err(ApiError::invalid_field(
            "scopes",
            "`scopes` must name at least one of profiles:read, profiles:write, admin",
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| !Scope::ALL.contains(&s.as_str())) {
        return Err(ApiError::invalid_field(
            "scopes",
            format!("unknown scope {bad:?}; use profiles:read, profiles:write or admin"),
        ));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

fn token_view(t: TokenInfo) -> TokenView {
    TokenView {
        id: wire::id(t.id),
        name: t.name,
        scopes: t.scopes,
        created_at: wire::time(t.created_at),
        revoked_at: wire::time_opt(t.revoked_at),
    }
}

/// Revokes a token at once.
#[utoipa::path(delete, path = "/v1/organizations/{id}/tokens/{token_id}", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization"),
           ("token_id" = String, Path, description = "The token")),
    responses((status = 204, description = "Revoked"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = managed_org(&state, &principal, &id).await?;
    let token_id = wire::parse_id(&token_id, "token")?;
    let tokens = state.store.list_tokens(org.hub, org.org).await?;
    if !tokens.iter().any(|t| t.id == token_id) {
        return Err(ApiError::not_found("token"));
    }
    state.store.revoke_token(org.hub, token_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
