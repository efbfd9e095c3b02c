//! The router: every endpoint group, the OpenAPI document built from them, and the layers
//! (body limit, metrics, tracing, JSON 404/405).
//!
//! Each group is a file exposing `pub fn router() -> OpenApiRouter<AppState>` whose handlers
//! carry `#[utoipa::path]`; registering a handler with `routes!(...)` adds it to both the
//! router and `/openapi.json`.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::get;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::state::AppState;

pub(crate) mod bootstrap;
pub(crate) mod channels;
pub(crate) mod conflicts;
pub(crate) mod contacts;
pub(crate) mod events;
pub(crate) mod exports;
pub mod hub;
pub(crate) mod imports;
pub(crate) mod ops;
pub(crate) mod profiles;
pub(crate) mod tasks;
pub(crate) mod unification;
mod users;
mod webhooks;

/// The document's frame; paths and schemas come from the handlers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "cdh Profile API",
        version = "1",
        description = "The customer data hub's Profile API: contacts, unified profiles, \
                       unification settings, tasks, imports, exports, events and webhooks."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every endpoint, with its OpenAPI description.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::router())
        .merge(bootstrap::router())
        .merge(channels::router())
        .merge(contacts::router())
        .merge(profiles::router())
        .merge(unification::router())
        .merge(conflicts::router())
        .merge(hub::router())
        .merge(events::router())
        .merge(tasks::router())
        .merge(imports::router())
        .merge(exports::router())
        .merge(webhooks::router())
        .merge(users::router())
}

/// The OpenAPI document alone.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

/// An unknown path: a JSON error for API clients, a page in words for a browser.
async fn not_found(
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if wants_html && !uri.path().starts_with("/v1/") {
        crate::console::page::PageError::Api(ApiError::not_found("page")).into_response()
    } else {
        ApiError::not_found("route").into_response()
    }
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (router, doc) = api().split_for_parts();
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));
    router
        .merge(crate::console::router())
        .route(
            "/openapi.json",
            get(move || {
                let doc = Arc::clone(&doc);
                async move { ([(header::CONTENT_TYPE, "application/json")], (*doc).clone()) }
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this path does not accept this method",
            )
            .into_response()
        })
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        // Console error pages (a missing page included) keep the signed-in user's menu.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::console::page::with_navigation,
        ))
        .layer(DefaultBodyLimit::max(state.config.body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
