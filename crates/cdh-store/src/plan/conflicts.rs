//! Which of the profiles an upsert ties to it may join, by the rule of
//! `cdh_core::constrained`: its own profile first, then the others oldest first, each that
//! does not clash with what the growing profile holds on a unique field; and the `conflicts`
//! rows of the contact's key values whose main profile it was kept out of.
//!
//! A profile's unique values are stored with it (`profiles.unique_values`, a JSON array of
//! `[field, value]` pairs): an upsert adds to them and never takes away, so a contact that
//! drops its customer id leaves it held by its profile until the realm's setting is applied
//! again, which recomputes them from the contacts (`plan::apply`).

use std::collections::BTreeSet;

use crate::error::StoreResult;
use crate::model::{HubId, Millis, ProfileId};
use crate::plan::contact::ContactPlan;
use crate::plan::unify::ProfileRow;
use crate::rules::realm_of_scope;
use crate::sql::WriteBatch;

/// The unique values a profile holds: `(field, value)`, sorted.
pub(crate) type Held = BTreeSet<(String, String)>;

/// Two values of one unique field that would have met in one profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Clash {
    pub field: String,
    /// The contact's side.
    pub ours: String,
    /// The other profile's.
    pub theirs: String,
}

impl Clash {
    /// The reason code listed with the conflict: `customer_id_multiple` and the like.
    pub fn reason(&self) -> String {
        reason_code(&self.field)
    }
}

/// The reason code of a conflict on `unique_field`, as the vendor names it.
pub(crate) fn reason_code(unique_field: &str) -> String {
    format!("{unique_field}_multiple")
}

/// What an upsert may do with the profiles it locked.
#[derive(Clone, Debug)]
pub(crate) struct Joins {
    /// The profiles the contact ends up with (its own first when it has one), by id.
    pub joined: Vec<ProfileRow>,
    /// The profiles it was kept out of, with why.
    pub refused: Vec<(ProfileId, Clash)>,
    /// What the resulting profile holds.
    pub held: Held,
}

impl Joins {
    /// The held values as stored.
    pub fn held_json(&self) -> StoreResult<String> {
        Ok(serde_json::to_string(&self.held)?)
    }
}

/// The stored form of a profile's unique values.
pub(crate) fn parse_held(stored: &str) -> StoreResult<Held> {
    Ok(serde_json::from_str::<Vec<(String, String)>>(stored)?
        .into_iter()
        .collect())
}

/// The first clash between what two profiles hold, if any: a field both hold a value of, and
/// that together they would hold two different values of.
pub(crate) fn clash(ours: &Held, theirs: &Held) -> Option<Clash> {
    ours.iter().find_map(|(field, a)| {
        theirs
            .iter()
            .find(|(f, b)| f == field && b != a)
            .map(|(_, b)| Clash {
                field: field.clone(),
                ours: a.clone(),
                theirs: b.clone(),
            })
    })
}

/// The rule: `own` (the contact's profile, if stored) is kept; the other `locked` profiles are
/// joined oldest first, each that does not clash with the contact's `unique` values and what
/// was joined before it.
pub(crate) fn choose_joins(
    unique: &[(String, String)],
    own: Option<ProfileId>,
    mut locked: Vec<ProfileRow>,
) -> StoreResult<Joins> {
    let mut held: Held = unique.iter().cloned().collect();
    let mut joined = Vec::with_capacity(locked.len());
    if let Some(i) = own.and_then(|own| locked.iter().position(|p| p.id == own)) {
        let p = locked.remove(i);
        held.extend(parse_held(&p.unique_values)?);
        joined.push(p);
    }
    locked.sort_by_key(|p| (p.oldest_contact, p.id));
    let mut refused = Vec::new();
    for p in locked {
        let theirs = parse_held(&p.unique_values)?;
        match clash(&held, &theirs) {
            None => {
                held.extend(theirs);
                joined.push(p);
            }
            Some(why) => refused.push((p.id, why)),
        }
    }
    joined.sort_by_key(|p| p.id);
    Ok(Joins {
        joined,
        refused,
        held,
    })
}

/// Queues the contact's `conflicts` rows: one per key value whose main profile (`main`, as
/// `plan::unify::main_profiles` read it) it was kept out of. A stored contact's earlier rows
/// go first: its values may have changed.
pub(crate) fn queue_conflicts(
    batch: &mut WriteBatch,
    hub: HubId,
    plan: &ContactPlan,
    main: &[Option<ProfileId>],
    joins: &Joins,
    now: Millis,
) {
    if !plan.is_new {
        batch.push(
            "DELETE FROM conflicts WHERE hub_id = $1 AND contact_id = $2",
            vec![hub.into(), plan.contact_id.into()],
        );
    }
    for ((field, value), main) in plan.key_values.iter().zip(main) {
        let Some((held_by, why)) = main.and_then(|m| joins.refused.iter().find(|r| r.0 == m))
        else {
            continue;
        };
        batch.push(
            "INSERT INTO conflicts (hub_id, contact_id, field, scope, value, realm, reason, \
             unique_field, ours, theirs, held_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            vec![
                hub.into(),
                plan.contact_id.into(),
                field.as_str().into(),
                plan.scope.as_str().into(),
                value.as_str().into(),
                realm_of_scope(&plan.scope).into(),
                why.reason().into(),
                why.field.as_str().into(),
                why.ours.as_str().into(),
                why.theirs.as_str().into(),
                (*held_by).into(),
                now.into(),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ContactId;

    fn profile(id: i64, oldest: i64, held: &[(&str, &str)]) -> ProfileRow {
        let held: Held = held
            .iter()
            .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
            .collect();
        ProfileRow {
            id: ProfileId(id),
            oldest_contact: ContactId(oldest),
            member_count: 1,
            unique_values: serde_json::to_string(&held).unwrap(),
            merged_into: None,
        }
    }

    #[test]
    fn the_oldest_profile_is_joined_first_and_a_clash_is_refused() {
        // A new contact without a customer id ties to profiles holding M-2 (older) and M-1.
        let locked = vec![
            profile(30, 5, &[("customer_id", "M-1")]),
            profile(20, 3, &[("customer_id", "M-2")]),
            profile(40, 8, &[]),
        ];
        let joins = choose_joins(&[], None, locked).unwrap();
        let joined: Vec<ProfileId> = joins.joined.iter().map(|p| p.id).collect();
        assert_eq!(joined, [ProfileId(20), ProfileId(40)]);
        assert_eq!(joins.refused.len(), 1);
        let (id, why) = &joins.refused[0];
        assert_eq!(*id, ProfileId(30));
        assert_eq!((why.ours.as_str(), why.theirs.as_str()), ("M-2", "M-1"));
        assert_eq!(why.reason(), "customer_id_multiple");
        assert_eq!(joins.held_json().unwrap(), r#"[["customer_id","M-2"]]"#);
    }

    #[test]
    fn the_contacts_own_value_and_profile_come_first() {
        let locked = vec![
            profile(20, 3, &[("customer_id", "M-2")]),
            profile(30, 5, &[]),
        ];
        // A stored contact in profile 30 that now carries M-1 keeps its profile and is kept
        // out of 20's.
        let unique = [("customer_id".to_owned(), "M-1".to_owned())];
        let joins = choose_joins(&unique, Some(ProfileId(30)), locked).unwrap();
        assert_eq!(joins.joined.len(), 1);
        assert_eq!(joins.joined[0].id, ProfileId(30));
        assert_eq!(joins.refused[0].0, ProfileId(20));
        let same = [("customer_id".to_owned(), "M-2".to_owned())];
        let locked = vec![profile(20, 3, &[("customer_id", "M-2")])];
        assert!(
            choose_joins(&same, None, locked)
                .unwrap()
                .refused
                .is_empty()
        );
    }
}
