//! Unify settings and previews: the keys in force, and what applying others would do.

use serde::{Deserialize, Serialize};

use super::{ContactId, Millis, PreviewId};

/// A unify setting: the keys and the values excluded from merging.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnifySetting {
    /// 0 (nothing merges) to 3 identifier field names.
    pub keys: Vec<String>,
    /// `(field, value)` pairs that never merge, normalised like their field.
    pub excluded: Vec<(String, String)>,
}

/// A unify setting as applied, with its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedSetting {
    /// Per-hub version, 0 for the initial "no keys".
    pub version: i64,
    /// The setting.
    pub setting: UnifySetting,
    /// Who applied it.
    pub actor: String,
    /// When.
    pub applied_at: Millis,
}

/// A resulting profile of a preview, by size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewProfile {
    /// How many contacts it would hold.
    pub n_contacts: u32,
    /// Its contacts, oldest first (at most 20).
    pub contact_ids: Vec<ContactId>,
}

/// A value carried by suspiciously many contacts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuspiciousValue {
    /// The field.
    pub field: String,
    /// The normalised value.
    pub value: String,
    /// How many contacts carry it.
    pub n_contacts: u32,
}

/// One step of a chain: the contact reached and what tied it to the one before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The contact reached.
    pub contact_id: ContactId,
    /// `start` (the first contact), `value` (a shared key value) or `profile` (already in
    /// one profile: merges are permanent).
    pub tie: String,
    /// The field of the shared value (`tie == "value"`).
    pub field: Option<String>,
    /// The shared normalised value (`tie == "value"`).
    pub value: Option<String>,
}

/// A sample merge with the chain from its oldest contact to its farthest one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewSample {
    /// The contacts of the resulting profile, oldest first (at most 50).
    pub contact_ids: Vec<ContactId>,
    /// The chain.
    pub chain: Vec<ChainLink>,
}

/// A resulting profile that would hold two values of a field marked unique.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewConflict {
    /// The field.
    pub field: String,
    /// The distinct values (at most 10).
    pub values: Vec<String>,
    /// The contacts along the chain.
    pub contact_ids: Vec<ContactId>,
    /// A chain between two contacts holding different values.
    pub chain: Vec<ChainLink>,
}

/// What applying a setting would do, as of the preview.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewReport {
    /// Profiles now.
    pub profiles_before: u64,
    /// Profiles after applying.
    pub profiles_after: u64,
    /// Contacts in a profile that would gain members.
    pub contacts_merged: u64,
    /// The largest resulting profiles, largest first.
    pub largest_profiles: Vec<PreviewProfile>,
    /// Values carried by more contacts than the threshold, most shared first.
    pub suspicious_values: Vec<SuspiciousValue>,
    /// Sample merges.
    pub samples: Vec<PreviewSample>,
    /// Conflicts on unique fields.
    pub conflicts: Vec<PreviewConflict>,
    /// Remarks for the admin (for example cross-product without `line_uid`).
    pub notes: Vec<String>,
}

/// A preview as stored, to be applied later exactly as shown.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPreview {
    /// Its id.
    pub id: PreviewId,
    /// The unify keys previewed.
    pub keys: Vec<String>,
    /// The `(field, value)` pairs excluded, as given.
    pub excluded: Vec<(String, String)>,
    /// What it would do.
    pub report: PreviewReport,
    /// The state of the hub's contacts it was computed from.
    pub fingerprint: String,
    /// When.
    pub created_at: Millis,
}
