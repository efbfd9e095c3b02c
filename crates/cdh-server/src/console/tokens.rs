//! Settings → API tokens: create one (its secret is shown once, on the page that created it),
//! list them (never their secrets), and revoke one, which takes effect at once.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::console::forms::{CsrfForm, NoFields};
use crate::console::page::{Layout, PageError, render_status};
use crate::console::profile::short_time;
use crate::console::session::Viewer;
use crate::error::ApiError;
use crate::routes::bootstrap::checked_scopes;
use crate::state::AppState;
use crate::wire;

struct TokenRow {
    id: String,
    name: String,
    scopes: String,
    created_at: String,
    revoked_at: Option<String>,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
struct TokensPage {
    l: Layout,
    tokens: Vec<TokenRow>,
    new_token: Option<(String, String)>,
}

/// `GET /settings/tokens`.
pub async fn page(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.admin()?;
    tokens_page(&state, &viewer, StatusCode::OK, None, None).await
}

async fn tokens_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    new_token: Option<(String, String)>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let tokens = state
        .store
        .list_tokens(viewer.hub, viewer.user.organization_id)
        .await?
        .into_iter()
        .rev()
        .map(|t| TokenRow {
            id: wire::id(t.id),
            name: t.name,
            scopes: t.scopes.join(", "),
            created_at: short_time(t.created_at),
            revoked_at: t.revoked_at.map(short_time),
        })
        .collect();
    let mut l = Layout::new(viewer, "tokens", "API tokens");
    if let Some(error) = error {
        l = l.flash("error", error);
    }
    Ok(render_status(
        status,
        &TokensPage {
            l,
            tokens,
            new_token,
        },
    ))
}

/// The create form: a name and the ticked scopes.
#[derive(Debug, Deserialize)]
pub struct NewTokenForm {
    name: String,
    #[serde(default)]
    scopes: Vec<String>,
}

/// `POST /settings/tokens`: the page again, with the new secret shown this once.
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    CsrfForm(form): CsrfForm<NewTokenForm>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let scopes = match checked_scopes(&form.name, &form.scopes) {
        Ok(scopes) => scopes,
        Err(e) => {
            let message = format!("The token was not created: {}", e.message);
            return tokens_page(&state, &viewer, e.code.status(), None, Some(message)).await;
        }
    };
    let issued = state
        .store
        .create_token(
            viewer.hub,
            viewer.user.organization_id,
            form.name.trim(),
            &scopes,
        )
        .await?;
    tracing::info!(hub = %viewer.hub, token = %issued.id, actor = %viewer.actor(), "token created");
    tokens_page(
        &state,
        &viewer,
        StatusCode::CREATED,
        Some((form.name.trim().to_owned(), issued.token)),
        None,
    )
    .await
}

/// `POST /settings/tokens/{id}/revoke`.
pub async fn revoke(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let id = wire::parse_id(&id, "token")?;
    let tokens = state
        .store
        .list_tokens(viewer.hub, viewer.user.organization_id)
        .await?;
    if !tokens.iter().any(|t| t.id == id) {
        return Err(ApiError::not_found("token").into());
    }
    state.store.revoke_token(viewer.hub, id).await?;
    tracing::info!(hub = %viewer.hub, token = %id, actor = %viewer.actor(), "token revoked");
    Ok(Redirect::to("/settings/tokens").into_response())
}
