// Creating hubs, organizations, partner connections and channels (included by both adapters).

impl ThisStore {
    async fn create_hub_impl(&self, name: &str) -> StoreResult<HubId> {
        // Random ids keep hubs from learning each other's numbers and need no coordination.
        let hub =
            i64::from(rand::random::<u32>() & 0x7fff_ffff) << 20 | i64::from(rand::random::<u16>());
        sqlx::query("INSERT INTO hubs (hub_id, name, cross_product, next_id, event_seq, created_at) VALUES ($1, $2, 0, 1, 0, $3)")
            .bind(hub)
            .bind(name.to_owned())
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(hub)
    }

    async fn create_organization_impl(
        &self,
        hub: HubId,
        name: &str,
        region: &str,
    ) -> StoreResult<OrganizationId> {
        cdh_core::Region::parse(region)
            .map_err(|_| StoreError::Invalid(format!("unknown region {region}")))?;
        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query("INSERT INTO organizations (hub_id, id, name, default_region, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hub)
            .bind(id)
            .bind(name.to_owned())
            .bind(region.to_owned())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn connect_impl(
        &self,
        hub: HubId,
        orgs: &[OrganizationId],
        url: &str,
        actor: &str,
    ) -> StoreResult<i64> {
        if url.trim().is_empty() {
            return Err(StoreError::Invalid("a disclosure URL is required".into()));
        }
        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query("INSERT INTO partner_connections (hub_id, id, disclosure_url, actor, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(hub)
            .bind(id)
            .bind(url.to_owned())
            .bind(actor.to_owned())
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        for org in orgs {
            sqlx::query("INSERT INTO connection_members (hub_id, connection_id, organization_id) VALUES ($1, $2, $3)")
                .bind(hub)
                .bind(id)
                .bind(*org)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    async fn create_channel_impl(
        &self,
        hub: HubId,
        channel: &NewChannel,
    ) -> StoreResult<ChannelId> {
        if cdh_core::Product::parse(&channel.product).is_none() {
            return Err(StoreError::Invalid(format!(
                "unknown product {}",
                channel.product
            )));
        }
        let mut tx = self.begin_write().await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query(
            "INSERT INTO channels (hub_id, id, organization_id, channel_type, product, name, \
             external_account_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(hub)
        .bind(id)
        .bind(channel.organization_id)
        .bind(channel.channel_type.clone())
        .bind(channel.product.clone())
        .bind(channel.name.clone())
        .bind(channel.external_account_id.clone())
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Backend { .. } => StoreError::NotFound("organization"),
            other => other,
        })?;
        tx.commit().await?;
        Ok(id)
    }
}
