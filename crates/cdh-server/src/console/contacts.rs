//! The contacts list: an organization's profiles page by page (keyset pagination, so a page
//! costs the same at a million contacts), and search by name (a prefix, through the store's
//! name index), phone, email, LINE uid, customer id or connect id, identifiers normalised
//! exactly as the API normalises lookups.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use cdh_core::GoldenRecord;
use cdh_store::model::Profile;
use serde::Deserialize;

use crate::console::page::{Layout, PageError, render};
use crate::console::session::Viewer;
use crate::error::ApiError;
use crate::routes::profiles::{ProfileView, view};
use crate::state::AppState;

/// How many profiles a page shows.
pub const PAGE_SIZE: u32 = 25;

/// `?q=` searches; `?cursor=` continues the list.
#[derive(Debug, Default, Deserialize)]
pub struct ContactsQuery {
    #[serde(default)]
    q: String,
    cursor: Option<String>,
}

/// A row of the list.
#[derive(Debug)]
pub struct Row {
    /// The profile's id.
    pub id: String,
    /// Its merged name (or a placeholder).
    pub name: String,
    /// Its merged phone.
    pub phone: String,
    /// Its merged email.
    pub email: String,
    /// Its channels: (type, icon letters, product).
    pub channels: Vec<ChannelIcon>,
    /// Last change.
    pub updated_at: String,
}

/// A channel as a small icon.
#[derive(Debug, Clone)]
pub struct ChannelIcon {
    /// The channel type (`line`, `messenger`, ...).
    pub channel_type: String,
    /// One or two letters shown in the icon.
    pub letters: &'static str,
    /// Its product (`caac`, `maac`).
    pub product: String,
}

impl ChannelIcon {
    /// The icon of a channel type.
    pub fn new(channel_type: &str, product: &str) -> Self {
        let letters = match channel_type {
            "line" => "L",
            "messenger" => "M",
            "instagram" => "IG",
            "whatsapp" => "WA",
            "webchat" => "W",
            "sms" => "S",
            "email" => "@",
            _ => "API",
        };
        Self {
            channel_type: channel_type.to_owned(),
            letters,
            product: product.to_owned(),
        }
    }

    /// A readable name of the channel type.
    pub fn label(&self) -> &'static str {
        match self.channel_type.as_str() {
            "line" => "LINE",
            "messenger" => "Messenger",
            "instagram" => "Instagram",
            "whatsapp" => "WhatsApp",
            "webchat" => "Web chat",
            "sms" => "SMS",
            "email" => "Email",
            _ => "API",
        }
    }
}

#[derive(Template)]
#[template(path = "console/contacts.html")]
struct ContactsPage {
    l: Layout,
    q: String,
    searched_as: String,
    rows: Vec<Row>,
    next_cursor: Option<String>,
    first_page: bool,
}

/// `GET /contacts`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(query): Query<ContactsQuery>,
) -> Result<Response, PageError> {
    let caller = viewer.caller();
    let q = query.q.trim().to_owned();
    let (profiles, next_cursor, searched_as) = if q.is_empty() {
        let page = state
            .store
            .list_profiles(
                caller.hub,
                caller.org,
                None,
                PAGE_SIZE,
                query.cursor.as_deref(),
            )
            .await
            .map_err(|e| match e {
                cdh_store::StoreError::Invalid(_) => ApiError::invalid_field(
                    "cursor",
                    "that page link is not valid any more; start from the first page",
                ),
                other => other.into(),
            })?;
        (page.items, page.next_cursor, String::new())
    } else {
        let mut found: Vec<(Profile, GoldenRecord)> = Vec::new();
        let fields = search_fields(&q);
        for field in &fields {
            let hits = if *field == NAME {
                state
                    .store
                    .search_profiles_by_name(caller.hub, caller.org, &q, PAGE_SIZE)
                    .await?
            } else {
                // A value that does not parse as this field (an invalid phone, say) finds nothing.
                let Ok(hits) = state
                    .store
                    .lookup_golden_records(caller.hub, caller.org, field, &q)
                    .await
                else {
                    continue;
                };
                hits
            };
            for hit in hits {
                if !found.iter().any(|(p, _)| p.id == hit.0.id) {
                    found.push(hit);
                }
            }
        }
        let searched_as = fields
            .iter()
            .map(|f| field_label(f))
            .collect::<Vec<_>>()
            .join(", ");
        (found, None, searched_as)
    };
    // Every profile here is live (found through the caller's contacts), so `view` suffices.
    let rows = profiles
        .into_iter()
        .map(|(profile, golden)| row(view(profile, golden)))
        .collect();
    let page = ContactsPage {
        l: Layout::new(&viewer, "contacts", "Contacts"),
        q,
        searched_as,
        rows,
        next_cursor,
        first_page: query.cursor.is_none(),
    };
    Ok(render(&page))
}

/// The search by the start of a contact's name, listed among the fields.
const NAME: &str = "display_name";

/// Which fields a search text may be, by its shape: identifier fields, and the name
/// (`display_name`, searched by prefix) when it has no identifier's shape.
pub fn search_fields(q: &str) -> Vec<&'static str> {
    let digits = q.chars().filter(char::is_ascii_digit).count();
    let phone_like = digits >= 6
        && q.chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    if q.len() == 33 && q.starts_with('U') && q[1..].chars().all(|c| c.is_ascii_hexdigit()) {
        vec!["line_uid"]
    } else if q.contains('@') {
        vec!["display_email"]
    } else if phone_like {
        vec!["display_mobile", "customer_id", "connect_id"]
    } else {
        vec!["customer_id", "connect_id", NAME]
    }
}

/// A readable name of an identifier field.
pub fn field_label(field: &str) -> &str {
    match field {
        "line_uid" => "LINE uid",
        "display_email" => "email",
        "display_mobile" => "phone",
        "customer_id" => "customer id",
        "connect_id" => "connect id",
        "display_name" => "name",
        other => other,
    }
}

fn row(view: ProfileView) -> Row {
    let get = |name: &str| view.fields.get(name).cloned().unwrap_or_default();
    let mut name = get("display_name");
    if name.is_empty() {
        name = format!("Profile {}", view.id);
    }
    Row {
        name,
        phone: get("display_mobile"),
        email: get("display_email"),
        channels: view
            .channels
            .iter()
            .map(|c| ChannelIcon::new(&c.channel_type, &c.product))
            .collect(),
        updated_at: view
            .updated_at
            .chars()
            .take(16)
            .collect::<String>()
            .replace('T', " "),
        id: view.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_is_read_by_its_shape() {
        assert_eq!(
            search_fields("U4af4980629aaaaaaaaaaaaaaaaaaaaaa"),
            vec!["line_uid"]
        );
        assert_eq!(search_fields(" a@b.co"), vec!["display_email"]);
        assert_eq!(
            search_fields("0912-345-678"),
            vec!["display_mobile", "customer_id", "connect_id"]
        );
        assert_eq!(
            search_fields("C-1001"),
            vec!["customer_id", "connect_id", "display_name"]
        );
        assert_eq!(
            search_fields("Amy Chen"),
            vec!["customer_id", "connect_id", "display_name"]
        );
    }
}
