//! PostgreSQL: upserts batched into one transaction end as if upserted one by one, in order.

use std::collections::{BTreeMap, BTreeSet};

use cdh_store::AnyStore;
use cdh_store::model::{ContactId, ContactInput, Unification};

use crate::support::{Hub, TestStore, apply_keys, hub, input, upsert};

/// The contacts stored before the batch: `(label, external id, fields)`.
const STORED: &[(&str, &[(&str, &str)])] = &[
    ("p", &[("display_email", "p@x.io")]),
    ("q", &[("customer_id", "c1")]),
    ("r", &[("display_email", "r@x.io"), ("customer_id", "r1")]),
    ("old", &[("display_email", "old@x.io")]),
];

/// The batch, each with what keeps it in the shared transaction or out of it.
fn batch(h: &Hub) -> Vec<ContactInput> {
    let rows: &[(&str, &[(&str, &str)])] = &[
        // In: a new profile.
        ("n1", &[("display_email", "n1@x.io")]),
        // In: joins p.
        ("j1", &[("display_email", "p@x.io")]),
        // Out: shares p@x.io with j1; merges p and q after it.
        ("m1", &[("display_email", "p@x.io"), ("customer_id", "c1")]),
        // Out: the same contact as n1, written again.
        ("n1", &[("display_email", "n1b@x.io")]),
        // Out: shares n1@x.io with n1, so it runs after n1 and its rewrite, which drops that
        // email: a profile of its own.
        ("s1", &[("display_email", "n1@x.io")]),
        // Out: a stored contact, updated.
        (
            "old",
            &[("display_email", "old@x.io"), ("display_name", "Old")],
        ),
        // In: joins r through its email.
        ("ra", &[("display_email", "r@x.io")]),
        // Out: joins r through its customer id, a profile ra changes.
        ("rb", &[("customer_id", "r1")]),
        // In: a new profile of its own.
        ("c2", &[("customer_id", "c2")]),
    ];
    let mut inputs: Vec<ContactInput> = rows
        .iter()
        .map(|(id, fields)| input(h.email_caac, id, fields))
        .collect();
    // Refused: a channel the hub does not have.
    inputs.push(input(
        cdh_store::model::ChannelId(999_999_999),
        "lost",
        &[("display_email", "p@x.io")],
    ));
    inputs
}

/// How many of `batch` share the transaction.
const IN_THE_BATCH: u64 = 4;

/// A result as comparable across hubs: the unification (with how many profiles a merge
/// absorbed), or the error's code.
fn outcome(result: &cdh_store::StoreResult<cdh_store::model::Upserted>) -> String {
    match result {
        Ok(u) => match &u.unification {
            Unification::Merged { absorbed, .. } => format!("merged {}", absorbed.len()),
            other => format!("{other:?}"),
        },
        Err(e) => format!("error {}", e.code()),
    }
}

/// The contacts grouped by profile, each named by its external id.
async fn partition(
    s: &AnyStore,
    hub: cdh_store::model::HubId,
    contacts: &[(String, ContactId)],
) -> BTreeSet<BTreeSet<String>> {
    let mut by_profile: BTreeMap<cdh_store::model::ProfileId, BTreeSet<String>> = BTreeMap::new();
    for (name, id) in contacts {
        let contact = s.get_contact(hub, *id).await.expect("contact");
        let profile = s
            .get_profile(hub, contact.profile_id)
            .await
            .expect("profile");
        by_profile
            .entry(profile.id)
            .or_default()
            .insert(name.clone());
    }
    by_profile.into_values().collect()
}

/// Stores `STORED` in a new hub with two unify keys.
async fn stored_hub(s: &AnyStore) -> (Hub, Vec<(String, ContactId)>) {
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let mut contacts = Vec::new();
    for (name, fields) in STORED {
        let written = upsert(s, h.id, h.email_caac, name, fields).await;
        contacts.push(((*name).to_owned(), written.contact.id));
    }
    (h, contacts)
}

/// The same contacts go to two hubs: to one in a batch, to the other one at a time. The
/// independent ones share a transaction (counted by the store), the others run after it,
/// and both hubs end with the same results, profiles and invariants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_ends_as_its_upserts_one_by_one() {
    let t = TestStore::postgres().await;
    let s = &t.store;
    let AnyStore::Postgres(pg) = s else {
        unreachable!("a PostgreSQL store")
    };

    let (one_by_one, mut alone_contacts) = stored_hub(s).await;
    let mut alone = Vec::new();
    for input in batch(&one_by_one) {
        alone.push(s.upsert_contact(one_by_one.id, &input, "test").await);
    }
    let (batched, mut batch_contacts) = stored_hub(s).await;
    let before = pg.batched_upserts();
    let together = pg
        .upsert_contacts(batched.id, &batch(&batched), "test")
        .await;
    assert_eq!(pg.batched_upserts() - before, IN_THE_BATCH);

    let alone_outcomes: Vec<String> = alone.iter().map(outcome).collect();
    let together_outcomes: Vec<String> = together.iter().map(outcome).collect();
    assert_eq!(together_outcomes, alone_outcomes);
    assert_eq!(
        alone_outcomes,
        [
            "Created",
            "Joined",
            "merged 1",
            "Unchanged",
            "Created",
            "Unchanged",
            "Joined",
            "Joined",
            "Created",
            "error not_found"
        ]
    );

    for (results, contacts) in [
        (&alone, &mut alone_contacts),
        (&together, &mut batch_contacts),
    ] {
        for upserted in results.iter().flatten() {
            contacts.push((upserted.contact.external_id.clone(), upserted.contact.id));
        }
    }
    assert_eq!(
        partition(s, batched.id, &batch_contacts).await,
        partition(s, one_by_one.id, &alone_contacts).await
    );
    crate::support::assert_invariants(s, one_by_one.id).await;
    crate::support::assert_invariants(s, batched.id).await;
    t.finish(batched.id).await;
}

/// Many clients at once: the store batches what waits, and every profile still ends right.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clients_share_transactions() {
    let t = TestStore::postgres().await;
    let s = &t.store;
    let AnyStore::Postgres(pg) = s else {
        unreachable!("a PostgreSQL store")
    };
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let clients = 16;
    let each = 20;
    let writers: Vec<_> = (0..clients)
        .map(|c| {
            let (s, channel) = (s.clone(), h.email_caac);
            tokio::spawn(async move {
                let mut written = Vec::new();
                for i in 0..each {
                    // Pairs of a client's contacts share an email; clients 2k and 2k+1 share
                    // a customer id, so each pair of clients ends in one profile.
                    let email = format!("e{}@x.io", (c * each + i) / 2);
                    let customer = format!("k{}", c / 2);
                    let fields = [
                        ("display_email", email.as_str()),
                        ("customer_id", &customer),
                    ];
                    written.push(upsert(&s, h.id, channel, &format!("c{c}-{i}"), &fields).await);
                }
                written
            })
        })
        .collect();
    let mut profiles = BTreeSet::new();
    for w in writers {
        for upserted in w.await.expect("client") {
            let contact = s
                .get_contact(h.id, upserted.contact.id)
                .await
                .expect("contact");
            profiles.insert(
                s.get_profile(h.id, contact.profile_id)
                    .await
                    .expect("profile")
                    .id,
            );
        }
    }
    // Clients 2k and 2k+1 share customer k<k>: eight profiles of forty contacts.
    assert_eq!(profiles.len(), clients / 2);
    for id in &profiles {
        assert_eq!(
            s.get_profile(h.id, *id).await.unwrap().members.len(),
            2 * each
        );
    }
    assert!(pg.batched_upserts() > 0, "no upsert shared a transaction");
    crate::support::assert_invariants(s, h.id).await;
    t.finish(h.id).await;
}
