//! Unit tests of `plan::unify`.

use super::*;
use crate::plan::contact::IdBlock;

fn profile(id: i64, oldest_contact: i64, member_count: i64) -> ProfileRow {
    ProfileRow {
        id: ProfileId(id),
        oldest_contact: ContactId(oldest_contact),
        member_count,
        unique_values: "[]".into(),
        merged_into: None,
    }
}

fn plan(contact_id: i64, is_new: bool) -> ContactPlan {
    ContactPlan {
        contact_id: ContactId(contact_id),
        is_new,
        scope: "o1:caac".into(),
        key_values: Vec::new(),
        unique_values: Vec::new(),
        value_locks: Vec::new(),
        fields: BTreeMap::new(),
        tags: Vec::new(),
        custom_fields: BTreeMap::new(),
        invalid: Vec::new(),
        created_at: 10,
        now: 10,
        batch: WriteBatch::default(),
        ids: IdBlock { next: 0, end: 0 },
        event_seq: 0,
    }
}

fn tie(profile_id: i64, value: &str) -> Tie {
    Tie {
        profile_id: ProfileId(profile_id),
        field: "display_email".into(),
        value: value.into(),
    }
}

#[test]
fn no_tie_creates_a_profile_with_a_fresh_id() {
    let mut p = plan(7, true);
    let settled = plan_unification(
        HubId(1),
        &mut p,
        Vec::new(),
        &[],
        &[],
        None,
        vec![90],
        "api",
    )
    .unwrap();
    assert_eq!(settled.profile_id, ProfileId(90));
    assert_eq!(settled.unification, Unification::Created);
    assert_eq!(settled.events[0].kind, "profile.created");
}

#[test]
fn a_merge_keeps_the_oldest_and_writes_a_ledger_row_per_tying_value() {
    let mut p = plan(50, true);
    let locked = vec![profile(20, 5, 2), profile(30, 3, 1), profile(40, 8, 4)];
    let ties = [tie(20, "a@x.io"), tie(30, "b@x.io"), tie(40, "b@x.io")];
    let settled = plan_unification(
        HubId(1),
        &mut p,
        locked,
        &ties,
        &[],
        None,
        vec![91, 92, 93],
        "api",
    )
    .unwrap();
    assert_eq!(
        settled.unification,
        Unification::Merged {
            survivor: ProfileId(30),
            absorbed: vec![ProfileId(20), ProfileId(40)],
        }
    );
    let merged: Vec<(&str, &serde_json::Value)> = settled
        .events
        .iter()
        .map(|e| (e.kind, &e.payload["merged_ids"]))
        .collect();
    assert_eq!(
        merged,
        [
            ("profile.merged", &serde_json::json!([20])),
            ("profile.merged", &serde_json::json!([40]))
        ]
    );
    let ledger_rows = p
        .batch
        .statements
        .iter()
        .filter(|(sql, _)| sql.starts_with("INSERT INTO merge_ledger"))
        .count();
    assert_eq!(ledger_rows, 2);
}

#[test]
fn the_own_profile_is_split_off_and_each_profile_comes_once() {
    let kv = ("display_email".to_owned(), "a@x.io".to_owned());
    let kv2 = ("display_mobile".to_owned(), "+886912345678".to_owned());
    let rows = vec![
        TieRow::unlocked((1, 0, 20, 5, 1, "[]".into())),
        TieRow::unlocked((-1, 0, 30, 3, 1, "[]".into())),
        TieRow::unlocked((0, 0, 20, 5, 1, "[]".into())),
    ];
    let (tied, own) = split_tie_rows(rows, &[&kv, &kv2]);
    assert_eq!(own.map(|o| o.id), Some(ProfileId(30)));
    assert_eq!(tied.len(), 1);
    assert_eq!(
        tied[0].field, "display_email",
        "the first value that ties it"
    );
    let ties = tie_list(&tied, Some(ProfileId(30)));
    assert_eq!(ties, [tie(20, "a@x.io"), tie(30, "a@x.io")]);
}
