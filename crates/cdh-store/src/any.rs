//! The store chosen at start-up from its URL.

use cdh_core::GoldenRecord;

use crate::error::{StoreError, StoreResult};
use std::collections::BTreeMap;

use crate::model::{
    AppliedSetting, Channel, ChannelId, ConsoleUser, Contact, ContactId, ContactInput, Delivery,
    DeliveryLog, Event, HubId, HubSettings, ImportOutcome, ImportRow, IssuedToken, LedgerEntry,
    Millis, NewChannel, Organization, OrganizationId, Page, Profile, ProfileId, Role,
    StoredPreview, Task, TaskId, TimelineEntry, TokenGrant, TokenId, TokenInfo, UnifySetting,
    Upserted, UserId, WebhookEndpoint, WebhookId,
};
use crate::port::{ApplyOptions, ExportSink, Store};
use crate::{PgStore, SqliteStore};

/// Either adapter, so the server can hold one type whatever the URL says.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// An embedded SQLite file.
    Sqlite(SqliteStore),
    /// A PostgreSQL server.
    Postgres(PgStore),
}

/// Opens `sqlite://path` or `postgres://...` (also `postgresql://`) and migrates it.
pub async fn open(url: &str) -> StoreResult<AnyStore> {
    if url.starts_with("sqlite:") {
        Ok(AnyStore::Sqlite(SqliteStore::open(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(AnyStore::Postgres(PgStore::open(url).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "unsupported database URL (use sqlite://path or postgres://...): {url}"
        )))
    }
}

/// Forwards a call to whichever adapter is inside.
macro_rules! forward {
    ($self:ident . $method:ident ( $($arg:expr),* )) => {
        match $self {
            AnyStore::Sqlite(s) => s.$method($($arg),*).await,
            AnyStore::Postgres(s) => s.$method($($arg),*).await,
        }
    };
}

impl Store for AnyStore {
    async fn create_hub(&self, name: &str) -> StoreResult<HubId> {
        forward!(self.create_hub(name))
    }
    async fn create_organization(
        &self,
        hub: HubId,
        name: &str,
        region: &str,
    ) -> StoreResult<OrganizationId> {
        forward!(self.create_organization(hub, name, region))
    }
    async fn connect_organizations(
        &self,
        hub: HubId,
        orgs: &[OrganizationId],
        url: &str,
        actor: &str,
    ) -> StoreResult<i64> {
        forward!(self.connect_organizations(hub, orgs, url, actor))
    }
    async fn set_cross_product(&self, hub: HubId, on: bool) -> StoreResult<()> {
        forward!(self.set_cross_product(hub, on))
    }
    async fn create_channel(&self, hub: HubId, channel: &NewChannel) -> StoreResult<ChannelId> {
        forward!(self.create_channel(hub, channel))
    }
    async fn upsert_contact(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        forward!(self.upsert_contact(hub, input, actor))
    }
    async fn get_contact(&self, hub: HubId, id: ContactId) -> StoreResult<Contact> {
        forward!(self.get_contact(hub, id))
    }
    async fn get_profile(&self, hub: HubId, id: ProfileId) -> StoreResult<Profile> {
        forward!(self.get_profile(hub, id))
    }
    async fn lookup_golden_records(
        &self,
        hub: HubId,
        org: OrganizationId,
        field: &str,
        value: &str,
    ) -> StoreResult<Vec<(Profile, GoldenRecord)>> {
        forward!(self.lookup_golden_records(hub, org, field, value))
    }
    async fn search_profiles_by_name(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, GoldenRecord)>> {
        forward!(self.search_profiles_by_name(hub, org, text, limit))
    }
    async fn golden_record(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> StoreResult<(Profile, GoldenRecord)> {
        forward!(self.golden_record(hub, id))
    }
    async fn timeline(
        &self,
        hub: HubId,
        id: ProfileId,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineEntry>> {
        forward!(self.timeline(hub, id, limit, cursor))
    }
    async fn lineage(&self, hub: HubId, id: ProfileId) -> StoreResult<Vec<LedgerEntry>> {
        forward!(self.lineage(hub, id))
    }
    async fn add_note(
        &self,
        hub: HubId,
        contact: ContactId,
        text: &str,
        author: &str,
        at: Millis,
    ) -> StoreResult<i64> {
        forward!(self.add_note(hub, contact, text, author, at))
    }
    async fn add_conversation(
        &self,
        hub: HubId,
        contact: ContactId,
        direction: &str,
        text: &str,
        sent_at: Millis,
    ) -> StoreResult<i64> {
        forward!(self.add_conversation(hub, contact, direction, text, sent_at))
    }
    async fn unify_setting(&self, hub: HubId) -> StoreResult<AppliedSetting> {
        forward!(self.unify_setting(hub))
    }
    async fn unify_history(&self, hub: HubId) -> StoreResult<Vec<AppliedSetting>> {
        forward!(self.unify_history(hub))
    }
    async fn start_apply(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        actor: &str,
    ) -> StoreResult<TaskId> {
        forward!(self.start_apply(hub, setting, actor))
    }
    async fn run_apply(
        &self,
        hub: HubId,
        task: TaskId,
        options: &ApplyOptions,
    ) -> StoreResult<Task> {
        forward!(self.run_apply(hub, task, options))
    }
    async fn create_task(
        &self,
        hub: HubId,
        kind: &str,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        forward!(self.create_task(hub, kind, params))
    }
    async fn get_task(&self, hub: HubId, id: TaskId) -> StoreResult<Task> {
        forward!(self.get_task(hub, id))
    }
    async fn list_tasks(&self, hub: HubId) -> StoreResult<Vec<Task>> {
        forward!(self.list_tasks(hub))
    }
    async fn update_task_progress(
        &self,
        hub: HubId,
        id: TaskId,
        done: i64,
        total: i64,
    ) -> StoreResult<()> {
        forward!(self.update_task_progress(hub, id, done, total))
    }
    async fn finish_task(
        &self,
        hub: HubId,
        id: TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> StoreResult<()> {
        forward!(self.finish_task(hub, id, outcome))
    }
    async fn create_token(
        &self,
        hub: HubId,
        org: OrganizationId,
        name: &str,
        scopes: &[String],
    ) -> StoreResult<IssuedToken> {
        forward!(self.create_token(hub, org, name, scopes))
    }
    async fn verify_token(&self, token: &str) -> StoreResult<Option<TokenGrant>> {
        forward!(self.verify_token(token))
    }
    async fn revoke_token(&self, hub: HubId, id: TokenId) -> StoreResult<()> {
        forward!(self.revoke_token(hub, id))
    }
    async fn events_after(&self, hub: HubId, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        forward!(self.events_after(hub, after, limit))
    }
    async fn check_invariants(&self, hub: HubId) -> StoreResult<Vec<String>> {
        forward!(self.check_invariants(hub))
    }
    async fn organization_hub(&self, org: OrganizationId) -> StoreResult<Option<Organization>> {
        forward!(self.organization_hub(org))
    }
    async fn get_organization(&self, hub: HubId, org: OrganizationId) -> StoreResult<Organization> {
        forward!(self.get_organization(hub, org))
    }
    async fn list_organizations(&self, hub: HubId) -> StoreResult<Vec<Organization>> {
        forward!(self.list_organizations(hub))
    }
    async fn list_channels(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<Channel>> {
        forward!(self.list_channels(hub, org))
    }
    async fn get_channel(&self, hub: HubId, id: ChannelId) -> StoreResult<Channel> {
        forward!(self.get_channel(hub, id))
    }
    async fn list_tokens(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<TokenInfo>> {
        forward!(self.list_tokens(hub, org))
    }
    async fn hub_settings(&self, hub: HubId) -> StoreResult<HubSettings> {
        forward!(self.hub_settings(hub))
    }
    async fn create_preview(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> StoreResult<StoredPreview> {
        forward!(self.create_preview(hub, setting, suspicious_threshold))
    }
    async fn get_preview(&self, hub: HubId, id: i64) -> StoreResult<StoredPreview> {
        forward!(self.get_preview(hub, id))
    }
    async fn apply_preview(&self, hub: HubId, id: i64, actor: &str) -> StoreResult<TaskId> {
        forward!(self.apply_preview(hub, id, actor))
    }
    async fn list_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<(Profile, GoldenRecord)>> {
        forward!(self.list_profiles(hub, org, updated_since, limit, cursor))
    }
    async fn patch_profile(
        &self,
        hub: HubId,
        id: ProfileId,
        edits: &BTreeMap<String, Option<String>>,
        actor: &str,
    ) -> StoreResult<(Profile, GoldenRecord)> {
        forward!(self.patch_profile(hub, id, edits, actor))
    }
    async fn start_task_exclusive(
        &self,
        hub: HubId,
        org: OrganizationId,
        kind: &str,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        forward!(self.start_task_exclusive(hub, org, kind, params))
    }
    async fn claim_task(&self, hub: HubId, id: TaskId) -> StoreResult<bool> {
        forward!(self.claim_task(hub, id))
    }
    async fn unfinished_tasks(&self) -> StoreResult<Vec<(HubId, Task)>> {
        forward!(self.unfinished_tasks())
    }
    async fn import_rows(
        &self,
        hub: HubId,
        org: OrganizationId,
        import_key: &str,
        rows: &[ImportRow],
        on_unmatched_create: bool,
        actor: &str,
        task: Option<TaskId>,
    ) -> StoreResult<ImportOutcome> {
        forward!(self.import_rows(hub, org, import_key, rows, on_unmatched_create, actor, task))
    }
    async fn export_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        sink: ExportSink<'_>,
    ) -> StoreResult<u64> {
        forward!(self.export_profiles(hub, org, updated_since, sink))
    }
    async fn create_webhook(
        &self,
        hub: HubId,
        org: OrganizationId,
        url: &str,
        secret: &str,
    ) -> StoreResult<WebhookId> {
        forward!(self.create_webhook(hub, org, url, secret))
    }
    async fn list_webhooks(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        forward!(self.list_webhooks(hub, org))
    }
    async fn delete_webhook(&self, hub: HubId, id: WebhookId) -> StoreResult<()> {
        forward!(self.delete_webhook(hub, id))
    }
    async fn due_deliveries(&self, now: Millis, limit: u32) -> StoreResult<Vec<Delivery>> {
        forward!(self.due_deliveries(now, limit))
    }
    async fn record_delivery(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        event_seq: i64,
        attempt: u32,
        outcome: Result<u16, String>,
        next_attempt_at: Option<Millis>,
    ) -> StoreResult<()> {
        forward!(self.record_delivery(hub, endpoint, event_seq, attempt, outcome, next_attempt_at))
    }
    async fn deliveries(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryLog>> {
        forward!(self.deliveries(hub, endpoint, limit))
    }
    async fn create_user(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
        password_hash: &str,
        role: Role,
        now: Millis,
    ) -> StoreResult<ConsoleUser> {
        forward!(self.create_user(hub, org, email, password_hash, role, now))
    }
    async fn user_for_sign_in(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
    ) -> StoreResult<Option<(ConsoleUser, String)>> {
        forward!(self.user_for_sign_in(hub, org, email))
    }
    async fn get_user(&self, hub: HubId, id: UserId) -> StoreResult<ConsoleUser> {
        forward!(self.get_user(hub, id))
    }
    async fn list_users(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<ConsoleUser>> {
        forward!(self.list_users(hub, org))
    }
}
