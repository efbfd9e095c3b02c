//! Console users of an organization: create one (`POST /v1/organizations/{id}/users`), list
//! them, change one's password or role (`PATCH .../users/{user_id}`) and remove one
//! (`DELETE`). The operator or the organization's admin may; another organization is told
//! the organization does not exist. Password hashes never leave the server; a new password
//! and a removal end the user's console sessions at once.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cdh_store::model::{ConsoleUser, Role, UserId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::bootstrap::managed_org;
use crate::state::AppState;
use crate::wire::{self, OrgRef};

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_user, list_users))
        .routes(routes!(update_user, remove_user))
}

/// What a console user may do.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Manages the organization.
    Admin,
    /// Works with contacts and profiles.
    Agent,
}

impl From<UserRole> for Role {
    fn from(role: UserRole) -> Self {
        match role {
            UserRole::Admin => Role::Admin,
            UserRole::Agent => Role::Agent,
        }
    }
}

impl From<Role> for UserRole {
    fn from(role: Role) -> Self {
        match role {
            Role::Admin => UserRole::Admin,
            Role::Agent => UserRole::Agent,
        }
    }
}

/// `POST /v1/organizations/{id}/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Their email address (trimmed and lower-cased); unique in the organization.
    pub email: String,
    /// Their password, at least 10 characters; kept only as an argon2 hash.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
    /// What they may do.
    pub role: UserRole,
}

/// `PATCH /v1/organizations/{id}/users/{user_id}`: at least one of the two.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// A new password, at least 10 characters; every console session of the user ends.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: Option<String>,
    /// A new role, in force from the user's next request.
    pub role: Option<UserRole>,
}

/// A console user (never their password or its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    /// Their id.
    pub id: String,
    /// Their organization (`"<hub>-<org>"`).
    pub organization_id: String,
    /// Their email address, normalised.
    pub email: String,
    /// What they may do.
    pub role: UserRole,
    /// Creation time.
    pub created_at: String,
}

/// An organization's console users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserList {
    /// The users, by email.
    pub items: Vec<UserView>,
    /// Always null: the list is complete.
    pub next_cursor: Option<String>,
}

/// Creates a console user who signs in with this email and password (operator, or the
/// organization's admin).
#[utoipa::path(post, path = "/v1/organizations/{id}/users", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization")), request_body = NewUser,
    responses((status = 201, body = UserView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, description = "The email is taken in this organization", body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn create_user(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, axum::Json<UserView>)> {
    let org = managed_org(&state, &principal, &id).await?;
    let user = crate::users::create_user(
        &state,
        org.hub,
        org.org,
        &body.email,
        &body.password,
        body.role.into(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(user_view(org, user))))
}

/// Lists an organization's console users by email.
#[utoipa::path(get, path = "/v1/organizations/{id}/users", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization")),
    responses((status = 200, body = UserList), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_users(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<UserList>> {
    let org = managed_org(&state, &principal, &id).await?;
    let users = state.store.list_users(org.hub, org.org).await?;
    Ok(axum::Json(UserList {
        items: users.into_iter().map(|u| user_view(org, u)).collect(),
        next_cursor: None,
    }))
}

/// Changes a console user's password (ending every session of theirs at once) or role
/// (operator, or the organization's admin).
#[utoipa::path(patch, path = "/v1/organizations/{id}/users/{user_id}", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization"),
           ("user_id" = String, Path, description = "The user")),
    request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)))]
async fn update_user(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UserPatch>,
) -> ApiResult<axum::Json<UserView>> {
    let org = managed_org(&state, &principal, &id).await?;
    let user_id: UserId = wire::parse_id(&user_id, "user")?;
    if body.password.is_none() && body.role.is_none() {
        return Err(ApiError::invalid_field(
            "password",
            "give a new `password`, a new `role`, or both",
        ));
    }
    let user = crate::users::update_user(
        &state,
        org.hub,
        org.org,
        user_id,
        body.password.as_deref(),
        body.role.map(Role::from),
    )
    .await?;
    Ok(axum::Json(user_view(org, user)))
}

/// Removes a console user; their console sessions end with them (operator, or the
/// organization's admin).
#[utoipa::path(delete, path = "/v1/organizations/{id}/users/{user_id}", tag = "bootstrap",
    params(("id" = String, Path, description = "The organization"),
           ("user_id" = String, Path, description = "The user")),
    responses((status = 204, description = "Removed"), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn remove_user(
    State(state): State<AppState>,
    principal: Principal,
    Path((id, user_id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let org = managed_org(&state, &principal, &id).await?;
    let user_id: UserId = wire::parse_id(&user_id, "user")?;
    state.store.remove_user(org.hub, org.org, user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn user_view(org: OrgRef, user: ConsoleUser) -> UserView {
    UserView {
        id: wire::id(user.id),
        organization_id: OrgRef {
            hub: org.hub,
            org: user.organization_id,
        }
        .to_string(),
        email: user.email,
        role: user.role.into(),
        created_at: wire::time(user.created_at),
    }
}
