//! Who may call and who is called: API tokens, console users, webhook endpoints and their
//! deliveries.

use serde::{Deserialize, Serialize};

use super::profiles::Event;
use super::{HubId, Millis, OrganizationId, TokenId, UserId, WebhookId};

/// A token as issued: the secret is only ever shown here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedToken {
    /// The token's id.
    pub id: TokenId,
    /// `cdh_<hub>_<id>_<secret>`.
    pub token: String,
}

/// Who a verified token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The hub.
    pub hub_id: HubId,
    /// The token.
    pub token_id: TokenId,
    /// Its organization.
    pub organization_id: OrganizationId,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// What is shown of a token after it was issued (never its secret).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its id.
    pub id: TokenId,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// Creation time.
    pub created_at: Millis,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Millis>,
}

/// What a console user may do in their organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages the organization: settings, users, unification.
    Admin,
    /// Works with contacts and profiles.
    Agent,
}
impl Role {
    /// The role as stored and shown (`admin`, `agent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }

    /// `admin` or `agent`, exactly; anything else is `None`.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "admin" => Some(Self::Admin),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}
impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A person who signs in to the console (never with their password hash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsoleUser {
    /// Their id.
    pub id: UserId,
    /// The organization they belong to.
    pub organization_id: OrganizationId,
    /// Their email address, as the server normalised it.
    pub email: String,
    /// What they may do.
    pub role: Role,
    /// Creation time.
    pub created_at: Millis,
    /// Sessions opened in an earlier epoch are over (signing out moves it on).
    pub session_epoch: i64,
}

/// What an admin changes of a console user; at least one part is `Some`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserChange {
    /// A new password's hash (the server hashes it); ends the user's sessions.
    pub password_hash: Option<String>,
    /// A new role.
    pub role: Option<Role>,
}

/// A page of the events feed as an organization reads it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventsPage {
    /// The events it sees, in order.
    pub events: Vec<Event>,
    /// Where the next page starts: the last event read, seen or not (`after` when none).
    pub next_after: i64,
}

/// A webhook endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct WebhookEndpoint {
    /// Its id.
    pub id: WebhookId,
    /// The organization that registered it.
    pub organization_id: OrganizationId,
    /// Where events are POSTed.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// The last event sequence delivered (or given up on).
    pub delivered_seq: i64,
    /// Creation time.
    pub created_at: Millis,
}

/// An event due for delivery to an endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    /// The hub.
    pub hub_id: HubId,
    /// The endpoint.
    pub endpoint_id: WebhookId,
    /// Where to POST.
    pub url: String,
    /// The signing secret.
    pub secret: String,
    /// The event.
    pub event: Event,
    /// 1 for the first try.
    pub attempt: u32,
}

/// One recorded delivery attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLog {
    /// The event.
    pub event_seq: i64,
    /// Which try.
    pub attempt: u32,
    /// The HTTP status received, if any.
    pub status: Option<u16>,
    /// Why it failed, if it did without a status.
    pub error: Option<String>,
    /// When.
    pub at: Millis,
    /// When the next try is due (`None`: no more tries for this event).
    pub next_attempt_at: Option<Millis>,
}
