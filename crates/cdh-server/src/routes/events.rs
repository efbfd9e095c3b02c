//! The events feed: `GET /v1/events?after=<cursor>`, in order (`profile.created`,
//! `profile.updated`, `profile.merged`). Webhooks deliver the same events.

use axum::extract::State;
use cdh_store::model::Event;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Principal, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::json::ApiQuery;
use crate::state::AppState;
use crate::wire;

/// The routes of this group.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events))
}

/// `GET /v1/events` parameters.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// The `next_cursor` of the previous page; from the start when absent.
    pub after: Option<String>,
    /// Page size (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// An event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    /// Its position in the feed (a cursor).
    pub id: String,
    /// `profile.created`, `profile.updated` or `profile.merged`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When.
    pub at: String,
    /// The profile concerned (the survivor of a merge).
    pub profile_id: String,
    /// Kind-specific data; merges: `{survivor_id, merged_ids, key, value}`.
    #[schema(value_type = Object)]
    pub data: Value,
}

/// A page of the feed.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    /// Oldest first.
    pub items: Vec<EventView>,
    /// Pass as `after` to read on; it is the last event's id, or past events of a partner
    /// connection about profiles with no contact of yours, or the `after` given when there is
    /// nothing new (poll again with it).
    pub next_cursor: Option<String>,
}

/// Ids inside event data are opaque strings like everywhere else.
fn stringify_ids(mut data: Value) -> Value {
    if let Some(map) = data.as_object_mut() {
        for (key, value) in map.iter_mut() {
            let is_id = key == "id" || key.ends_with("_id") || key.ends_with("_ids");
            if !is_id {
                continue;
            }
            match value {
                Value::Number(n) => *value = Value::String(n.to_string()),
                Value::Array(items) => {
                    for item in items.iter_mut() {
                        if let Value::Number(n) = item {
                            *item = Value::String(n.to_string());
                        }
                    }
                }
                _ => {}
            }
        }
    }
    data
}

/// An event as answered.
pub fn view(e: Event) -> EventView {
    EventView {
        id: e.seq.to_string(),
        kind: e.kind,
        at: wire::time(e.at),
        profile_id: wire::id(e.profile_id),
        data: stringify_ids(e.payload),
    }
}

/// The ordered feed of profile events.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = EventPage), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn events(
    State(state): State<AppState>,
    principal: Principal,
    ApiQuery(query): ApiQuery<EventsQuery>,
) -> ApiResult<axum::Json<EventPage>> {
    let caller = principal.org(Scope::ProfilesRead)?;
    let after = match query.after.as_deref() {
        None | Some("") => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| {
                ApiError::invalid_field("after", "`after` is not a cursor this API gave out")
            })?,
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_field(
            "limit",
            "`limit` must be between 1 and 1000",
        ));
    }
    let page = state
        .store
        .events_page(caller.hub, caller.org, after, limit)
        .await?;
    Ok(axum::Json(EventPage {
        items: page.events.into_iter().map(view).collect(),
        next_cursor: Some(page.next_after.to_string()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_in_event_data_become_strings() {
        let data =
            json!({"survivor_id": 4, "merged_ids": [7, 9], "key": "line_uid", "value": "U1"});
        assert_eq!(
            stringify_ids(data),
            json!({"survivor_id": "4", "merged_ids": ["7", "9"], "key": "line_uid", "value": "U1"})
        );
    }
}
