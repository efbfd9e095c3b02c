//! [`Setup`] for every backend: hubs, organizations, partner connections, realms' scope
//! settings and channels.

use async_trait::async_trait;

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{
    AppliedSetting, Channel, ChannelId, Connection, ConnectionId, HubId, NewChannel, Organization,
    OrganizationId, Realm, RealmSettings, UnifySetting,
};
use crate::ops::realms::{ensure_realm_row, ensure_unconnected, load_connection, load_realm};
use crate::port::Setup;
use crate::sql::{Adapter, fetch_one, query};

const ORGANIZATION_COLUMNS: &str = "id, hub_id, name, default_region, created_at";

const CHANNEL_COLUMNS: &str =
    "id, organization_id, channel_type, product, name, external_account_id, created_at";

#[async_trait]
impl<B: Adapter> Setup for B {
    async fn create_hub(&self, name: &str) -> StoreResult<HubId> {
        // Random ids keep hubs from learning each other's numbers and need no coordination.
        let hub = HubId(
            i64::from(rand::random::<u32>() & 0x7fff_ffff) << 20 | i64::from(rand::random::<u16>()),
        );
        let mut conn = self.acquire().await?;
        B::execute(
            &mut conn,
            query(
                "INSERT INTO hubs (hub_id, name, cross_product, next_id, event_seq, created_at) \
                 VALUES ($1, $2, 0, 1, 0, $3)",
            )
            .bind(hub)
            .bind(name)
            .bind(self.clock().now()),
        )
        .await?;
        Ok(hub)
    }

    async fn create_organization(
        &self,
        hub: HubId,
        name: &str,
        region: &str,
    ) -> StoreResult<OrganizationId> {
        cdh_core::Region::parse(region)
            .map_err(|_| StoreError::Invalid(format!("unknown region {region}")))?;
        let mut tx = self.begin_write().await?;
        let id = OrganizationId(B::next_id(&mut tx, hub).await?);
        B::execute(
            &mut tx,
            query(
                "INSERT INTO organizations (hub_id, id, name, default_region, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hub)
            .bind(id)
            .bind(name)
            .bind(region)
            .bind(self.clock().now()),
        )
        .await?;
        ensure_realm_row::<B>(&mut tx, hub, Realm::Organization(id), false).await?;
        B::commit(tx).await?;
        Ok(id)
    }

    async fn organization_hub(&self, org: OrganizationId) -> StoreResult<Option<Organization>> {
        // The one lookup across hubs: organizations are few (a reference-style read on Citus).
        let mut conn = self.acquire().await?;
        let rows: Vec<Organization> = B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1 \
                 ORDER BY hub_id LIMIT 2"
            ))
            .bind(org),
        )
        .await?;
        if rows.len() > 1 {
            return Err(StoreError::Conflict(format!(
                "organization id {org} exists in more than one hub; address it through its hub"
            )));
        }
        Ok(rows.into_iter().next())
    }

    async fn get_organization(&self, hub: HubId, org: OrganizationId) -> StoreResult<Organization> {
        let mut conn = self.acquire().await?;
        fetch_one::<B, _>(
            &mut conn,
            query(format!(
                "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE hub_id = $1 AND id = $2"
            ))
            .bind(hub)
            .bind(org),
            Resource::Organization,
        )
        .await
    }

    async fn list_organizations(&self, hub: HubId) -> StoreResult<Vec<Organization>> {
        let mut conn = self.acquire().await?;
        B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE hub_id = $1 ORDER BY id"
            ))
            .bind(hub),
        )
        .await
    }

    async fn connect_organizations(
        &self,
        hub: HubId,
        orgs: &[OrganizationId],
        url: &str,
        actor: &str,
    ) -> StoreResult<Connection> {
        if url.trim().is_empty() {
            return Err(StoreError::Invalid("a disclosure URL is required".into()));
        }
        let mut tx = self.begin_write().await?;
        let mut all_cross_product = true;
        for org in orgs {
            all_cross_product &= load_realm::<B>(&mut tx, hub, *org).await?.cross_product;
        }
        ensure_unconnected::<B>(&mut tx, hub, orgs).await?;
        let id = ConnectionId(B::next_id(&mut tx, hub).await?);
        B::execute(
            &mut tx,
            query(
                "INSERT INTO partner_connections (hub_id, id, disclosure_url, actor, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(hub)
            .bind(id)
            .bind(url)
            .bind(actor)
            .bind(self.clock().now()),
        )
        .await?;
        for org in orgs {
            B::execute(
                &mut tx,
                query(
                    "INSERT INTO connection_members (hub_id, connection_id, organization_id) \
                     VALUES ($1, $2, $3)",
                )
                .bind(hub)
                .bind(id)
                .bind(*org),
            )
            .await
            // Two connections made at once: the unique index on the organization decides.
            .map_err(|e| match e {
                StoreError::Backend { .. } => StoreError::rejected(
                    Rejection::AlreadyConnected,
                    format!("organization {org} is already in a partner connection"),
                ),
                other => other,
            })?;
        }
        // The connection's realm switches cross-product on only if every organization had.
        ensure_realm_row::<B>(&mut tx, hub, Realm::Connection(id), all_cross_product).await?;
        let connection = load_connection::<B>(&mut tx, hub, id).await?;
        B::commit(tx).await?;
        Ok(connection)
    }

    async fn set_cross_product(
        &self,
        hub: HubId,
        org: OrganizationId,
        on: bool,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        let realm = load_realm::<B>(&mut tx, hub, org).await?.realm;
        ensure_realm_row::<B>(&mut tx, hub, realm, on).await?;
        B::execute(
            &mut tx,
            query("UPDATE realms SET cross_product = $3 WHERE hub_id = $1 AND realm = $2")
                .bind(hub)
                .bind(realm.key())
                .bind(i64::from(on)),
        )
        .await?;
        B::commit(tx).await
    }

    async fn realm_settings(&self, hub: HubId, org: OrganizationId) -> StoreResult<RealmSettings> {
        let mut tx = self.begin_snapshot().await?;
        let settings = load_realm::<B>(&mut tx, hub, org).await?;
        B::commit(tx).await?;
        Ok(settings)
    }

    async fn create_channel(&self, hub: HubId, channel: &NewChannel) -> StoreResult<ChannelId> {
        if cdh_core::Product::parse(&channel.product).is_none() {
            return Err(StoreError::Invalid(format!(
                "unknown product {}",
                channel.product
            )));
        }
        let mut tx = self.begin_write().await?;
        let id = ChannelId(B::next_id(&mut tx, hub).await?);
        B::execute(
            &mut tx,
            query(
                "INSERT INTO channels (hub_id, id, organization_id, channel_type, product, name, \
                 external_account_id, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(hub)
            .bind(id)
            .bind(channel.organization_id)
            .bind(channel.channel_type.as_str())
            .bind(channel.product.as_str())
            .bind(channel.name.as_str())
            .bind(channel.external_account_id.as_str())
            .bind(self.clock().now()),
        )
        .await
        .map_err(|e| missing_parent(e, Resource::Organization))?;
        B::commit(tx).await?;
        Ok(id)
    }

    async fn get_channel(&self, hub: HubId, id: ChannelId) -> StoreResult<Channel> {
        let mut conn = self.acquire().await?;
        fetch_one::<B, _>(
            &mut conn,
            query(format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE hub_id = $1 AND id = $2"
            ))
            .bind(hub)
            .bind(id),
            Resource::Channel,
        )
        .await
    }

    async fn list_channels(&self, hub: HubId, org: OrganizationId) -> StoreResult<Vec<Channel>> {
        let mut conn = self.acquire().await?;
        B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE hub_id = $1 \
                 AND organization_id = $2 ORDER BY id"
            ))
            .bind(hub)
            .bind(org),
        )
        .await
    }
}

/// A write refused by a foreign key (any other database error, for that matter) reads as
/// the missing parent row it names.
pub(crate) fn missing_parent(e: StoreError, parent: Resource) -> StoreError {
    match e {
        StoreError::Backend { .. } => StoreError::NotFound(parent),
        other => other,
    }
}

/// `NotFound(Organization)` unless the hub has the organization.
pub(crate) async fn ensure_organization<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
) -> StoreResult<()> {
    fetch_one::<B, (i64,)>(
        conn,
        query("SELECT id FROM organizations WHERE hub_id = $1 AND id = $2")
            .bind(hub)
            .bind(org),
        Resource::Organization,
    )
    .await
    .map(|_| ())
}

/// An applied setting as stored (`unify_settings`).
#[derive(sqlx::FromRow)]
struct SettingRow {
    version: i64,
    keys: String,
    excluded: String,
    unique_fields: String,
    actor: String,
    applied_at: i64,
}

impl SettingRow {
    fn into_setting(self) -> StoreResult<AppliedSetting> {
        Ok(AppliedSetting {
            version: self.version,
            setting: UnifySetting {
                unique_fields: serde_json::from_str(&self.unique_fields)?,
                keys: serde_json::from_str(&self.keys)?,
                excluded: serde_json::from_str(&self.excluded)?,
            },
            actor: self.actor,
            applied_at: self.applied_at,
        })
    }
}

const SETTING_COLUMNS: &str = "version, keys, excluded, unique_fields, actor, applied_at";

/// The unify setting in force in a realm: version 0 with no keys before any apply.
pub(crate) async fn load_setting<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: Realm,
) -> StoreResult<AppliedSetting> {
    let row: Option<SettingRow> = B::fetch_optional(
        conn,
        query(format!(
            "SELECT {SETTING_COLUMNS} FROM unify_settings \
             WHERE hub_id = $1 AND realm = $2 ORDER BY version DESC LIMIT 1"
        ))
        .bind(hub)
        .bind(realm.key()),
    )
    .await?;
    match row {
        Some(row) => row.into_setting(),
        None => Ok(AppliedSetting {
            version: 0,
            setting: UnifySetting {
                unique_fields: crate::model::default_unique_fields(),
                keys: Vec::new(),
                excluded: Vec::new(),
            },
            actor: String::new(),
            applied_at: 0,
        }),
    }
}

/// Every applied setting of a realm, oldest first.
pub(crate) async fn load_history<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: Realm,
) -> StoreResult<Vec<AppliedSetting>> {
    let rows: Vec<SettingRow> = B::fetch_all(
        conn,
        query(format!(
            "SELECT {SETTING_COLUMNS} FROM unify_settings WHERE hub_id = $1 AND realm = $2 \
             ORDER BY version"
        ))
        .bind(hub)
        .bind(realm.key()),
    )
    .await?;
    rows.into_iter().map(SettingRow::into_setting).collect()
}
