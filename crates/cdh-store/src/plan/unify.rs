//! An upsert's second decision, without IO: once the live profiles the contact ties to are
//! read (and, on PostgreSQL, locked), what becomes of them: a new profile, a join, or a merge
//! with its ledger rows and events.

use std::collections::{BTreeMap, HashSet};

use crate::error::{StoreError, StoreResult};
use crate::model::{
    Cause, Contact, ContactId, ContactInput, HubId, LedgerEntry, Millis, ProfileId, Unification,
    Upserted,
};
use crate::plan::conflicts::{choose_joins, queue_conflicts};
use crate::plan::contact::ContactPlan;
use crate::sql::WriteBatch;
use crate::sql::batch::queue_ledger;

/// A profile row as an upsert reads it. Its id is also the bucket its first contacts are in.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub(crate) struct ProfileRow {
    pub id: ProfileId,
    pub oldest_contact: ContactId,
    pub member_count: i64,
    /// The unique values it holds, `[[field, value], ...]` (see `plan::conflicts`).
    pub unique_values: String,
    /// Set when the profile was merged away (read under a row lock, by a concurrent writer).
    pub merged_into: Option<ProfileId>,
}

/// A row of the tie query: the tying value's index among the contact's key values (-1 for
/// the contact's own profile), whether a refused carrier holds it there, then the profile.
/// Sorted, rows come by value, then profile.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TieRow {
    pub k: i64,
    pub refused: bool,
    pub id: ProfileId,
    pub oldest_contact: ContactId,
    pub member_count: i64,
    pub unique_values: String,
    pub merged_into: Option<ProfileId>,
}

impl TieRow {
    /// A row of the tie query as `sql::text::tie_query_sql` returns it (no lock, so nothing
    /// merged).
    pub fn unlocked(
        (k, refused, id, oldest_contact, member_count, unique_values): (
            i64,
            i64,
            i64,
            i64,
            i64,
            String,
        ),
    ) -> Self {
        Self {
            k,
            refused: refused != 0,
            id: ProfileId(id),
            oldest_contact: ContactId(oldest_contact),
            member_count,
            unique_values,
            merged_into: None,
        }
    }

    fn profile(self) -> ProfileRow {
        ProfileRow {
            id: self.id,
            oldest_contact: self.oldest_contact,
            member_count: self.member_count,
            unique_values: self.unique_values,
            merged_into: self.merged_into,
        }
    }
}

/// For each of `n` key values, the profile of its carriers without a `conflicts` row (the one
/// a contact that carries it joins unless they clash), from tie rows.
pub(crate) fn main_profiles(rows: &[TieRow], n: usize) -> Vec<Option<ProfileId>> {
    let mut main = vec![None; n];
    for row in rows.iter().filter(|r| !r.refused && r.k >= 0) {
        main[row.k as usize] = Some(row.id);
    }
    main
}

/// A live profile a contact's value ties it to, with that value.
#[derive(Clone, Debug)]
pub(crate) struct TiedProfile {
    pub profile: ProfileRow,
    pub field: String,
    pub value: String,
}

/// What the tie query found: the tied profiles, the contact's own profile when asked for,
/// each key value's main profile (`main_profiles`), and whether the tied profiles' rows are
/// locked (`FOR UPDATE`) already.
#[derive(Clone, Debug, Default)]
pub(crate) struct TiedProfiles {
    pub tied: Vec<TiedProfile>,
    pub own: Option<ProfileRow>,
    pub main: Vec<Option<ProfileId>>,
    pub locked: bool,
}

/// A profile an upsert changes, and through which value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Tie {
    pub profile_id: ProfileId,
    pub field: String,
    pub value: String,
}

/// An event to append to the hub's feed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct NewEvent {
    /// `profile.created`, `profile.updated` or `profile.merged`.
    pub kind: &'static str,
    pub profile_id: ProfileId,
    pub payload: serde_json::Value,
}

/// What a profile change did: the profile the contact ends in, what happened, the events.
#[derive(Clone, Debug)]
pub(crate) struct Settled {
    pub profile_id: ProfileId,
    /// How many profiles the contact was kept out of (unique fields).
    pub n_refused: usize,
    pub unification: Unification,
    pub events: Vec<NewEvent>,
}

/// The tie query's rows as the tied profiles, each once with the first value that ties it,
/// and the contact's own profile (`k` = -1) when it was asked for.
pub(crate) fn split_tie_rows(
    mut rows: Vec<TieRow>,
    key_values: &[&(String, String)],
) -> (Vec<TiedProfile>, Option<ProfileRow>) {
    rows.sort_unstable();
    let own = match rows.first() {
        Some(row) if row.k < 0 => Some(rows.remove(0).profile()),
        _ => None,
    };
    (tied_rows(rows, key_values), own)
}

/// Tie rows (sorted, own profile removed) as profiles, each once, with the first value that
/// ties it.
pub(crate) fn tied_rows(rows: Vec<TieRow>, key_values: &[&(String, String)]) -> Vec<TiedProfile> {
    let mut seen = HashSet::new();
    rows.into_iter()
        .filter(|r| seen.insert(r.id))
        .map(|row| {
            let (field, value) = key_values[row.k as usize];
            TiedProfile {
                profile: row.profile(),
                field: field.clone(),
                value: value.clone(),
            }
        })
        .collect()
}

/// The profiles an upsert ties to, each with the value that ties it; the contact's own
/// profile (`current`) counts as tied by the first value, which is what brings the others in.
pub(crate) fn tie_list(tied: &[TiedProfile], current: Option<ProfileId>) -> Vec<Tie> {
    let mut ties: Vec<Tie> = tied
        .iter()
        .map(|t| Tie {
            profile_id: t.profile.id,
            field: t.field.clone(),
            value: t.value.clone(),
        })
        .collect();
    if let (Some(c), Some(first)) = (current, ties.first().cloned()) {
        ties.push(Tie {
            profile_id: c,
            ..first
        });
    }
    ties
}

/// With one writer at a time, the rows the tie query read are current: the profiles to change,
/// by id.
pub(crate) fn one_writer_rows(tied: Vec<TiedProfile>, own: Option<ProfileRow>) -> Vec<ProfileRow> {
    let mut rows: Vec<ProfileRow> = tied.into_iter().map(|t| t.profile).chain(own).collect();
    rows.sort_by_key(|r| r.id);
    rows.dedup_by_key(|r| r.id);
    rows
}

/// How many fresh ids `plan_unification` takes over `n_locked` profiles: one for a new
/// profile, else at most one ledger row per absorbed profile.
pub(crate) fn ids_needed(n_locked: usize) -> usize {
    n_locked.max(1)
}

/// Queues what happens to the locked, live profiles the contact ties to (`locked`, by id;
/// `ties` says through which value): a new profile, a join, or a merge with its ledger rows.
/// `fresh_ids` holds `ids_needed(locked.len())` ids.
///
/// Which of them it joins is `plan::conflicts::choose_joins`'s decision; `main` is each key
/// value's main profile (`main_profiles`) and `own` the contact's profile, when stored.
#[allow(clippy::too_many_arguments)]
pub(crate) fn plan_unification(
    hub: HubId,
    plan: &mut ContactPlan,
    locked: Vec<ProfileRow>,
    ties: &[Tie],
    main: &[Option<ProfileId>],
    own: Option<ProfileId>,
    fresh_ids: Vec<i64>,
    actor: &str,
) -> StoreResult<Settled> {
    let (contact_id, is_new, now) = (plan.contact_id, plan.is_new, plan.now);
    let joins = choose_joins(&plan.unique_values, own, locked)?;
    let mut batch = std::mem::take(&mut plan.batch);
    queue_conflicts(&mut batch, hub, plan, main, &joins, now);
    plan.batch = batch;
    let held = joins.held_json()?;
    let n_refused = joins.refused.len();
    let mut locked = joins.joined;
    let batch = &mut plan.batch;
    let mut fresh_ids = fresh_ids.into_iter();
    let mut take_id = move || {
        fresh_ids
            .next()
            .ok_or_else(|| StoreError::Corrupt("an upsert ran out of ids".to_owned()))
    };
    if locked.is_empty() {
        let pid = ProfileId(take_id()?);
        batch.push(
            "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, \
             member_count, merged_into, created_at, updated_at, unique_values) \
             VALUES ($1, $2, $3, $3, 1, NULL, $4, $4, $5)",
            vec![
                hub.into(),
                pid.into(),
                contact_id.into(),
                now.into(),
                held.into(),
            ],
        );
        queue_membership(batch, hub, contact_id, pid);
        return Ok(Settled {
            profile_id: pid,
            n_refused,
            unification: Unification::Created,
            events: vec![NewEvent {
                kind: "profile.created",
                profile_id: pid,
                payload: serde_json::json!({ "contact_id": contact_id }),
            }],
        });
    }
    if locked.len() == 1 {
        let p = locked.remove(0);
        if is_new {
            queue_membership(batch, hub, contact_id, p.id);
        }
        // A new contact can be older (a smaller id) than the profile's oldest: on PostgreSQL,
        // concurrent writers take ids in blocks and may commit in either order.
        batch.push(
            "UPDATE profiles SET member_count = member_count + $3, updated_at = $4, \
             oldest_contact = CASE WHEN oldest_contact > $5 THEN $5 ELSE oldest_contact END, \
             unique_values = $6 WHERE hub_id = $1 AND id = $2",
            vec![
                hub.into(),
                p.id.into(),
                i64::from(is_new).into(),
                now.into(),
                contact_id.into(),
                held.into(),
            ],
        );
        return Ok(Settled {
            profile_id: p.id,
            n_refused,
            unification: if is_new {
                Unification::Joined
            } else {
                Unification::Unchanged
            },
            events: vec![NewEvent {
                kind: "profile.updated",
                profile_id: p.id,
                payload: serde_json::json!({ "contact_id": contact_id }),
            }],
        });
    }
    let survivor = merge_profiles(batch, hub, &locked, is_new.then_some(contact_id), now, held);
    if is_new {
        queue_membership(batch, hub, contact_id, survivor.id);
    }
    let absorbed: Vec<ProfileId> = locked
        .iter()
        .map(|p| p.id)
        .filter(|&p| p != survivor.id)
        .collect();
    // One ledger row per tying value.
    let mut by_value: BTreeMap<(String, String), Vec<ProfileId>> = BTreeMap::new();
    for p in &absorbed {
        let via = ties
            .iter()
            .find(|t| t.profile_id == *p)
            .map(|t| (t.field.clone(), t.value.clone()))
            .unwrap_or_default();
        by_value.entry(via).or_default().push(*p);
    }
    let mut events = Vec::with_capacity(by_value.len());
    for ((field, value), merged) in by_value {
        let entry = LedgerEntry {
            seq: take_id()?,
            at: now,
            survivor_id: survivor.id,
            absorbed_ids: merged,
            key_field: field,
            key_value: value,
            cause: Cause {
                kind: "contact".to_owned(),
                id: contact_id.to_string(),
                actor: actor.to_owned(),
            },
        };
        queue_ledger(batch, hub, &entry)?;
        events.push(merged_event(
            survivor.id,
            &entry.absorbed_ids,
            &entry.key_field,
            &entry.key_value,
        ));
    }
    Ok(Settled {
        profile_id: survivor.id,
        n_refused,
        unification: Unification::Merged {
            survivor: survivor.id,
            absorbed,
        },
        events,
    })
}

/// The `profile.merged` event of one ledger row.
pub(crate) fn merged_event(
    survivor: ProfileId,
    absorbed: &[ProfileId],
    field: &str,
    value: &str,
) -> NewEvent {
    NewEvent {
        kind: "profile.merged",
        profile_id: survivor,
        payload: serde_json::json!({
            "survivor_id": survivor,
            "merged_ids": absorbed,
            "key": field,
            "value": value,
        }),
    }
}

/// Merges live, locked profiles into the oldest; `new_member` is a contact that joins with
/// the merge. No membership moves: each absorbed profile keeps its members and names the
/// survivor, as do the profiles merged into it before, so a merge writes a row per profile it
/// absorbs (and per earlier merge into those), whatever their sizes. Returns the survivor.
fn merge_profiles(
    batch: &mut WriteBatch,
    hub: HubId,
    profiles: &[ProfileRow],
    new_member: Option<ContactId>,
    at: Millis,
    held: String,
) -> ProfileRow {
    let survivor = profiles
        .iter()
        .min_by_key(|p| (p.oldest_contact, p.id))
        .expect("at least one profile")
        .clone();
    let member_count: i64 =
        profiles.iter().map(|p| p.member_count).sum::<i64>() + i64::from(new_member.is_some());
    // The survivor holds the oldest contact of the merged profiles; a new member can be older
    // still (see the join in `plan_unification`).
    let oldest = new_member.map_or(survivor.oldest_contact, |c| c.min(survivor.oldest_contact));
    batch.push(
        "UPDATE profiles SET member_count = $3, updated_at = $4, oldest_contact = $5, \
         unique_values = $6 WHERE hub_id = $1 AND id = $2",
        vec![
            hub.into(),
            survivor.id.into(),
            member_count.into(),
            at.into(),
            oldest.into(),
            held.into(),
        ],
    );
    for p in profiles.iter().filter(|p| p.id != survivor.id) {
        // Earlier merge chains point straight at the survivor, so resolving an old id (or a
        // bucket) is one read. Two statements rather than an OR, so each uses its index.
        for column in ["merged_into", "id"] {
            batch.push(
                format!(
                    "UPDATE profiles SET merged_into = $3, updated_at = $4 \
                     WHERE hub_id = $1 AND {column} = $2"
                ),
                vec![hub.into(), p.id.into(), survivor.id.into(), at.into()],
            );
        }
    }
    ProfileRow {
        member_count,
        ..survivor
    }
}

/// Places `contact` in the bucket of profile `bucket`: the profile it joins, for good.
fn queue_membership(batch: &mut WriteBatch, hub: HubId, contact: ContactId, bucket: ProfileId) {
    batch.push(
        "INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES ($1, $2, $3)",
        vec![hub.into(), contact.into(), bucket.into()],
    );
}

/// What the caller gets back: the contact as written, in the profile it ended in.
pub(crate) fn upserted(plan: ContactPlan, input: &ContactInput, settled: Settled) -> Upserted {
    Upserted {
        contact: Contact {
            id: plan.contact_id,
            channel_id: input.channel_id,
            external_id: input.external_id.clone(),
            profile_id: settled.profile_id,
            fields: plan.fields,
            tags: plan.tags,
            custom_fields: plan.custom_fields,
            invalid_fields: plan.invalid,
            created_at: plan.created_at,
            updated_at: plan.now,
        },
        unification: settled.unification,
        n_refused: settled.n_refused,
    }
}

#[cfg(test)]
#[path = "unify_tests.rs"]
mod tests;
