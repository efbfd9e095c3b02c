// The port implemented over the shared functions (included by `sqlite.rs` and `postgres.rs`).

impl Store for ThisStore {
    async fn create_hub(&self, name: &str) -> StoreResult<HubId> {
        self.create_hub_impl(name).await
    }
    async fn create_organization(
        &self,
        hub: HubId,
        name: &str,
        region: &str,
    ) -> StoreResult<OrganizationId> {
        self.create_organization_impl(hub, name, region).await
    }
    async fn connect_organizations(
        &self,
        hub: HubId,
        orgs: &[OrganizationId],
        url: &str,
        actor: &str,
    ) -> StoreResult<i64> {
        self.connect_impl(hub, orgs, url, actor).await
    }
    async fn set_cross_product(&self, hub: HubId, on: bool) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("UPDATE hubs SET cross_product = $2 WHERE hub_id = $1")
            .bind(hub)
            .bind(i64::from(on))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        if n == 0 {
            Err(StoreError::NotFound("hub"))
        } else {
            Ok(())
        }
    }
    async fn create_channel(&self, hub: HubId, channel: &NewChannel) -> StoreResult<ChannelId> {
        self.create_channel_impl(hub, channel).await
    }
    async fn upsert_contact(
        &self,
        hub: HubId,
        input: &ContactInput,
        actor: &str,
    ) -> StoreResult<Upserted> {
        self.upsert_one(hub, input, actor).await
    }
    async fn get_contact(&self, hub: HubId, id: ContactId) -> StoreResult<Contact> {
        self.get_contact_impl(hub, id).await
    }
    async fn get_profile(&self, hub: HubId, id: ProfileId) -> StoreResult<Profile> {
        self.get_profile_impl(hub, id).await
    }
    async fn lookup_golden_records(
        &self,
        hub: HubId,
        org: OrganizationId,
        field: &str,
        value: &str,
    ) -> StoreResult<Vec<(Profile, cdh_core::GoldenRecord)>> {
        self.lookup_golden_impl(hub, org, field, value).await
    }
    async fn search_profiles_by_name(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, cdh_core::GoldenRecord)>> {
        self.search_profiles_by_name_impl(hub, org, text, limit)
            .await
    }
    async fn golden_record(
        &self,
        hub: HubId,
        id: ProfileId,
    ) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
        self.golden_impl(hub, id).await
    }
    async fn timeline(
        &self,
        hub: HubId,
        id: ProfileId,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineEntry>> {
        self.timeline_impl(hub, id, limit, cursor).await
    }
    async fn lineage(&self, hub: HubId, id: ProfileId) -> StoreResult<Vec<LedgerEntry>> {
        self.lineage_impl(hub, id).await
    }
    async fn add_note(
        &self,
        hub: HubId,
        contact: ContactId,
        text: &str,
        author: &str,
        at: Millis,
    ) -> StoreResult<i64> {
        self.add_timeline_impl(hub, contact, "note", text, author, at)
            .await
    }
    async fn add_conversation(
        &self,
        hub: HubId,
        contact: ContactId,
        direction: &str,
        text: &str,
        sent_at: Millis,
    ) -> StoreResult<i64> {
        if direction != "in" && direction != "out" {
            return Err(StoreError::Invalid(format!(
                "direction must be in or out, not {direction}"
            )));
        }
        self.add_timeline_impl(hub, contact, "conversation", text, direction, sent_at)
            .await
    }
    async fn unify_setting(&self, hub: HubId) -> StoreResult<AppliedSetting> {
        let mut conn = self.pool.acquire().await?;
        load_setting(&mut conn, hub).await
    }
    async fn unify_history(&self, hub: HubId) -> StoreResult<Vec<AppliedSetting>> {
        self.history_impl(hub).await
    }
    async fn start_apply(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        actor: &str,
    ) -> StoreResult<TaskId> {
        self.start_apply_impl(hub, setting, actor).await
    }
    async fn run_apply(
        &self,
        hub: HubId,
        task: TaskId,
        options: &ApplyOptions,
    ) -> StoreResult<Task> {
        self.run_apply_impl(hub, task, options).await
    }
    async fn create_task(
        &self,
        hub: HubId,
        kind: &str,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        self.create_task_impl(hub, kind, params).await
    }
    async fn get_task(&self, hub: HubId, id: TaskId) -> StoreResult<Task> {
        self.get_task_impl(hub, id).await
    }
    async fn list_tasks(&self, hub: HubId) -> StoreResult<Vec<Task>> {
        self.list_tasks_impl(hub).await
    }
    async fn update_task_progress(
        &self,
        hub: HubId,
        id: TaskId,
        done: i64,
        total: i64,
    ) -> StoreResult<()> {
        self.progress_impl(hub, id, done, total).await
    }
    async fn finish_task(
        &self,
        hub: HubId,
        id: TaskId,
        outcome: Result<serde_json::Value, String>,
    ) -> StoreResult<()> {
        self.finish_task_impl(hub, id, outcome).await
    }
    async fn create_token(
        &self,
        hub: HubId,
        org: OrganizationId,
        name: &str,
        scopes: &[String],
    ) -> StoreResult<IssuedToken> {
        self.create_token_impl(hub, org, name, scopes).await
    }
    async fn verify_token(&self, token: &str) -> StoreResult<Option<TokenGrant>> {
        self.verify_token_impl(token).await
    }
    async fn revoke_token(&self, hub: HubId, id: TokenId) -> StoreResult<()> {
        self.revoke_token_impl(hub, id).await
    }
    async fn events_after(&self, hub: HubId, after: i64, limit: u32) -> StoreResult<Vec<Event>> {
        self.events_impl(hub, after, limit).await
    }
    async fn check_invariants(&self, hub: HubId) -> StoreResult<Vec<String>> {
        self.check_impl(hub).await
    }
    async fn organization_hub(&self, org: OrganizationId) -> StoreResult<Option<Organization>> {
        self.organization_hub_impl(org).await
    }
    async fn get_organization(&self, hub: HubId, org: OrganizationId) -> StoreResult<Organization> {
        self.get_organization_impl(hub, org).await
    }
    async fn list_organizations(&self, hub: HubId) -> StoreResult<Vec<Organization>> {
        self.list_organizations_impl(hub).await
    }
    async fn list_channels(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<Channel>> {
        self.list_channels_impl(hub, org).await
    }
    async fn get_channel(&self, hub: HubId, id: ChannelId) -> StoreResult<Channel> {
        self.get_channel_impl(hub, id).await
    }
    async fn list_tokens(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<TokenInfo>> {
        self.list_tokens_impl(hub, org).await
    }
    async fn hub_settings(&self, hub: HubId) -> StoreResult<HubSettings> {
        self.hub_settings_impl(hub).await
    }
    async fn create_preview(
        &self,
        hub: HubId,
        setting: &UnifySetting,
        suspicious_threshold: u32,
    ) -> StoreResult<StoredPreview> {
        self.create_preview_impl(hub, setting, suspicious_threshold)
            .await
    }
    async fn get_preview(&self, hub: HubId, id: i64) -> StoreResult<StoredPreview> {
        let mut conn = self.pool.acquire().await?;
        load_preview(&mut conn, hub, id).await
    }
    async fn apply_preview(&self, hub: HubId, id: i64, actor: &str) -> StoreResult<TaskId> {
        self.apply_preview_impl(hub, id, actor).await
    }
    async fn list_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<(Profile, cdh_core::GoldenRecord)>> {
        self.list_profiles_impl(hub, org, updated_since, limit, cursor)
            .await
    }
    async fn patch_profile(
        &self,
        hub: HubId,
        id: ProfileId,
        edits: &BTreeMap<String, Option<String>>,
        actor: &str,
    ) -> StoreResult<(Profile, cdh_core::GoldenRecord)> {
        self.patch_profile_impl(hub, id, edits, actor).await
    }
    async fn start_task_exclusive(
        &self,
        hub: HubId,
        org: OrganizationId,
        kind: &str,
        params: &serde_json::Value,
    ) -> StoreResult<TaskId> {
        self.start_task_exclusive_impl(hub, org, kind, params).await
    }
    async fn claim_task(&self, hub: HubId, id: TaskId) -> StoreResult<bool> {
        self.claim_task_impl(hub, id).await
    }
    async fn unfinished_tasks(&self) -> StoreResult<Vec<(HubId, Task)>> {
        self.unfinished_tasks_impl().await
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
        self.import_rows_impl(hub, org, import_key, rows, on_unmatched_create, actor, task)
            .await
    }
    async fn export_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        sink: ExportSink<'_>,
    ) -> StoreResult<u64> {
        self.export_profiles_impl(hub, org, updated_since, sink)
            .await
    }
    async fn create_webhook(
        &self,
        hub: HubId,
        org: OrganizationId,
        url: &str,
        secret: &str,
    ) -> StoreResult<WebhookId> {
        self.create_webhook_impl(hub, org, url, secret).await
    }
    async fn list_webhooks(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        self.list_webhooks_impl(hub, org).await
    }
    async fn delete_webhook(&self, hub: HubId, id: WebhookId) -> StoreResult<()> {
        self.delete_webhook_impl(hub, id).await
    }
    async fn due_deliveries(&self, now: Millis, limit: u32) -> StoreResult<Vec<Delivery>> {
        self.due_deliveries_impl(now, limit).await
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
        self.record_delivery_impl(hub, endpoint, event_seq, attempt, outcome, next_attempt_at)
            .await
    }
    async fn deliveries(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryLog>> {
        self.deliveries_impl(hub, endpoint, limit).await
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
        self.create_user_impl(hub, org, email, password_hash, role, now)
            .await
    }
    async fn user_for_sign_in(
        &self,
        hub: HubId,
        org: OrganizationId,
        email: &str,
    ) -> StoreResult<Option<(ConsoleUser, String)>> {
        self.user_for_sign_in_impl(hub, org, email).await
    }
    async fn get_user(&self, hub: HubId, id: UserId) -> StoreResult<ConsoleUser> {
        self.get_user_impl(hub, id).await
    }
    async fn list_users(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<ConsoleUser>> {
        self.list_users_impl(hub, org).await
    }
}
