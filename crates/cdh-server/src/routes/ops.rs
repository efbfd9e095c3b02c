//! Operations: `GET /healthz` (the process is up), `GET /readyz` (and its database answers)
//! and `GET /metrics` (Prometheus text).

use std::fmt::Write as _;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody, ErrorCode};
use crate::state::AppState;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// The health answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (`/healthz`) or `ready` (`/readyz`).
    pub status: String,
}

/// Whether the server is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The server is up", body = Health)))]
async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Whether the server can serve: its database answers a read of the store's tables. A load
/// balancer takes the server out while this is 503 (`/healthz` says only that the process
/// runs).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "The database answers", body = Health),
        (status = 503, description = "The database cannot be reached (`unavailable`)", body = ErrorBody),
    ))]
async fn readyz(State(state): State<AppState>) -> ApiResult<axum::Json<Health>> {
    if let Err(e) = state.store.ready().await {
        tracing::warn!(error = %e, "readyz: the database did not answer");
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "the database cannot be reached",
        ));
    }
    Ok(axum::Json(Health {
        status: "ready".into(),
    }))
}

/// Request counts and latencies in the Prometheus text format (operator token).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus metrics", body = String, content_type = "text/plain"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not the operator", body = ErrorBody),
    ))]
async fn metrics(
    State(state): State<AppState>,
    principal: Principal,
) -> ApiResult<impl IntoResponse> {
    principal.operator()?;
    Ok(metrics_text(&state).await)
}

/// The metrics page: request metrics, then the store's gauges.
pub(crate) async fn metrics_text(state: &AppState) -> impl IntoResponse + use<> {
    let mut text = String::new();
    state.metrics.render(&mut text);
    // Store gauges: unfinished tasks by kind and status (a task stuck queued shows here).
    match state.store.unfinished_tasks().await {
        Ok(tasks) => {
            let mut counts = std::collections::BTreeMap::new();
            for (_, task) in &tasks {
                *counts
                    .entry((task.kind.as_str(), task.status.as_str()))
                    .or_insert(0u64) += 1;
            }
            text.push_str(
                "# HELP cdh_tasks_unfinished Tasks queued or running, by kind and status.\n",
            );
            text.push_str("# TYPE cdh_tasks_unfinished gauge\n");
            for ((kind, status), n) in counts {
                let _ = writeln!(
                    text,
                    "cdh_tasks_unfinished{{kind=\"{kind}\",status=\"{status}\"}} {n}"
                );
            }
            text.push_str("# HELP cdh_store_up Whether the database answered.\n# TYPE cdh_store_up gauge\ncdh_store_up 1\n");
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store did not answer");
            text.push_str("# HELP cdh_store_up Whether the database answered.\n# TYPE cdh_store_up gauge\ncdh_store_up 0\n");
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}
