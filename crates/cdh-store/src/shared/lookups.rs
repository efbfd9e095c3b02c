// Organizations, channels, tokens and hub settings read back (included by both adapters).

type OrganizationRow = (i64, i64, String, String, i64);

const ORGANIZATION_COLUMNS: &str = "id, hub_id, name, default_region, created_at";

fn organization_from_row(row: OrganizationRow) -> Organization {
    let (id, hub_id, name, default_region, created_at) = row;
    Organization {
        id,
        hub_id,
        name,
        default_region,
        created_at,
    }
}

type ChannelRow = (i64, i64, String, String, String, String, i64);

const CHANNEL_COLUMNS: &str =
    "id, organization_id, channel_type, product, name, external_account_id, created_at";

fn channel_from_row(row: ChannelRow) -> Channel {
    let (id, organization_id, channel_type, product, name, external_account_id, created_at) = row;
    Channel {
        id,
        organization_id,
        channel_type,
        product,
        name,
        external_account_id,
        created_at,
    }
}

impl ThisStore {
    async fn organization_hub_impl(
        &self,
        org: OrganizationId,
    ) -> StoreResult<Option<Organization>> {
        // The one lookup across hubs: organizations are few (a reference-style read on Citus).
        let rows: Vec<OrganizationRow> = sqlx::query_as(&format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1 ORDER BY hub_id LIMIT 2"
        ))
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        if rows.len() > 1 {
            return Err(StoreError::Conflict(format!(
                "organization id {org} exists in more than one hub; address it through its hub"
            )));
        }
        Ok(rows.into_iter().next().map(organization_from_row))
    }

    async fn get_organization_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Organization> {
        let row: Option<OrganizationRow> = sqlx::query_as(&format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE hub_id = $1 AND id = $2"
        ))
        .bind(hub)
        .bind(org)
        .fetch_optional(&self.pool)
        .await?;
        row.map(organization_from_row)
            .ok_or(StoreError::NotFound("organization"))
    }

    async fn list_organizations_impl(&self, hub: HubId) -> StoreResult<Vec<Organization>> {
        let rows: Vec<OrganizationRow> = sqlx::query_as(&format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE hub_id = $1 ORDER BY id"
        ))
        .bind(hub)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(organization_from_row).collect())
    }

    async fn list_channels_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<Channel>> {
        let rows: Vec<ChannelRow> = sqlx::query_as(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE hub_id = $1 AND organization_id = $2 ORDER BY id"
        ))
        .bind(hub)
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(channel_from_row).collect())
    }

    async fn get_channel_impl(&self, hub: HubId, id: ChannelId) -> StoreResult<Channel> {
        let row: Option<ChannelRow> = sqlx::query_as(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM channels WHERE hub_id = $1 AND id = $2"
        ))
        .bind(hub)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(channel_from_row)
            .ok_or(StoreError::NotFound("channel"))
    }

    async fn list_tokens_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<TokenInfo>> {
        let rows: Vec<(i64, String, String, i64, Option<i64>)> = sqlx::query_as(
            "SELECT id, name, scopes, created_at, revoked_at FROM api_tokens \
             WHERE hub_id = $1 AND organization_id = $2 ORDER BY id",
        )
        .bind(hub)
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, name, scopes, created_at, revoked_at)| {
                Ok(TokenInfo {
                    id,
                    name,
                    scopes: serde_json::from_str(&scopes)?,
                    created_at,
                    revoked_at,
                })
            })
            .collect()
    }

    async fn hub_settings_impl(&self, hub: HubId) -> StoreResult<HubSettings> {
        let mut tx = self.begin_snapshot().await?;
        let (cross,): (i64,) = sqlx::query_as("SELECT cross_product FROM hubs WHERE hub_id = $1")
            .bind(hub)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("hub"))?;
        let connections: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT id, disclosure_url, actor, created_at FROM partner_connections \
             WHERE hub_id = $1 ORDER BY id",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        let members: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT connection_id, organization_id FROM connection_members \
             WHERE hub_id = $1 ORDER BY connection_id, organization_id",
        )
        .bind(hub)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(HubSettings {
            cross_product: cross != 0,
            connections: connections
                .into_iter()
                .map(|(id, disclosure_url, actor, at)| Connection {
                    id,
                    organization_ids: members.iter().filter(|m| m.0 == id).map(|m| m.1).collect(),
                    disclosure_url,
                    actor,
                    at,
                })
                .collect(),
        })
    }
}
