//! An apply's unique fields: what each profile holds once applied, and the conflicts the
//! resolution recorded (merges refused, by the rule of `cdh_core::constrained`), written by
//! the swap in place of the realm's earlier ones.

use std::collections::{BTreeSet, HashMap};

use cdh_core::{KeyGraph, Partition, Refusal};

use crate::error::StoreResult;
use crate::model::{ContactId, HubId, Millis, ProfileId};
use crate::plan::conflicts::{Held, parse_held, reason_code};
use crate::sql::{Arg, WriteBatch};

/// What an apply reads besides its contacts and keys: the values of the setting's unique
/// fields (contact order) and what each live profile holds now (profiles holding none left
/// out).
#[derive(Debug, Default)]
pub(crate) struct UniqueInput {
    pub values: Vec<(ContactId, String, String)>,
    pub held: HashMap<ProfileId, String>,
}

/// Profiles whose held values one statement of the swap writes.
const HELD_CHUNK: usize = 200;

/// A conflict row as the swap writes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConflictRow {
    pub contact_id: ContactId,
    pub field: String,
    pub scope: String,
    pub value: String,
    pub unique_field: String,
    pub ours: String,
    pub theirs: String,
    pub held_by: ProfileId,
}

/// The unique-field writes of an apply.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct UniqueWrites {
    /// Profiles whose held values change, with the new ones as stored.
    pub held: Vec<(ProfileId, String)>,
    /// The realm's conflicts after the apply.
    pub conflicts: Vec<ConflictRow>,
}

/// The writes after resolving: `profile_id(c)` is the stored id of contact `c`'s resolved
/// profile, `scope(c)` its scope after the apply.
pub(crate) fn unique_writes(
    graph: &KeyGraph,
    resolved: &Partition,
    refusals: &[Refusal],
    input: &UniqueInput,
    profile_id: impl Fn(u32) -> ProfileId,
    contact_id: impl Fn(u32) -> ContactId,
    scope: impl Fn(u32) -> String,
) -> StoreResult<UniqueWrites> {
    let members = resolved.members();
    let mut writes = UniqueWrites::default();
    for p in 0..members.n_profiles() as u32 {
        let group = members.of(p);
        let held: Held = group
            .iter()
            .flat_map(|&c| graph.values_of(c))
            .filter_map(|&v| {
                let (slot, text) = graph.value(v);
                slot.unique
                    .then(|| (slot.field.name().to_owned(), text.to_owned()))
            })
            .collect();
        let id = profile_id(group[0]);
        let before = match input.held.get(&id) {
            Some(stored) => parse_held(stored)?,
            None => BTreeSet::new(),
        };
        if held != before {
            writes.held.push((id, serde_json::to_string(&held)?));
        }
    }
    for r in refusals {
        let (slot, value) = graph.value(r.value);
        let (unique, ours) = graph.value(r.clash.ours);
        writes.conflicts.push(ConflictRow {
            contact_id: contact_id(r.contact),
            field: slot.field.name().to_owned(),
            scope: scope(r.contact),
            value: value.to_owned(),
            unique_field: unique.field.name().to_owned(),
            ours: ours.to_owned(),
            theirs: graph.value(r.clash.theirs).1.to_owned(),
            held_by: profile_id(r.holder),
        });
    }
    Ok(writes)
}

impl UniqueWrites {
    /// The statements of the swap: held values, then the realm's conflicts replaced.
    pub fn batch(&self, hub: HubId, realm: &str, now: Millis) -> WriteBatch {
        let mut batch = WriteBatch::default();
        // A statement per chunk of profiles: a first apply over a hub changes what most
        // profiles hold, and a statement each cost more than the rest of the swap.
        for chunk in self.held.chunks(HELD_CHUNK) {
            let mut args: Vec<Arg> = Vec::with_capacity(1 + 2 * chunk.len());
            args.push(hub.into());
            let mut cases = String::new();
            let mut ids = Vec::with_capacity(chunk.len());
            for (i, (id, held)) in chunk.iter().enumerate() {
                cases.push_str(&format!(" WHEN ${} THEN ${}", 2 + 2 * i, 3 + 2 * i));
                ids.push(format!("${}", 2 + 2 * i));
                args.push((*id).into());
                args.push(held.as_str().into());
            }
            batch.push(
                format!(
                    "UPDATE profiles SET unique_values = CASE id{cases} END \
                     WHERE hub_id = $1 AND id IN ({})",
                    ids.join(", ")
                ),
                args,
            );
        }
        batch.push(
            "DELETE FROM conflicts WHERE hub_id = $1 AND realm = $2",
            vec![hub.into(), realm.into()],
        );
        for c in &self.conflicts {
            batch.push(
                "INSERT INTO conflicts (hub_id, contact_id, field, scope, value, realm, reason, \
                 unique_field, ours, theirs, held_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                vec![
                    hub.into(),
                    c.contact_id.into(),
                    c.field.as_str().into(),
                    c.scope.as_str().into(),
                    c.value.as_str().into(),
                    realm.into(),
                    reason_code(&c.unique_field).into(),
                    c.unique_field.as_str().into(),
                    c.ours.as_str().into(),
                    c.theirs.as_str().into(),
                    c.held_by.into(),
                    now.into(),
                ],
            );
        }
        batch
    }
}
