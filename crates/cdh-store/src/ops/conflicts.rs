//! The conflicts list: merges refused because they would have given a profile two values of
//! a unique field, one row per kept-out contact and key value, as the vendor's export lists
//! them. Rows whose two sides have merged since (an apply after a corrected customer id) are
//! left out. And what an apply reads of the unique fields.

use crate::error::StoreResult;
use crate::model::{ConflictRecord, ContactId, HubId, OrganizationId, ProfileId};
use crate::ops::realms::load_realm;
use crate::plan::apply_unique::UniqueInput;
use crate::sql::text::to_live_profile;
use crate::sql::{Adapter, query};

/// At most this many conflicts a page.
pub const MAX_CONFLICTS_PAGE: u32 = 1000;

/// A page of the organization's conflicts (its own contacts, in its realm), after the
/// cursor `(contact, field)`, in that order.
pub(crate) async fn conflicts_page<B: Adapter>(
    store: &B,
    hub: HubId,
    org: OrganizationId,
    after: Option<(ContactId, String)>,
    limit: u32,
) -> StoreResult<Vec<ConflictRecord>> {
    let mut conn = store.acquire().await?;
    let realm = load_realm::<B>(&mut conn, hub, org).await?.realm;
    let (after_contact, after_field) = after.unwrap_or((ContactId(0), String::new()));
    let sql = format!(
        "SELECT x.contact_id, p.id AS profile_id, c.channel_id, ch.channel_type, \
         ch.name AS channel_name, c.external_id, x.field, x.value, x.reason, x.unique_field, \
         x.ours, x.theirs, COALESCE(h.merged_into, h.id) AS held_by, x.created_at \
         FROM conflicts x \
         JOIN contacts c ON c.hub_id = x.hub_id AND c.id = x.contact_id \
         JOIN channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         JOIN memberships m ON m.hub_id = x.hub_id AND m.contact_id = x.contact_id {} \
         JOIN profiles h ON h.hub_id = x.hub_id AND h.id = x.held_by \
         WHERE x.hub_id = $1 AND x.realm = $2 AND ch.organization_id = $3 \
           AND (x.contact_id > $4 OR (x.contact_id = $4 AND x.field > $5)) \
           AND p.id <> COALESCE(h.merged_into, h.id) \
         ORDER BY x.contact_id, x.field LIMIT $6",
        to_live_profile::<B>()
    );
    B::fetch_all(
        &mut conn,
        query(sql)
            .bind(hub)
            .bind(realm.key())
            .bind(org)
            .bind(after_contact)
            .bind(after_field)
            .bind(i64::from(limit.clamp(1, MAX_CONFLICTS_PAGE))),
    )
    .await
}

/// The values of `unique_fields` (contact order) and what live profiles hold: read over the
/// hub and kept to the realm by the caller, as the contacts and keys are.
pub(crate) async fn read_unique_input<B: Adapter>(
    tx: &mut B::Conn,
    hub: HubId,
    unique_fields: &[String],
) -> StoreResult<UniqueInput> {
    let mut input = UniqueInput::default();
    if !unique_fields.is_empty() {
        let sql = format!(
            "SELECT contact_id, field, value FROM identifiers WHERE hub_id = $1 \
             AND field IN ({}) ORDER BY contact_id, field",
            crate::sql::batch::placeholders(2, unique_fields.len())
        );
        let q = unique_fields
            .iter()
            .fold(query(sql).bind(hub), |q, f| q.bind(f.as_str()));
        input.values = B::fetch_all(tx, q).await?;
    }
    let held: Vec<(ProfileId, String)> = B::fetch_all(
        tx,
        query(
            "SELECT id, unique_values FROM profiles WHERE hub_id = $1 \
             AND merged_into IS NULL AND unique_values <> '[]'",
        )
        .bind(hub),
    )
    .await?;
    input.held = held.into_iter().collect();
    Ok(input)
}
