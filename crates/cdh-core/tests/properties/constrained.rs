//! Property tests of resolution with unique slots (merges refused) against a naive oracle
//! that follows the rule of `cdh_core::constrained` over plain member lists.

use std::collections::{BTreeMap, BTreeSet};

use cdh_core::{
    IdentifierField, IncrementalResolver, KeyGraph, Partition, PreviewOptions, Slot, preview,
    resolve, resolve_holding, resolve_refusing,
};
use proptest::prelude::*;

/// A contact as generated: its scope, its values `(slot, text)`, and the group of a prior
/// partition it starts in.
#[derive(Clone, Debug)]
struct Gen {
    scope: u32,
    values: Vec<(u8, String)>,
    group: u8,
}

/// Phone and email merge; customer_id is unique and does not merge; line_uid does both.
fn slots() -> Vec<Slot> {
    let slot = |field, merges, unique| Slot {
        field,
        merges,
        unique,
    };
    vec![
        slot(IdentifierField::DisplayMobile, true, false),
        slot(IdentifierField::DisplayEmail, true, false),
        slot(IdentifierField::CustomerId, false, true),
        slot(IdentifierField::LineUid, true, true),
    ]
}

fn contact() -> impl Strategy<Value = Gen> {
    (
        0u32..2,
        proptest::collection::vec((0u8..4, 0u8..4), 0..4),
        0u8..6,
    )
        .prop_map(|(scope, vals, group)| {
            let mut values: Vec<(u8, String)> = Vec::new();
            for (s, v) in vals {
                // One value per field, as a contact has.
                if !values.iter().any(|(t, _)| *t == s) {
                    values.push((s, format!("v{v}")));
                }
            }
            Gen {
                scope,
                values,
                group,
            }
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

fn merging(c: &Gen) -> impl Iterator<Item = &(u8, String)> {
    c.values.iter().filter(|(s, _)| slots()[*s as usize].merges)
}

fn shares(a: &Gen, b: &Gen, value: &(u8, String)) -> bool {
    a.scope == b.scope && a.values.contains(value) && b.values.contains(value)
}

/// Whether two groups of contacts may not be one profile: some unique slot would hold two
/// values (compared by text, whatever the scope) where both groups hold one.
fn clash(cs: &[Gen], a: &[usize], b: &[usize]) -> bool {
    let unique = |group: &[usize], slot: u8| -> BTreeSet<&str> {
        group
            .iter()
            .flat_map(|&c| cs[c].values.iter())
            .filter(|(s, _)| *s == slot)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    (0..slots().len() as u8)
        .filter(|&s| slots()[s as usize].unique)
        .any(|s| {
            let (x, y) = (unique(a, s), unique(b, s));
            !x.is_empty() && !y.is_empty() && x.union(&y).count() > 1
        })
}

/// The rule, naively: labels are each contact's profile root; refusals `(contact, slot,
/// value)`.
fn oracle(cs: &[Gen], prior: bool) -> (Vec<usize>, BTreeSet<(usize, u8, String)>) {
    let mut label: Vec<usize> = (0..cs.len()).collect();
    if prior {
        for c in 0..cs.len() {
            label[c] = (0..=c).find(|&d| cs[d].group == cs[c].group).unwrap();
        }
    }
    let members = |label: &[usize], l: usize| -> Vec<usize> {
        (0..label.len()).filter(|&c| label[c] == l).collect()
    };
    let mut refusals = BTreeSet::new();
    for c in 0..cs.len() {
        let candidates: BTreeSet<usize> = (0..c)
            .filter(|&d| merging(&cs[c]).any(|v| shares(&cs[c], &cs[d], v)))
            .map(|d| label[d])
            .collect();
        for r in candidates {
            let own = label[c];
            if r == own || clash(cs, &members(&label, own), &members(&label, r)) {
                continue;
            }
            let (keep, gone) = (own.min(r), own.max(r));
            for l in label.iter_mut().filter(|l| **l == gone) {
                *l = keep;
            }
        }
        for v in merging(&cs[c]) {
            if let Some(first) = (0..c).find(|&d| shares(&cs[c], &cs[d], v))
                && label[first] != label[c]
            {
                refusals.insert((c, v.0, v.1.clone()));
            }
        }
    }
    (label, refusals)
}

fn prior_of(cs: &[Gen]) -> Partition {
    let mut g = KeyGraph::new(Vec::new());
    for _ in cs {
        g.add_contact(0, []);
    }
    let mut uf = cdh_core::UnionFind::new(cs.len());
    for c in 0..cs.len() {
        let first = (0..=c).find(|&d| cs[d].group == cs[c].group).unwrap();
        uf.union(first as u32, c as u32);
    }
    Partition::from_union_find(&mut uf)
}

fn roots(p: &Partition) -> Vec<usize> {
    (0..p.n_contacts() as u32)
        .map(|c| p.root(p.profile_of(c)) as usize)
        .collect()
}

fn refusal_set(graph: &KeyGraph, r: &[cdh_core::Refusal]) -> BTreeSet<(usize, u8, String)> {
    r.iter()
        .map(|r| {
            let (_, slot, text) = graph.raw_value(r.value);
            (r.contact as usize, slot, text.to_owned())
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn batch_equals_the_oracle(cs in contacts(30), with_prior in any::<bool>()) {
        let graph = graph_of(&cs);
        let prior = with_prior.then(|| prior_of(&cs));
        let resolved = resolve_refusing(&graph, prior.as_ref());
        let (labels, refusals) = oracle(&cs, with_prior);
        prop_assert_eq!(roots(&resolved.partition), labels);
        prop_assert_eq!(refusal_set(&graph, &resolved.refusals), refusals);
        prop_assert_eq!(resolve(&graph, prior.as_ref()), resolved.partition);
        for r in &resolved.refusals {
            let (slot, ours) = graph.value(r.clash.ours);
            let (other, theirs) = graph.value(r.clash.theirs);
            prop_assert!(slot.unique && slot == other && ours != theirs);
        }
    }

    #[test]
    fn the_result_is_a_fixpoint_and_no_new_profile_holds_two_unique_values(cs in contacts(30)) {
        let graph = graph_of(&cs);
        let once = resolve(&graph, None);
        prop_assert_eq!(&resolve(&graph, Some(&once)), &once);
        let members = once.members();
        let groups: Vec<Vec<usize>> = (0..once.n_profiles() as u32)
            .map(|p| members.of(p).iter().map(|&c| c as usize).collect())
            .collect();
        for g in &groups {
            prop_assert!(!clash(&cs, &g[..1], g), "a profile holds two values of a unique slot");
        }
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                let tied = a.iter().any(|&x| b.iter().any(|&y| merging(&cs[x]).any(|v| shares(&cs[x], &cs[y], v))));
                if tied {
                    prop_assert!(clash(&cs, a, b), "two profiles that share a value could merge");
                }
            }
        }
    }

    #[test]
    fn incremental_contact_by_contact_equals_batch(cs in contacts(30)) {
        let graph = graph_of(&cs);
        let resolved = resolve_refusing(&graph, None);
        let mut inc = IncrementalResolver::new(slots());
        for (i, c) in cs.iter().enumerate() {
            let (idx, outcome) = inc.add_contact(c.scope, c.values.iter().map(|(s, v)| (*s, v.as_str())));
            prop_assert_eq!(inc.profile_of(idx), outcome.profile());
            let mine: Vec<(u32, String)> = resolved.refusals.iter().filter(|r| r.contact as usize == i)
                .map(|r| (r.holder, graph.value(r.value).1.to_owned())).collect();
            let got: Vec<(u32, String)> = inc.refusals().iter()
                .map(|r| (r.holder, inc.value(r.value).1.to_owned())).collect();
            prop_assert_eq!(got, mine);
        }
        prop_assert_eq!(inc.partition(), resolved.partition);
    }

    #[test]
    fn held_values_only_refuse_more_and_leave_a_fixpoint(
        cs in contacts(25),
        extra in proptest::collection::vec((0usize..25, 0u8..4), 0..6),
    ) {
        let graph = graph_of(&cs);
        let prior = prior_of(&cs);
        prop_assert_eq!(
            resolve_holding(&graph, &prior, &[]),
            resolve_refusing(&graph, Some(&prior)).partition
        );
        prop_assume!(!cs.is_empty());
        // Profiles of the prior hold customer ids their contacts no longer carry.
        let texts: Vec<(u32, String)> = extra
            .iter()
            .map(|&(c, v)| ((c % cs.len()) as u32, format!("v{v}")))
            .collect();
        let held: Vec<(u32, u8, &str)> = texts.iter().map(|(c, t)| (*c, 2, t.as_str())).collect();
        let with_held = resolve_holding(&graph, &prior, &held);
        // Nothing the prior joined comes apart, and the result is a fixpoint under what its
        // profiles hold: held values extend the contacts' own.
        let mut holding = cs.clone();
        for (c, t) in &texts {
            let root = prior.root(prior.profile_of(*c)) as usize;
            holding[root].values.push((2, t.clone()));
        }
        let members = with_held.members();
        let groups: Vec<Vec<usize>> = (0..with_held.n_profiles() as u32)
            .map(|p| members.of(p).iter().map(|&c| c as usize).collect())
            .collect();
        for c in 0..cs.len() as u32 {
            let root = prior.root(prior.profile_of(c));
            prop_assert_eq!(with_held.profile_of(c), with_held.profile_of(root));
        }
        for (i, a) in groups.iter().enumerate() {
            for b in &groups[i + 1..] {
                let tied = a.iter().any(|&x| b.iter().any(|&y| merging(&cs[x]).any(|v| shares(&cs[x], &cs[y], v))));
                if tied {
                    prop_assert!(clash(&holding, a, b), "two profiles that share a value could merge");
                }
            }
        }
    }

    #[test]
    fn the_preview_counts_and_explains_refusals(cs in contacts(30)) {
        let graph = graph_of(&cs);
        let p = preview(&graph, None, &PreviewOptions { n_conflicts: 3, ..PreviewOptions::default() });
        let (labels, refusals) = oracle(&cs, false);
        prop_assert_eq!(p.n_refused, refusals.len());
        prop_assert_eq!(p.refused.len(), refusals.len().min(3));
        prop_assert_eq!(p.profiles_after, labels.iter().collect::<BTreeSet<_>>().len());
        for r in &p.refused {
            prop_assert_eq!(r.chain.start, r.refusal.contact);
            prop_assert_eq!(r.chain.end(), r.refusal.holder);
        }
    }
}

#[test]
fn a_customer_id_conflict_is_refused_oldest_profile_first() {
    let mut g = KeyGraph::new(slots());
    // 0 and 1 share a phone but hold customer ids M1 and M2: refused. 2 shares 1's email and
    // holds nothing unique: it joins the older profile it meets first (0's, through the
    // phone), then 1's profile clashes with that: 2 is a refused carrier of the email, whose
    // first carrier is 1. 3 holds M2 and 1's email: it joins 1.
    g.add_contact(0, [(0, "+886912345678"), (2, "M1")]);
    g.add_contact(0, [(0, "+886912345678"), (1, "a@x.com"), (2, "M2")]);
    g.add_contact(0, [(0, "+886912345678"), (1, "a@x.com")]);
    g.add_contact(0, [(1, "a@x.com"), (2, "M2")]);
    let resolved = resolve_refusing(&g, None);
    let by_root: BTreeMap<u32, Vec<u32>> = (0..4u32).fold(BTreeMap::new(), |mut m, c| {
        let p = &resolved.partition;
        m.entry(p.root(p.profile_of(c))).or_default().push(c);
        m
    });
    assert_eq!(
        by_root.into_values().collect::<Vec<_>>(),
        [vec![0, 2], vec![1, 3]]
    );
    let refused: Vec<(u32, &str, &str, &str)> = resolved
        .refusals
        .iter()
        .map(|r| {
            (
                r.contact,
                g.value(r.value).1,
                g.value(r.clash.ours).1,
                g.value(r.clash.theirs).1,
            )
        })
        .collect();
    assert_eq!(
        refused,
        [(1, "+886912345678", "M2", "M1"), (2, "a@x.com", "M1", "M2")]
    );
}
