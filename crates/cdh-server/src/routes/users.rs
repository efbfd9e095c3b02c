//! Console users of an organization: create one (`POST /v1/organizations/{id}/users`) and
//! list them. The operator or the organization's admin may; another organization is told
//! the organization does not exist. Password hashes never leave the server.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use cdh_store::model::{ConsoleUser, Role};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiResult, ErrorBody};
use crate::json::ApiJson;
use crate::routes::bootstrap::managed_org;
use crate::state::AppState;
use crate::wire::{self, OrgRef};

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_user, list_users))
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
