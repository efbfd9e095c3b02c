//! Unify settings and previews: the keys in force, and what applying others would do.

use serde::{Deserialize, Serialize};

use super::{ContactId, Millis, PreviewId};

/// A unify setting: the keys and the values excluded from merging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnifySetting {
    /// 0 (nothing merges) to 3 identifier field names.
    pub keys: Vec<String>,
    /// `(field, value)` pairs that never merge, normalised like their field.
    pub excluded: Vec<(String, String)>,
    /// Fields a profile may hold only one value of: a merge that would give it a second is
    /// refused and recorded as a conflict.
    pub unique_fields: Vec<String>,
}

impl Default for UnifySetting {
    /// No keys, nothing excluded, the default unique fields: a realm before any apply.
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            excluded: Vec::new(),
            unique_fields: default_unique_fields(),
        }
    }
}

/// The unique fields of a setting that names none: `customer_id`, as the vendor refuses
/// merges of contacts whose customer ids differ.
pub fn default_unique_fields() -> Vec<String> {
    vec!["customer_id".to_owned()]
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

/// A merge the setting would refuse: it would give a profile two values of a unique field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewConflict {
    /// Why, as the conflicts list names it (`customer_id_multiple`).
    #[serde(default)]
    pub reason: String,
    /// The unique field.
    pub field: String,
    /// The refused contact's side's value, then the other side's.
    pub values: Vec<String>,
    /// The contacts along the chain, from the refused contact to the one it shares a value
    /// with.
    pub contact_ids: Vec<ContactId>,
    /// The chain of shared values that would have merged them.
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
    /// How many merges the setting would refuse in all (unique fields).
    #[serde(default)]
    pub n_conflicts: u64,
    /// Some of them, evenly spaced.
    pub conflicts: Vec<PreviewConflict>,
    /// Remarks for the admin (for example cross-product without `line_uid`).
    pub notes: Vec<String>,
}

/// A merge refused because it would have given a profile two values of a unique field: a
/// contact kept out of the profile of a key value it carries.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConflictRecord {
    /// The contact kept out.
    pub contact_id: ContactId,
    /// Its profile.
    pub profile_id: super::ProfileId,
    /// Its channel.
    pub channel_id: super::ChannelId,
    /// The channel's type (`line`, `email`, ...).
    pub channel_type: String,
    /// The channel's name.
    pub channel_name: String,
    /// The contact's id in its channel.
    pub external_id: String,
    /// The unify key through which the merge was asked.
    pub field: String,
    /// Its value (normalised).
    pub value: String,
    /// `customer_id_multiple` and the like.
    pub reason: String,
    /// The unique field whose values differ.
    pub unique_field: String,
    /// The contact's side's value of it.
    pub ours: String,
    /// The other profile's.
    pub theirs: String,
    /// The profile it was kept out of.
    pub held_by: super::ProfileId,
    /// When the merge was refused.
    pub created_at: Millis,
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
    /// The fields a profile may hold only one value of.
    #[serde(default = "default_unique_fields")]
    pub unique_fields: Vec<String>,
    /// What it would do.
    pub report: PreviewReport,
    /// The state of the hub's contacts it was computed from.
    pub fingerprint: String,
    /// When.
    pub created_at: Millis,
}
