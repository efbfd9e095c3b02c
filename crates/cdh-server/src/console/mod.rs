//! The web console: server-rendered pages (askama templates, a little vendored htmx) for an
//! organization's admins and agents, on the same store and the same rules as the API.
//!
//! Every page works with full page loads; htmx only spares reloads (task progress). Forms
//! carry a CSRF value, output is escaped by the templates, and every response carries a
//! content security policy that allows nothing from elsewhere and no inline script.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{MethodRouter, get, post};

use crate::state::AppState;

mod channels;
mod contacts;
mod data;
pub mod forms;
pub mod guard;
mod hub;
pub mod page;
mod profile;
pub mod session;
mod sign_in;
mod tasks;
mod tokens;
mod unification;

/// The largest console form (a note is the longest thing typed into one).
pub const FORM_LIMIT: usize = 64 * 1024;

/// The largest sign-in form: an organization, an email and a password.
pub const SIGN_IN_FORM_LIMIT: usize = 4 * 1024;

/// Every console route, path and handlers: the router is built from this list, and the
/// isolation test reads its paths, so a new page cannot miss its row there.
fn routes() -> Vec<(&'static str, MethodRouter<AppState>)> {
    vec![
        ("/", get(sign_in::home)),
        (
            "/sign-in",
            get(sign_in::page)
                .post(sign_in::submit)
                .layer(DefaultBodyLimit::max(SIGN_IN_FORM_LIMIT)),
        ),
        ("/sign-out", post(sign_in::sign_out)),
        ("/contacts", get(contacts::page)),
        ("/profiles/{id}", get(profile::page)),
        ("/profiles/{id}/notes", post(profile::add_note)),
        ("/profiles/{id}/fields", post(profile::edit_fields)),
        ("/settings/unification", get(unification::settings)),
        ("/settings/unification/edit", get(unification::edit)),
        (
            "/settings/unification/conflicts.csv",
            get(unification::conflicts_csv),
        ),
        (
            "/settings/unification/previews",
            post(unification::create_preview),
        ),
        (
            "/settings/unification/previews/{id}",
            get(unification::preview),
        ),
        (
            "/settings/unification/previews/{id}/apply",
            post(unification::confirm),
        ),
        ("/settings/hub", get(hub::page).post(hub::save)),
        (
            "/settings/channels",
            get(channels::page).post(channels::create),
        ),
        ("/tasks/{id}", get(tasks::page)),
        ("/tasks/{id}/status", get(tasks::fragment)),
        ("/data", get(data::page)),
        (
            "/data/imports",
            post(data::import).layer(DefaultBodyLimit::max(crate::routes::imports::BODY_LIMIT)),
        ),
        ("/data/exports", post(data::export)),
        ("/data/exports/{id}/download", get(data::download)),
        ("/settings/tokens", get(tokens::page).post(tokens::create)),
        ("/settings/tokens/{id}/revoke", post(tokens::revoke)),
        ("/assets/console.css", get(|| asset("text/css", CSS))),
        (
            "/assets/htmx.min.js",
            get(|| asset("text/javascript", HTMX)),
        ),
        (
            "/assets/console.js",
            get(|| asset("text/javascript", SCRIPT)),
        ),
    ]
}

/// The paths of every console route.
pub fn paths() -> Vec<&'static str> {
    routes().into_iter().map(|(path, _)| path).collect()
}

/// The console's routes (merged beside the API's `/v1`).
pub fn router() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (path, handlers)| {
            router.route(path, handlers)
        })
        // Route limits above (sign-in, imports) are inner, so they win over this one.
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(middleware::from_fn(page::security_headers))
}

const CSS: &str = include_str!("../../assets/console.css");
const HTMX: &str = include_str!("../../assets/htmx.min.js");
const SCRIPT: &str = include_str!("../../assets/console.js");

/// A static file compiled into the binary.
async fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
}
