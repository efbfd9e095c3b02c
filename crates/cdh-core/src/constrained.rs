//! Resolution that refuses merges: a profile never gains a second value of a unique field
//! (`customer_id` by default), and every refused tie is reported with the value it went
//! through.
//!
//! The rule, the same in batch ([`resolve_refusing`]) and one contact at a time
//! ([`crate::IncrementalResolver`]), and the one the store's upsert follows:
//! 1. Contacts are taken oldest first, on top of the prior partition (its merges stand).
//! 2. A contact's candidates are the profiles that hold any of its unify-key values. It joins
//!    them oldest profile first, each one it does not clash with, the clash judged against
//!    what its growing profile holds by then. Two profiles clash when, for some unique field,
//!    both hold a value of it and together they would hold two different ones.
//! 3. A contact that carries a value but ends outside the profile of that value's first
//!    carrier is a refusal of the value. Every carrier of a value is thus either in the profile
//!    of its first carrier or a refused carrier, so the profiles holding a value are that one
//!    and those of its refused carriers: what the store reads to find a contact's candidates.
//!
//! Profiles only grow and so do the unique values they hold, so a refused pair stays refused,
//! and the result is a fixpoint: no two profiles that share a unify-key value could merge.

use std::collections::HashMap;

use crate::graph::{ContactIdx, KeyGraph};
use crate::interner::ValueId;
use crate::resolve::{Partition, UnionFind, union_find};

const NONE: u32 = u32::MAX;

/// Two different values of one unique field that would have met in one profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clash {
    /// The unique field's slot.
    pub slot: u8,
    /// The value held on the refused contact's side.
    pub ours: ValueId,
    /// The value held on the other side.
    pub theirs: ValueId,
}

/// A contact kept out of the profile of a value it carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The refused contact.
    pub contact: ContactIdx,
    /// The unify-key value it shares with the profile it was kept from.
    pub value: ValueId,
    /// The value's first carrier, in the profile the contact was kept from.
    pub holder: ContactIdx,
    /// Why: the unique values that differ.
    pub clash: Clash,
}

/// A partition with the merges it refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// Which profile each contact is in.
    pub partition: Partition,
    /// One per contact and value it was kept from, by contact then value.
    pub refusals: Vec<Refusal>,
}

/// Resolves `graph` on top of `prior`, refusing every merge that would put two different
/// values of a unique slot into one profile (see the module's rule).
pub fn resolve_refusing(graph: &KeyGraph, prior: Option<&Partition>) -> Resolved {
    resolve_inner(graph, prior, &[])
}

/// [`resolve_refusing`]'s partition where the prior's profiles hold more unique values than
/// their contacts carry now, `(a contact of the profile, slot, text)`: a profile keeps the
/// unique values its contacts had when they joined until its setting is applied again (the
/// store's upsert works so, and its invariant check resolves so).
pub fn resolve_holding(
    graph: &KeyGraph,
    prior: &Partition,
    held: &[(ContactIdx, u8, &str)],
) -> Partition {
    resolve_inner(graph, Some(prior), held).partition
}

fn resolve_inner(
    graph: &KeyGraph,
    prior: Option<&Partition>,
    held: &[(ContactIdx, u8, &str)],
) -> Resolved {
    let n = graph.n_contacts();
    if let Some(prior) = prior {
        assert_eq!(
            prior.n_contacts(),
            n,
            "the prior must cover the same contacts"
        );
    }
    // The rule refuses a merge only where two values of a unique slot meet, so it can differ
    // from the plain partition only inside a plain component that holds two; and it never
    // looks outside a component (a contact's candidates share its values). So: the plain
    // union-find first, and the rule inside those components alone.
    let mut plain = union_find(graph, prior);
    let root_of: Vec<u32> = (0..n as u32).map(|c| plain.find(c)).collect();
    let mut texts = BorrowedTexts::default();
    let mut unique: Vec<(u32, u8, u32, ValueId)> = Vec::new();
    for c in 0..n as u32 {
        for &v in graph.values_of(c) {
            let (_, slot, text) = graph.raw_value(v);
            if graph.slots()[slot as usize].unique {
                unique.push((c, slot, texts.id(slot, text), v));
            }
        }
    }
    for &(c, slot, text) in held {
        // No value id names a value no contact carries: such a clash is reported with the
        // contact's own values only, and `resolve_holding` reports none.
        unique.push((c, slot, texts.id(slot, text), ValueId::MAX));
    }
    let mut first_text: HashMap<(u32, u8), u32> = HashMap::new();
    let mut in_rule = vec![false; n];
    for &(c, slot, text, _) in &unique {
        let root = root_of[c as usize];
        if *first_text.entry((root, slot)).or_insert(text) != text {
            in_rule[root as usize] = true;
        }
    }
    let in_rule: Vec<bool> = root_of.iter().map(|&r| in_rule[r as usize]).collect();
    if !in_rule.contains(&true) {
        return Resolved {
            partition: Partition::from_union_find(&mut plain),
            refusals: Vec::new(),
        };
    }

    let mut sets = UniqueSets::with_capacity(n);
    let mut own = unique.iter().filter(|u| u.3 != ValueId::MAX).peekable();
    for c in 0..n as u32 {
        let mine = std::iter::from_fn(|| own.next_if(|u| u.0 == c)).map(|u| (u.1, u.2, u.3));
        if in_rule[c as usize] {
            sets.push(mine);
        } else {
            mine.for_each(drop);
            sets.push(std::iter::empty());
        }
    }
    if let Some(prior) = prior {
        for c in (0..n as u32).filter(|&c| in_rule[c as usize]) {
            let root = prior.root(prior.profile_of(c));
            if root != c {
                sets.union(root, c);
            }
        }
    }
    for &(c, slot, text, v) in unique.iter().filter(|u| u.3 == ValueId::MAX) {
        if in_rule[c as usize] {
            sets.add_held(c, std::iter::once((slot, text, v)));
        }
    }
    let mut carriers = Carriers::new(graph.n_values());
    let mut refusals = Vec::new();
    let mut candidates = Vec::new();
    for c in (0..n as u32).filter(|&c| in_rule[c as usize]) {
        let values = || {
            graph
                .values_of(c)
                .iter()
                .copied()
                .filter(|&v| graph.merges(v))
        };
        candidates.clear();
        for v in values() {
            carriers.holders(v, &mut sets, &mut candidates);
        }
        sets.join_oldest_first(c, &mut candidates);
        for v in values() {
            refusals.extend(carriers.place(c, v, &mut sets));
        }
    }
    // Components without two values of a unique slot are as the plain union-find made them.
    for c in (0..n as u32).filter(|&c| !in_rule[c as usize]) {
        sets.union(c, root_of[c as usize]);
    }
    Resolved {
        partition: Partition::from_union_find(&mut sets.uf),
        refusals,
    }
}

/// [`UniqueTexts`] over texts that outlive it (a graph's), without copying them.
#[derive(Default)]
struct BorrowedTexts<'a> {
    ids: HashMap<(u8, &'a str), u32>,
}

impl<'a> BorrowedTexts<'a> {
    fn id(&mut self, slot: u8, text: &'a str) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry((slot, text)).or_insert(next)
    }
}

/// Dense ids for the texts of unique values, so that one customer id in two scopes is one
/// value when profiles are compared.
#[derive(Clone, Debug, Default)]
pub(crate) struct UniqueTexts {
    ids: HashMap<(u8, Box<str>), u32>,
}

impl UniqueTexts {
    /// The id of `text` in `slot`.
    pub(crate) fn id(&mut self, slot: u8, text: &str) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry((slot, text.into())).or_insert(next)
    }
}

/// A union-find whose sets know the unique values they hold: `(slot, text id, a value id
/// showing it)`, sorted, per root.
#[derive(Clone, Debug, Default)]
pub(crate) struct UniqueSets {
    pub(crate) uf: UnionFind,
    held: Vec<Vec<(u8, u32, ValueId)>>,
}

impl UniqueSets {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            uf: UnionFind::with_capacity(n),
            held: Vec::with_capacity(n),
        }
    }

    /// Adds a contact holding `unique` values; returns its index.
    pub(crate) fn push(&mut self, unique: impl Iterator<Item = (u8, u32, ValueId)>) -> u32 {
        let mut held: Vec<(u8, u32, ValueId)> = unique.collect();
        held.sort_unstable();
        held.dedup_by_key(|h| (h.0, h.1));
        self.held.push(held);
        self.uf.push()
    }

    /// Adds unique values to `c`'s set (an update of a contact: what a profile held stays).
    pub(crate) fn add_held(&mut self, c: u32, unique: impl Iterator<Item = (u8, u32, ValueId)>) {
        let root = self.uf.find(c) as usize;
        let mut held = std::mem::take(&mut self.held[root]);
        held.extend(unique);
        held.sort_unstable();
        held.dedup_by_key(|h| (h.0, h.1));
        self.held[root] = held;
    }

    pub(crate) fn find(&mut self, x: u32) -> u32 {
        self.uf.find(x)
    }

    /// Why the sets of `a` and `b` may not merge, if they may not.
    pub(crate) fn clash(&mut self, a: u32, b: u32) -> Option<Clash> {
        let (ra, rb) = (self.uf.find(a) as usize, self.uf.find(b) as usize);
        let (ours, theirs) = (&self.held[ra], &self.held[rb]);
        ours.iter().find_map(|&(slot, text, v)| {
            theirs
                .iter()
                .find(|&&(s, t, _)| s == slot && t != text)
                .map(|&(_, _, w)| Clash {
                    slot,
                    ours: v,
                    theirs: w,
                })
        })
    }

    /// Joins two sets (the lower root survives) and what they hold; `None` when they were one.
    pub(crate) fn union(&mut self, a: u32, b: u32) -> Option<(u32, u32)> {
        let joined = self.uf.union(a, b)?;
        let (survivor, absorbed) = (joined.0 as usize, joined.1 as usize);
        let moved = std::mem::take(&mut self.held[absorbed]);
        if !moved.is_empty() {
            let held = &mut self.held[survivor];
            held.extend(moved);
            held.sort_unstable();
            held.dedup_by_key(|h| (h.0, h.1));
        }
        Some(joined)
    }

    /// Step 2 of the rule: `c` joins its candidates `(root, value)`, oldest profile first,
    /// each it does not clash with. Leaves in `candidates` the ones joined, each once.
    pub(crate) fn join_oldest_first(&mut self, c: u32, candidates: &mut Vec<(u32, ValueId)>) {
        candidates.sort_unstable();
        candidates.dedup_by_key(|h| h.0);
        candidates.retain(|&(root, _)| {
            self.uf.find(c) != root && self.clash(c, root).is_none() && {
                self.union(c, root);
                true
            }
        });
    }
}

/// For each value, its first carrier and its refused carriers (step 3 of the rule).
#[derive(Clone, Debug)]
pub(crate) struct Carriers {
    first: Vec<ContactIdx>,
    refused: HashMap<ValueId, Vec<ContactIdx>>,
}

impl Carriers {
    pub(crate) fn new(n_values: usize) -> Self {
        Self {
            first: vec![NONE; n_values],
            refused: HashMap::new(),
        }
    }

    /// Room for value `v` (values interned one at a time).
    pub(crate) fn grow_to(&mut self, n_values: usize) {
        if self.first.len() < n_values {
            self.first.resize(n_values, NONE);
        }
    }

    /// Pushes the roots of the profiles holding `v`, each with `v`.
    pub(crate) fn holders(&self, v: ValueId, sets: &mut UniqueSets, out: &mut Vec<(u32, ValueId)>) {
        let first = self.first[v as usize];
        if first == NONE {
            return;
        }
        out.push((sets.find(first), v));
        for &x in self.refused.get(&v).into_iter().flatten() {
            out.push((sets.find(x), v));
        }
    }

    /// Records `c` as a carrier of `v` after it joined what it could: the first carrier, or
    /// one in the first carrier's profile, or a refusal.
    pub(crate) fn place(&mut self, c: u32, v: ValueId, sets: &mut UniqueSets) -> Option<Refusal> {
        let first = &mut self.first[v as usize];
        if *first == NONE {
            *first = c;
            return None;
        }
        let holder = *first;
        if holder == c || sets.find(holder) == sets.find(c) {
            return None;
        }
        let refused = self.refused.entry(v).or_default();
        if refused.contains(&c) {
            return None;
        }
        refused.push(c);
        sets.clash(c, holder).map(|clash| Refusal {
            contact: c,
            value: v,
            holder,
            clash,
        })
    }
}
