//! The store's invariants, checked without IO over one snapshot of a hub: every rule the
//! stored state breaks, described (empty when all hold). Tests run it after every scenario;
//! operators can run it on a live hub.

use std::collections::{BTreeSet, HashMap, HashSet};

use cdh_core::{
    IdentifierField, KeyGraph, Normalizer, Partition, Slot, UnionFind, resolve_holding,
};

use crate::error::StoreResult;
use crate::model::{ContactId, ProfileId, UnifySetting};
use crate::plan::conflicts::parse_held;
use crate::rules::{is_excluded, normalizer, parse_keys, parse_unique_fields, realm_of_scope};

/// A contact as the checker reads it: its scope and its organization's region.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct CheckedContact {
    pub id: ContactId,
    pub scope: String,
    pub region: String,
}

/// A profile row as the checker reads it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct CheckedProfile {
    pub id: ProfileId,
    pub origin_contact: ContactId,
    pub oldest_contact: ContactId,
    pub member_count: i64,
    pub merged_into: Option<ProfileId>,
    /// The unique values it holds, as stored.
    pub unique_values: String,
}

/// An identifier row as the checker reads it.
#[derive(Clone, Debug, sqlx::FromRow)]
pub(crate) struct CheckedIdentifier {
    pub contact_id: ContactId,
    pub field: String,
    pub value: String,
    pub scope: String,
}

/// One snapshot of a hub, as the checker reads it.
#[derive(Debug)]
pub(crate) struct CheckInput {
    /// Every contact, in contact order.
    pub contacts: Vec<CheckedContact>,
    /// `(contact, bucket)`.
    pub memberships: Vec<(ContactId, ProfileId)>,
    pub profiles: Vec<CheckedProfile>,
    /// Every identifier, in contact order.
    pub identifiers: Vec<CheckedIdentifier>,
    /// `(survivor, absorbed ids as JSON)`, in ledger order.
    pub ledger: Vec<(ProfileId, String)>,
    /// Each realm's settings, by realm key.
    pub realms: HashMap<String, RealmCheck>,
    /// `(contact, field, value)` of every `conflicts` row.
    pub conflicts: Vec<(ContactId, String, String)>,
}

/// What the checker needs of a realm's settings.
#[derive(Debug, Default)]
pub(crate) struct RealmCheck {
    /// The setting in force (no keys before any apply).
    pub setting: UnifySetting,
}

/// A realm's keys and unique fields in force, and a normaliser per region.
struct RealmRules {
    keys: Vec<IdentifierField>,
    unique: Vec<IdentifierField>,
    setting: UnifySetting,
    normalizers: HashMap<String, Normalizer>,
}

impl RealmRules {
    fn of(check: &RealmCheck) -> StoreResult<Self> {
        Ok(Self {
            keys: parse_keys(&check.setting.keys)?,
            unique: parse_unique_fields(&check.setting.unique_fields)?,
            setting: check.setting.clone(),
            normalizers: HashMap::new(),
        })
    }

    fn excluded(&mut self, region: &str, field: &str, value: &str) -> StoreResult<bool> {
        if !self.normalizers.contains_key(region) {
            self.normalizers
                .insert(region.to_owned(), normalizer(region, &self.setting)?);
        }
        Ok(is_excluded(&self.normalizers[region], field, value))
    }
}

/// Every broken invariant of the snapshot, described.
pub(crate) fn broken_invariants(input: &CheckInput) -> StoreResult<Vec<String>> {
    let mut problems = Vec::new();
    let contact_scope: HashMap<ContactId, &str> = input
        .contacts
        .iter()
        .map(|c| (c.id, c.scope.as_str()))
        .collect();
    let profile_by_id: HashMap<ProfileId, &CheckedProfile> =
        input.profiles.iter().map(|p| (p.id, p)).collect();

    // Every contact is in exactly one live profile: the one its bucket names, or the live
    // profile that one was merged into.
    let mut profile_of: HashMap<ContactId, ProfileId> = HashMap::new();
    let mut members_of: HashMap<ProfileId, Vec<ContactId>> = HashMap::new();
    for (contact, bucket) in &input.memberships {
        match profile_by_id.get(bucket) {
            Some(owner) => {
                let live = owner.merged_into.unwrap_or(owner.id);
                profile_of.insert(*contact, live);
                members_of.entry(live).or_default().push(*contact);
            }
            None => problems.push(format!(
                "contact {contact}: bucket {bucket} names no profile"
            )),
        }
    }
    for contact in &input.contacts {
        if !profile_of.contains_key(&contact.id) {
            problems.push(format!("contact {} is in no profile", contact.id));
        }
    }
    for p in &input.profiles {
        let (id, count, oldest) = (p.id, p.member_count, p.oldest_contact);
        match p.merged_into {
            None => {
                let members = members_of.get(&id).map_or(&[][..], Vec::as_slice);
                if members.len() as i64 != count {
                    problems.push(format!(
                        "profile {id}: member_count {count}, actual {}",
                        members.len()
                    ));
                }
                if members.iter().min() != Some(&oldest) {
                    problems.push(format!(
                        "profile {id}: oldest_contact {oldest} is not its oldest member"
                    ));
                }
            }
            Some(target) => {
                if profile_by_id
                    .get(&target)
                    .is_none_or(|t| t.merged_into.is_some())
                {
                    problems.push(format!(
                        "profile {id} is merged into {target}, which is not live"
                    ));
                }
            }
        }
    }
    for i in &input.identifiers {
        if contact_scope.get(&i.contact_id) != Some(&i.scope.as_str()) {
            problems.push(format!(
                "contact {}: {} indexed in scope {}, not the contact's",
                i.contact_id, i.field, i.scope
            ));
        }
    }

    // Every unify-key value maps to exactly one profile within a scope, under the keys of
    // the realm the scope is in.
    let regions: HashMap<ContactId, &str> = input
        .contacts
        .iter()
        .map(|c| (c.id, c.region.as_str()))
        .collect();
    let no_setting = RealmCheck::default();
    let mut rules: HashMap<&str, RealmRules> = HashMap::new();
    for contact in &input.contacts {
        let realm = realm_of_scope(&contact.scope);
        if !rules.contains_key(realm) {
            let check = input.realms.get(realm).unwrap_or(&no_setting);
            rules.insert(realm, RealmRules::of(check)?);
        }
    }
    // A refused carrier (a `conflicts` row) is the exception: the carriers of a value without
    // one are in one profile. Each row names a value its contact carries.
    let refused: HashSet<(ContactId, &str)> = input
        .conflicts
        .iter()
        .map(|(c, f, _)| (*c, f.as_str()))
        .collect();
    let carried: HashSet<(ContactId, &str, &str)> = input
        .identifiers
        .iter()
        .map(|i| (i.contact_id, i.field.as_str(), i.value.as_str()))
        .collect();
    for (c, f, v) in &input.conflicts {
        if !carried.contains(&(*c, f.as_str(), v.as_str())) {
            problems.push(format!(
                "contact {c}: a conflict names {f}={v}, which it does not carry"
            ));
        }
    }
    let mut owners: HashMap<(&str, &str, &str), BTreeSet<i64>> = HashMap::new();
    for i in input
        .identifiers
        .iter()
        .filter(|i| !refused.contains(&(i.contact_id, i.field.as_str())))
    {
        let (Some(region), Some(realm)) = (
            regions.get(&i.contact_id),
            rules.get_mut(realm_of_scope(&i.scope)),
        ) else {
            continue;
        };
        if realm.keys.iter().any(|k| k.name() == i.field)
            && !realm.excluded(region, &i.field, &i.value)?
            && let Some(p) = profile_of.get(&i.contact_id)
        {
            owners
                .entry((i.scope.as_str(), i.field.as_str(), i.value.as_str()))
                .or_default()
                .insert(p.0);
        }
    }
    for ((scope, field, value), ps) in &owners {
        if ps.len() > 1 {
            problems.push(format!(
                "{field}={value} in scope {scope} is in profiles {ps:?}"
            ));
        }
    }

    // The ledger explains every merged-away profile.
    let mut explained: HashSet<ProfileId> = HashSet::new();
    let mut ledger_pairs = Vec::new();
    for (survivor, absorbed) in &input.ledger {
        let absorbed: Vec<ProfileId> = serde_json::from_str(absorbed)?;
        for a in absorbed {
            explained.insert(a);
            ledger_pairs.push((*survivor, a));
        }
    }
    for p in &input.profiles {
        if p.merged_into.is_some() && !explained.contains(&p.id) {
            problems.push(format!(
                "profile {} was merged away but no ledger row says so",
                p.id
            ));
        }
    }

    // Membership equals the core's resolution from scratch over the stored identifiers by the
    // keys in force, on top of what is permanent: each contact's join (its bucket) and the
    // merges the ledger records, so what earlier settings joined stays joined. Scopes never
    // span realms, so one graph holds them all, each contact carrying the values of its
    // realm's keys only.
    let mut fields: Vec<IdentifierField> = Vec::new();
    for realm in rules.values() {
        for f in &realm.keys {
            if !fields.contains(f) {
                fields.push(f.clone());
            }
        }
    }
    // Unique fields are slots of their own that never merge, filled for the contacts of the
    // realms that make them unique; a key that is also unique has both.
    let mut unique_fields: Vec<IdentifierField> = Vec::new();
    for realm in rules.values() {
        for f in &realm.unique {
            if !unique_fields.contains(f) {
                unique_fields.push(f.clone());
            }
        }
    }
    let slots: Vec<Slot> = fields
        .iter()
        .map(|f| Slot {
            field: f.clone(),
            merges: true,
            unique: false,
        })
        .chain(unique_fields.iter().map(|f| Slot {
            field: f.clone(),
            merges: false,
            unique: true,
        }))
        .collect();
    let unique_slot = |field: &str| {
        unique_fields
            .iter()
            .position(|f| f.name() == field)
            .map(|i| (fields.len() + i) as u8)
    };
    let index_of: HashMap<ContactId, u32> = input
        .contacts
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i as u32))
        .collect();
    let mut graph = KeyGraph::new(slots);
    let mut unique_now: HashMap<Option<ProfileId>, BTreeSet<(&str, &str)>> = HashMap::new();
    let mut scope_ids: HashMap<&str, u32> = HashMap::new();
    let mut ids = input.identifiers.iter().peekable();
    for contact in &input.contacts {
        let next = scope_ids.len() as u32;
        let scope_id = *scope_ids.entry(contact.scope.as_str()).or_insert(next);
        let realm = rules
            .get_mut(realm_of_scope(&contact.scope))
            .expect("every contact's realm has its rules");
        let mut values = Vec::new();
        while let Some(i) = ids.next_if(|i| i.contact_id == contact.id) {
            if realm.excluded(&contact.region, &i.field, &i.value)? {
                continue;
            }
            if realm.keys.iter().any(|f| f.name() == i.field)
                && let Some(slot) = fields.iter().position(|f| f.name() == i.field)
            {
                values.push((slot as u8, i.value.as_str()));
            }
            if realm.unique.iter().any(|f| f.name() == i.field)
                && let Some(slot) = unique_slot(&i.field)
            {
                values.push((slot, i.value.as_str()));
                unique_now
                    .entry(profile_of.get(&contact.id).copied())
                    .or_default()
                    .insert((i.field.as_str(), i.value.as_str()));
            }
        }
        graph.add_contact(scope_id, values);
    }
    let mut prior = UnionFind::new(input.contacts.len());
    let origin = |p: ProfileId| {
        profile_by_id
            .get(&p)
            .and_then(|r| index_of.get(&r.origin_contact))
            .copied()
    };
    // A contact joins a profile for good (its bucket) as merges are for good (the ledger):
    // a contact that drops the value it joined by stays.
    for (contact, bucket) in &input.memberships {
        if let (Some(&c), Some(origin)) = (index_of.get(contact), origin(*bucket)) {
            prior.union(origin, c);
        }
    }
    for (survivor, absorbed) in ledger_pairs {
        match (origin(survivor), origin(absorbed)) {
            (Some(a), Some(b)) => {
                prior.union(a, b);
            }
            _ => problems.push(format!(
                "ledger names unknown profiles {survivor} <- {absorbed}"
            )),
        }
    }
    // A profile holds its contacts' unique values, and may hold more: an upsert adds to them
    // and never takes away (`plan::conflicts`); the resolution counts all it holds.
    let mut held_stored: Vec<(u32, u8, String)> = Vec::new();
    for p in input.profiles.iter().filter(|p| p.merged_into.is_none()) {
        let held = parse_held(&p.unique_values)?;
        for (field, value) in unique_now.get(&Some(p.id)).into_iter().flatten() {
            if !held.contains(&((*field).to_owned(), (*value).to_owned())) {
                problems.push(format!(
                    "profile {}: its contacts carry {field}={value}, which it does not hold",
                    p.id
                ));
            }
        }
        let member = members_of
            .get(&p.id)
            .and_then(|m| m.first())
            .and_then(|c| index_of.get(c));
        if let Some(&member) = member {
            for (field, value) in held {
                if let Some(slot) = unique_slot(&field) {
                    held_stored.push((member, slot, value));
                }
            }
        }
    }
    let held: Vec<(u32, u8, &str)> = held_stored
        .iter()
        .map(|(c, s, v)| (*c, *s, v.as_str()))
        .collect();
    let resolved = resolve_holding(&graph, &Partition::from_union_find(&mut prior), &held);
    let mut stored_of_resolved: HashMap<u32, ProfileId> = HashMap::new();
    let mut resolved_of_stored: HashMap<ProfileId, u32> = HashMap::new();
    for (i, contact) in input.contacts.iter().enumerate() {
        let contact = contact.id;
        let (Some(&stored), r) = (profile_of.get(&contact), resolved.profile_of(i as u32)) else {
            continue;
        };
        let a = *stored_of_resolved.entry(r).or_insert(stored);
        let b = *resolved_of_stored.entry(stored).or_insert(r);
        if a != stored || b != r {
            problems.push(format!(
                "contact {contact}: stored profile {stored} differs from the core's resolution"
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(id: i64, count: i64, merged_into: Option<i64>) -> CheckedProfile {
        CheckedProfile {
            id: ProfileId(id),
            origin_contact: ContactId(id),
            oldest_contact: ContactId(id),
            member_count: count,
            merged_into: merged_into.map(ProfileId),
            unique_values: "[]".into(),
        }
    }

    fn input(profiles: Vec<CheckedProfile>, ledger: Vec<(i64, String)>) -> CheckInput {
        let contact = |id| CheckedContact {
            id: ContactId(id),
            scope: "o1:caac".into(),
            region: "TW".into(),
        };
        let email = |id| CheckedIdentifier {
            contact_id: ContactId(id),
            field: "display_email".into(),
            value: "a@x.io".into(),
            scope: "o1:caac".into(),
        };
        CheckInput {
            contacts: vec![contact(1), contact(2)],
            memberships: vec![(ContactId(1), ProfileId(1)), (ContactId(2), ProfileId(2))],
            profiles,
            identifiers: vec![email(1), email(2)],
            ledger: ledger
                .into_iter()
                .map(|(survivor, absorbed)| (ProfileId(survivor), absorbed))
                .collect(),
            realms: HashMap::from([(
                "o1".to_owned(),
                RealmCheck {
                    setting: UnifySetting {
                        unique_fields: crate::model::default_unique_fields(),
                        keys: vec!["display_email".into()],
                        excluded: Vec::new(),
                    },
                },
            )]),
            conflicts: Vec::new(),
        }
    }

    #[test]
    fn a_merged_hub_with_its_ledger_row_holds_every_invariant() {
        let merged = input(
            vec![profile(1, 2, None), profile(2, 1, Some(1))],
            vec![(1, "[2]".into())],
        );
        assert_eq!(broken_invariants(&merged).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn a_refused_carrier_may_stay_apart_and_a_conflict_must_name_a_carried_value() {
        let mut apart = input(vec![profile(1, 1, None), profile(2, 1, None)], Vec::new());
        apart.profiles[0].unique_values = r#"[["customer_id","M-1"]]"#.into();
        apart.profiles[1].unique_values = r#"[["customer_id","M-2"]]"#.into();
        apart.conflicts = vec![(ContactId(2), "display_email".into(), "a@x.io".into())];
        assert_eq!(broken_invariants(&apart).unwrap(), Vec::<String>::new());
        // Without what the profiles hold, the two could merge: the store is no fixpoint.
        let mut unheld = input(vec![profile(1, 1, None), profile(2, 1, None)], Vec::new());
        unheld.conflicts = apart.conflicts.clone();
        let problems = broken_invariants(&unheld).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("differs from the core's resolution")),
            "{problems:?}"
        );
        apart.conflicts = vec![(ContactId(2), "display_email".into(), "b@x.io".into())];
        let problems = broken_invariants(&apart).unwrap();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("which it does not carry")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_shared_key_value_in_two_profiles_and_a_merge_without_ledger_are_reported() {
        let apart = input(vec![profile(1, 1, None), profile(2, 1, None)], Vec::new());
        let problems = broken_invariants(&apart).unwrap();
        assert!(
            problems.iter().any(|p| p.contains("is in profiles {1, 2}")),
            "{problems:?}"
        );
        let unexplained = input(
            vec![profile(1, 2, None), profile(2, 1, Some(1))],
            Vec::new(),
        );
        let problems = broken_invariants(&unexplained).unwrap();
        assert!(
            problems.iter().any(|p| p.contains("no ledger row")),
            "{problems:?}"
        );
    }
}
