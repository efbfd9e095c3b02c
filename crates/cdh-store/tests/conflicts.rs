//! Merges refused on unique fields: the upsert and the apply follow one rule (the core's,
//! `cdh_core::constrained`), record each refusal as a conflict, and list them.

use std::collections::BTreeMap;

use cdh_store::model::{ContactId, ProfileId, Unification, UnifySetting};

use crate::conformance;
use crate::support::{Hub, TestStore, apply_keys, apply_setting, hub, upsert};

/// The contacts of the scenario, in the order written: an email shared by everyone, and
/// customer ids that disagree.
const CONTACTS: [(&str, &[(&str, &str)]); 5] = [
    (
        "a",
        &[("display_email", "x@shop.tw"), ("customer_id", "M-1")],
    ),
    (
        "b",
        &[("display_email", "x@shop.tw"), ("customer_id", "M-2")],
    ),
    ("c", &[("display_email", "x@shop.tw")]),
    (
        "d",
        &[("display_email", "x@shop.tw"), ("customer_id", "M-2")],
    ),
    (
        "e",
        &[("display_mobile", "0912345678"), ("customer_id", "M-3")],
    ),
];

/// Each contact's profile, named by the external id of its oldest contact.
async fn partition(t: &TestStore, h: &Hub, ids: &[(&str, ContactId)]) -> BTreeMap<String, String> {
    let mut oldest: BTreeMap<ProfileId, (ContactId, &str)> = BTreeMap::new();
    let mut of = Vec::new();
    for &(external, id) in ids {
        let c = t.store.get_contact(h.id, id).await.expect("contact");
        let entry = oldest.entry(c.profile_id).or_insert((c.id, external));
        if c.id < entry.0 {
            *entry = (c.id, external);
        }
        of.push((external, c.profile_id));
    }
    of.into_iter()
        .map(|(external, profile)| (external.to_owned(), oldest[&profile].1.to_owned()))
        .collect()
}

/// Writes the scenario's contacts; their external ids and ids.
async fn write_all(
    t: &TestStore,
    h: &Hub,
) -> (
    Vec<cdh_store::model::Upserted>,
    Vec<(&'static str, ContactId)>,
) {
    let mut written = Vec::new();
    for (external, fields) in CONTACTS {
        written.push(upsert(&t.store, h.id, h.email_caac, external, fields).await);
    }
    let ids = CONTACTS
        .iter()
        .zip(&written)
        .map(|((external, _), w)| (*external, w.contact.id))
        .collect();
    (written, ids)
}

conformance!(upserts_refuse_a_second_customer_id, upsert_body);
async fn upsert_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    let (written, ids) = write_all(&t, &h).await;
    // b shares a's email but holds M-2 against a's M-1: a profile of its own.
    assert_eq!(written[1].unification, Unification::Created);
    assert_eq!(written[1].n_refused, 1);
    // c has no customer id: it joins the oldest profile holding the email, a's; b's clashes.
    assert_eq!(written[2].contact.profile_id, written[0].contact.profile_id);
    assert_eq!(written[2].n_refused, 1);
    // d holds M-2: kept out of a's profile, it joins b's, found through b's conflict.
    assert_eq!(written[3].contact.profile_id, written[1].contact.profile_id);
    let expected: BTreeMap<String, String> =
        [("a", "a"), ("b", "b"), ("c", "a"), ("d", "b"), ("e", "e")]
            .map(|(c, p)| (c.to_owned(), p.to_owned()))
            .into();
    assert_eq!(partition(&t, &h, &ids).await, expected);
    crate::support::assert_invariants(s, h.id).await;

    // Listed: b and d kept out of a's profile; c is in it.
    let conflicts = s.conflicts(h.id, h.org, None, 10).await.unwrap();
    let listed: Vec<(String, &str, &str, &str, &str)> = conflicts
        .iter()
        .map(|c| {
            (
                c.external_id.clone(),
                c.reason.as_str(),
                c.field.as_str(),
                c.ours.as_str(),
                c.theirs.as_str(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                "b".to_owned(),
                "customer_id_multiple",
                "display_email",
                "M-2",
                "M-1"
            ),
            (
                "d".to_owned(),
                "customer_id_multiple",
                "display_email",
                "M-2",
                "M-1"
            ),
        ]
    );
    assert_eq!(conflicts[0].held_by, written[0].contact.profile_id);
    assert_eq!(conflicts[0].channel_type, "email");
    // Paged by (contact, field).
    let first = s.conflicts(h.id, h.org, None, 1).await.unwrap();
    let cursor = (first[0].contact_id, first[0].field.clone());
    let second = s.conflicts(h.id, h.org, Some(cursor), 10).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].external_id, "d");

    // e takes the email and M-2 for its M-3. Its profile still holds M-3 (an upsert adds to
    // what a profile holds, only an apply recomputes it), so it clashes with b's (M-2) as
    // with a's (M-1): kept out of both, and listed.
    let e = upsert(
        s,
        h.id,
        h.email_caac,
        "e",
        &[("display_email", "x@shop.tw"), ("customer_id", "M-2")],
    )
    .await;
    assert_eq!(e.contact.profile_id, written[4].contact.profile_id);
    assert_eq!(e.n_refused, 2);
    let listed: Vec<String> = s
        .conflicts(h.id, h.org, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.external_id)
        .collect();
    assert_eq!(listed, ["b", "d", "e"]);
    crate::support::assert_invariants(s, h.id).await;
    // The next apply recomputes what e's profile holds (M-2 alone) and e joins b's profile.
    apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    let e = s.get_contact(h.id, e.contact.id).await.unwrap();
    let b = s.get_contact(h.id, written[1].contact.id).await.unwrap();
    assert_eq!(e.profile_id, b.profile_id);
    crate::support::assert_invariants(s, h.id).await;
    t.finish(h.id).await;
}

conformance!(an_apply_refuses_what_the_upserts_refuse, apply_body);
async fn apply_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    // Written before any key: nothing merges until the apply.
    let (_, ids) = write_all(&t, &h).await;
    let result = apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    assert_eq!(result["profiles_after"], 3, "{result}");
    let expected: BTreeMap<String, String> =
        [("a", "a"), ("b", "b"), ("c", "a"), ("d", "b"), ("e", "e")]
            .map(|(c, p)| (c.to_owned(), p.to_owned()))
            .into();
    assert_eq!(partition(&t, &h, &ids).await, expected);
    let listed: Vec<String> = s
        .conflicts(h.id, h.org, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.external_id)
        .collect();
    assert_eq!(listed, ["b", "d"]);
    crate::support::assert_invariants(s, h.id).await;

    // With no unique field, the same keys merge everyone who shares the email, and the
    // conflicts go.
    let setting = UnifySetting {
        keys: vec!["display_email".into(), "display_mobile".into()],
        excluded: Vec::new(),
        unique_fields: Vec::new(),
    };
    apply_setting(s, h.id, h.org, &setting).await;
    let merged = partition(&t, &h, &ids).await;
    assert_eq!(
        ["a", "b", "c", "d"].map(|c| merged[c].as_str()),
        ["a", "a", "a", "a"]
    );
    assert!(s.conflicts(h.id, h.org, None, 10).await.unwrap().is_empty());
    crate::support::assert_invariants(s, h.id).await;
    t.finish(h.id).await;
}

conformance!(
    a_dropped_customer_id_stays_held_until_the_next_apply,
    dropped_body
);
async fn dropped_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "x@shop.tw"), ("customer_id", "M-1")],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_email", "x@shop.tw"), ("customer_id", "M-2")],
    )
    .await;
    assert_eq!(b.unification, Unification::Created);
    // b's customer id was a typo: cleared, b's profile still holds M-2 until the next apply.
    let cleared = s
        .upsert_contact(
            h.id,
            &cdh_store::model::ContactInput {
                channel_id: h.email_caac,
                external_id: "b".into(),
                fields: [("customer_id".to_owned(), None)].into(),
                ..Default::default()
            },
            "test",
        )
        .await
        .unwrap();
    assert_eq!(cleared.unification, Unification::Unchanged);
    assert_eq!(cleared.n_refused, 1);
    crate::support::assert_invariants(s, h.id).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let a = s.get_contact(h.id, a.contact.id).await.unwrap();
    let b = s.get_contact(h.id, b.contact.id).await.unwrap();
    assert_eq!(a.profile_id, b.profile_id, "the apply merges them now");
    assert!(s.conflicts(h.id, h.org, None, 10).await.unwrap().is_empty());
    crate::support::assert_invariants(s, h.id).await;
    t.finish(h.id).await;
}
