//! Batch resolution: a key graph in, a partition of its contacts into profiles out.
//!
//! Union-find over contact indices where the root of a set is always its oldest contact (the
//! lowest index), so a profile's identity is deterministic and needs no extra bookkeeping.

use crate::graph::{ContactIdx, KeyGraph};

const NONE: u32 = u32::MAX;

/// Disjoint sets over contact indices; the root of a set is its lowest index.
#[derive(Clone, Debug, Default)]
pub struct UnionFind {
    parent: Vec<u32>,
}

impl UnionFind {
    /// `n` singleton sets.
    pub fn new(n: usize) -> Self {
        Self {
            parent: (0..n as u32).collect(),
        }
    }

    /// No elements yet, with room for `n`.
    pub fn with_capacity(n: usize) -> Self {
        Self {
            parent: Vec::with_capacity(n),
        }
    }

    /// Adds one singleton set and returns its element.
    pub fn push(&mut self) -> u32 {
        let x = self.parent.len() as u32;
        self.parent.push(x);
        x
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The root (lowest element) of `x`'s set, halving the path on the way.
    pub fn find(&mut self, mut x: u32) -> u32 {
        loop {
            let p = self.parent[x as usize];
            if p == x {
                return x;
            }
            let gp = self.parent[p as usize];
            self.parent[x as usize] = gp;
            x = gp;
        }
    }

    /// The root of `x`'s set without changing anything.
    pub fn find_immutable(&self, mut x: u32) -> u32 {
        while self.parent[x as usize] != x {
            x = self.parent[x as usize];
        }
        x
    }

    /// Joins the sets of `a` and `b`; the lower root survives. Returns `(survivor, absorbed)`
    /// when two sets were joined, `None` when they were one already.
    pub fn union(&mut self, a: u32, b: u32) -> Option<(u32, u32)> {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return None;
        }
        let (survivor, absorbed) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.parent[absorbed as usize] = survivor;
        Some((survivor, absorbed))
    }
}

/// Which profile each contact is in. Profiles are numbered `0..n_profiles` by their oldest
/// contact, and that contact (the profile's root) identifies the profile across runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    profile_of: Vec<u32>,
    roots: Vec<ContactIdx>,
}

impl Partition {
    /// Every contact alone.
    pub fn singletons(n: usize) -> Self {
        Self {
            profile_of: (0..n as u32).collect(),
            roots: (0..n as u32).collect(),
        }
    }

    /// Builds the partition from a union-find whose roots are lowest elements.
    pub fn from_union_find(uf: &mut UnionFind) -> Self {
        let n = uf.len();
        let mut profile_of = vec![0u32; n];
        let mut roots = Vec::new();
        for c in 0..n as u32 {
            let r = uf.find(c);
            if r == c {
                profile_of[c as usize] = roots.len() as u32;
                roots.push(c);
            } else {
                // The root is lower than `c`, so its profile number is already set.
                profile_of[c as usize] = profile_of[r as usize];
            }
        }
        Self { profile_of, roots }
    }

    /// How many contacts.
    pub fn n_contacts(&self) -> usize {
        self.profile_of.len()
    }

    /// How many profiles.
    pub fn n_profiles(&self) -> usize {
        self.roots.len()
    }

    /// The profile number of contact `c`.
    pub fn profile_of(&self, c: ContactIdx) -> u32 {
        self.profile_of[c as usize]
    }

    /// The profile number of every contact.
    pub fn profile_numbers(&self) -> &[u32] {
        &self.profile_of
    }

    /// The oldest contact of profile `p`, which identifies it.
    pub fn root(&self, p: u32) -> ContactIdx {
        self.roots[p as usize]
    }

    /// The members of every profile, oldest first, as compressed rows.
    pub fn members(&self) -> Members {
        let n_profiles = self.n_profiles();
        let mut offsets = vec![0u32; n_profiles + 1];
        for &p in &self.profile_of {
            offsets[p as usize + 1] += 1;
        }
        for p in 0..n_profiles {
            offsets[p + 1] += offsets[p];
        }
        let mut fill = offsets[..n_profiles].to_vec();
        let mut contacts = vec![0; self.profile_of.len()];
        for (c, &p) in self.profile_of.iter().enumerate() {
            contacts[fill[p as usize] as usize] = c as ContactIdx;
            fill[p as usize] += 1;
        }
        Members { offsets, contacts }
    }
}

/// The contacts of every profile.
#[derive(Clone, Debug)]
pub struct Members {
    offsets: Vec<u32>,
    contacts: Vec<ContactIdx>,
}

impl Members {
    /// The contacts of profile `p`, oldest first.
    pub fn of(&self, p: u32) -> &[ContactIdx] {
        &self.contacts[self.offsets[p as usize] as usize..self.offsets[p as usize + 1] as usize]
    }

    /// How many profiles.
    pub fn n_profiles(&self) -> usize {
        self.offsets.len() - 1
    }
}

/// Resolves a key graph from scratch, optionally on top of a prior partition whose merges
/// are permanent (re-unifying with new keys only adds merges, never splits). With a unique
/// slot, merges that would put two of its values into one profile are refused by the rule of
/// [`crate::constrained`].
pub fn resolve(graph: &KeyGraph, prior: Option<&Partition>) -> Partition {
    if graph.slots().iter().any(|s| s.unique) {
        return crate::constrained::resolve_refusing(graph, prior).partition;
    }
    let mut uf = union_find(graph, prior);
    Partition::from_union_find(&mut uf)
}

/// The union-find after applying every tie of `graph` (and `prior`), unique slots ignored.
pub fn union_find(graph: &KeyGraph, prior: Option<&Partition>) -> UnionFind {
    let n = graph.n_contacts();
    let mut uf = UnionFind::new(n);
    if let Some(prior) = prior {
        assert_eq!(
            prior.n_contacts(),
            n,
            "the prior partition must cover the same contacts"
        );
        for c in 0..n as u32 {
            let root = prior.root(prior.profile_of(c));
            if root != c {
                uf.union(root, c);
            }
        }
    }
    let mut first_with = vec![NONE; graph.n_values()];
    let merging: Vec<bool> = graph.slots().iter().map(|s| s.merges).collect();
    let all_merge = merging.iter().all(|&m| m);
    for c in 0..n as u32 {
        for &v in graph.values_of(c) {
            if !all_merge && !graph.merges(v) {
                continue;
            }
            let first = &mut first_with[v as usize];
            if *first == NONE {
                *first = c;
            } else {
                uf.union(*first, c);
            }
        }
    }
    uf
}
