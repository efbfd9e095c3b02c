//! Property tests of resolution against a naive oracle (breadth-first search over the key graph).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use cdh_core::golden::{IdentifierValue, TimelineItem, TimelineKind};
use cdh_core::{
    IdentifierField, IncrementalResolver, KeyGraph, MemberRecord, PreviewOptions, Resolution, Slot,
    Tie, TieGraph, golden_record, preview, resolve,
};
use proptest::prelude::*;

/// A contact as generated: its scope and, per slot, maybe a value from a small domain.
#[derive(Clone, Debug)]
struct Gen {
    scope: u32,
    values: Vec<(u8, String)>,
}

fn slots() -> Vec<Slot> {
    vec![
        Slot {
            field: IdentifierField::DisplayMobile,
            merges: true,
            unique: false,
        },
        Slot {
            field: IdentifierField::DisplayEmail,
            merges: true,
            unique: false,
        },
        Slot {
            field: IdentifierField::LineUid,
            merges: true,
            unique: false,
        },
        Slot {
            field: IdentifierField::CustomerId,
            merges: false,
            unique: false,
        },
    ]
}

fn contact() -> impl Strategy<Value = Gen> {
    (0u32..2, proptest::collection::vec((0u8..4, 0u8..6), 0..4)).prop_map(|(scope, vals)| Gen {
        scope,
        values: vals
            .into_iter()
            .map(|(s, v)| (s, format!("v{v}")))
            .collect(),
    })
}

fn contacts(max: usize) -> impl Strategy<Value = Vec<Gen>> {
    proptest::collection::vec(contact(), 0..max)
}

fn graph_of(cs: &[Gen]) -> KeyGraph {
    let mut g = KeyGraph::new(slots());
    for c in cs {
        g.add_contact(c.scope, c.values.iter().map(|(s, v)| (*s, v.as_str())));
    }
    g
}

fn tied(a: &Gen, b: &Gen) -> bool {
    let merges = |s: u8| slots()[s as usize].merges;
    a.scope == b.scope
        && a.values
            .iter()
            .any(|(s, v)| merges(*s) && b.values.iter().any(|(t, w)| t == s && w == v))
}

/// The oracle: BFS distances between contacts and the components, labelled by lowest index.
fn oracle_components(cs: &[Gen]) -> Vec<u32> {
    let mut label = vec![u32::MAX; cs.len()];
    for start in 0..cs.len() {
        if label[start] != u32::MAX {
            continue;
        }
        let mut queue = VecDeque::from([start]);
        label[start] = start as u32;
        while let Some(c) = queue.pop_front() {
            for d in 0..cs.len() {
                if label[d] == u32::MAX && tied(&cs[c], &cs[d]) {
                    label[d] = start as u32;
                    queue.push_back(d);
                }
            }
        }
    }
    label
}

fn oracle_distance(cs: &[Gen], a: usize, b: usize) -> Option<usize> {
    let mut dist = vec![usize::MAX; cs.len()];
    dist[a] = 0;
    let mut queue = VecDeque::from([a]);
    while let Some(c) = queue.pop_front() {
        for d in 0..cs.len() {
            if dist[d] == usize::MAX && tied(&cs[c], &cs[d]) {
                dist[d] = dist[c] + 1;
                queue.push_back(d);
            }
        }
    }
    (dist[b] != usize::MAX).then_some(dist[b])
}

fn roots(graph: &KeyGraph) -> Vec<u32> {
    let p = resolve(graph, None);
    (0..graph.n_contacts() as u32)
        .map(|c| p.root(p.profile_of(c)))
        .collect()
}

fn as_sets(labels: &[u32], ids: &[usize]) -> BTreeSet<BTreeSet<usize>> {
    let mut by: BTreeMap<u32, BTreeSet<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by.entry(l).or_default().insert(ids[i]);
    }
    by.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn partition_equals_the_oracle(cs in contacts(40)) {
        prop_assert_eq!(roots(&graph_of(&cs)), oracle_components(&cs));
    }

    #[test]
    fn partition_does_not_depend_on_input_order(cs in contacts(40), seed in any::<u64>()) {
        let mut order: Vec<usize> = (0..cs.len()).collect();
        // A deterministic shuffle from the seed.
        let mut s = seed | 1;
        for i in (1..order.len()).rev() {
            s ^= s << 13; s ^= s >> 7; s ^= s << 17;
            order.swap(i, (s % (i as u64 + 1)) as usize);
        }
        let shuffled: Vec<Gen> = order.iter().map(|&i| cs[i].clone()).collect();
        let identity: Vec<usize> = (0..cs.len()).collect();
        prop_assert_eq!(
            as_sets(&roots(&graph_of(&shuffled)), &order),
            as_sets(&roots(&graph_of(&cs)), &identity)
        );
    }

    #[test]
    fn incremental_contact_by_contact_equals_batch(cs in contacts(40)) {
        let mut inc = IncrementalResolver::new(slots());
        for (i, c) in cs.iter().enumerate() {
            let before: Vec<u32> = (0..i as u32).map(|d| inc.profile_of(d)).collect();
            let (idx, outcome) = inc.add_contact(c.scope, c.values.iter().map(|(s, v)| (*s, v.as_str())));
            prop_assert_eq!(idx as usize, i);
            prop_assert_eq!(inc.profile_of(idx), outcome.profile());
            if let Resolution::Merged { survivor, absorbed } = &outcome {
                prop_assert!(absorbed.len() >= 2 - 1);
                for (p, _) in absorbed {
                    prop_assert!(*p > *survivor, "the oldest profile survives");
                }
            }
            // Nothing splits: contacts together before stay together.
            for a in 0..i {
                for b in 0..i {
                    if before[a] == before[b] {
                        prop_assert_eq!(inc.profile_of(a as u32), inc.profile_of(b as u32));
                    }
                }
            }
        }
        let graph = graph_of(&cs);
        prop_assert_eq!(inc.partition(), resolve(&graph, None));
    }

    #[test]
    fn updates_only_add_merges(cs in contacts(30), updates in proptest::collection::vec((0usize..30, contact()), 0..10)) {
        let mut inc = IncrementalResolver::new(slots());
        let mut all = cs.clone();
        for c in &cs {
            inc.add_contact(c.scope, c.values.iter().map(|(s, v)| (*s, v.as_str())));
        }
        for (i, u) in updates {
            if cs.is_empty() { break; }
            let i = i % cs.len();
            let before = inc.partition();
            let scope = cs[i].scope;
            inc.update_contact(i as u32, scope, u.values.iter().map(|(s, v)| (*s, v.as_str())));
            all.push(Gen { scope, values: u.values.clone() });
            let after = inc.partition();
            for a in 0..cs.len() as u32 {
                for b in 0..cs.len() as u32 {
                    if before.profile_of(a) == before.profile_of(b) {
                        prop_assert_eq!(after.profile_of(a), after.profile_of(b));
                    }
                }
            }
        }
    }

    #[test]
    fn applying_twice_changes_nothing(cs in contacts(40)) {
        let graph = graph_of(&cs);
        let once = resolve(&graph, None);
        prop_assert_eq!(resolve(&graph, Some(&once)), once.clone());
        let p = preview(&graph, Some(&once), &PreviewOptions::default());
        prop_assert_eq!(p.profiles_after, p.profiles_before);
        prop_assert_eq!(p.contacts_merged, 0);
    }

    #[test]
    fn explanations_are_shortest_chains_of_shared_values(cs in contacts(25), a in 0usize..25, b in 0usize..25) {
        prop_assume!(!cs.is_empty());
        let (a, b) = (a % cs.len(), b % cs.len());
        let graph = graph_of(&cs);
        let index = graph.contacts_by_value();
        let ties = TieGraph { graph: &graph, index: &index, prior: None };
        let chain = ties.explain(a as u32, b as u32);
        match oracle_distance(&cs, a, b) {
            None => prop_assert!(chain.is_none()),
            Some(d) => {
                let chain = chain.expect("tied contacts have a chain");
                prop_assert_eq!(chain.hops.len(), d);
                prop_assert_eq!(chain.end() as usize, b);
                let path = chain.contacts();
                for (w, (tie, _)) in path.windows(2).zip(&chain.hops) {
                    let Tie::Value(v) = *tie else { panic!("no prior partition") };
                    prop_assert!(graph.values_of(w[0]).contains(&v) && graph.values_of(w[1]).contains(&v));
                    prop_assert!(graph.merges(v));
                }
            }
        }
    }

    #[test]
    fn preview_counts_match_the_oracle(cs in contacts(40)) {
        let graph = graph_of(&cs);
        let labels = oracle_components(&cs);
        let p = preview(&graph, None, &PreviewOptions { suspicious_threshold: 2, ..PreviewOptions::default() });
        let n_profiles = labels.iter().collect::<BTreeSet<_>>().len();
        prop_assert_eq!(p.profiles_after, n_profiles);
        prop_assert_eq!(p.profiles_before, cs.len());
        let merged = labels.iter().filter(|&&l| labels.iter().filter(|&&m| m == l).count() > 1).count();
        prop_assert_eq!(p.contacts_merged, merged);
        let counts = graph.value_counts();
        for s in &p.suspicious_values {
            prop_assert!(s.n_contacts > 2 && counts[s.value as usize] == s.n_contacts);
        }
        for sample in &p.samples {
            prop_assert_eq!(sample.chain.start, sample.contacts[0]);
            prop_assert_eq!(labels[sample.chain.end() as usize], labels[sample.contacts[0] as usize]);
        }
        for conflict in &p.conflicts {
            prop_assert!(conflict.values.len() >= 2);
        }
    }

    #[test]
    fn golden_record_does_not_depend_on_member_order(
        ms in proptest::collection::vec((0u8..3, 0i64..5, 0u8..3, 0u8..3), 1..8)
    ) {
        let members: Vec<MemberRecord> = ms.iter().enumerate().map(|(i, &(name, at, tag, note))| MemberRecord {
            contact_id: format!("c{i}"),
            fields: [("display_name".to_owned(), (if name == 0 { String::new() } else { format!("n{name}") }, at))].into(),
            tags: vec![format!("t{tag}")],
            identifiers: vec![IdentifierValue { field: IdentifierField::DisplayEmail, value: format!("e{tag}"), valid: true }],
            timeline: vec![TimelineItem { kind: TimelineKind::Note, contact_id: format!("c{i}"), text: format!("x{note}"), at }],
        }).collect();
        let forward: Vec<&MemberRecord> = members.iter().collect();
        let backward: Vec<&MemberRecord> = members.iter().rev().collect();
        let g = golden_record(&forward, None);
        prop_assert_eq!(&g, &golden_record(&backward, None));
        // The winner is a latest non-empty value when one exists.
        if let Some(f) = g.fields.get("display_name") {
            let best = ms.iter().filter(|m| m.0 != 0).map(|m| m.1).max().unwrap();
            prop_assert_eq!(f.updated_at, best);
        } else {
            prop_assert!(ms.iter().all(|m| m.0 == 0));
        }
    }
}

#[test]
fn scopes_keep_equal_values_apart() {
    let mut g = KeyGraph::new(slots());
    g.add_contact(0, [(0, "+886912345678")]);
    g.add_contact(1, [(0, "+886912345678")]);
    g.add_contact(0, [(0, "+886912345678")]);
    let p = resolve(&g, None);
    assert_eq!(p.n_profiles(), 2);
    assert_eq!(p.profile_of(0), p.profile_of(2));
    assert_ne!(p.profile_of(0), p.profile_of(1));
}

#[test]
fn incremental_reports_join_and_merge_with_the_tying_value() {
    let mut inc = IncrementalResolver::new(slots());
    let (a, ra) = inc.add_contact(0, [(0, "p1")]);
    assert_eq!(ra, Resolution::Created { profile: a });
    let (b, _) = inc.add_contact(0, [(1, "e1")]);
    let (c, rc) = inc.add_contact(0, [(0, "p1")]);
    assert!(matches!(rc, Resolution::Joined { profile, .. } if profile == a));
    let (_, rd) = inc.add_contact(0, [(0, "p1"), (1, "e1")]);
    let Resolution::Merged { survivor, absorbed } = rd else {
        panic!("{rd:?}")
    };
    assert_eq!(survivor, a);
    assert_eq!(absorbed.len(), 1);
    assert_eq!(absorbed[0].0, b);
    assert_eq!(inc.value(absorbed[0].1).1, "e1");
    assert_eq!(
        inc.update_contact(c, 0, [(0, "p1")]),
        Resolution::Unchanged { profile: a }
    );
}
