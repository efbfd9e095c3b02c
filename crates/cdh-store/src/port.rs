//! The store port: what the server asks of storage, one trait per concern.
//!
//! Every operation is scoped to one hub. Each trait is implemented once, generically over the
//! adapters, in its module under `ops/` ([`Setup`] in `ops/setup.rs`, and so on); the traits
//! are object safe, so [`crate::AnyStore`] is `dyn Store` over whichever adapter was opened.
//! Call them with the concern's trait in scope (`use cdh_store::port::Contacts`).

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use cdh_core::GoldenRecord;

use crate::error::StoreResult;
use crate::model::{
    AppliedSetting, Channel, ChannelId, ConflictRecord, Connection, ConsoleUser, Contact,
    ContactId, ContactInput, Delivery, DeliveryLog, Event, EventsPage, ExportRow, HubId,
    ImportChunk, ImportOutcome, ImportRows, IssuedToken, LedgerEntry, Millis, NewChannel,
    Organization, OrganizationId, Page, PreviewId, Profile, ProfileId, RealmSettings, Role,
    StoredPreview, Task, TaskId, TaskKind, TimelineEntry, TimelineEntryId, TokenGrant, TokenId,
    TokenInfo, UnifySetting, Upserted, UserChange, UserId, WebhookEndpoint, WebhookId,
};

/// Where an export writes each row; an `Err` stops the export with that message.
pub type ExportSink<'a> = &'a mut (dyn FnMut(ExportRow) -> Result<(), String> + Send);

/// Called after each batch an apply writes, with (rows written, rows in all).
pub type ProgressHook = Arc<dyn Fn(i64, i64) + Send + Sync>;

/// A profile with its merged record.
pub type ProfileRecord = (Profile, GoldenRecord);

/// How an apply task runs.
#[derive(Clone)]
pub struct ApplyOptions {
    /// Rows per staged batch (and per progress update).
    pub batch_size: usize,
    /// Called after each committed batch.
    pub on_batch: Option<ProgressHook>,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            batch_size: 10_000,
            on_batch: None,
        }
    }
}

impl std::fmt::Debug for ApplyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApplyOptions")
            .field("batch_size", &self.batch_size)
            .field("on_batch", &self.on_batch.is_some())
            .finish()
    }
}

/// Everything the server asks of storage.
pub trait Store:
    Setup + Contacts + Profiles + Unification + Tasks + Transfers + Events + Access + Diagnostics
{
}

impl<T> Store for T where
    T: Setup
        + Contacts
        + Profiles
        + Unification
        + Tasks
        + Transfers
        + Events
        + Access
        + Diagnostics
{
}

/// Hubs, organizations, partner connections and channels (`ops/setup.rs`).
#[async_trait]
pub trait Setup: Send + Sync {
    /// Creates a hub (a tenant) and returns its id.
    async fn create_hub(&self, name: &str) -> StoreResult<HubId>;
    /// Creates an organization with its default phone region (`TW`, ...).
    async fn create_organization(
        &self,
        hub: HubId,
        name: &str,
        default_region: &str,
    ) -> StoreResult<OrganizationId>;
    /// An organization by id alone, whatever its hub (for operator routes). Ids are unique
    /// across hubs on PostgreSQL; on SQLite two hubs may share one, which is an error here.
    async fn organization_hub(&self, org: OrganizationId) -> StoreResult<Option<Organization>>;
    /// An organization of a hub.
    async fn get_organization(&self, hub: HubId, org: OrganizationId) -> StoreResult<Organization>;
    /// A hub's organizations, oldest first.
    async fn list_organizations(&self, hub: HubId) -> StoreResult<Vec<Organization>>;
    /// Connects organizations into one realm, recording the brand's disclosure. Each goes on
    /// unifying under its own setting until the realm's first apply, which moves every
    /// contact of the realm into its scopes. An organization already in a connection is
    /// `Rejected(AlreadyConnected)`.
    async fn connect_organizations(
        &self,
        hub: HubId,
        organizations: &[OrganizationId],
        disclosure_url: &str,
        actor: &str,
    ) -> StoreResult<Connection>;
    /// Turns cross-product unification of the organization's realm on or off, from the next
    /// apply on (for stored and new contacts alike: until then the applied switch holds).
    async fn set_cross_product(&self, hub: HubId, org: OrganizationId, on: bool)
    -> StoreResult<()>;
    /// The organization's realm: its organizations, cross-product switch and connection.
    async fn realm_settings(&self, hub: HubId, org: OrganizationId) -> StoreResult<RealmSettings>;
    /// Creates a channel.
    async fn create_channel(&self, hub: HubId, channel: &NewChannel) -> StoreResult<ChannelId>;
    /// A channel.
    async fn get_channel(&self, hub: HubId, id: ChannelId) -> StoreResult<Channel>;
    /// An organization's channels, oldest first.
    async fn list_channels(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<Channel>>;
}

/// Contacts: the auto-unifying upsert, reads, notes and conversations (`ops/contacts.rs`).
#[async_trait]
pub trait Contacts: Send + Sync {
    /// Inserts or updates a contact and unifies it in the same transaction.
    async fn upsert_contact(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted>;
    /// A contact with its current profile.
    async fn get_contact(&self, hub: HubId, id: ContactId) -> StoreResult<Contact>;
    /// Adds a note to a contact.
    async fn add_note(
        &self,
        hub: HubId,
        contact: ContactId,
        text: &str,
        author: &str,
        at: Millis,
    ) -> StoreResult<TimelineEntryId>;
    /// Adds a conversation record (`direction` is `in` or `out`).
    async fn add_conversation(
        &self,
        hub: HubId,
        contact: ContactId,
        direction: &str,
        text: &str,
        sent_at: Millis,
    ) -> StoreResult<TimelineEntryId>;
}

/// Profiles and their merged records (`ops/profiles.rs`).
#[async_trait]
pub trait Profiles: Send + Sync {
    /// A profile; an id merged away resolves to its survivor with `merged_from` set.
    async fn get_profile(&self, hub: HubId, id: ProfileId) -> StoreResult<Profile>;
    /// The profile and its merged fields, tags and identifiers. The record's `timeline` is
    /// left empty: read it page by page with [`Profiles::timeline`].
    async fn golden_record(&self, hub: HubId, id: ProfileId) -> StoreResult<ProfileRecord>;
    /// The profiles of an organization holding a value of an identifier field (normalised
    /// first), each with its merged record, all read in one snapshot.
    async fn lookup_golden_records(
        &self,
        hub: HubId,
        organization: OrganizationId,
        field: &str,
        value: &str,
    ) -> StoreResult<Vec<ProfileRecord>>;
    /// Live profiles with a contact of the organization whose display name starts with `text`
    /// (trimmed; ASCII letters match either case, other characters as they are), at most
    /// `limit`, ordered by the matching name (lower-cased) and then profile id. A profile with
    /// several matching contacts, merged ones included, comes once. Served by an index. Each
    /// comes with its merged record, all read in one snapshot.
    async fn search_profiles_by_name(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
        limit: u32,
    ) -> StoreResult<Vec<ProfileRecord>>;
    /// Live profiles with a contact in the organization, by `(updated_at, id)`, from
    /// `updated_since` (inclusive) on; the cursor continues a previous page. Each comes with
    /// its merged record, the whole page read in one snapshot.
    async fn list_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<ProfileRecord>>;
    /// Notes and conversations of all the profile's contacts, newest first.
    async fn timeline(
        &self,
        hub: HubId,
        id: ProfileId,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineEntry>>;
    /// The merges that formed a profile, oldest first.
    async fn lineage(&self, hub: HubId, id: ProfileId) -> StoreResult<Vec<LedgerEntry>>;
    /// An admin's edit (`ops/profile_edits.rs`): a built-in identifier (not `line_uid`) is
    /// written to every contact of the profile as a contact write, so lookups find it and
    /// unification runs on it; another field gets a manual value that wins over the merged
    /// one until the admin clears it (`None`). In one transaction; appends `profile.updated`.
    async fn patch_profile(
        &self,
        hub: HubId,
        id: ProfileId,
        edits: &BTreeMap<String, Option<String>>,
        actor: &str,
    ) -> StoreResult<ProfileRecord>;
}

/// Unify settings: previews, applies and their history (`ops/unification.rs`).
#[async_trait]
pub trait Unification: Send + Sync {
    /// The unify setting in force in the organization's realm (version 0, no keys, before
    /// any apply).
    async fn unify_setting(&self, hub: HubId, org: OrganizationId) -> StoreResult<AppliedSetting>;
    /// Every setting applied in the organization's realm, oldest first.
    async fn unify_history(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<AppliedSetting>>;
    /// Computes and stores what applying `setting` in the organization's realm would do, on
    /// top of the current profiles. Bad keys fail with `Rejected` (`TooManyKeys`,
    /// `UnknownField`, `DuplicateKey`).
    async fn create_preview(
        &self,
        hub: HubId,
        org: OrganizationId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> StoreResult<StoredPreview>;
    /// A preview of the organization's realm (another realm's is `NotFound`).
    async fn get_preview(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: PreviewId,
    ) -> StoreResult<StoredPreview>;
    /// Queues the apply of exactly the previewed setting, or fails with `PreviewStale` when
    /// the realm's contacts changed since the preview.
    async fn apply_preview(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: PreviewId,
        actor: &str,
    ) -> StoreResult<TaskId>;
    /// Validates a setting and queues the task that applies it in the organization's realm.
    async fn start_apply(
        &self,
        hub: HubId,
        org: OrganizationId,
        setting: &UnifySetting,
        actor: &str,
    ) -> StoreResult<TaskId>;
    /// Runs a queued apply task to its end: the database changes all at once or not at all.
    async fn run_apply(
        &self,
        hub: HubId,
        task: TaskId,
        options: &ApplyOptions,
    ) -> StoreResult<Task>;
    /// A page (at most `limit`, capped at 1,000) of the merges refused in the organization's
    /// realm for its own contacts (unique fields), after the cursor `(contact, field)`.
    async fn conflicts(
        &self,
        hub: HubId,
        org: OrganizationId,
        after: Option<(ContactId, String)>,
        limit: u32,
    ) -> StoreResult<Vec<ConflictRecord>>;
}

/// Long-running tasks: their queue, progress and outcome (`ops/tasks.rs`).
#[async_trait]
pub trait Tasks: Send + Sync {
    /// Queues an import or export task for an organization, or fails with `TaskInProgress`
    /// when one of that kind is queued or running for it.
    async fn start_task_exclusive(
        &self,
        hub: HubId,
        org: OrganizationId,
        kind: TaskKind,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId>;
    /// Queues an import with its rows (`ImportRowsWriter`'s chunks), kept apart from its
    /// params so that reading the task never reads them; fails like `start_task_exclusive`.
    async fn start_import_task(
        &self,
        hub: HubId,
        org: OrganizationId,
        params: &serde_json::Value,
        rows: &[ImportChunk],
    ) -> StoreResult<TaskId>;
    /// The rows an import keeps until it ends (none after); the worker reads them through
    /// `import_rows(.., ImportRows::Queued, .., Some(task))`, a chunk at a time.
    async fn import_task_rows(&self, hub: HubId, id: TaskId) -> StoreResult<Vec<ImportChunk>>;
    /// A task, whoever asked for it (for the worker).
    async fn get_task(&self, hub: HubId, id: TaskId) -> StoreResult<Task>;
    /// A task an organization may see: its own import or export, or an apply of a realm it
    /// sees; any other is `NotFound`.
    async fn organization_task(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: TaskId,
    ) -> StoreResult<Task>;
    /// The newest `limit` tasks of `kinds` an organization may see, newest first.
    async fn list_tasks(
        &self,
        hub: HubId,
        org: OrganizationId,
        kinds: &[TaskKind],
        limit: u32,
    ) -> StoreResult<Vec<Task>>;
    /// Marks a queued task running; `false` if it was not queued (someone else has it).
    async fn claim_task(&self, hub: HubId, id: TaskId) -> StoreResult<bool>;
    /// Marks a task running and records progress.
    async fn update_task_progress(
        &self,
        hub: HubId,
        id: TaskId,
        done: i64,
        total: i64,
    ) -> StoreResult<()>;
    /// Ends a task with its result or error; an import's rows are dropped.
    async fn finish_task(
        &self,
        hub: HubId,
        id: TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> StoreResult<()>;
    /// Queued and running tasks of every hub, oldest first (for the worker at start-up).
    async fn unfinished_tasks(&self) -> StoreResult<Vec<(HubId, Task)>>;
}

/// Imports and exports of an organization's contacts (`ops/transfers.rs`).
#[async_trait]
pub trait Transfers: Send + Sync {
    /// Imports rows matched by `import_key` within the organization: matched contacts are
    /// overwritten (absent fields unchanged, `None` clears), unmatched rows are reported or
    /// created on the organization's `api` channel, a bad row fails alone. Progress goes to
    /// `task` when given. Queued rows (those of `task`) are read a chunk at a time.
    #[allow(clippy::too_many_arguments)]
    async fn import_rows(
        &self,
        hub: HubId,
        org: OrganizationId,
        import_key: &str,
        rows: ImportRows<'_>,
        on_unmatched_create: bool,
        actor: &str,
        task: Option<TaskId>,
    ) -> StoreResult<ImportOutcome>;
    /// Streams the organization's live profiles (updated since, if given) with their merged
    /// records to `sink`, from one snapshot; returns how many rows were written.
    async fn export_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        sink: ExportSink<'_>,
    ) -> StoreResult<u64>;
}

/// The events feed and webhook deliveries (`ops/events.rs`).
#[async_trait]
pub trait Events: Send + Sync {
    /// The events an organization sees with a sequence number after `after`, in order, at
    /// most `limit`: those of its own realm (before a connection, the organization's), and
    /// of its connection's realm those about a profile that holds a contact of it.
    async fn events_after(
        &self,
        hub: HubId,
        org: OrganizationId,
        after: i64,
        limit: u32,
    ) -> StoreResult<Vec<Event>> {
        Ok(self.events_page(hub, org, after, limit).await?.events)
    }
    /// [`Events::events_after`] with where to read on: events the organization does not see
    /// are skipped, so the next page starts after the last event read, seen or not.
    async fn events_page(
        &self,
        hub: HubId,
        org: OrganizationId,
        after: i64,
        limit: u32,
    ) -> StoreResult<EventsPage>;
    /// Registers a webhook endpoint; it receives events appended from now on.
    async fn create_webhook(
        &self,
        hub: HubId,
        org: OrganizationId,
        url: &str,
        secret: &str,
    ) -> StoreResult<WebhookId>;
    /// An organization's webhook endpoints.
    async fn list_webhooks(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<WebhookEndpoint>>;
    /// Removes a webhook endpoint.
    async fn delete_webhook(&self, hub: HubId, id: WebhookId) -> StoreResult<()>;
    /// For every endpoint of every hub whose next try is due at `now`, its next undelivered
    /// event (events go out one at a time per endpoint, in order).
    async fn due_deliveries(&self, now: Millis, limit: u32) -> StoreResult<Vec<Delivery>>;
    /// Records a try: `Ok(status)` or `Err(message)`. With `next_attempt_at` the event is
    /// tried again then; without it the endpoint moves on to the next event.
    #[allow(clippy::too_many_arguments)]
    async fn record_delivery(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        event_seq: i64,
        attempt: u32,
        outcome: Result<u16, String>,
        next_attempt_at: Option<Millis>,
    ) -> StoreResult<()>;
    /// An endpoint's recorded tries, newest first.
    async fn deliveries(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryLog>>;
}

/// Who may call: API tokens and console users (`ops/access.rs`).
#[async_trait]
pub trait Access: Send + Sync {
    /// Issues a token for an organization; the secret is returned only here.
    async fn create_token(
        &self,
        hub: HubId,
        organization: OrganizationId,
        name: &str,
        scopes: &[String],
    ) -> StoreResult<IssuedToken>;
    /// Who a token speaks for, or `None` if it is unknown, wrong or revoked.
    async fn verify_token(&self, token: &str) -> StoreResult<Option<TokenGrant>>;
    /// Revokes a token.
    async fn revoke_token(&self, hub: HubId, id: TokenId) -> StoreResult<()>;
    /// An organization's tokens (never their secrets), oldest first.
    async fn list_tokens(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<TokenInfo>>;
    /// Creates a console user with an already computed password hash. The email is stored as
    /// given (the server normalises it). An email already used in the organization is
    /// `Conflict`; an unknown organization is `NotFound`.
    async fn create_user(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> StoreResult<ConsoleUser>;
    /// The organization's user with this email (compared exactly) and their stored hash.
    async fn user_for_sign_in(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
    ) -> StoreResult<Option<(ConsoleUser, String)>>;
    /// A console user (`NotFound` when missing).
    async fn get_user(&self, hub: HubId, id: UserId) -> StoreResult<ConsoleUser>;
    /// Ends every session of a console user (their epoch moves on); returns the new epoch.
    async fn end_sessions(&self, hub: HubId, id: UserId) -> StoreResult<i64>;
    /// An organization's console users, by email.
    async fn list_users(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<ConsoleUser>>;
    /// Changes a user of `org`: a new password hash ends every session of theirs in the same
    /// write (their epoch moves on); a new role holds from their next request. `NotFound`
    /// when `org` has no such user.
    async fn update_user(
        &self,
        hub: HubId,
        org: OrganizationId,
        id: UserId,
        change: UserChange,
    ) -> StoreResult<ConsoleUser>;
    /// Removes a user of `org`; their sessions end with them. `NotFound` when `org` has no
    /// such user.
    async fn remove_user(&self, hub: HubId, org: OrganizationId, id: UserId) -> StoreResult<()>;
}

/// What operators and tests check: the invariants and the database's plans for the hot
/// reads (`ops/diagnostics.rs`).
#[async_trait]
pub trait Diagnostics: Send + Sync {
    /// Whether the database answers a read of the store's tables (for `GET /readyz`).
    async fn ready(&self) -> StoreResult<()>;
    /// Every broken invariant of a hub, described; empty when all hold.
    async fn check_invariants(&self, hub: HubId) -> StoreResult<Vec<String>>;
    /// The plan the database picks for finding a contact's live profile, one line per step
    /// (it should search `profiles` by primary key only).
    async fn live_profile_plan(&self, hub: HubId, contact: ContactId) -> StoreResult<Vec<String>>;
    /// The plan the database picks for the first step of a name search, one line per step (it
    /// should walk `contacts_by_name`).
    async fn name_search_plan(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
    ) -> StoreResult<Vec<String>>;
}
