//! The store port: the operations the server needs, implemented by each backend.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use cdh_core::GoldenRecord;

use crate::error::StoreResult;
use crate::model::{
    AppliedSetting, Channel, ChannelId, ConsoleUser, Contact, ContactId, ContactInput, Delivery,
    DeliveryLog, Event, ExportRow, HubId, HubSettings, ImportOutcome, ImportRow, IssuedToken,
    LedgerEntry, Millis, NewChannel, Organization, OrganizationId, Page, Profile, ProfileId, Role,
    StoredPreview, Task, TaskId, TimelineEntry, TokenGrant, TokenId, TokenInfo, UnifySetting,
    Upserted, UserId, WebhookEndpoint, WebhookId,
};

/// Where an export writes each row; an `Err` stops the export with that message.
pub type ExportSink<'a> = &'a mut (dyn FnMut(ExportRow) -> Result<(), String> + Send);

/// Called after each batch an apply writes, with (rows written, rows in all).
pub type ProgressHook = Arc<dyn Fn(i64, i64) + Send + Sync>;

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

/// Everything the server asks of storage. Every operation is scoped to one hub.
pub trait Store: Send + Sync {
    /// Creates a hub (a tenant) and returns its id.
    fn create_hub(&self, name: &str) -> impl Future<Output = StoreResult<HubId>> + Send;
    /// Creates an organization with its default phone region (`TW`, ...).
    fn create_organization(
        &self,
        hub: HubId,
        name: &str,
        default_region: &str,
    ) -> impl Future<Output = StoreResult<OrganizationId>> + Send;
    /// Connects organizations into one scope, recording the brand's disclosure. Contacts
    /// already stored move into the new scope at the next apply.
    fn connect_organizations(
        &self,
        hub: HubId,
        organizations: &[OrganizationId],
        disclosure_url: &str,
        actor: &str,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Turns cross-product unification on or off (effective for stored contacts at the next apply).
    fn set_cross_product(
        &self,
        hub: HubId,
        on: bool,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Creates a channel.
    fn create_channel(
        &self,
        hub: HubId,
        channel: &NewChannel,
    ) -> impl Future<Output = StoreResult<ChannelId>> + Send;

    /// Inserts or updates a contact and unifies it in the same transaction.
    fn upsert_contact(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> impl Future<Output = StoreResult<Upserted>> + Send;
    /// A contact with its current profile.
    fn get_contact(
        &self,
        hub: HubId,
        id: ContactId,
    ) -> impl Future<Output = StoreResult<Contact>> + Send;
    /// A profile; an id merged away resolves to its survivor with `merged_from` set.
    fn get_profile(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> impl Future<Output = StoreResult<Profile>> + Send;
    /// The profiles of an organization holding a value of an identifier field (normalised
    /// first), each with its merged record (as `golden_record` gives it), all read in one
    /// transaction.
    fn lookup_golden_records(
        &self,
        hub: HubId,
        organization: OrganizationId,
        field: &str,
        value: &str,
    ) -> impl Future<Output = StoreResult<Vec<(Profile, GoldenRecord)>>> + Send;
    /// Live profiles with a contact of the organization whose display name starts with `text`
    /// (trimmed; ASCII letters match either case, other characters as they are), at most
    /// `limit`, ordered by the matching name (lower-cased) and then profile id. A profile with
    /// several matching contacts, merged ones included, comes once. Served by an index. Each
    /// comes with its merged record (as `golden_record` gives it), all read in one transaction.
    fn search_profiles_by_name(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<(Profile, GoldenRecord)>>> + Send;
    /// The profile and its merged fields, tags and identifiers. The record's `timeline` is
    /// left empty: read it page by page with [`Store::timeline`].
    fn golden_record(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> impl Future<Output = StoreResult<(Profile, GoldenRecord)>> + Send;
    /// Notes and conversations of all the profile's contacts, newest first.
    fn timeline(
        &self,
        hub: HubId,
        id: ProfileId,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = StoreResult<Page<TimelineEntry>>> + Send;
    /// The merges that formed a profile, oldest first.
    fn lineage(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> impl Future<Output = StoreResult<Vec<LedgerEntry>>> + Send;
    /// Adds a note to a contact.
    fn add_note(
        &self,
        hub: HubId,
        contact: ContactId,
        text: &str,
        author: &str,
        at: Millis,
    ) -> impl Future<Output = StoreResult<i64>> + Send;
    /// Adds a conversation record (`direction` is `in` or `out`).
    fn add_conversation(
        &self,
        hub: HubId,
        contact: ContactId,
        direction: &str,
        text: &str,
        sent_at: Millis,
    ) -> impl Future<Output = StoreResult<i64>> + Send;

    /// The unify setting in force (version 0, no keys, before any apply).
    fn unify_setting(&self, hub: HubId)
    -> impl Future<Output = StoreResult<AppliedSetting>> + Send;
    /// Every applied setting, oldest first.
    fn unify_history(
        &self,
        hub: HubId,
    ) -> impl Future<Output = StoreResult<Vec<AppliedSetting>>> + Send;
    /// Validates a setting and queues the task that applies it.
    fn start_apply(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        actor: &str,
    ) -> impl Future<Output = StoreResult<TaskId>> + Send;
    /// Runs a queued apply task to its end: the database changes all at once or not at all.
    fn run_apply(
        &self,
        hub: HubId,
        task: TaskId,
        options: &ApplyOptions,
    ) -> impl Future<Output = StoreResult<Task>> + Send;

    /// Queues a task of any kind.
    fn create_task(
        &self,
        hub: HubId,
        kind: &str,
        params: &serde_json::Value,
    ) -> impl Future<Output = StoreResult<TaskId>> + Send;
    /// A task.
    fn get_task(&self, hub: HubId, id: TaskId) -> impl Future<Output = StoreResult<Task>> + Send;
    /// A hub's tasks, newest first.
    fn list_tasks(&self, hub: HubId) -> impl Future<Output = StoreResult<Vec<Task>>> + Send;
    /// Marks a task running and records progress.
    fn update_task_progress(
        &self,
        hub: HubId,
        id: TaskId,
        done: i64,
        total: i64,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// Ends a task with its result or error.
    fn finish_task(
        &self,
        hub: HubId,
        id: TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> impl Future<Output = StoreResult<()>> + Send;

    /// Issues a token for an organization; the secret is returned only here.
    fn create_token(
        &self,
        hub: HubId,
        organization: OrganizationId,
        name: &str,
        scopes: &[String],
    ) -> impl Future<Output = StoreResult<IssuedToken>> + Send;
    /// Who a token speaks for, or `None` if it is unknown, wrong or revoked.
    fn verify_token(
        &self,
        token: &str,
    ) -> impl Future<Output = StoreResult<Option<TokenGrant>>> + Send;
    /// Revokes a token.
    fn revoke_token(&self, hub: HubId, id: TokenId)
    -> impl Future<Output = StoreResult<()>> + Send;

    /// Events with a sequence number after `after`, in order.
    fn events_after(
        &self,
        hub: HubId,
        after: i64,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Event>>> + Send;

    /// Every broken invariant of a hub, described; empty when all hold.
    fn check_invariants(&self, hub: HubId)
    -> impl Future<Output = StoreResult<Vec<String>>> + Send;

    /// An organization by id alone, whatever its hub (for operator routes). Ids are unique
    /// across hubs on PostgreSQL; on SQLite two hubs may share one, which is an error here.
    fn organization_hub(
        &self,
        org: OrganizationId,
    ) -> impl Future<Output = StoreResult<Option<Organization>>> + Send;
    /// An organization of a hub.
    fn get_organization(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> impl Future<Output = StoreResult<Organization>> + Send;
    /// A hub's organizations, oldest first.
    fn list_organizations(
        &self,
        hub: HubId,
    ) -> impl Future<Output = StoreResult<Vec<Organization>>> + Send;
    /// An organization's channels, oldest first.
    fn list_channels(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> impl Future<Output = StoreResult<Vec<Channel>>> + Send;
    /// A channel.
    fn get_channel(
        &self,
        hub: HubId,
        id: ChannelId,
    ) -> impl Future<Output = StoreResult<Channel>> + Send;
    /// An organization's tokens (never their secrets), oldest first.
    fn list_tokens(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> impl Future<Output = StoreResult<Vec<TokenInfo>>> + Send;
    /// The hub's scope settings: cross-product and partner connections.
    fn hub_settings(&self, hub: HubId) -> impl Future<Output = StoreResult<HubSettings>> + Send;

    /// Computes and stores what applying `setting` would do, on top of the current profiles.
    /// Bad keys fail with `Rejected` (`too_many_keys`, `unknown_field`, `duplicate_key`).
    fn create_preview(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> impl Future<Output = StoreResult<StoredPreview>> + Send;
    /// A stored preview.
    fn get_preview(
        &self,
        hub: HubId,
        id: i64,
    ) -> impl Future<Output = StoreResult<StoredPreview>> + Send;
    /// Queues the apply of exactly the previewed setting, or fails with `PreviewStale` when
    /// contacts changed since the preview.
    fn apply_preview(
        &self,
        hub: HubId,
        id: i64,
        actor: &str,
    ) -> impl Future<Output = StoreResult<TaskId>> + Send;

    /// Live profiles with a contact in the organization, by `(updated_at, id)`, from
    /// `updated_since` (inclusive) on; the cursor continues a previous page. Each comes with its
    /// merged record (as `golden_record` gives it), the whole page read in one transaction.
    fn list_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        limit: u32,
        cursor: Option<&str>,
    ) -> impl Future<Output = StoreResult<Page<(Profile, GoldenRecord)>>> + Send;
    /// Manual edits of merged fields (`None` clears); they win over survivorship until a
    /// contact of the profile writes that field again. Appends a `profile.updated` event.
    fn patch_profile(
        &self,
        hub: HubId,
        id: ProfileId,
        edits: &BTreeMap<String, Option<String>>,
        actor: &str,
    ) -> impl Future<Output = StoreResult<(Profile, GoldenRecord)>> + Send;

    /// Queues an `import` or `export` task for an organization, or fails with
    /// `TaskInProgress` when one of that kind is queued or running for it.
    fn start_task_exclusive(
        &self,
        hub: HubId,
        org: OrganizationId,
        kind: &str,
        params: &serde_json::Value,
    ) -> impl Future<Output = StoreResult<TaskId>> + Send;
    /// Marks a queued task running; `false` if it was not queued (someone else has it).
    fn claim_task(&self, hub: HubId, id: TaskId) -> impl Future<Output = StoreResult<bool>> + Send;
    /// Queued and running tasks of every hub, oldest first (for the worker at start-up).
    fn unfinished_tasks(&self) -> impl Future<Output = StoreResult<Vec<(HubId, Task)>>> + Send;
    /// Imports rows matched by `import_key` within the organization: matched contacts are
    /// overwritten (absent fields unchanged, `None` clears), unmatched rows are reported or
    /// created on the organization's `api` channel, a bad row fails alone. Progress goes to
    /// `task` when given.
    #[allow(clippy::too_many_arguments)]
    fn import_rows(
        &self,
        hub: HubId,
        org: OrganizationId,
        import_key: &str,
        rows: &[ImportRow],
        on_unmatched_create: bool,
        actor: &str,
        task: Option<TaskId>,
    ) -> impl Future<Output = StoreResult<ImportOutcome>> + Send;
    /// Streams the organization's live profiles (updated since, if given) with their merged
    /// records to `sink`, from one snapshot; returns how many rows were written.
    fn export_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        sink: ExportSink<'_>,
    ) -> impl Future<Output = StoreResult<u64>> + Send;

    /// Registers a webhook endpoint; it receives events appended from now on.
    fn create_webhook(
        &self,
        hub: HubId,
        org: OrganizationId,
        url: &str,
        secret: &str,
    ) -> impl Future<Output = StoreResult<WebhookId>> + Send;
    /// An organization's webhook endpoints.
    fn list_webhooks(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> impl Future<Output = StoreResult<Vec<WebhookEndpoint>>> + Send;
    /// Removes a webhook endpoint.
    fn delete_webhook(
        &self,
        hub: HubId,
        id: WebhookId,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// For every endpoint of every hub whose next try is due at `now`, its next undelivered
    /// event (events go out one at a time per endpoint, in order).
    fn due_deliveries(
        &self,
        now: Millis,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<Delivery>>> + Send;
    /// Records a try: `Ok(status)` or `Err(message)`. With `next_attempt_at` the event is
    /// tried again then; without it the endpoint moves on to the next event.
    #[allow(clippy::too_many_arguments)]
    fn record_delivery(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        event_seq: i64,
        attempt: u32,
        outcome: Result<u16, String>,
        next_attempt_at: Option<Millis>,
    ) -> impl Future<Output = StoreResult<()>> + Send;
    /// An endpoint's recorded tries, newest first.
    fn deliveries(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        limit: u32,
    ) -> impl Future<Output = StoreResult<Vec<DeliveryLog>>> + Send;

    /// Creates a console user with an already computed password hash. The email is stored as
    /// given (the server normalises it). An email already used in the organization is
    /// `Conflict`; an unknown organization is `NotFound`.
    fn create_user(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> impl Future<Output = StoreResult<ConsoleUser>> + Send;
    /// The organization's user with this email (compared exactly) and their stored hash.
    fn user_for_sign_in(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
    ) -> impl Future<Output = StoreResult<Option<(ConsoleUser, String)>>> + Send;
    /// A console user (`NotFound` when missing).
    fn get_user(
        &self,
        hub: HubId,
        id: UserId,
    ) -> impl Future<Output = StoreResult<ConsoleUser>> + Send;
    /// An organization's console users, by email.
    fn list_users(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> impl Future<Output = StoreResult<Vec<ConsoleUser>>> + Send;
}
