//! The key graph: which normalised key values each contact carries.
//!
//! Contacts are dense indices `0..n` in the order they were added, which is also their age:
//! a lower index is an older contact. Two contacts are tied when they share a value whose slot
//! merges (a unify key); other slots (such as a unique `customer_id` that is not a key) are
//! carried to refuse merges that would give a profile two of their values.

use crate::field::IdentifierField;
use crate::interner::{ScopeId, ValueId, ValueInterner};

/// A dense contact index: its position in the graph, and so its age.
pub type ContactIdx = u32;

/// What a key slot is used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Slot {
    /// The identifier field this slot holds.
    pub field: IdentifierField,
    /// Whether a shared value of this slot merges contacts (a unify key).
    pub merges: bool,
    /// Whether a profile may hold only one value of this field: a merge that would give it a
    /// second is refused (see `constrained`).
    pub unique: bool,
}

/// Contacts and their key values, in compressed rows.
#[derive(Clone, Debug)]
pub struct KeyGraph {
    slots: Vec<Slot>,
    /// Value shards: value `v` is local id `v - bases[s]` of shard `s`, the last with
    /// `bases[s] <= v`. Graphs built one contact at a time have one shard.
    shards: Vec<ValueInterner>,
    bases: Vec<u32>,
    /// `values[offsets[c]..offsets[c + 1]]` are contact `c`'s values.
    offsets: Vec<u32>,
    values: Vec<ValueId>,
}

impl KeyGraph {
    /// An empty graph over `slots` (at most 255).
    pub fn new(slots: Vec<Slot>) -> Self {
        assert!(slots.len() < 256, "at most 255 key slots");
        Self {
            slots,
            shards: vec![ValueInterner::default()],
            bases: vec![0],
            offsets: vec![0],
            values: Vec::new(),
        }
    }

    /// An empty graph with room for `n_contacts` and `n_values` distinct values.
    pub fn with_capacity(slots: Vec<Slot>, n_contacts: usize, n_values: usize) -> Self {
        let mut g = Self::new(slots);
        g.shards = vec![ValueInterner::with_capacity(n_values)];
        g.offsets.reserve(n_contacts);
        g.values.reserve(n_contacts * 2);
        g
    }

    /// Builds a graph from parts made elsewhere (for example by a parallel loader): value
    /// shards, and per contact its value ids in compressed rows, where shard `s`'s local id
    /// `i` is global id `i + (sum of the sizes of the shards before s)`, and shard `s` holds
    /// exactly the keys whose [`crate::interner::shard_of`] is `s`.
    pub fn from_shards(
        slots: Vec<Slot>,
        shards: Vec<ValueInterner>,
        offsets: Vec<u32>,
        values: Vec<ValueId>,
    ) -> Self {
        assert_eq!(offsets.first(), Some(&0));
        assert_eq!(*offsets.last().unwrap_or(&0) as usize, values.len());
        let mut bases = Vec::with_capacity(shards.len());
        let mut total = 0u32;
        for shard in &shards {
            bases.push(total);
            total += shard.len() as u32;
        }
        Self {
            slots,
            shards,
            bases,
            offsets,
            values,
        }
    }

    /// Frees the value lookup tables once every contact is in: values stay readable by id,
    /// while [`Self::find_value`] and [`Self::add_contact`] panic afterwards.
    pub fn freeze(&mut self) {
        self.shards.iter_mut().for_each(ValueInterner::freeze);
    }

    /// The global ids where each shard starts (see [`Self::from_shards`]).
    pub fn shard_bases(&self) -> &[u32] {
        &self.bases
    }

    /// Adds a contact in `scope` with `(slot, normalised value)` pairs; returns its index.
    /// A value repeated within one contact is kept once.
    pub fn add_contact<'a>(
        &mut self,
        scope: ScopeId,
        values: impl IntoIterator<Item = (u8, &'a str)>,
    ) -> ContactIdx {
        let start = self.values.len();
        for (slot, value) in values {
            debug_assert!((slot as usize) < self.slots.len());
            assert_eq!(
                self.shards.len(),
                1,
                "contacts are added one by one only to unsharded graphs"
            );
            let (id, _) = self.shards[0].intern(scope, slot, value);
            if !self.values[start..].contains(&id) {
                self.values.push(id);
            }
        }
        let idx = self.offsets.len() - 1;
        self.offsets
            .push(u32::try_from(self.values.len()).expect("more than 4 billion key values"));
        ContactIdx::try_from(idx).expect("more than 4 billion contacts")
    }

    /// How many contacts.
    pub fn n_contacts(&self) -> usize {
        self.offsets.len() - 1
    }

    /// How many distinct values.
    pub fn n_values(&self) -> usize {
        self.shards.iter().map(ValueInterner::len).sum()
    }

    /// The slots, by slot number.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// The values of contact `c`.
    pub fn values_of(&self, c: ContactIdx) -> &[ValueId] {
        let c = c as usize;
        &self.values[self.offsets[c] as usize..self.offsets[c + 1] as usize]
    }

    /// The scope, slot number and text of a value.
    pub fn raw_value(&self, v: ValueId) -> (ScopeId, u8, &str) {
        let s = self.bases.partition_point(|&b| b <= v) - 1;
        self.shards[s].value(v - self.bases[s])
    }

    /// The slot and text of a value.
    pub fn value(&self, v: ValueId) -> (&Slot, &str) {
        let (_, slot, text) = self.raw_value(v);
        (&self.slots[slot as usize], text)
    }

    /// The slot number of a value.
    pub fn slot_of(&self, v: ValueId) -> u8 {
        let s = self.bases.partition_point(|&b| b <= v) - 1;
        self.shards[s].slot(v - self.bases[s])
    }

    /// Whether value `v` merges contacts.
    pub fn merges(&self, v: ValueId) -> bool {
        self.slots[self.slot_of(v) as usize].merges
    }

    /// The id of a value, if some contact carries it.
    pub fn find_value(&self, scope: ScopeId, slot: u8, value: &str) -> Option<ValueId> {
        if self.shards.len() == 1 {
            return self.shards[0].get(scope, slot, value);
        }
        let s = crate::interner::shard_of(
            crate::interner::hash_key(scope, slot, value),
            self.shards.len(),
        );
        self.shards[s]
            .get(scope, slot, value)
            .map(|id| id + self.bases[s])
    }

    /// For each value, how many contacts carry it.
    pub fn value_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.n_values()];
        for &v in &self.values {
            counts[v as usize] += 1;
        }
        counts
    }

    /// The inverted index: for each value, the contacts that carry it (ascending).
    pub fn contacts_by_value(&self) -> ValueIndex {
        let counts = self.value_counts();
        let mut offsets = Vec::with_capacity(counts.len() + 1);
        let mut total = 0u32;
        offsets.push(0);
        for c in &counts {
            total += c;
            offsets.push(total);
        }
        let mut fill = offsets.clone();
        let mut contacts = vec![0; self.values.len()];
        for c in 0..self.n_contacts() {
            for &v in self.values_of(c as ContactIdx) {
                let slot = &mut fill[v as usize];
                contacts[*slot as usize] = c as ContactIdx;
                *slot += 1;
            }
        }
        ValueIndex { offsets, contacts }
    }
}

/// For each value, the contacts that carry it.
#[derive(Clone, Debug)]
pub struct ValueIndex {
    offsets: Vec<u32>,
    contacts: Vec<ContactIdx>,
}

impl ValueIndex {
    /// The contacts carrying value `v`, oldest first.
    pub fn contacts_of(&self, v: ValueId) -> &[ContactIdx] {
        &self.contacts[self.offsets[v as usize] as usize..self.offsets[v as usize + 1] as usize]
    }
}
