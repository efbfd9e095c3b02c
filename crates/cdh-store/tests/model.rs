//! A model-based test of the whole store, on both backends: random sequences of contact
//! writes (new contacts, updates that change or clear values, on two products), applies of
//! random keys with random exclusions and unique fields, and profile edits, checked after
//! every step:
//! - the store's invariants (`check_invariants`: one live profile per contact, the ledger
//!   explains every merge, and the stored profiles are the core's resolution on top of the
//!   ledger's merges: a fixpoint where two profiles sharing a valid, unexcluded key value in a
//!   scope are apart only when a recorded conflict keeps them so);
//! - against a plain model of what each contact carries: a lookup by every contact's current
//!   email finds its profile, and every profile's merged identifiers are exactly its
//!   contacts' values.
//!
//! Shrunk failures are kept by proptest in `model.proptest-regressions` and replayed first.

use std::collections::{BTreeMap, BTreeSet};

use cdh_store::AnyStore;
use cdh_store::model::{ContactId, ContactInput, UnifySetting};
use cdh_store::port::ApplyOptions;
use proptest::prelude::*;

use crate::support::{Hub, TestStore, hub};

/// One step of a sequence.
#[derive(Clone, Debug)]
enum Step {
    /// Writes contact `n` of a product with these values (`None` clears the field).
    Write {
        n: u8,
        maac: bool,
        email: Option<u8>,
        phone: Option<u8>,
        customer: Option<u8>,
    },
    /// Applies the keys of `mask` (email, phone, customer id), with customer ids unique or
    /// not, and maybe one email excluded.
    Apply {
        mask: u8,
        unique: bool,
        exclude: Option<u8>,
    },
    /// An admin sets the customer id of contact `n`'s profile (written to every contact of it).
    Edit { n: u8, maac: bool, customer: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    let value = || proptest::option::of(0u8..3);
    prop_oneof![
        6 => (0u8..6, any::<bool>(), value(), value(), value()).prop_map(
            |(n, maac, email, phone, customer)| Step::Write { n, maac, email, phone, customer }
        ),
        2 => (1u8..8, any::<bool>(), proptest::option::of(0u8..3))
            .prop_map(|(mask, unique, exclude)| Step::Apply { mask, unique, exclude }),
        1 => (0u8..6, any::<bool>(), 0u8..3).prop_map(|(n, maac, customer)| Step::Edit { n, maac, customer }),
    ]
}

fn email(v: u8) -> String {
    format!("e{v}@x.io")
}

fn phone(v: u8) -> (String, String) {
    (format!("091234560{v}"), format!("+88691234560{v}"))
}

fn customer(v: u8) -> String {
    format!("M-{v}")
}

/// A contact's current values, by field.
type Carried = BTreeMap<&'static str, String>;

/// What the model knows: each written contact's id and current values, by (product, n).
#[derive(Default)]
struct Model {
    contacts: BTreeMap<(bool, u8), (ContactId, Carried)>,
}

async fn write(
    s: &AnyStore,
    h: &Hub,
    model: &mut Model,
    n: u8,
    maac: bool,
    values: [(&'static str, Option<String>, Option<String>); 3],
) {
    let channel = if maac { h.email_maac } else { h.email_caac };
    let input = ContactInput {
        channel_id: channel,
        external_id: format!("c{n}"),
        fields: values
            .iter()
            .map(|(f, raw, _)| ((*f).to_owned(), raw.clone()))
            .collect(),
        ..ContactInput::default()
    };
    let written = s
        .upsert_contact(h.id, &input, "model")
        .await
        .expect("upsert");
    let carried = values
        .into_iter()
        .filter_map(|(f, _, normal)| normal.map(|v| (f, v)))
        .collect();
    model
        .contacts
        .insert((maac, n), (written.contact.id, carried));
}

async fn run(t: TestStore, steps: Vec<Step>) {
    let s = &t.store;
    let h = hub(s).await;
    let mut model = Model::default();
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Step::Write {
                n,
                maac,
                email: e,
                phone: p,
                customer: c,
            } => {
                let p = p.map(phone);
                write(
                    s,
                    &h,
                    &mut model,
                    n,
                    maac,
                    [
                        ("display_email", e.map(email), e.map(email)),
                        ("display_mobile", p.clone().map(|p| p.0), p.map(|p| p.1)),
                        ("customer_id", c.map(customer), c.map(customer)),
                    ],
                )
                .await;
            }
            Step::Apply {
                mask,
                unique,
                exclude,
            } => {
                let keys: Vec<String> = ["display_email", "display_mobile", "customer_id"]
                    .iter()
                    .enumerate()
                    .filter(|(k, _)| mask & (1 << k) != 0)
                    .map(|(_, f)| (*f).to_owned())
                    .collect();
                let setting = UnifySetting {
                    keys,
                    excluded: exclude
                        .map(|v| ("display_email".to_owned(), email(v)))
                        .into_iter()
                        .collect(),
                    unique_fields: if unique {
                        vec!["customer_id".to_owned()]
                    } else {
                        Vec::new()
                    },
                };
                let task = s
                    .start_apply(h.id, h.org, &setting, "model")
                    .await
                    .expect("start apply");
                let task = s
                    .run_apply(
                        h.id,
                        task,
                        &ApplyOptions {
                            batch_size: 3,
                            on_batch: None,
                        },
                    )
                    .await
                    .expect("apply");
                assert!(task.error.is_none(), "step {i}: {:?}", task.error);
            }
            Step::Edit {
                n,
                maac,
                customer: c,
            } => {
                let Some((id, _)) = model.contacts.get(&(maac, n)) else {
                    continue;
                };
                let profile = s.get_contact(h.id, *id).await.expect("contact").profile_id;
                let members = s.get_profile(h.id, profile).await.expect("profile").members;
                let edits = BTreeMap::from([("customer_id".to_owned(), Some(customer(c)))]);
                s.patch_profile(h.id, profile, &edits, "admin")
                    .await
                    .expect("edit");
                for (_, (cid, carried)) in model.contacts.iter_mut() {
                    if members.iter().any(|m| m.contact_id == *cid) {
                        carried.insert("customer_id", customer(c));
                    }
                }
            }
        }
        check(s, &h, &model, i, step).await;
    }
    t.finish(h.id).await;
}

async fn check(s: &AnyStore, h: &Hub, model: &Model, i: usize, step: &Step) {
    let problems = s.check_invariants(h.id).await.expect("check");
    assert!(
        problems.is_empty(),
        "after step {i} ({step:?}):\n{}",
        problems.join("\n")
    );
    let carried_by: BTreeMap<ContactId, &BTreeMap<&str, String>> =
        model.contacts.values().map(|(id, c)| (*id, c)).collect();
    for (id, carried) in carried_by
        .values()
        .copied()
        .zip(carried_by.keys())
        .map(|(c, id)| (id, c))
    {
        let profile = s.get_contact(h.id, *id).await.expect("contact").profile_id;
        if let Some(e) = carried.get("display_email") {
            let found = s
                .lookup_golden_records(h.id, h.org, "display_email", e)
                .await
                .expect("lookup");
            assert!(
                found
                    .iter()
                    .any(|(p, _)| p.members.iter().any(|m| m.contact_id == *id)),
                "after step {i} ({step:?}): a lookup by {e} misses contact {id}"
            );
        }
        let (p, golden) = s.golden_record(h.id, profile).await.expect("record");
        let expected: BTreeSet<(String, String)> = p
            .members
            .iter()
            .flat_map(|m| {
                carried_by
                    .get(&m.contact_id)
                    .into_iter()
                    .flat_map(|c| c.iter())
            })
            .map(|(f, v)| ((*f).to_owned(), v.clone()))
            .collect();
        let merged: BTreeSet<(String, String)> = golden
            .identifiers
            .iter()
            .map(|x| (x.field.name().to_owned(), x.value.clone()))
            .collect();
        assert_eq!(
            merged, expected,
            "after step {i} ({step:?}): profile {} of contact {id}",
            p.id
        );
    }
}

fn cases(default: u32) -> ProptestConfig {
    let cases = std::env::var("CDH_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(cases(24))]

    #[test]
    fn sqlite_follows_the_model(steps in proptest::collection::vec(step(), 1..14)) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async { run(TestStore::sqlite().await, steps).await });
    }

    #[test]
    fn postgres_follows_the_model(steps in proptest::collection::vec(step(), 1..14)) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async { run(TestStore::postgres().await, steps).await });
    }
}
