//! Profiles with their merged records, read in one statement per hundred profiles whatever
//! their sizes, and assembled in memory with the core's survivorship and the manual edits.

use std::collections::{BTreeMap, HashMap};

use cdh_core::{GoldenRecord, IdentifierField, MemberRecord, UnifyKeys, golden_record};

use crate::error::{Resource, StoreError, StoreResult};
use crate::model::{
    ChannelId, ContactId, FieldValue, HubId, Millis, Profile, ProfileId, ProfileMember,
};
use crate::port::ProfileRecord;
use crate::rules::parse_keys;
use crate::sql::text::realm_keys_sql;
use crate::sql::{Adapter, Dialect, query};

/// A profile's own row, resolved to its survivor, and the hub's current unify keys.
#[derive(Clone, Debug)]
pub(crate) struct ProfileHead {
    pub live: ProfileId,
    pub merged_from: Option<ProfileId>,
    pub oldest_contact: ContactId,
    pub created_at: i64,
    pub updated_at: i64,
    pub keys: Option<String>,
}

impl ProfileHead {
    pub fn into_profile(self, members: Vec<ProfileMember>) -> Profile {
        Profile {
            id: self.live,
            merged_from: self.merged_from,
            oldest_contact: self.oldest_contact,
            members,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// One row of `golden_sql`: `part` says which of its four parts the row belongs to, and what
/// the padded columns hold there.
#[derive(Debug, sqlx::FromRow)]
struct GoldenRow {
    /// 0 a head, 1 a member, 2 an identifier, 3 a manual edit.
    part: i64,
    /// The asked id for a head, the live profile's id otherwise.
    profile_id: ProfileId,
    /// Head: the live id. Member, identifier: the contact. Edit: when it was made.
    int1: Option<i64>,
    /// Head: the oldest contact. Member: its channel.
    int2: Option<i64>,
    /// Head: created at.
    int3: Option<i64>,
    /// Head: updated at.
    int4: Option<i64>,
    /// Head: the unify keys in force (JSON). Member: the channel type. Identifier, edit: the
    /// field.
    text1: Option<String>,
    /// Member: the product. Identifier, edit: the value.
    text2: Option<String>,
    /// Member: its fields (JSON).
    text3: Option<String>,
    /// Member: its tags (JSON).
    text4: Option<String>,
}

/// The statement behind `golden_many`: `asked` is a query (or `VALUES` list) of profile ids,
/// with the hub bound as `$1` and its own parameters from `$2`. Four parts in one
/// `UNION ALL`, padded to the same columns (see `GoldenRow`): (0) each asked id with its live
/// profile's row and the unify keys of its realm; (1) the live profiles' members with their contacts
/// and channels; (2) their identifiers; (3) the manual edits of each live profile and of the
/// profiles merged into it (two index searches: an `OR` of both would walk every profile of
/// the hub). One statement is one snapshot on both backends and one round trip.
pub(crate) fn golden_sql<D: Dialect>(asked: &str) -> String {
    let j = D::ORDERED_JOIN;
    let keys = realm_keys_sql("h.oldest_contact");
    format!(
        "WITH asked(asked_id) AS ({asked}), \
         heads AS (SELECT a.asked_id, l.id AS live_id, l.oldest_contact, \
           l.created_at, l.updated_at FROM asked a \
           {j} profiles q ON q.hub_id = $1 AND q.id = a.asked_id \
           {j} profiles l ON l.hub_id = q.hub_id AND l.id = COALESCE(q.merged_into, q.id)), \
         lives AS (SELECT DISTINCT live_id FROM heads), \
         buckets AS (SELECT live_id, live_id AS bucket_id FROM lives UNION ALL \
           SELECT v.live_id, b.id FROM lives v \
           {j} profiles b ON b.hub_id = $1 AND b.merged_into = v.live_id) \
         SELECT CAST(0 AS BIGINT) AS part, h.asked_id AS profile_id, h.live_id AS int1, \
           h.oldest_contact AS int2, h.created_at AS int3, h.updated_at AS int4, \
           {keys} AS text1, \
           CAST(NULL AS TEXT) AS text2, CAST(NULL AS TEXT) AS text3, \
           CAST(NULL AS TEXT) AS text4 FROM heads h \
         UNION ALL \
         SELECT CAST(1 AS BIGINT), v.live_id, c.id, c.channel_id, NULL, NULL, \
           ch.channel_type, ch.product, c.fields, c.tags FROM buckets v \
           {j} memberships m ON m.hub_id = $1 AND m.bucket_id = v.bucket_id \
           {j} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
           {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
         UNION ALL \
         SELECT CAST(2 AS BIGINT), v.live_id, i.contact_id, NULL, NULL, NULL, \
           i.field, i.value, NULL, NULL FROM buckets v \
           {j} memberships m ON m.hub_id = $1 AND m.bucket_id = v.bucket_id \
           {j} identifiers i ON i.hub_id = m.hub_id AND i.contact_id = m.contact_id \
         UNION ALL \
         SELECT CAST(3 AS BIGINT), v.live_id, o.updated_at, NULL, NULL, NULL, \
           o.field, o.value, NULL, NULL FROM lives v \
           {j} profile_overrides o ON o.hub_id = $1 AND o.profile_id = v.live_id \
         UNION ALL \
         SELECT CAST(3 AS BIGINT), v.live_id, o.updated_at, NULL, NULL, NULL, \
           o.field, o.value, NULL, NULL FROM lives v \
           {j} profiles p ON p.hub_id = $1 AND p.merged_into = v.live_id \
           {j} profile_overrides o ON o.hub_id = p.hub_id AND o.profile_id = p.id"
    )
}

/// Asked ids per `golden_many` statement: bounds the statement's parameters and its rows.
const GOLDEN_CHUNK: usize = 100;

/// Profiles and their merged records (manual edits applied), one per asked id and in the
/// asked order, each resolved to its survivor when it was merged away; `NotFound` when an id
/// names no profile. One statement per `GOLDEN_CHUNK` ids, so a profile read is one round
/// trip and needs no transaction. The records' timelines are left empty: the timeline is
/// read page by page.
pub(crate) async fn golden_many<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    asked: &[ProfileId],
) -> StoreResult<Vec<ProfileRecord>> {
    let mut found = Vec::with_capacity(asked.len());
    for chunk in asked.chunks(GOLDEN_CHUNK) {
        let values = (0..chunk.len())
            .map(|i| format!("(CAST(${} AS BIGINT))", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let q = chunk.iter().fold(
            query(golden_sql::<B>(&format!("VALUES {values}"))).bind(hub),
            |q, id| q.bind(*id),
        );
        let rows: Vec<GoldenRow> = B::fetch_all(conn, q).await?;
        found.extend(assemble_golden(Some(chunk), rows)?);
    }
    Ok(found)
}

/// The profiles `golden_sql` finds itself (`asked` a query over the hub and its own
/// parameters), by id, with their records: `query` carries the statement and its arguments.
pub(crate) async fn golden_found<B: Adapter>(
    conn: &mut B::Conn,
    query: crate::sql::Query<'_>,
) -> StoreResult<Vec<ProfileRecord>> {
    let rows: Vec<GoldenRow> = B::fetch_all(conn, query).await?;
    assemble_golden(None, rows)
}

/// A member of a live profile as `golden_sql`'s rows deliver it.
struct MemberPart {
    member: ProfileMember,
    /// Its fields, as stored (JSON).
    fields: String,
    /// Its tags, as stored (JSON).
    tags: String,
}

/// A live profile's parts as `golden_sql`'s rows deliver them.
#[derive(Default)]
struct GoldenParts {
    members: Vec<MemberPart>,
    /// (contact, field, value).
    identifiers: Vec<(ContactId, String, String)>,
    /// (when, field, value).
    overrides: Vec<(Millis, String, Option<String>)>,
}

/// Builds each asked id's profile and record from `golden_sql`'s rows, in the order of
/// `asked`, or by id when the statement found the ids itself (`None`).
fn assemble_golden(
    asked: Option<&[ProfileId]>,
    rows: Vec<GoldenRow>,
) -> StoreResult<Vec<ProfileRecord>> {
    let malformed = || StoreError::Backend {
        cause: "golden record row with a missing column".into(),
    };
    let mut heads: HashMap<ProfileId, ProfileHead> = HashMap::new();
    let mut parts: HashMap<ProfileId, GoldenParts> = HashMap::new();
    for row in rows {
        let profile = row.profile_id;
        match row.part {
            0 => {
                let live = ProfileId(row.int1.ok_or_else(malformed)?);
                heads.insert(
                    profile,
                    ProfileHead {
                        live,
                        merged_from: (live != profile).then_some(profile),
                        oldest_contact: ContactId(row.int2.ok_or_else(malformed)?),
                        created_at: row.int3.ok_or_else(malformed)?,
                        updated_at: row.int4.ok_or_else(malformed)?,
                        keys: row.text1,
                    },
                );
            }
            1 => parts.entry(profile).or_default().members.push(MemberPart {
                member: ProfileMember {
                    contact_id: ContactId(row.int1.ok_or_else(malformed)?),
                    channel_id: ChannelId(row.int2.ok_or_else(malformed)?),
                    channel_type: row.text1.ok_or_else(malformed)?,
                    product: row.text2.ok_or_else(malformed)?,
                },
                fields: row.text3.ok_or_else(malformed)?,
                tags: row.text4.ok_or_else(malformed)?,
            }),
            2 => parts.entry(profile).or_default().identifiers.push((
                ContactId(row.int1.ok_or_else(malformed)?),
                row.text1.ok_or_else(malformed)?,
                row.text2.ok_or_else(malformed)?,
            )),
            _ => parts.entry(profile).or_default().overrides.push((
                row.int1.ok_or_else(malformed)?,
                row.text1.ok_or_else(malformed)?,
                row.text2,
            )),
        }
    }
    let asked = match asked {
        Some(ids) => ids.to_vec(),
        None => {
            let mut ids: Vec<ProfileId> = heads.keys().copied().collect();
            ids.sort_unstable();
            ids
        }
    };
    let mut built: HashMap<ProfileId, ProfileRecord> = HashMap::new();
    let mut found = Vec::with_capacity(asked.len());
    for id in &asked {
        // `get`, not `remove`: an id asked twice gets its profile twice.
        let head = heads
            .get(id)
            .ok_or(StoreError::NotFound(Resource::Profile))?;
        let live = head.live;
        let (mut profile, golden) = match built.entry(live) {
            std::collections::hash_map::Entry::Occupied(e) => e.get().clone(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let parts = parts.remove(&live).unwrap_or_default();
                e.insert(golden_from_parts(head.clone(), parts)?).clone()
            }
        };
        profile.merged_from = head.merged_from;
        found.push((profile, golden));
    }
    Ok(found)
}

/// One live profile and its record from its parts.
fn golden_from_parts(head: ProfileHead, parts: GoldenParts) -> StoreResult<ProfileRecord> {
    let keys: Vec<String> = head
        .keys
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default();
    let keys = parse_keys(&keys)?;
    let keys = (!keys.is_empty())
        .then(|| UnifyKeys::new(keys))
        .transpose()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let GoldenParts {
        mut members,
        identifiers,
        mut overrides,
    } = parts;
    members.sort_unstable_by_key(|m| m.member.contact_id);
    let mut profile_members = Vec::with_capacity(members.len());
    let mut records: Vec<MemberRecord> = Vec::with_capacity(members.len());
    let mut index: HashMap<ContactId, usize> = HashMap::with_capacity(members.len());
    for part in members {
        let fields: BTreeMap<String, FieldValue> = serde_json::from_str(&part.fields)?;
        let contact_id = part.member.contact_id;
        index.insert(contact_id, records.len());
        records.push(MemberRecord {
            contact_id: contact_id.to_string(),
            fields: fields
                .into_iter()
                .map(|(k, v)| (k, (v.value, v.updated_at)))
                .collect(),
            tags: serde_json::from_str(&part.tags)?,
            identifiers: Vec::new(),
            timeline: Vec::new(),
        });
        profile_members.push(part.member);
    }
    for (contact, f, value) in identifiers {
        if let Some(&at) = index.get(&contact) {
            records[at]
                .identifiers
                .push(cdh_core::golden::IdentifierValue {
                    field: IdentifierField::parse(&f, std::slice::from_ref(&f))
                        .unwrap_or(IdentifierField::Custom(f)),
                    value,
                    valid: true,
                });
        }
    }
    // Oldest first, so the latest edit of a field is the one kept.
    overrides.sort_by_key(|o| o.0);
    let overrides = overrides
        .into_iter()
        .map(|(at, field, value)| (field, (value, at)))
        .collect();
    let profile = head.into_profile(profile_members);
    let refs: Vec<&MemberRecord> = records.iter().collect();
    let mut golden = golden_record(&refs, keys.as_ref());
    apply_overrides(&mut golden, overrides);
    Ok((profile, golden))
}

/// Manual edits win over survivorship, however recent a member's write of the field, until
/// the admin clears them (the rule: "the profile's information does not change by itself";
/// a `None` is an edit that emptied the field, from before a clear removed the edit instead).
fn apply_overrides(
    golden: &mut GoldenRecord,
    overrides: BTreeMap<String, (Option<String>, Millis)>,
) {
    for (field, (value, at)) in overrides {
        match value {
            Some(value) => {
                golden.fields.insert(
                    field,
                    cdh_core::golden::MergedField {
                        value,
                        updated_at: at,
                        source: crate::model::MANUAL_SOURCE.to_owned(),
                    },
                );
            }
            None => {
                golden.fields.remove(&field);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(asked: i64, live: i64) -> GoldenRow {
        GoldenRow {
            part: 0,
            profile_id: ProfileId(asked),
            int1: Some(live),
            int2: Some(1),
            int3: Some(10),
            int4: Some(20),
            text1: Some(r#"["display_email"]"#.into()),
            text2: None,
            text3: None,
            text4: None,
        }
    }

    fn member(live: i64, contact: i64, name: &str, at: i64) -> GoldenRow {
        GoldenRow {
            part: 1,
            profile_id: ProfileId(live),
            int1: Some(contact),
            int2: Some(7),
            int3: None,
            int4: None,
            text1: Some("email".into()),
            text2: Some("caac".into()),
            text3: Some(format!(
                r#"{{"display_name":{{"value":"{name}","updated_at":{at}}}}}"#
            )),
            text4: Some("[]".into()),
        }
    }

    fn edit(live: i64, at: i64, field: &str, value: Option<&str>) -> GoldenRow {
        GoldenRow {
            part: 3,
            profile_id: ProfileId(live),
            int1: Some(at),
            int2: None,
            int3: None,
            int4: None,
            text1: Some(field.into()),
            text2: value.map(str::to_owned),
            text3: None,
            text4: None,
        }
    }

    #[test]
    fn a_merged_id_resolves_to_its_survivor_in_the_asked_order() {
        let rows = vec![
            head(5, 3),
            head(3, 3),
            member(3, 1, "Amy", 100),
            member(3, 2, "Amy C.", 200),
        ];
        let found = assemble_golden(Some(&[ProfileId(5), ProfileId(3)]), rows).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(
            (found[0].0.id, found[0].0.merged_from),
            (ProfileId(3), Some(ProfileId(5)))
        );
        assert_eq!(
            (found[1].0.id, found[1].0.merged_from),
            (ProfileId(3), None)
        );
        assert_eq!(
            found[0].1.fields["display_name"].value, "Amy C.",
            "latest wins"
        );
        assert_eq!(found[0].0.members.len(), 2);
    }

    #[test]
    fn an_edit_wins_over_earlier_and_later_member_writes() {
        let rows = vec![
            head(3, 3),
            member(3, 1, "Amy", 100),
            edit(3, 150, "display_name", Some("A.")),
        ];
        let found = assemble_golden(Some(&[ProfileId(3)]), rows).unwrap();
        assert_eq!(found[0].1.fields["display_name"].value, "A.");
        assert_eq!(found[0].1.fields["display_name"].source, "manual");
        let rows = vec![
            head(3, 3),
            member(3, 1, "Amy", 200),
            edit(3, 150, "display_name", Some("A.")),
        ];
        let found = assemble_golden(Some(&[ProfileId(3)]), rows).unwrap();
        assert_eq!(found[0].1.fields["display_name"].value, "A.");
        assert_eq!(found[0].1.fields["display_name"].source, "manual");
    }

    #[test]
    fn an_unknown_id_is_not_found() {
        let e = assemble_golden(Some(&[ProfileId(9)]), Vec::new()).unwrap_err();
        assert_eq!(e, StoreError::NotFound(Resource::Profile));
    }
}
