//! Organizations, channels and the hub's scope settings.

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
}

/// The hub's unification scope settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubSettings {
    /// Whether MAAC and CAAC contacts unify together.
    pub cross_product: bool,
    /// Partner connections, oldest first.
    pub connections: Vec<Connection>,
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
