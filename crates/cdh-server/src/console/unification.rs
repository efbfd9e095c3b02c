//! Settings → Profile unification: the keys in force, choosing up to three, the preview
//! (with suspicious values to exclude and sample merges with their chains), and confirming,
//! which applies exactly what was previewed or says the data changed since.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cdh_store::model::{ChainLink, UnifySetting};
use serde::Deserialize;

use crate::console::contacts::field_label;
use crate::console::forms::{CsrfForm, NoFields};
use crate::console::page::{Layout, PageError, render, render_status};
use crate::console::profile::short_time;
use crate::console::session::Viewer;
use crate::error::{ApiError, ErrorCode};
use crate::routes::unification::MAX_KEYS;
use crate::state::AppState;
use crate::wire;

/// The fields a brand may unify on, in the order the form lists them.
pub const KEY_FIELDS: [&str; 5] = [
    "line_uid",
    "display_mobile",
    "display_email",
    "customer_id",
    "connect_id",
];

/// A value shared by more contacts than this is flagged as suspicious.
pub const SUSPICIOUS_THRESHOLD: u32 = 20;

struct HistoryRow {
    version: i64,
    keys: String,
    excluded: usize,
    actor: String,
    at: String,
}

struct ConflictRow {
    profile_id: String,
    external_id: String,
    channel: String,
    shares: String,
    ours: String,
    theirs: String,
    reason: String,
}

/// How many conflicts the page lists (all are in the CSV).
const LISTED_CONFLICTS: u32 = 50;

#[derive(Template)]
#[template(path = "console/unification.html")]
struct SettingsPage {
    l: Layout,
    keys: Vec<(String, String)>,
    excluded: Vec<(String, String)>,
    version: i64,
    cross_product: bool,
    history: Vec<HistoryRow>,
    unique_fields: String,
    conflicts: Vec<ConflictRow>,
    more_conflicts: bool,
}

/// `GET /settings/unification`.
pub async fn settings(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let current = state
        .store
        .unify_setting(viewer.hub, viewer.user.organization_id)
        .await?;
    let history = state
        .store
        .unify_history(viewer.hub, viewer.user.organization_id)
        .await?;
    let hub = state
        .store
        .realm_settings(viewer.hub, viewer.user.organization_id)
        .await?;
    let conflicts = state
        .store
        .conflicts(
            viewer.hub,
            viewer.user.organization_id,
            None,
            LISTED_CONFLICTS,
        )
        .await?;
    let page = SettingsPage {
        l: Layout::new(&viewer, "unification", "Profile unification"),
        unique_fields: unique_labels(&current.setting.unique_fields),
        more_conflicts: conflicts.len() == LISTED_CONFLICTS as usize,
        conflicts: conflicts
            .into_iter()
            .map(|c| ConflictRow {
                profile_id: wire::id(c.profile_id),
                external_id: c.external_id,
                channel: format!("{} {}", c.channel_type, c.channel_name),
                shares: format!("{} {}", field_label(&c.field), c.value),
                ours: c.ours,
                theirs: c.theirs,
                reason: c.reason,
            })
            .collect(),
        keys: labelled(&current.setting.keys),
        excluded: current.setting.excluded.clone(),
        version: current.version,
        cross_product: hub.cross_product,
        history: history
            .into_iter()
            .rev()
            .map(|s| HistoryRow {
                version: s.version,
                keys: s
                    .setting
                    .keys
                    .iter()
                    .map(|k| field_label(k))
                    .collect::<Vec<_>>()
                    .join(", "),
                excluded: s.setting.excluded.len(),
                actor: s.actor,
                at: short_time(s.applied_at),
            })
            .collect(),
    };
    Ok(render(&page))
}

/// `GET /settings/unification/conflicts.csv`: the conflicts list as the API exports it.
pub async fn conflicts_csv(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let (body, next) = crate::routes::conflicts::conflicts_csv(
        &state,
        viewer.hub,
        viewer.user.organization_id,
        None,
    )
    .await?;
    Ok(crate::routes::conflicts::csv_response(body, next))
}

/// "Customer ID" or "Customer ID or Connect ID"; "no field" when none is unique.
fn unique_labels(fields: &[String]) -> String {
    if fields.is_empty() {
        return "no field".to_owned();
    }
    fields
        .iter()
        .map(|f| field_label(f))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn labelled(keys: &[String]) -> Vec<(String, String)> {
    keys.iter()
        .map(|k| (k.clone(), field_label(k).to_owned()))
        .collect()
}

#[derive(Template)]
#[template(path = "console/unification_edit.html")]
struct EditPage {
    l: Layout,
    choices: Vec<(String, String, bool)>,
    max: usize,
}

/// `GET /settings/unification/edit`.
pub async fn edit(State(state): State<AppState>, viewer: Viewer) -> Result<Response, PageError> {
    viewer.admin()?;
    let current = state
        .store
        .unify_setting(viewer.hub, viewer.user.organization_id)
        .await?;
    Ok(render(&edit_page(&viewer, &current.setting.keys, None)))
}

fn edit_page(viewer: &Viewer, chosen: &[String], error: Option<String>) -> EditPage {
    let mut l = Layout::new(viewer, "unification", "Choose unify keys");
    if let Some(error) = error {
        l = l.flash("error", error);
    }
    EditPage {
        l,
        choices: KEY_FIELDS
            .iter()
            .map(|f| {
                (
                    (*f).to_owned(),
                    field_label(f).to_owned(),
                    chosen.iter().any(|c| c == f),
                )
            })
            .collect(),
        max: MAX_KEYS,
    }
}

/// The keys and exclusions to preview (`exclude` values are `field:value`).
#[derive(Debug, Default, Deserialize)]
pub struct PreviewForm {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
}

/// `POST /settings/unification/previews`: computes a preview and shows it.
pub async fn create_preview(
    State(state): State<AppState>,
    viewer: Viewer,
    CsrfForm(form): CsrfForm<PreviewForm>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let problem = if form.keys.is_empty() {
        Some("Choose at least one key.".to_owned())
    } else if form.keys.len() > MAX_KEYS {
        Some(format!(
            "Choose at most {MAX_KEYS} keys; {} were chosen.",
            form.keys.len()
        ))
    } else {
        None
    };
    if let Some(problem) = problem {
        let page = edit_page(&viewer, &form.keys, Some(problem));
        return Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let setting = UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: form.keys.clone(),
        excluded: form
            .exclude
            .iter()
            .filter_map(|e| e.split_once(':'))
            .map(|(f, v)| (f.to_owned(), v.to_owned()))
            .collect(),
    };
    match state
        .store
        .create_preview(
            viewer.hub,
            viewer.user.organization_id,
            &setting,
            SUSPICIOUS_THRESHOLD,
        )
        .await
    {
        Ok(preview) => Ok(
            Redirect::to(&format!("/settings/unification/previews/{}", preview.id)).into_response(),
        ),
        Err(e) => {
            let e = ApiError::from(e);
            if e.code.status() == StatusCode::UNPROCESSABLE_ENTITY {
                let page = edit_page(&viewer, &form.keys, Some(e.message));
                Ok(render_status(StatusCode::UNPROCESSABLE_ENTITY, &page))
            } else {
                Err(e.into())
            }
        }
    }
}

struct ChainStep {
    via: Option<String>,
    contact: String,
}

struct Suspicious {
    field: String,
    label: String,
    value: String,
    n_contacts: u32,
    excluded: bool,
}

#[derive(Template)]
#[template(path = "console/preview.html")]
struct PreviewPage {
    l: Layout,
    id: String,
    stale: bool,
    keys: Vec<(String, String)>,
    profiles_before: u64,
    profiles_after: u64,
    contacts_merged: u64,
    largest: Vec<(u32, String)>,
    suspicious: Vec<Suspicious>,
    samples: Vec<Vec<ChainStep>>,
    n_conflicts: u64,
    unique_fields: String,
    conflicts: Vec<(String, String, Vec<ChainStep>)>,
    notes: Vec<String>,
    created_at: String,
}

/// `?stale=1` when a confirm found the data changed since.
#[derive(Debug, Default, Deserialize)]
pub struct PreviewQuery {
    stale: Option<String>,
}

/// `GET /settings/unification/previews/{id}`.
pub async fn preview(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PreviewQuery>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let id = wire::parse_id(&id, "preview")?;
    let p = state
        .store
        .get_preview(viewer.hub, viewer.user.organization_id, id)
        .await?;
    let stale = query.stale.is_some();
    let mut l = Layout::new(&viewer, "unification", "Preview");
    if stale {
        l = l.flash(
            "warning",
            "Contacts changed since this preview was computed, so it was not applied. \
             Compute a fresh preview to see what applying these keys would do now.",
        );
    }
    let r = p.report;
    let mut suspicious: Vec<Suspicious> = p
        .excluded
        .iter()
        .map(|(field, value)| Suspicious {
            label: field_label(field).to_owned(),
            field: field.clone(),
            value: value.clone(),
            n_contacts: 0,
            excluded: true,
        })
        .collect();
    for s in r.suspicious_values {
        if !suspicious
            .iter()
            .any(|x| x.field == s.field && x.value == s.value)
        {
            suspicious.push(Suspicious {
                label: field_label(&s.field).to_owned(),
                field: s.field,
                value: s.value,
                n_contacts: s.n_contacts,
                excluded: false,
            });
        }
    }
    let page = PreviewPage {
        l,
        id: wire::id(p.id),
        stale,
        keys: labelled(&p.keys),
        profiles_before: r.profiles_before,
        profiles_after: r.profiles_after,
        contacts_merged: r.contacts_merged,
        largest: r
            .largest_profiles
            .into_iter()
            .map(|l| {
                let ids = l
                    .contact_ids
                    .iter()
                    .map(|c| wire::id(*c))
                    .collect::<Vec<_>>()
                    .join(", ");
                (l.n_contacts, ids)
            })
            .collect(),
        suspicious,
        samples: r.samples.into_iter().map(|s| steps(s.chain)).collect(),
        n_conflicts: r.n_conflicts.max(r.conflicts.len() as u64),
        unique_fields: unique_labels(&p.unique_fields),
        conflicts: r
            .conflicts
            .into_iter()
            .map(|c| {
                (
                    field_label(&c.field).to_owned(),
                    c.values.join(" ≠ "),
                    steps(c.chain),
                )
            })
            .collect(),
        notes: r.notes,
        created_at: short_time(p.created_at),
    };
    Ok(render(&page))
}

fn steps(chain: Vec<ChainLink>) -> Vec<ChainStep> {
    chain
        .into_iter()
        .map(|link| ChainStep {
            via: match (link.field, link.value) {
                (Some(f), Some(v)) => Some(format!("{} {v}", field_label(&f))),
                _ if link.tie == "profile" => Some("already one profile".into()),
                _ => None,
            },
            contact: wire::id(link.contact_id),
        })
        .collect()
}

/// `POST /settings/unification/previews/{id}/apply`: starts the apply and shows its task.
pub async fn confirm(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(_): CsrfForm<NoFields>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let preview = wire::parse_id(&id, "preview")?;
    match state
        .store
        .apply_preview(
            viewer.hub,
            viewer.user.organization_id,
            preview,
            &viewer.actor(),
        )
        .await
    {
        Ok(task) => {
            state.worker.notify();
            Ok(Redirect::to(&format!("/tasks/{task}")).into_response())
        }
        Err(e) => {
            let e = ApiError::from(e);
            if e.code == ErrorCode::PreviewStale {
                Ok(
                    Redirect::to(&format!("/settings/unification/previews/{preview}?stale=1"))
                        .into_response(),
                )
            } else {
                Err(e.into())
            }
        }
    }
}
