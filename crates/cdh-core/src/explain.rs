//! Explanations: the shortest chain of shared key values that ties two contacts together.

use std::collections::{HashMap, VecDeque};

use crate::graph::{ContactIdx, KeyGraph, ValueIndex};
use crate::interner::ValueId;
use crate::resolve::{Members, Partition};

/// What ties one contact to the next in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tie {
    /// Both contacts carry this key value.
    Value(ValueId),
    /// Both contacts were already in one profile before (merges are permanent).
    Prior,
}

/// A chain `start -tie-> contact -tie-> ... -> end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    /// The first contact.
    pub start: ContactIdx,
    /// Each hop: the tie and the contact it reaches.
    pub hops: Vec<(Tie, ContactIdx)>,
}

impl Chain {
    /// The last contact of the chain.
    pub fn end(&self) -> ContactIdx {
        self.hops.last().map_or(self.start, |&(_, c)| c)
    }

    /// The contacts along the chain, in order.
    pub fn contacts(&self) -> Vec<ContactIdx> {
        std::iter::once(self.start)
            .chain(self.hops.iter().map(|&(_, c)| c))
            .collect()
    }
}

/// What explanations search: the graph, its inverted index, and optionally the partition
/// that held before (whose ties count too).
#[derive(Clone, Copy, Debug)]
pub struct TieGraph<'a> {
    /// The key graph.
    pub graph: &'a KeyGraph,
    /// Its inverted index.
    pub index: &'a ValueIndex,
    /// The prior partition and its members, if any.
    pub prior: Option<(&'a Partition, &'a Members)>,
}

impl TieGraph<'_> {
    fn neighbours(&self, c: ContactIdx, mut visit: impl FnMut(Tie, ContactIdx)) {
        for &v in self.graph.values_of(c) {
            if !self.graph.merges(v) {
                continue;
            }
            for &other in self.index.contacts_of(v) {
                if other != c {
                    visit(Tie::Value(v), other);
                }
            }
        }
        if let Some((partition, members)) = self.prior {
            for &other in members.of(partition.profile_of(c)) {
                if other != c {
                    visit(Tie::Prior, other);
                }
            }
        }
    }

    /// Breadth-first search from `start`: every reachable contact with the hop that first
    /// reached it, in the order reached. Stops early once `stop` is reached.
    pub fn search(&self, start: ContactIdx, stop: Option<ContactIdx>) -> Search {
        self.search_where(start, stop, |_| true)
    }

    /// [`Self::search`] through the contacts `keep` admits only (for example the members of
    /// one profile, so that a chain never passes through a contact whose merge was refused).
    pub fn search_where(
        &self,
        start: ContactIdx,
        stop: Option<ContactIdx>,
        keep: impl Fn(ContactIdx) -> bool,
    ) -> Search {
        let mut reached: HashMap<ContactIdx, Option<(Tie, ContactIdx)>> = HashMap::new();
        let mut order = vec![start];
        let mut queue = VecDeque::from([start]);
        reached.insert(start, None);
        'outer: while let Some(c) = queue.pop_front() {
            let mut found = Vec::new();
            self.neighbours(c, |tie, other| {
                if !keep(other) {
                    return;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = reached.entry(other) {
                    e.insert(Some((tie, c)));
                    found.push(other);
                }
            });
            for other in found {
                order.push(other);
                queue.push_back(other);
                if Some(other) == stop {
                    break 'outer;
                }
            }
        }
        Search {
            start,
            reached,
            order,
        }
    }

    /// The shortest chain from `a` to `b`, or `None` when nothing ties them.
    pub fn explain(&self, a: ContactIdx, b: ContactIdx) -> Option<Chain> {
        self.search(a, Some(b)).chain_to(b)
    }
}

/// The result of a breadth-first search.
#[derive(Clone, Debug)]
pub struct Search {
    start: ContactIdx,
    reached: HashMap<ContactIdx, Option<(Tie, ContactIdx)>>,
    order: Vec<ContactIdx>,
}

impl Search {
    /// Contacts in the order they were reached; the last one is among the farthest.
    pub fn order(&self) -> &[ContactIdx] {
        &self.order
    }

    /// The shortest chain from the start to `target`, if it was reached.
    pub fn chain_to(&self, target: ContactIdx) -> Option<Chain> {
        let mut hops = Vec::new();
        let mut at = target;
        loop {
            match self.reached.get(&at)? {
                None => break,
                Some((tie, prev)) => {
                    hops.push((*tie, at));
                    at = *prev;
                }
            }
        }
        hops.reverse();
        Some(Chain {
            start: self.start,
            hops,
        })
    }
}
