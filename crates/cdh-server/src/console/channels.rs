//! Settings -> Channels: the organization's channels with their type, product and name (where
//! the tutorial starts), and a form by which an admin adds one.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use crate::console::contacts::ChannelIcon;
use crate::console::forms::CsrfForm;
use crate::console::page::{Layout, PageError, render_status};
use crate::console::profile::short_time;
use crate::console::session::Viewer;
use crate::routes::channels::{ChannelType, NewChannelRequest, Product, add_channel};
use crate::state::AppState;
use crate::wire;

struct ChannelRow {
    id: String,
    icon: ChannelIcon,
    name: String,
    external_account_id: String,
    created_at: String,
}

#[derive(Template)]
#[template(path = "console/channels.html")]
struct ChannelsPage {
    l: Layout,
    channels: Vec<ChannelRow>,
}

/// `?added=1` after a channel was added.
#[derive(Debug, Default, Deserialize)]
pub struct ChannelsQuery {
    added: Option<String>,
}

/// `GET /settings/channels`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::extract::Query(query): axum::extract::Query<ChannelsQuery>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let flash = query
        .added
        .is_some()
        .then(|| ("success", "The channel was added.".to_owned()));
    channels_page(&state, &viewer, StatusCode::OK, flash).await
}

async fn channels_page(
    state: &AppState,
    viewer: &Viewer,
    status: StatusCode,
    flash: Option<(&'static str, String)>,
) -> Result<Response, PageError> {
    let channels = state
        .store
        .list_channels(viewer.hub, viewer.user.organization_id)
        .await?
        .into_iter()
        .map(|c| ChannelRow {
            id: wire::id(c.id),
            icon: ChannelIcon::new(&c.channel_type, &c.product),
            name: c.name,
            external_account_id: c.external_account_id,
            created_at: short_time(c.created_at),
        })
        .collect();
    let mut l = Layout::new(viewer, "channels", "Channels");
    if let Some((kind, text)) = flash {
        l = l.flash(kind, text);
    }
    Ok(render_status(status, &ChannelsPage { l, channels }))
}

/// The add form.
#[derive(Debug, Deserialize)]
pub struct NewChannelForm {
    #[serde(rename = "type")]
    channel_type: ChannelType,
    product: Product,
    name: String,
    #[serde(default)]
    external_account_id: String,
}

/// `POST /settings/channels` (admins).
pub async fn create(
    State(state): State<AppState>,
    viewer: Viewer,
    CsrfForm(form): CsrfForm<NewChannelForm>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let request = NewChannelRequest {
        channel_type: form.channel_type,
        product: form.product,
        name: form.name,
        external_account_id: form.external_account_id,
    };
    match add_channel(&state, &viewer.caller(), request).await {
        Ok(_) => Ok(Redirect::to("/settings/channels?added=1").into_response()),
        Err(e) => {
            let text = format!("The channel was not added: {}", e.message);
            channels_page(
                &state,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(("error", text)),
            )
            .await
        }
    }
}
