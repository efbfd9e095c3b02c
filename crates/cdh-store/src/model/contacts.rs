//! Contacts as the store takes and returns them: the input of an upsert, the stored contact,
//! what unification did, and its notes and conversations.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ChannelId, ContactId, Millis, ProfileId, TimelineEntryId};

/// A contact to insert or update, keyed by `(channel_id, external_id)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ContactInput {
    /// The channel it was seen on.
    pub channel_id: ChannelId,
    /// The channel-scoped id.
    pub external_id: String,
    /// Profile and identifier fields by name; `None` clears a field, an absent name keeps it.
    pub fields: BTreeMap<String, Option<String>>,
    /// Tags; `None` keeps the stored ones.
    pub tags: Option<Vec<String>>,
    /// Custom fields; `None` keeps the stored ones.
    pub custom_fields: Option<BTreeMap<String, String>>,
    /// When the source changed these fields; defaults to now. Older writes lose per field.
    pub updated_at: Option<Millis>,
}

/// A stored field value and when it was last updated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldValue {
    /// The value as given.
    pub value: String,
    /// When it was last updated.
    pub updated_at: Millis,
}

/// An identifier value that could not be used to merge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidField {
    /// The field.
    pub field: String,
    /// A stable reason code (`not_a_phone`, `placeholder`, ...).
    pub reason: String,
}

/// A stored contact with the profile it belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Contact {
    /// The contact's id.
    pub id: ContactId,
    /// Its channel.
    pub channel_id: ChannelId,
    /// Its channel-scoped id.
    pub external_id: String,
    /// The live profile it is in.
    pub profile_id: ProfileId,
    /// Fields by name.
    pub fields: BTreeMap<String, FieldValue>,
    /// Tags.
    pub tags: Vec<String>,
    /// Custom fields.
    pub custom_fields: BTreeMap<String, String>,
    /// Identifier values that are invalid or blocked.
    pub invalid_fields: Vec<InvalidField>,
    /// Creation time.
    pub created_at: Millis,
    /// Last update time.
    pub updated_at: Millis,
}

/// What an upsert did to profiles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unification {
    /// A new profile was created for the contact.
    Created,
    /// The contact joined an existing profile.
    Joined,
    /// The contact stayed in its profile.
    Unchanged,
    /// Profiles merged: `absorbed` now resolve to `survivor`.
    Merged {
        /// The oldest profile, which lives on.
        survivor: ProfileId,
        /// The profiles merged away.
        absorbed: Vec<ProfileId>,
    },
}

/// The result of an upsert: the contact as stored and what unification did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upserted {
    /// The contact, with its resulting profile id.
    pub contact: Contact,
    /// What happened to profiles.
    pub unification: Unification,
    /// How many profiles the contact was kept out of: merges refused because they would have
    /// given a profile two values of a unique field (listed as conflicts).
    pub n_refused: usize,
}

/// A note or a conversation record.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct TimelineEntry {
    /// The entry's id.
    pub id: TimelineEntryId,
    /// `note` or `conversation`.
    pub kind: String,
    /// The contact it is attached to.
    pub contact_id: ContactId,
    /// The contact's channel.
    pub channel_id: ChannelId,
    /// The text.
    pub text: String,
    /// The author (notes) or direction `in`/`out` (conversations).
    pub author: String,
    /// When it was written or sent.
    pub at: Millis,
}
