// Exports: an organization's profiles with their merged records, read in one snapshot so the
// file holds every write committed before the export started and nothing after. Included by
// both adapters.

/// Profile ids read per round trip while walking the snapshot.
const EXPORT_PAGE: i64 = 1000;

impl ThisStore {
    async fn export_profiles_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        sink: ExportSink<'_>,
    ) -> StoreResult<u64> {
        let mut tx = self.begin_snapshot().await?;
        ensure_organization(&mut tx, hub, org).await?;
        let (mut after_at, mut after_id) = list_start(updated_since, None)?;
        let mut written = 0u64;
        loop {
            let page: Vec<(i64, i64)> = sqlx::query_as(&org_profiles_sql(true))
                .bind(hub)
                .bind(after_at)
                .bind(after_id)
                .bind(org)
                .bind(EXPORT_PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let Some(&(last_id, last_at)) = page.last() else {
                break;
            };
            let ids: Vec<ProfileId> = page.iter().map(|r| r.0).collect();
            for (profile, golden) in golden_many(&mut tx, hub, &ids).await? {
                sink(ExportRow { profile, golden }).map_err(|message| {
                    StoreError::rejected(
                        "export_write_failed",
                        format!("export stopped: {message}"),
                    )
                })?;
                written += 1;
            }
            (after_at, after_id) = (last_at, last_id);
        }
        tx.commit().await?;
        Ok(written)
    }
}
