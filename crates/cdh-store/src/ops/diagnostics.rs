//! [`Diagnostics`] for every backend: the invariants checked over one snapshot of a hub
//! (the rules themselves are in `plan::check`), and the plans the database picks for the hot
//! reads.

use std::collections::HashMap;

use async_trait::async_trait;

use crate::error::StoreResult;
use crate::model::{ContactId, HubId, OrganizationId, UnifySetting};
use crate::ops::name_search::first_step_sql;
use crate::plan::check::{CheckInput, RealmCheck, broken_invariants};
use crate::port::Diagnostics;
use crate::sql::text::{explain, profile_of_contact_sql};
use crate::sql::{Adapter, query};

#[async_trait]
impl<B: Adapter> Diagnostics for B {
    async fn ready(&self) -> StoreResult<()> {
        let mut conn = self.acquire().await?;
        // A table of the schema, not `SELECT 1`: a server that answers without the store's
        // schema (dropped, or another database) is not ready either.
        let _: Option<(i64,)> = B::fetch_optional(
            &mut conn,
            query("SELECT CAST(count(*) AS BIGINT) FROM (SELECT hub_id FROM hubs LIMIT 1) AS h"),
        )
        .await?;
        Ok(())
    }

    async fn check_invariants(&self, hub: HubId) -> StoreResult<Vec<String>> {
        let mut tx = self.begin_snapshot().await?;
        let contacts = B::fetch_all(
            &mut tx,
            query(
                "SELECT c.id, c.scope, o.default_region AS region FROM contacts c \
                 JOIN channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
                 JOIN organizations o ON o.hub_id = ch.hub_id AND o.id = ch.organization_id \
                 WHERE c.hub_id = $1 ORDER BY c.id",
            )
            .bind(hub),
        )
        .await?;
        let memberships = B::fetch_all(
            &mut tx,
            query("SELECT contact_id, bucket_id FROM memberships WHERE hub_id = $1").bind(hub),
        )
        .await?;
        let profiles = B::fetch_all(
            &mut tx,
            query(
                "SELECT id, origin_contact, oldest_contact, member_count, merged_into, \
                 unique_values FROM profiles WHERE hub_id = $1",
            )
            .bind(hub),
        )
        .await?;
        let identifiers = B::fetch_all(
            &mut tx,
            query(
                "SELECT contact_id, field, value, scope FROM identifiers WHERE hub_id = $1 \
                 ORDER BY contact_id",
            )
            .bind(hub),
        )
        .await?;
        let ledger = B::fetch_all(
            &mut tx,
            query(
                "SELECT survivor_id, absorbed_ids FROM merge_ledger WHERE hub_id = $1 \
                 ORDER BY seq",
            )
            .bind(hub),
        )
        .await?;
        // Every realm's settings, oldest first: the last is in force.
        let settings: Vec<(String, String, String, String)> = B::fetch_all(
            &mut tx,
            query(
                "SELECT realm, keys, excluded, unique_fields FROM unify_settings \
                 WHERE hub_id = $1 ORDER BY realm, version",
            )
            .bind(hub),
        )
        .await?;
        let conflicts = B::fetch_all(
            &mut tx,
            query("SELECT contact_id, field, value FROM conflicts WHERE hub_id = $1").bind(hub),
        )
        .await?;
        B::commit(tx).await?;
        let mut realms: HashMap<String, RealmCheck> = HashMap::new();
        for (realm, keys, excluded, unique_fields) in settings {
            let check = realms.entry(realm).or_default();
            check.setting = UnifySetting {
                unique_fields: serde_json::from_str(&unique_fields)?,
                keys: serde_json::from_str(&keys)?,
                excluded: serde_json::from_str(&excluded)?,
            };
        }
        broken_invariants(&CheckInput {
            contacts,
            memberships,
            profiles,
            identifiers,
            ledger,
            realms,
            conflicts,
        })
    }

    async fn live_profile_plan(&self, hub: HubId, contact: ContactId) -> StoreResult<Vec<String>> {
        let mut conn = self.acquire().await?;
        B::explain(
            &mut conn,
            query(explain::<B>(&profile_of_contact_sql::<B>()))
                .bind(hub)
                .bind(contact),
        )
        .await
    }

    async fn name_search_plan(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
    ) -> StoreResult<Vec<String>> {
        let mut conn = self.acquire().await?;
        B::explain(&mut conn, first_step_sql::<B>(hub, org, text)).await
    }
}
