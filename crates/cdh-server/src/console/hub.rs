//! Admin center → Customer data hub: cross-product unification (CAAC with MAAC) on or off,
//! a warning when `line_uid` is not a key, and the organizations a partner connected.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cdh_store::model::OrganizationId;
use serde::Deserialize;

use crate::console::forms::CsrfForm;
use crate::console::page::{Layout, PageError, render};
use crate::console::profile::short_time;
use crate::console::session::Viewer;
use crate::state::AppState;
use crate::wire::OrgRef;

struct Partner {
    organizations: Vec<String>,
    disclosure_url: String,
    actor: String,
    at: String,
}

#[derive(Template)]
#[template(path = "console/hub.html")]
struct HubPage {
    l: Layout,
    cross_product: bool,
    /// The switch differs from the one the last apply applied.
    switch_pending: bool,
    keys: Vec<String>,
    line_uid_is_key: bool,
    partners: Vec<Partner>,
}

/// `?saved=on|off` after a change.
#[derive(Debug, Default, Deserialize)]
pub struct HubQuery {
    saved: Option<String>,
}

/// `GET /settings/hub`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<HubQuery>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let settings = state
        .store
        .realm_settings(viewer.hub, viewer.user.organization_id)
        .await?;
    let current = state
        .store
        .unify_setting(viewer.hub, viewer.user.organization_id)
        .await?;
    let names: HashMap<OrganizationId, String> = state
        .store
        .list_organizations(viewer.hub)
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let mut l = Layout::new(&viewer, "hub", "Customer data hub");
    if let Some(saved) = query.saved {
        let text = if saved == "on" {
            "Cross-product unification is switched on. It takes effect when the unify keys are \
             next applied (preview them below); until then contacts unify as before."
        } else {
            "Cross-product unification is switched off. It takes effect when the unify keys \
             are next applied; profiles already merged stay merged."
        };
        l = l.flash("success", text);
    }
    let hub = viewer.hub;
    let page = HubPage {
        l,
        cross_product: settings.cross_product,
        switch_pending: settings.cross_product != settings.cross_product_applied,
        line_uid_is_key: current.setting.keys.iter().any(|k| k == "line_uid"),
        keys: current.setting.keys,
        partners: settings
            .connection
            .into_iter()
            .map(|c| Partner {
                organizations: c
                    .organization_ids
                    .into_iter()
                    .map(|org| match names.get(&org) {
                        Some(name) => format!("{name} ({})", OrgRef { hub, org }),
                        None => OrgRef { hub, org }.to_string(),
                    })
                    .collect(),
                disclosure_url: c.disclosure_url,
                actor: c.actor,
                at: short_time(c.at),
            })
            .collect(),
    };
    Ok(render(&page))
}

/// The switch: the checkbox is absent when unticked.
#[derive(Debug, Deserialize)]
pub struct HubForm {
    cross_product: Option<String>,
}

/// `POST /settings/hub`.
pub async fn save(
    State(state): State<AppState>,
    viewer: Viewer,
    CsrfForm(form): CsrfForm<HubForm>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let on = form.cross_product.is_some();
    state
        .store
        .set_cross_product(viewer.hub, viewer.user.organization_id, on)
        .await?;
    tracing::info!(hub = %viewer.hub, on, actor = %viewer.actor(), "cross-product switched");
    let saved = if on { "on" } else { "off" };
    Ok(Redirect::to(&format!("/settings/hub?saved={saved}")).into_response())
}
