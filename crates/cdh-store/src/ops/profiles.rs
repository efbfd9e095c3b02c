//! [`Profiles`] for every backend: a profile read (by id, by key value, by name, page by
//! page), its timeline and lineage, and manual edits of its merged fields.

use std::collections::BTreeMap;

use async_trait::async_trait;
use cdh_core::{FieldKind, IdentifierField};

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{
    Cause, ContactId, HubId, LedgerEntry, Millis, OrganizationId, Page, Profile, ProfileId,
    ProfileMember, TimelineEntry, UnifySetting,
};
use crate::ops::golden::{ProfileHead, golden_found, golden_many, golden_sql};
use crate::ops::name_search::search_by_name;
use crate::ops::setup::ensure_organization;
use crate::port::{ProfileRecord, Profiles};
use crate::rules::normalizer;
use crate::sql::text::{buckets_of, org_profiles_sql, realm_keys_sql, to_live_profile};
use crate::sql::{Adapter, fetch_one, query};

/// The most profiles one page lists.
pub(crate) const MAX_PAGE: u32 = 1000;

#[async_trait]
impl<B: Adapter> Profiles for B {
    async fn get_profile(&self, hub: HubId, id: ProfileId) -> StoreResult<Profile> {
        let mut conn = self.acquire().await?;
        let head = load_profile_head::<B>(&mut conn, hub, id).await?;
        let members: Vec<ProfileMember> = B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT m.contact_id, c.channel_id, ch.channel_type, ch.product FROM ({}) b \
                 {j} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
                 {j} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
                 {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
                 ORDER BY m.contact_id",
                buckets_of("$2"),
                j = B::ORDERED_JOIN
            ))
            .bind(hub)
            .bind(head.live),
        )
        .await?;
        Ok(head.into_profile(members))
    }

    async fn golden_record(&self, hub: HubId, id: ProfileId) -> StoreResult<ProfileRecord> {
        // One statement: the members, fields and edits are of one moment.
        let mut conn = self.acquire().await?;
        let mut found = golden_many::<B>(&mut conn, hub, &[id]).await?;
        found.pop().ok_or(StoreError::NotFound(Resource::Profile))
    }

    async fn lookup_golden_records(
        &self,
        hub: HubId,
        org: OrganizationId,
        field: &str,
        value: &str,
    ) -> StoreResult<Vec<ProfileRecord>> {
        let mut conn = self.acquire().await?;
        let Some((field, normalised)) =
            lookup_value::<B>(&mut conn, hub, org, field, value).await?
        else {
            return Ok(Vec::new());
        };
        // One statement finds the profiles and reads their records, in one snapshot.
        let j = B::ORDERED_JOIN;
        let sql = golden_sql::<B>(&format!(
            "SELECT DISTINCT p.id FROM identifiers i \
             {j} contacts c ON c.hub_id = i.hub_id AND c.id = i.contact_id \
             {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
             {j} memberships m ON m.hub_id = i.hub_id AND m.contact_id = i.contact_id {} \
             WHERE i.hub_id = $1 AND i.field = $2 AND i.value = $3 AND ch.organization_id = $4",
            to_live_profile::<B>()
        ));
        golden_found::<B>(
            &mut conn,
            query(sql).bind(hub).bind(field).bind(normalised).bind(org),
        )
        .await
    }

    async fn search_profiles_by_name(
        &self,
        hub: HubId,
        org: OrganizationId,
        text: &str,
        limit: u32,
    ) -> StoreResult<Vec<ProfileRecord>> {
        let limit = limit.min(MAX_PAGE) as usize;
        // One snapshot, so the profiles found and their records are of one moment.
        let mut tx = self.begin_snapshot().await?;
        ensure_organization::<B>(&mut tx, hub, org).await?;
        let ids = search_by_name::<B>(&mut tx, hub, org, text, limit).await?;
        let profiles = golden_many::<B>(&mut tx, hub, &ids).await?;
        B::commit(tx).await?;
        Ok(profiles)
    }

    async fn list_profiles(
        &self,
        hub: HubId,
        org: OrganizationId,
        updated_since: Option<Millis>,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<ProfileRecord>> {
        let (after_at, after_id) = list_start(updated_since, cursor)?;
        let limit = i64::from(limit.clamp(1, MAX_PAGE));
        // One snapshot, so a page's profiles and their records are of one moment.
        let mut tx = self.begin_snapshot().await?;
        ensure_organization::<B>(&mut tx, hub, org).await?;
        let rows: Vec<(ProfileId, i64)> = B::fetch_all(
            &mut tx,
            query(org_profiles_sql::<B>(true))
                .bind(hub)
                .bind(after_at)
                .bind(after_id)
                .bind(org)
                .bind(limit + 1),
        )
        .await?;
        let more = rows.len() as i64 > limit;
        let ids: Vec<ProfileId> = rows.iter().take(limit as usize).map(|r| r.0).collect();
        let items = golden_many::<B>(&mut tx, hub, &ids).await?;
        B::commit(tx).await?;
        let next_cursor = more
            .then(|| rows.get(limit as usize - 1))
            .flatten()
            .map(|(id, at)| format!("{at}.{id}"));
        Ok(Page { items, next_cursor })
    }

    async fn timeline(
        &self,
        hub: HubId,
        id: ProfileId,
        limit: u32,
        cursor: Option<&str>,
    ) -> StoreResult<Page<TimelineEntry>> {
        let mut conn = self.acquire().await?;
        let (live, _) = resolve_profile::<B>(&mut conn, hub, id).await?;
        let (at, after_id) = match cursor {
            Some(c) => parse_cursor(c)?,
            None => (i64::MAX, i64::MAX),
        };
        let limit = i64::from(limit.clamp(1, 1000));
        // One statement: the membership it joins through is of one snapshot, so a merge
        // committing meanwhile shows entirely or not at all.
        let mut items: Vec<TimelineEntry> = B::fetch_all(
            &mut conn,
            query(format!(
                "SELECT t.id, t.kind, t.contact_id, c.channel_id, t.text, t.author, t.at \
                 FROM ({}) b \
                 {j} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
                 {j} timeline_entries t ON t.hub_id = m.hub_id AND t.contact_id = m.contact_id \
                 {j} contacts c ON c.hub_id = t.hub_id AND c.id = t.contact_id \
                 WHERE (t.at < $3 OR (t.at = $3 AND t.id < $4)) \
                 ORDER BY t.at DESC, t.id DESC LIMIT $5",
                buckets_of("$2"),
                j = B::ORDERED_JOIN
            ))
            .bind(hub)
            .bind(live)
            .bind(at)
            .bind(after_id)
            .bind(limit + 1),
        )
        .await?;
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|e| format!("{}.{}", e.at, e.id))
        } else {
            None
        };
        Ok(Page { items, next_cursor })
    }

    async fn lineage(&self, hub: HubId, id: ProfileId) -> StoreResult<Vec<LedgerEntry>> {
        let mut conn = self.acquire().await?;
        let (live, _) = resolve_profile::<B>(&mut conn, hub, id).await?;
        let rows: Vec<LedgerRow> = B::fetch_all(
            &mut conn,
            query(format!(
                // Two index searches (an `OR` of both would walk every profile of the hub),
                // sorted here: an ORDER BY over the union made SQLite walk the ledger in `seq`
                // order.
                "SELECT {LEDGER_COLUMNS} FROM merge_ledger l \
                 WHERE l.hub_id = $1 AND l.survivor_id = $2 \
                 UNION ALL \
                 SELECT {LEDGER_COLUMNS} FROM profiles p \
                 {} merge_ledger l ON l.hub_id = p.hub_id AND l.survivor_id = p.id \
                 WHERE p.hub_id = $1 AND p.merged_into = $2",
                B::ORDERED_JOIN
            ))
            .bind(hub)
            .bind(live),
        )
        .await?;
        let mut entries = rows
            .into_iter()
            .map(LedgerRow::into_entry)
            .collect::<StoreResult<Vec<_>>>()?;
        entries.sort_by_key(|e| e.seq);
        Ok(entries)
    }

    async fn patch_profile(
        &self,
        hub: HubId,
        id: ProfileId,
        edits: &BTreeMap<String, Option<String>>,
        actor: &str,
    ) -> StoreResult<ProfileRecord> {
        crate::ops::profile_edits::patch_profile(self, hub, id, edits, actor).await
    }
}

/// The live profile an id names, and the id when it was merged away.
pub(crate) async fn resolve_profile<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    id: ProfileId,
) -> StoreResult<(ProfileId, Option<ProfileId>)> {
    let (merged_into,): (Option<ProfileId>,) = fetch_one::<B, _>(
        conn,
        query("SELECT merged_into FROM profiles WHERE hub_id = $1 AND id = $2")
            .bind(hub)
            .bind(id),
        Resource::Profile,
    )
    .await?;
    Ok(match merged_into {
        None => (id, None),
        Some(survivor) => (survivor, Some(id)),
    })
}

/// A profile's own row and its realm's unify keys: one statement when the id is live, two when
/// it was merged away.
async fn load_profile_head<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    id: ProfileId,
) -> StoreResult<ProfileHead> {
    type HeadRow = (Option<ProfileId>, ContactId, i64, i64, Option<String>);
    let row_of = |id: ProfileId| {
        query(format!(
            "SELECT merged_into, oldest_contact, created_at, updated_at, {} \
             FROM profiles WHERE hub_id = $1 AND id = $2",
            realm_keys_sql("profiles.oldest_contact")
        ))
        .bind(hub)
        .bind(id)
    };
    let row: HeadRow = fetch_one::<B, _>(conn, row_of(id), Resource::Profile).await?;
    // A merged-away id names its survivor, which is live (merges repoint absorbed rows).
    let (live, merged_from, (_, oldest_contact, created_at, updated_at, keys)) = match row.0 {
        None => (id, None, row),
        Some(survivor) => (
            survivor,
            Some(id),
            fetch_one::<B, HeadRow>(conn, row_of(survivor), Resource::Profile).await?,
        ),
    };
    Ok(ProfileHead {
        live,
        merged_from,
        oldest_contact,
        created_at,
        updated_at,
        keys,
    })
}

/// The field's name and the value normalised as the identifiers hold them; `None` when the
/// value does not normalise (nothing can hold it). Only a phone needs the organization's
/// default region, so only a phone lookup pays the extra statement that reads it.
async fn lookup_value<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    org: OrganizationId,
    field: &str,
    value: &str,
) -> StoreResult<Option<(String, String)>> {
    let field_id = IdentifierField::parse(field, &[field.to_owned()])
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let region = if field_id.kind() == FieldKind::Phone {
        let (region,): (String,) = fetch_one::<B, _>(
            conn,
            query("SELECT default_region FROM organizations WHERE hub_id = $1 AND id = $2")
                .bind(hub)
                .bind(org),
            Resource::Organization,
        )
        .await?;
        region
    } else {
        // Any region: the other kinds of field never look at it.
        "TW".to_owned()
    };
    let empty = UnifySetting {
        unique_fields: crate::model::default_unique_fields(),
        keys: Vec::new(),
        excluded: Vec::new(),
    };
    Ok(normalizer(&region, &empty)?
        .normalize(&field_id, value)
        .ok()
        .map(|normalised| (field_id.name().to_owned(), normalised)))
}

/// A merge ledger row as stored.
#[derive(sqlx::FromRow)]
pub(crate) struct LedgerRow {
    seq: i64,
    at: i64,
    survivor_id: ProfileId,
    absorbed_ids: String,
    key_field: String,
    key_value: String,
    cause_kind: String,
    cause_id: String,
    actor: String,
}

/// The columns of `LedgerRow`, over `merge_ledger l`.
pub(crate) const LEDGER_COLUMNS: &str = "l.seq, l.at, l.survivor_id, l.absorbed_ids, \
    l.key_field, l.key_value, l.cause_kind, l.cause_id, l.actor";

impl LedgerRow {
    pub fn into_entry(self) -> StoreResult<LedgerEntry> {
        Ok(LedgerEntry {
            seq: self.seq,
            at: self.at,
            survivor_id: self.survivor_id,
            absorbed_ids: serde_json::from_str(&self.absorbed_ids)?,
            key_field: self.key_field,
            key_value: self.key_value,
            cause: Cause {
                kind: self.cause_kind,
                id: self.cause_id,
                actor: self.actor,
            },
        })
    }
}

/// A page cursor: the last item's time and id.
fn parse_cursor(cursor: &str) -> StoreResult<(i64, i64)> {
    let (at, id) = cursor
        .split_once('.')
        .ok_or_else(|| StoreError::Invalid("bad cursor".into()))?;
    match (at.parse(), id.parse()) {
        (Ok(at), Ok(id)) => Ok((at, id)),
        _ => Err(StoreError::Invalid("bad cursor".into())),
    }
}

/// Where a listing starts: after the cursor, or at `updated_since` (inclusive).
pub(crate) fn list_start(
    updated_since: Option<Millis>,
    cursor: Option<&str>,
) -> StoreResult<(i64, i64)> {
    match cursor {
        Some(c) => parse_cursor(c),
        None => Ok((updated_since.unwrap_or(i64::MIN), i64::MIN)),
    }
}

/// A field name a profile edit (or an import row) may set: lower-case letters, digits and
/// `_`.
pub(crate) fn check_edit_field(name: &str) -> StoreResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(StoreError::rejected(
            Rejection::InvalidField,
            format!("`{name}` is not a field name (lower-case letters, digits and _)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{check_edit_field, list_start, parse_cursor};

    #[test]
    fn cursors_round_trip_and_bad_ones_are_invalid() {
        assert_eq!(parse_cursor("1700.42").unwrap(), (1700, 42));
        assert!(parse_cursor("1700").is_err());
        assert!(parse_cursor("a.b").is_err());
        assert_eq!(list_start(Some(5), None).unwrap(), (5, i64::MIN));
        assert_eq!(list_start(Some(5), Some("7.8")).unwrap(), (7, 8));
    }

    #[test]
    fn edit_fields_are_lower_snake_case() {
        assert!(check_edit_field("display_name").is_ok());
        assert!(check_edit_field("Display").is_err());
        assert!(check_edit_field("").is_err());
        assert!(check_edit_field(&"a".repeat(65)).is_err());
    }
}
