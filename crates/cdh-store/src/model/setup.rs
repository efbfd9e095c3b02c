//! Organizations, channels, partner connections and realms (who unifies with whom).

use serde::{Deserialize, Serialize};

use super::{ChannelId, ConnectionId, HubId, Millis, OrganizationId};

/// An organization of a hub.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Organization {
    /// Its id.
    pub id: OrganizationId,
    /// The hub it belongs to.
    pub hub_id: HubId,
    /// A display name.
    pub name: String,
    /// The phone region national numbers are read in (`TW`, ...).
    pub default_region: String,
    /// Creation time.
    pub created_at: Millis,
}

/// A stored channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::FromRow)]
pub struct Channel {
    /// Its id.
    pub id: ChannelId,
    /// The organization it belongs to.
    pub organization_id: OrganizationId,
    /// line, messenger, instagram, whatsapp, sms, email, webchat or api.
    pub channel_type: String,
    /// caac or maac.
    pub product: String,
    /// A display name.
    pub name: String,
    /// The external account (LINE provider, Facebook page, ...).
    pub external_account_id: String,
    /// Creation time.
    pub created_at: Millis,
}

/// A partner connection: organizations of one brand unifying in one scope.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// Its id.
    pub id: ConnectionId,
    /// The organizations it connects.
    pub organization_ids: Vec<OrganizationId>,
    /// The brand's disclosure.
    pub disclosure_url: String,
    /// Who connected them.
    pub actor: String,
    /// When.
    pub at: Millis,
    /// When the connected organizations' first shared setting was applied: until then each
    /// goes on unifying its own contacts under its own setting.
    pub unified_at: Option<Millis>,
}

/// Where one unify setting rules: an organization on its own, or every organization a
/// partner connection joined. Each realm has its own setting and history, cross-product
/// switch, previews, applies and events; an organization sees its own realm and, once
/// connected, its connection's (and the events of its own realm from before).
///
/// A realm's key (`o<organization>` or `g<connection>`) is also how its contacts' scopes
/// begin (`rules::scope_name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Realm {
    /// An organization that no partner connected.
    Organization(OrganizationId),
    /// The organizations of a partner connection.
    Connection(ConnectionId),
}

impl Realm {
    /// The key stored with settings, previews, tasks and events.
    pub fn key(self) -> String {
        self.to_string()
    }

    /// The realm of a contact's scope (`o12:caac` is in `o12`).
    pub fn of_scope(scope: &str) -> Option<Self> {
        Self::parse(scope.split(':').next().unwrap_or_default())
    }

    /// A realm's key (`o12`, `g34`), exactly.
    pub fn parse(key: &str) -> Option<Self> {
        let (kind, id) = key.split_at_checked(1)?;
        let id: i64 = id.parse().ok().filter(|id: &i64| *id >= 0)?;
        if id.to_string().len() != key.len() - 1 {
            return None;
        }
        match kind {
            "o" => Some(Self::Organization(OrganizationId(id))),
            "g" => Some(Self::Connection(ConnectionId(id))),
            _ => None,
        }
    }
}

impl std::fmt::Display for Realm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Organization(org) => write!(f, "o{org}"),
            Self::Connection(connection) => write!(f, "g{connection}"),
        }
    }
}

/// An organization's realm and its scope settings, as the organization may see them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RealmSettings {
    /// The realm the organization's settings, previews and applies belong to.
    pub realm: Realm,
    /// The organizations of the realm (the organization alone, or its connection's).
    pub organizations: Vec<OrganizationId>,
    /// Whether MAAC and CAAC contacts of the realm unify together, as last asked for: the
    /// next apply applies it.
    pub cross_product: bool,
    /// The switch as the realm's last apply applied it (off before any): the one contacts
    /// unify by until the next apply.
    pub cross_product_applied: bool,
    /// The partner connection the organization is in, if any.
    pub connection: Option<Connection>,
}

impl RealmSettings {
    /// The realms whose events the organization sees: its own, and its connection's.
    pub fn visible_realms(&self, org: OrganizationId) -> Vec<Realm> {
        let own = Realm::Organization(org);
        if self.realm == own {
            vec![own]
        } else {
            vec![own, self.realm]
        }
    }
}

/// A channel to create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChannel {
    /// The organization it belongs to.
    pub organization_id: OrganizationId,
    /// line, messenger, instagram, whatsapp, sms, email, webchat or api.
    pub channel_type: String,
    /// caac or maac.
    pub product: String,
    /// A display name.
    pub name: String,
    /// The external account (LINE provider, Facebook page, ...).
    pub external_account_id: String,
}
