//! Profiles as the store returns them, pages of lists, the merge ledger and the events feed.

use super::{ChannelId, ContactId, Millis, ProfileId};

/// One contact of a profile and the channel it came from.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ProfileMember {
    /// The contact.
    pub contact_id: ContactId,
    /// Its channel.
    pub channel_id: ChannelId,
    /// The channel's type.
    pub channel_type: String,
    /// The channel's product.
    pub product: String,
}

/// A live profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    /// The profile's id.
    pub id: ProfileId,
    /// The id asked for when it was merged into this one.
    pub merged_from: Option<ProfileId>,
    /// Its oldest contact.
    pub oldest_contact: ContactId,
    /// Its contacts, oldest first.
    pub members: Vec<ProfileMember>,
    /// Creation time.
    pub created_at: Millis,
    /// Last change (join, merge, member update).
    pub updated_at: Millis,
}

/// A page of a list and the cursor of the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, or `None` at the end.
    pub next_cursor: Option<String>,
}

/// Why a merge happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cause {
    /// `setting`, `import` or `contact`.
    pub kind: String,
    /// The setting version, import task or contact id.
    pub id: String,
    /// Who did it.
    pub actor: String,
}

/// One row of the merge ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Per-hub order.
    pub seq: i64,
    /// When.
    pub at: Millis,
    /// The profile that lived on.
    pub survivor_id: ProfileId,
    /// The profiles merged into it.
    pub absorbed_ids: Vec<ProfileId>,
    /// The unify key that tied them.
    pub key_field: String,
    /// The normalised value that tied them.
    pub key_value: String,
    /// Why.
    pub cause: Cause,
}

/// The `source` of a merged field whose value an admin set by hand (other sources name the
/// contact the value came from).
pub const MANUAL_SOURCE: &str = "manual";

/// An entry of the events feed.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Per-hub order; the cursor of the feed.
    pub seq: i64,
    /// When.
    pub at: Millis,
    /// `profile.created`, `profile.updated` or `profile.merged`.
    pub kind: String,
    /// The profile concerned (the survivor for merges).
    pub profile_id: ProfileId,
    /// Kind-specific data (`{survivor_id, merged_ids, key, value}` for merges).
    pub payload: serde_json::Value,
}
