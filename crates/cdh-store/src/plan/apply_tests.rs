//! Unit tests of `plan::apply`.

use super::*;

fn channel(id: i64, product: &str) -> ScopedChannelRow {
    ScopedChannelRow {
        id: ChannelId(id),
        organization_id: OrganizationId(1),
        channel_type: "email".into(),
        product: product.into(),
        region: "TW".into(),
        connection_id: None,
    }
}

fn contact(id: i64, channel_id: i64, profile: i64) -> ContactProfileRow {
    ContactProfileRow {
        contact_id: ContactId(id),
        channel_id: ChannelId(channel_id),
        scope: "o1:caac".into(),
        profile_id: Some(ProfileId(profile)),
        oldest_contact: Some(ContactId(profile)),
    }
}

fn email(contact_id: i64, value: &str) -> KeyValuesRow {
    KeyValuesRow {
        contact_id: ContactId(contact_id),
        values: [Some(value.to_owned()), None, None],
    }
}

fn setting(keys: &[&str]) -> UnifySetting {
    UnifySetting {
        unique_fields: crate::model::default_unique_fields(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        excluded: Vec::new(),
    }
}

#[test]
fn a_merge_that_would_give_a_profile_two_customer_ids_is_refused_and_listed() {
    let customer = |c: i64, v: &str| (ContactId(c), "customer_id".to_owned(), v.to_owned());
    let input = ApplyInput {
        realm: Realm::Organization(OrganizationId(1)),
        covered: vec![Realm::Organization(OrganizationId(1))],
        marker: 9,
        cross_product: false,
        channels: vec![channel(1, "caac")],
        contacts: vec![
            contact(10, 1, 100),
            contact(11, 1, 101),
            contact(12, 1, 102),
        ],
        key_values: vec![
            email(10, "a@x.io"),
            email(11, "a@x.io"),
            email(12, "a@x.io"),
        ],
        unique: UniqueInput {
            values: vec![customer(10, "M-1"), customer(11, "M-2")],
            held: HashMap::from([(ProfileId(100), r#"[["customer_id","M-1"]]"#.to_owned())]),
        },
    };
    let plan = plan_apply(&setting(&["display_email"]), input).unwrap();
    // 12 joins the oldest profile (10's); 11 is kept out of it.
    assert_eq!((plan.profiles_before, plan.profiles_after), (3, 2));
    assert_eq!(plan.merges.len(), 1);
    assert_eq!(plan.merges[0].survivor, ProfileId(100));
    let conflicts = &plan.unique.conflicts;
    assert_eq!(conflicts.len(), 1);
    let c = &conflicts[0];
    assert_eq!(c.contact_id, ContactId(11));
    assert_eq!(
        (c.field.as_str(), c.value.as_str()),
        ("display_email", "a@x.io")
    );
    assert_eq!((c.ours.as_str(), c.theirs.as_str()), ("M-2", "M-1"));
    assert_eq!(c.held_by, ProfileId(100));
    // 100 already held M-1; 101 now holds M-2.
    assert_eq!(
        plan.unique.held,
        [(ProfileId(101), r#"[["customer_id","M-2"]]"#.to_owned())]
    );
}

#[test]
fn profiles_sharing_a_value_merge_into_the_oldest() {
    let input = ApplyInput {
        realm: Realm::Organization(OrganizationId(1)),
        covered: vec![Realm::Organization(OrganizationId(1))],
        marker: 9,
        cross_product: false,
        channels: vec![channel(1, "caac")],
        contacts: vec![
            contact(10, 1, 100),
            contact(11, 1, 101),
            contact(12, 1, 102),
        ],
        key_values: vec![email(10, "a@x.io"), email(11, "a@x.io")],
        unique: UniqueInput::default(),
    };
    let plan = plan_apply(&setting(&["display_email"]), input).unwrap();
    assert_eq!(plan.marker, 9);
    assert_eq!((plan.profiles_before, plan.profiles_after), (3, 2));
    assert_eq!(plan.contacts_moved, 1);
    assert!(plan.staged.is_empty(), "no scope changes");
    assert_eq!(plan.merges.len(), 1);
    assert_eq!(plan.merges[0].survivor, ProfileId(100));
    let records: Vec<_> = plan.merge_records().collect();
    assert_eq!(
        records,
        [(
            ProfileId(100),
            &vec![ProfileId(101)],
            "display_email",
            "a@x.io"
        )]
    );
    assert_eq!(
        plan.profile_changes[1],
        ProfileChange {
            profile_id: ProfileId(101),
            member_count: None,
            oldest_contact: None,
            merged_into: Some(ProfileId(100)),
        }
    );
    assert_eq!(plan.n_rows(), 2);
}

#[test]
fn cross_product_restages_scopes_and_merges_across_products() {
    let mut maac = contact(11, 2, 101);
    maac.scope = "o1:maac".into();
    let input = ApplyInput {
        realm: Realm::Organization(OrganizationId(1)),
        covered: vec![Realm::Organization(OrganizationId(1))],
        marker: 0,
        cross_product: true,
        channels: vec![channel(1, "caac"), channel(2, "maac")],
        contacts: vec![contact(10, 1, 100), maac],
        key_values: vec![email(10, "a@x.io"), email(11, "a@x.io")],
        unique: UniqueInput::default(),
    };
    let plan = plan_apply(&setting(&["display_email"]), input).unwrap();
    assert_eq!(plan.staged.len(), 2, "both contacts move to scope o1");
    assert!(plan.staged.iter().all(|s| s.scope == "o1"));
    assert_eq!(plan.profiles_after, 1);
    let (contacts, profiles) = plan.rows(1..3);
    assert_eq!((contacts.len(), profiles.len()), (1, 1));
}

#[test]
fn a_realm_keeps_its_organizations_contacts_and_their_key_values() {
    let mut other = channel(2, "caac");
    other.organization_id = OrganizationId(2);
    let channels = realm_channels(
        vec![channel(1, "caac"), other],
        Realm::Connection(ConnectionId(7)),
        &[OrganizationId(1)],
    );
    assert_eq!(channels.len(), 1);
    assert_eq!(channels[0].connection_id, Some(ConnectionId(7)));
    let mut contacts = vec![
        contact(10, 1, 100),
        contact(11, 2, 101),
        contact(12, 1, 102),
    ];
    let mut keys = vec![
        email(10, "a@x.io"),
        email(11, "b@x.io"),
        email(12, "c@x.io"),
    ];
    retain_realm_contacts(&mut contacts, &mut keys, &channels);
    let ids: Vec<i64> = contacts.iter().map(|c| c.contact_id.0).collect();
    assert_eq!(ids, [10, 12]);
    let ids: Vec<i64> = keys.iter().map(|k| k.contact_id.0).collect();
    assert_eq!(ids, [10, 12]);
    let alone = realm_channels(
        vec![channel(1, "caac")],
        Realm::Organization(OrganizationId(1)),
        &[OrganizationId(1)],
    );
    assert_eq!(alone[0].connection_id, None);
}

#[test]
fn a_contact_without_a_profile_is_corrupt() {
    let mut lost = contact(10, 1, 100);
    lost.profile_id = None;
    let input = ApplyInput {
        realm: Realm::Organization(OrganizationId(1)),
        covered: vec![Realm::Organization(OrganizationId(1))],
        marker: 0,
        cross_product: false,
        channels: vec![channel(1, "caac")],
        contacts: vec![lost],
        key_values: Vec::new(),
        unique: UniqueInput::default(),
    };
    assert!(matches!(
        plan_apply(&setting(&["display_email"]), input),
        Err(StoreError::Corrupt(_))
    ));
}
