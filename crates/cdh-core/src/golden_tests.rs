//! Unit tests for survivorship and the golden record.

use super::*;
use crate::field::IdentifierField::*;

fn member(id: &str, fields: &[(&str, &str, Timestamp)]) -> MemberRecord {
    MemberRecord {
        contact_id: id.into(),
        fields: fields
            .iter()
            .map(|&(k, v, t)| (k.to_owned(), (v.to_owned(), t)))
            .collect(),
        ..MemberRecord::default()
    }
}

#[test]
fn non_empty_beats_a_newer_empty_value() {
    let a = member("a", &[("display_name", "Alice", 100)]);
    let b = member("b", &[("display_name", "", 200)]);
    let g = golden_record(&[&a, &b], None);
    assert_eq!(g.fields["display_name"].value, "Alice");
    assert_eq!(g.fields["display_name"].source, "a");
}

#[test]
fn latest_update_wins_among_non_empty_values() {
    let a = member(
        "a",
        &[("gender", "female", 300), ("birthday", "1990-01-01", 100)],
    );
    let b = member(
        "b",
        &[("gender", "unknown", 200), ("birthday", "1991-02-02", 400)],
    );
    let g = golden_record(&[&a, &b], None);
    assert_eq!(g.fields["gender"].value, "female");
    assert_eq!(g.fields["birthday"].value, "1991-02-02");
    assert_eq!(g.fields["birthday"].source, "b");
}

#[test]
fn equal_times_go_to_the_greater_contact_id_whatever_the_order() {
    let a = member("c1", &[("display_name", "One", 5)]);
    let b = member("c2", &[("display_name", "Two", 5)]);
    assert_eq!(
        golden_record(&[&a, &b], None),
        golden_record(&[&b, &a], None)
    );
    assert_eq!(
        golden_record(&[&a, &b], None).fields["display_name"].value,
        "Two"
    );
}

#[test]
fn fields_empty_everywhere_are_absent() {
    let a = member("a", &[("city", "", 1)]);
    assert!(golden_record(&[&a], None).fields.is_empty());
}

#[test]
fn tags_are_a_sorted_union_without_duplicates() {
    let mut a = member("a", &[]);
    a.tags = vec!["vip".into(), "line".into()];
    let mut b = member("b", &[]);
    b.tags = vec!["vip".into(), "ig".into()];
    assert_eq!(golden_record(&[&a, &b], None).tags, ["ig", "line", "vip"]);
}

#[test]
fn identifiers_are_all_kept_and_key_fields_marked() {
    let mut a = member("a", &[]);
    a.identifiers = vec![
        IdentifierValue {
            field: DisplayMobile,
            value: "+886912345678".into(),
            valid: true,
        },
        IdentifierValue {
            field: DisplayEmail,
            value: "a@x.com".into(),
            valid: true,
        },
    ];
    let mut b = member("b", &[]);
    b.identifiers = vec![
        IdentifierValue {
            field: DisplayMobile,
            value: "+886912345678".into(),
            valid: true,
        },
        IdentifierValue {
            field: DisplayEmail,
            value: "bad@".into(),
            valid: false,
        },
    ];
    let keys = UnifyKeys::new(vec![DisplayMobile]).unwrap();
    let g = golden_record(&[&a, &b], Some(&keys));
    assert_eq!(g.identifiers.len(), 3);
    let phone = g
        .identifiers
        .iter()
        .find(|i| i.field == DisplayMobile)
        .unwrap();
    assert!(phone.is_unify_key);
    assert_eq!(phone.sources, ["a", "b"]);
    let invalid = g.identifiers.iter().find(|i| !i.valid).unwrap();
    assert_eq!(
        (invalid.value.as_str(), invalid.is_unify_key),
        ("bad@", false)
    );
}

#[test]
fn timeline_is_newest_first_across_members() {
    let item = |c: &str, at, kind| TimelineItem {
        kind,
        contact_id: c.into(),
        text: format!("{c}@{at}"),
        at,
    };
    let mut a = member("a", &[]);
    a.timeline = vec![
        item("a", 10, TimelineKind::Note),
        item("a", 30, TimelineKind::Conversation),
    ];
    let mut b = member("b", &[]);
    b.timeline = vec![item("b", 20, TimelineKind::Note)];
    let g = golden_record(&[&b, &a], None);
    let ats: Vec<_> = g.timeline.iter().map(|t| t.at).collect();
    assert_eq!(ats, [30, 20, 10]);
}
