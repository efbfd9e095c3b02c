//! A profile's page: merged fields (with their source contact), identifiers with a key symbol
//! on unify-key values, the channels list, the timeline newest first with a note form, why
//! each contact was merged (the chain of key values, and the merge ledger), and manual edits.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cdh_core::why::member_chains;
use cdh_store::model::ChannelId;
use serde::Deserialize;

use crate::access;
use crate::console::contacts::{ChannelIcon, field_label};
use crate::console::forms::CsrfForm;
use crate::console::page::{Layout, PageError, render};
use crate::console::session::Viewer;
use crate::error::ApiError;
use crate::routes::profiles::visible;
use crate::state::AppState;
use crate::wire;

/// Fields an admin may set by hand here (manual edits win until a contact writes the field).
pub const EDITABLE: [&str; 5] = [
    "display_name",
    "display_email",
    "display_mobile",
    "gender",
    "birthday",
];

/// How many timeline entries a page shows.
const TIMELINE_PAGE: u32 = 50;

struct FieldRow {
    name: String,
    label: String,
    value: String,
    source: String,
    is_key: bool,
}

struct IdentifierRow {
    field: String,
    label: String,
    value: String,
    is_key: bool,
    valid: bool,
}

struct ChannelRow {
    icon: ChannelIcon,
    channel_name: String,
    contact_id: String,
    why: Why,
}

/// How a contact came to be in the profile.
enum Why {
    /// The profile's first contact.
    First,
    /// A chain of shared key values from the first contact: (field label, value, contact).
    Chain(Vec<(String, String, String)>),
    /// Tied by an earlier setting; the ledger below has the merge.
    Earlier,
}

struct TimelineRow {
    kind: String,
    /// The channel the entry came from, by name.
    channel: String,
    author: String,
    at: String,
    text: String,
}

struct LedgerRow {
    at: String,
    merged_ids: String,
    key: String,
    value: String,
    cause: String,
    actor: String,
}

#[derive(Template)]
#[template(path = "console/profile.html")]
struct ProfilePage {
    l: Layout,
    id: String,
    name: String,
    merged_from: Option<String>,
    tags: Vec<String>,
    fields: Vec<FieldRow>,
    identifiers: Vec<IdentifierRow>,
    channels: Vec<ChannelRow>,
    timeline: Vec<TimelineRow>,
    next_cursor: Option<String>,
    ledger: Vec<LedgerRow>,
    edits: Vec<(String, String, String)>,
}

/// `?cursor=` continues the timeline.
#[derive(Debug, Default, Deserialize)]
pub struct ProfileQuery {
    cursor: Option<String>,
    saved: Option<String>,
}

/// `GET /profiles/{id}`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<ProfileQuery>,
) -> Result<Response, PageError> {
    let caller = viewer.caller();
    // One read: the merged record carries the profile (resolved to its survivor) to check.
    let (profile, golden) = state
        .store
        .golden_record(caller.hub, wire::parse_id(&id, "profile")?)
        .await?;
    access::visible_profile(&state, &caller, &profile).await?;
    let setting = state.store.unify_setting(caller.hub, caller.org).await?;
    let timeline = state
        .store
        .timeline(
            caller.hub,
            profile.id,
            TIMELINE_PAGE,
            query.cursor.as_deref(),
        )
        .await
        .map_err(|_| {
            ApiError::invalid_field("cursor", "that timeline link is not valid any more")
        })?;
    let ledger = state.store.lineage(caller.hub, profile.id).await?;
    let channel_names: HashMap<ChannelId, String> = state
        .store
        .list_channels(caller.hub, caller.org)
        .await?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();

    let members: Vec<String> = profile
        .members
        .iter()
        .map(|m| wire::id(m.contact_id))
        .collect();
    let excluded: Vec<(String, String)> = setting.setting.excluded.clone();
    let chains = member_chains(
        members.first().map_or("", String::as_str),
        &members,
        &golden.identifiers,
        |i| {
            i.valid
                && i.is_unify_key
                && !excluded
                    .iter()
                    .any(|(f, v)| f == i.field.name() && v == &i.value)
        },
    );
    let channels = profile
        .members
        .iter()
        .zip(chains)
        .enumerate()
        .map(|(n, (m, chain))| ChannelRow {
            icon: ChannelIcon::new(&m.channel_type, &m.product),
            channel_name: channel_names
                .get(&m.channel_id)
                .cloned()
                .unwrap_or_else(|| "a channel of a connected organization".into()),
            contact_id: wire::id(m.contact_id),
            why: match chain {
                Some(hops) if n == 0 || hops.is_empty() => Why::First,
                Some(hops) => Why::Chain(
                    hops.into_iter()
                        .map(|h| (field_label(h.field.name()).to_owned(), h.value, h.contact))
                        .collect(),
                ),
                None => Why::Earlier,
            },
        })
        .collect();

    let name = golden
        .fields
        .get("display_name")
        .map(|f| f.value.clone())
        .unwrap_or_else(|| format!("Profile {}", profile.id));
    let edits = EDITABLE
        .iter()
        .map(|f| {
            let current = golden
                .fields
                .get(*f)
                .map(|v| v.value.clone())
                .unwrap_or_default();
            ((*f).to_owned(), field_label(f).to_owned(), current)
        })
        .collect();
    let mut layout = Layout::new(&viewer, "contacts", name.clone());
    if query.saved.is_some() {
        layout = layout.flash("success", "Saved.");
    }
    let page = ProfilePage {
        l: layout,
        id: wire::id(profile.id),
        name,
        merged_from: profile.merged_from.map(wire::id),
        tags: golden.tags,
        fields: {
            let mut fields: Vec<_> = golden.fields.into_iter().collect();
            fields.sort_by_key(|(name, _)| (field_rank(name), name.clone()));
            fields
        }
        .into_iter()
        .map(|(name, f)| FieldRow {
            label: field_label(&name).replace('_', " "),
            is_key: setting.setting.keys.contains(&name),
            name,
            value: f.value,
            source: f.source,
        })
        .collect(),
        identifiers: golden
            .identifiers
            .into_iter()
            .map(|i| IdentifierRow {
                field: i.field.name().to_owned(),
                label: field_label(i.field.name()).to_owned(),
                value: i.value,
                is_key: i.is_unify_key,
                valid: i.valid,
            })
            .collect(),
        channels,
        timeline: timeline
            .items
            .into_iter()
            .map(|e| TimelineRow {
                channel: channel_names
                    .get(&e.channel_id)
                    .cloned()
                    .unwrap_or_else(|| "a channel of a connected organization".into()),
                kind: e.kind,
                author: e.author,
                at: short_time(e.at),
                text: e.text,
            })
            .collect(),
        next_cursor: timeline.next_cursor,
        ledger: ledger
            .into_iter()
            .map(|e| LedgerRow {
                at: short_time(e.at),
                merged_ids: e
                    .absorbed_ids
                    .iter()
                    .map(|i| wire::id(*i))
                    .collect::<Vec<_>>()
                    .join(", "),
                key: field_label(&e.key_field).to_owned(),
                value: e.key_value,
                cause: match e.cause.kind.as_str() {
                    "setting" => format!("applying unify setting v{}", e.cause.id),
                    "import" => format!("import task {}", e.cause.id),
                    "contact" => format!("a write to contact {}", e.cause.id),
                    other => format!("{other} {}", e.cause.id),
                },
                actor: e.cause.actor,
            })
            .collect(),
        edits,
    };
    Ok(render(&page))
}

/// Where a field comes in the merged-fields table: the name first, then contact details.
fn field_rank(name: &str) -> usize {
    const ORDER: [&str; 8] = [
        "display_name",
        "display_mobile",
        "display_email",
        "line_uid",
        "customer_id",
        "connect_id",
        "gender",
        "birthday",
    ];
    ORDER.iter().position(|f| *f == name).unwrap_or(ORDER.len())
}

/// A time as `2026-01-02 03:04` (UTC).
pub fn short_time(ms: i64) -> String {
    wire::time(ms)
        .chars()
        .take(16)
        .collect::<String>()
        .replace('T', " ")
}

/// The note form.
#[derive(Debug, Deserialize)]
pub struct NoteForm {
    body: String,
}

/// `POST /profiles/{id}/notes`: a note on the profile's first contact of the organization.
pub async fn add_note(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<NoteForm>,
) -> Result<Response, PageError> {
    let caller = viewer.caller();
    let profile = visible(&state, &caller, &id).await?;
    let text = form.body.trim();
    if text.is_empty() {
        return Err(ApiError::invalid_field("body", "a note needs some text").into());
    }
    let mut target = None;
    for m in &profile.members {
        if state.channel_org(caller.hub, m.channel_id).await? == caller.org {
            target = Some(m.contact_id);
            break;
        }
    }
    let contact = target.ok_or_else(|| ApiError::not_found("profile"))?;
    state
        .store
        .add_note(caller.hub, contact, text, &viewer.actor(), state.now())
        .await?;
    Ok(Redirect::to(&format!("/profiles/{}#timeline", profile.id)).into_response())
}

/// `POST /profiles/{id}/fields` (admins): a changed email or mobile is written to the
/// profile's contacts; another changed field becomes a manual value, and emptied, returns to
/// the merged value (`Profiles::patch_profile`).
pub async fn edit_fields(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    CsrfForm(form): CsrfForm<BTreeMap<String, String>>,
) -> Result<Response, PageError> {
    viewer.admin()?;
    let caller = viewer.caller();
    let profile = visible(&state, &caller, &id).await?;
    let (_, golden) = state.store.golden_record(caller.hub, profile.id).await?;
    let mut edits: BTreeMap<String, Option<String>> = BTreeMap::new();
    for field in EDITABLE {
        let Some(given) = form.get(field).map(|v| v.trim()) else {
            continue;
        };
        let current = golden
            .fields
            .get(field)
            .map(|f| f.value.as_str())
            .unwrap_or("");
        // An identifier lives on the contacts: emptying its box here removes nothing.
        let identifier = cdh_core::IdentifierField::built_in(field).is_some();
        if given != current && !(identifier && given.is_empty()) {
            edits.insert(
                field.to_owned(),
                (!given.is_empty()).then(|| given.to_owned()),
            );
        }
    }
    if !edits.is_empty() {
        state
            .store
            .patch_profile(caller.hub, profile.id, &edits, &viewer.actor())
            .await?;
    }
    Ok(Redirect::to(&format!("/profiles/{}?saved=1", profile.id)).into_response())
}
