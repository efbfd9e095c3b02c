//! Interning of normalised key values: each distinct (scope, slot, value) gets a dense `ValueId`.
//!
//! Values live in one contiguous byte arena and the table stores only 4-byte ids, so interning
//! millions of values costs a few bytes each beyond the text itself.

use std::hash::{BuildHasher, Hasher};

use hashbrown::HashTable;

/// A dense id for one distinct normalised value within one scope and key slot.
pub type ValueId = u32;

/// A dense id for a unification scope (which contacts may merge with each other).
pub type ScopeId = u32;

/// The arena of distinct key values.
#[derive(Clone, Default)]
pub struct ValueInterner {
    table: HashTable<ValueId>,
    /// For each value: scope (4 bytes LE), slot (1 byte), then the text.
    bytes: Vec<u8>,
    /// End offset in `bytes` of each value; value `i` starts at `ends[i - 1]` (or 0). Eight
    /// bytes, not four: a hub's values may pass 4 GiB, and a limit there would stop an apply
    /// for a large hub; the extra bytes are a small part of a contact's.
    ends: Vec<u64>,
    /// Set by [`Self::freeze`]: the lookup table is gone, values can only be read.
    frozen: bool,
}

impl std::fmt::Debug for ValueInterner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueInterner")
            .field("len", &self.len())
            .finish()
    }
}

/// The hash of a (scope, slot, value) key: fixed-seeded so every shard and run agrees.
pub fn hash_key(scope: ScopeId, slot: u8, value: &str) -> u64 {
    let mut h = foldhash::fast::FixedState::with_seed(0x5eed_cd11).build_hasher();
    h.write_u32(scope);
    h.write_u8(slot);
    h.write(value.as_bytes());
    h.finish()
}

/// The shard (of `n_shards`) that holds a key with this hash, in sharded graphs.
pub fn shard_of(hash: u64, n_shards: usize) -> usize {
    (hash % n_shards as u64) as usize
}

const HEADER: usize = 5;

impl ValueInterner {
    /// An empty interner with room for `n` values.
    pub fn with_capacity(n: usize) -> Self {
        Self::with_capacities(n, n * 16)
    }

    /// An empty interner with room for `n` values of `text_bytes` bytes in all.
    pub fn with_capacities(n: usize, text_bytes: usize) -> Self {
        Self {
            table: HashTable::with_capacity(n),
            bytes: Vec::with_capacity(text_bytes + n * HEADER),
            ends: Vec::with_capacity(n),
            frozen: false,
        }
    }

    /// Frees the lookup table, keeping the values readable by id ([`Self::value`],
    /// [`Self::slot`]); [`Self::get`] and [`Self::intern`] panic afterwards. For callers that
    /// have interned everything and only read values back.
    pub fn freeze(&mut self) {
        // Spare capacity of the arena stays: pages never written are not resident, and
        // shrinking would copy it.
        self.table = HashTable::new();
        self.frozen = true;
    }

    /// How many distinct values were interned.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether nothing was interned.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn raw(&self, id: ValueId) -> &[u8] {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    fn matches(&self, id: ValueId, scope: ScopeId, slot: u8, value: &str) -> bool {
        let raw = self.raw(id);
        raw.len() == HEADER + value.len()
            && raw[..4] == scope.to_le_bytes()
            && raw[4] == slot
            && &raw[HEADER..] == value.as_bytes()
    }

    /// The id of a value, if it was interned.
    pub fn get(&self, scope: ScopeId, slot: u8, value: &str) -> Option<ValueId> {
        assert!(!self.frozen, "lookup in a frozen interner");
        let hash = hash_key(scope, slot, value);
        self.table
            .find(hash, |&id| self.matches(id, scope, slot, value))
            .copied()
    }

    /// The id of a value, interning it if new. Returns the id and whether it was new.
    pub fn intern(&mut self, scope: ScopeId, slot: u8, value: &str) -> (ValueId, bool) {
        self.intern_hashed(hash_key(scope, slot, value), scope, slot, value)
    }

    /// As [`Self::intern`], with the hash from [`hash_key`] already computed.
    pub fn intern_hashed(
        &mut self,
        hash: u64,
        scope: ScopeId,
        slot: u8,
        value: &str,
    ) -> (ValueId, bool) {
        assert!(!self.frozen, "interning into a frozen interner");
        let Self {
            table, bytes, ends, ..
        } = self;
        let lookup = |id: &ValueId| {
            let i = *id as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            let raw = &bytes[start..ends[i] as usize];
            raw.len() == HEADER + value.len()
                && raw[..4] == scope.to_le_bytes()
                && raw[4] == slot
                && &raw[HEADER..] == value.as_bytes()
        };
        if let Some(&id) = table.find(hash, lookup) {
            return (id, false);
        }
        let id = ValueId::try_from(ends.len()).expect("more than 4 billion distinct key values");
        bytes.extend_from_slice(&scope.to_le_bytes());
        bytes.push(slot);
        bytes.extend_from_slice(value.as_bytes());
        ends.push(bytes.len() as u64);
        let (bytes, ends) = (&self.bytes, &self.ends);
        self.table.insert_unique(hash, id, |&id| {
            let i = id as usize;
            let start = if i == 0 { 0 } else { ends[i - 1] as usize };
            let raw = &bytes[start..ends[i] as usize];
            // `raw` is valid UTF-8 past the header: it was copied from a `&str`.
            hash_key(
                u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
                raw[4],
                std::str::from_utf8(&raw[HEADER..]).unwrap_or_default(),
            )
        });
        (id, true)
    }

    /// The slot of a value, without decoding its text.
    pub fn slot(&self, id: ValueId) -> u8 {
        let i = id as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.bytes[start + 4]
    }

    /// The scope, slot and text of a value.
    pub fn value(&self, id: ValueId) -> (ScopeId, u8, &str) {
        let raw = self.raw(id);
        let scope = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let text = std::str::from_utf8(&raw[HEADER..]).unwrap_or_default();
        (scope, raw[4], text)
    }

    /// Bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8 + self.table.capacity() * 5
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_key_same_id_and_scope_slot_separate() {
        let mut i = ValueInterner::default();
        let (a, new_a) = i.intern(0, 1, "+886912345678");
        let (b, new_b) = i.intern(0, 1, "+886912345678");
        assert!(new_a && !new_b);
        assert_eq!(a, b);
        let (c, _) = i.intern(1, 1, "+886912345678");
        let (d, _) = i.intern(0, 2, "+886912345678");
        assert!(a != c && a != d && c != d);
        assert_eq!(i.value(c), (1, 1, "+886912345678"));
        assert_eq!(i.get(0, 2, "+886912345678"), Some(d));
        assert_eq!(i.get(0, 3, "+886912345678"), None);
        assert_eq!(i.len(), 3);
    }

    #[test]
    #[should_panic(expected = "frozen")]
    fn a_frozen_interner_reads_values_but_interns_nothing() {
        let mut i = ValueInterner::default();
        let (a, _) = i.intern(0, 1, "a@example.com");
        i.freeze();
        assert_eq!(i.value(a), (0, 1, "a@example.com"));
        assert_eq!(i.slot(a), 1);
        i.intern(0, 1, "b@example.com");
    }

    #[test]
    fn survives_growth() {
        let mut i = ValueInterner::default();
        let ids: Vec<_> = (0..10_000)
            .map(|n| i.intern(0, 0, &n.to_string()).0)
            .collect();
        for (n, id) in ids.iter().enumerate() {
            assert_eq!(i.get(0, 0, &n.to_string()), Some(*id));
            assert_eq!(i.value(*id).2, n.to_string());
        }
    }
}
