//! Merge preview: what a proposed key set would do, computed without changing anything.

use std::collections::BTreeSet;

use crate::constrained::{Refusal, resolve_refusing};
use crate::explain::{Chain, TieGraph};
use crate::graph::{ContactIdx, KeyGraph};
use crate::interner::ValueId;
use crate::resolve::{Partition, resolve};

/// Limits and thresholds of a preview.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviewOptions {
    /// A value carried by more contacts than this is suspicious (a store's phone, a placeholder).
    pub suspicious_threshold: u32,
    /// How many of the largest resulting profiles to list.
    pub n_largest: usize,
    /// How many suspicious values to list (all are counted).
    pub n_suspicious: usize,
    /// How many sample merges to show, each with its chain.
    pub n_samples: usize,
    /// How many conflicts to detail (all are counted).
    pub n_conflicts: usize,
}

impl Default for PreviewOptions {
    fn default() -> Self {
        Self {
            suspicious_threshold: 20,
            n_largest: 10,
            n_suspicious: 50,
            n_samples: 5,
            n_conflicts: 20,
        }
    }
}

/// A resulting profile, by its oldest contact and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileSize {
    /// The profile's oldest contact, which names it.
    pub root: ContactIdx,
    /// How many contacts it would hold.
    pub n_contacts: u32,
}

/// A value shared by suspiciously many contacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspiciousValue {
    /// The value.
    pub value: ValueId,
    /// How many contacts carry it.
    pub n_contacts: u32,
}

/// A sample merge: the contacts of one resulting profile and the longest shortest chain in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleMerge {
    /// The contacts of the profile, oldest first (at most 50 listed).
    pub contacts: Vec<ContactIdx>,
    /// How many contacts the profile holds.
    pub n_contacts: u32,
    /// The chain from its oldest contact to the contact farthest from it.
    pub chain: Chain,
}

/// A profile that would hold two different values of a field marked unique.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    /// The profile's oldest contact.
    pub root: ContactIdx,
    /// The slot of the unique field.
    pub slot: u8,
    /// The distinct values (at most 10 listed).
    pub values: Vec<ValueId>,
    /// A chain between two contacts that hold different values.
    pub chain: Chain,
}

/// A refused merge with the chain of shared values that would have made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedMerge {
    /// What was refused and why.
    pub refusal: Refusal,
    /// The chain from the refused contact to the value's first carrier.
    pub chain: Chain,
}

/// What applying a key set would do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preview {
    /// How many contacts.
    pub n_contacts: usize,
    /// Profiles before.
    pub profiles_before: usize,
    /// Profiles after.
    pub profiles_after: usize,
    /// Contacts whose profile would gain members (they are in a merge).
    pub contacts_merged: usize,
    /// The largest resulting profiles, largest first.
    pub largest_profiles: Vec<ProfileSize>,
    /// Values carried by more contacts than the threshold, most shared first.
    pub suspicious_values: Vec<SuspiciousValue>,
    /// How many values are suspicious in all.
    pub n_suspicious_values: usize,
    /// Sample merges with their chains.
    pub samples: Vec<SampleMerge>,
    /// Conflicts on unique fields.
    pub conflicts: Vec<Conflict>,
    /// How many profiles have a conflict in all.
    pub n_conflicts: usize,
    /// Merges refused because they would break a unique slot (evenly spaced samples).
    pub refused: Vec<RefusedMerge>,
    /// How many refusals in all (a contact and a value it was kept from).
    pub n_refused: usize,
    /// The resulting partition.
    pub after: Partition,
}

/// Previews resolving `graph` on top of `prior` (every contact alone when `None`).
pub fn preview(graph: &KeyGraph, prior: Option<&Partition>, options: &PreviewOptions) -> Preview {
    let singletons;
    let before = match prior {
        Some(p) => p,
        None => {
            singletons = Partition::singletons(graph.n_contacts());
            &singletons
        }
    };
    let (after, refusals) = if graph.slots().iter().any(|s| s.unique) {
        let resolved = resolve_refusing(graph, Some(before));
        (resolved.partition, resolved.refusals)
    } else {
        (resolve(graph, Some(before)), Vec::new())
    };
    let members = after.members();
    let before_members = before.members();
    let index = graph.contacts_by_value();
    let ties = TieGraph {
        graph,
        index: &index,
        prior: Some((before, &before_members)),
    };

    // A profile merges when it holds contacts of more than one prior profile.
    let mut merged_profiles = Vec::new();
    let mut contacts_merged = 0;
    let mut sizes = Vec::new();
    for p in 0..after.n_profiles() as u32 {
        let m = members.of(p);
        let first_before = before.profile_of(m[0]);
        if m.iter().any(|&c| before.profile_of(c) != first_before) {
            merged_profiles.push(p);
            contacts_merged += m.len();
        }
        sizes.push(ProfileSize {
            root: after.root(p),
            n_contacts: m.len() as u32,
        });
    }
    sizes.sort_by(|a, b| b.n_contacts.cmp(&a.n_contacts).then(a.root.cmp(&b.root)));
    sizes.truncate(options.n_largest);

    let counts = graph.value_counts();
    let mut suspicious: Vec<SuspiciousValue> = counts
        .iter()
        .enumerate()
        .filter(|&(v, &n)| n > options.suspicious_threshold && graph.merges(v as ValueId))
        .map(|(v, &n)| SuspiciousValue {
            value: v as ValueId,
            n_contacts: n,
        })
        .collect();
    suspicious.sort_by(|a, b| b.n_contacts.cmp(&a.n_contacts).then(a.value.cmp(&b.value)));
    let n_suspicious_values = suspicious.len();
    suspicious.truncate(options.n_suspicious);

    let samples = pick_samples(&merged_profiles, options.n_samples)
        .into_iter()
        .map(|p| {
            let m = members.of(p);
            let search = ties.search_where(m[0], None, |c| after.profile_of(c) == p);
            let farthest = *search.order().last().unwrap_or(&m[0]);
            SampleMerge {
                contacts: m.iter().copied().take(50).collect(),
                n_contacts: m.len() as u32,
                chain: search.chain_to(farthest).unwrap_or(Chain {
                    start: m[0],
                    hops: Vec::new(),
                }),
            }
        })
        .collect();

    let (conflicts, n_conflicts) =
        find_conflicts(graph, &after, &members, &ties, options.n_conflicts);
    let picks: Vec<u32> = (0..refusals.len() as u32).collect();
    let refused = pick_samples(&picks, options.n_conflicts)
        .into_iter()
        .map(|i| {
            let refusal = refusals[i as usize];
            RefusedMerge {
                refusal,
                chain: ties
                    .explain(refusal.contact, refusal.holder)
                    .unwrap_or(Chain {
                        start: refusal.contact,
                        hops: Vec::new(),
                    }),
            }
        })
        .collect();

    Preview {
        n_contacts: graph.n_contacts(),
        profiles_before: before.n_profiles(),
        profiles_after: after.n_profiles(),
        contacts_merged,
        largest_profiles: sizes,
        suspicious_values: suspicious,
        n_suspicious_values,
        samples,
        conflicts,
        n_conflicts,
        refused,
        n_refused: refusals.len(),
        after,
    }
}

/// Evenly spaced picks, so samples span the file rather than its first rows.
fn pick_samples(merged: &[u32], n: usize) -> Vec<u32> {
    if merged.len() <= n {
        return merged.to_vec();
    }
    (0..n).map(|i| merged[i * merged.len() / n]).collect()
}

fn find_conflicts(
    graph: &KeyGraph,
    after: &Partition,
    members: &crate::resolve::Members,
    ties: &TieGraph<'_>,
    limit: usize,
) -> (Vec<Conflict>, usize) {
    let unique_slots: Vec<u8> = graph
        .slots()
        .iter()
        .enumerate()
        .filter(|(_, s)| s.unique)
        .map(|(i, _)| i as u8)
        .collect();
    if unique_slots.is_empty() {
        return (Vec::new(), 0);
    }
    let mut conflicts = Vec::new();
    let mut n = 0;
    for p in 0..after.n_profiles() as u32 {
        let m = members.of(p);
        if m.len() < 2 {
            continue;
        }
        for &slot in &unique_slots {
            // (value, first contact holding it)
            let mut seen: Vec<(ValueId, ContactIdx)> = Vec::new();
            for &c in m {
                for &v in graph.values_of(c) {
                    if graph.slot_of(v) == slot && !seen.iter().any(|&(s, _)| s == v) {
                        seen.push((v, c));
                    }
                }
            }
            if seen.len() < 2 {
                continue;
            }
            n += 1;
            if conflicts.len() < limit {
                // Listed by text, so the order does not depend on how values were interned.
                let values: BTreeSet<(&str, ValueId)> =
                    seen.iter().map(|&(v, _)| (graph.value(v).1, v)).collect();
                let chain = ties.explain(seen[0].1, seen[1].1).unwrap_or(Chain {
                    start: seen[0].1,
                    hops: Vec::new(),
                });
                conflicts.push(Conflict {
                    root: after.root(p),
                    slot,
                    values: values.into_iter().map(|(_, v)| v).take(10).collect(),
                    chain,
                });
            }
        }
    }
    (conflicts, n)
}
