//! The plain values the store takes and returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::ids::{
    ChannelId, ConnectionId, ContactId, HubId, OrganizationId, PreviewId, ProfileId, TaskId,
    TimelineEntryId, TokenId, UserId, WebhookId,
};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

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
}

/// One contact of a profile and the channel it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// A unify setting: the keys and the values excluded from merging.
#[derive(Clone, Debug, PartialEq, Eq)]
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

/// What a task does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskKind {
    /// Applies a unify setting over every contact of the hub.
    Apply,
    /// Imports rows into an organization.
    Import,
    /// Exports an organization's profiles to a file.
    Export,
}

impl TaskKind {
    /// The kind as stored and shown (`apply`, `import`, `export`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Import => "import",
            Self::Export => "export",
        }
    }

    /// `apply`, `import` or `export`, exactly; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "apply" => Some(Self::Apply),
            "import" => Some(Self::Import),
            "export" => Some(Self::Export),
            _ => None,
        }
    }
}

impl std::fmt::Display for TaskKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a task is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskStatus {
    /// Waiting for the worker.
    Queued,
    /// Under way.
    Running,
    /// Done, with a result.
    Succeeded,
    /// Ended with an error.
    Failed,
}

impl TaskStatus {
    /// The status as stored and shown (`queued`, `running`, `succeeded`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    /// A stored status, exactly; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "queued" => Some(Self::Queued),
            "running" => Some(Self::Running),
            "succeeded" => Some(Self::Succeeded),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    /// Whether the task has ended (succeeded or failed).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A long-running operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    /// The task's id.
    pub id: TaskId,
    /// What it does.
    pub kind: TaskKind,
    /// Where it is.
    pub status: TaskStatus,
    /// Units done.
    pub done: i64,
    /// Units in all.
    pub total: i64,
    /// What it was asked to do.
    pub params: serde_json::Value,
    /// What it produced.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// Creation time.
    pub created_at: Millis,
    /// Start time.
    pub started_at: Option<Millis>,
    /// End time.
    pub finished_at: Option<Millis>,
}

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

/// One row of an import: `fields` absent stay unchanged, `None` clears.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    /// The row's number in the request (0-based or 1-based, as the caller counts).
    pub row: usize,
    /// Fields by name, including the import key.
    pub fields: BTreeMap<String, Option<String>>,
    /// Tags; `None` keeps the stored ones.
    pub tags: Option<Vec<String>>,
    /// Custom fields; `None` keeps the stored ones.
    pub custom_fields: Option<BTreeMap<String, String>>,
}

/// A row that failed, alone.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRow {
    /// The row's number as given.
    pub row: usize,
    /// A stable code (`missing_import_key`, `invalid_import_key`, `invalid_field`, ...).
    pub code: String,
    /// A human sentence.
    pub message: String,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// Rows given.
    pub total: u64,
    /// Rows that matched at least one contact (all matched contacts were overwritten).
    pub matched: u64,
    /// Rows created as contacts of the organization's `api` channel.
    pub created: u64,
    /// Rows that matched nothing and were not created.
    pub unmatched: u64,
    /// Rows that failed.
    pub failed_rows: Vec<FailedRow>,
}

/// One profile of an export with its merged record.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportRow {
    /// The profile.
    pub profile: Profile,
    /// Its merged fields, tags, identifiers and timeline.
    pub golden: cdh_core::GoldenRecord,
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
}
