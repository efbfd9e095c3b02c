//! Incremental resolution: add or update one contact against an existing partition and learn
//! what happened (a new profile, a join, or a merge of several profiles into the oldest).

use crate::graph::{ContactIdx, Slot};
use crate::interner::{ScopeId, ValueId, ValueInterner};
use crate::resolve::{Partition, UnionFind};

/// What adding or updating one contact did to the profiles. Profiles are named by their
/// oldest contact, as in [`Partition::root`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// A new contact that shares no value with anyone: a new profile.
    Created {
        /// The new profile (the contact itself).
        profile: ContactIdx,
    },
    /// A new contact that joined one existing profile.
    Joined {
        /// The profile it joined.
        profile: ContactIdx,
        /// The value that tied it in.
        via: ValueId,
    },
    /// An updated contact whose profile did not change.
    Unchanged {
        /// Its profile.
        profile: ContactIdx,
    },
    /// The contact tied several profiles together; all merged into the oldest.
    Merged {
        /// The surviving (oldest) profile.
        survivor: ContactIdx,
        /// Each absorbed profile, with the value that tied it in.
        absorbed: Vec<(ContactIdx, ValueId)>,
    },
}

impl Resolution {
    /// The profile the contact is in afterwards.
    pub fn profile(&self) -> ContactIdx {
        match self {
            Self::Created { profile }
            | Self::Joined { profile, .. }
            | Self::Unchanged { profile } => *profile,
            Self::Merged { survivor, .. } => *survivor,
        }
    }
}

/// A partition kept up to date one contact at a time.
#[derive(Clone, Debug)]
pub struct IncrementalResolver {
    slots: Vec<Slot>,
    interner: ValueInterner,
    /// For each value, the oldest contact that carries it.
    first_with: Vec<ContactIdx>,
    uf: UnionFind,
    /// Scratch space reused between calls, so the hot path does not allocate.
    scratch: Vec<(ContactIdx, ValueId)>,
}

impl IncrementalResolver {
    /// An empty resolver over `slots`; only slots that merge are used.
    pub fn new(slots: Vec<Slot>) -> Self {
        Self {
            slots,
            interner: ValueInterner::default(),
            first_with: Vec::new(),
            uf: UnionFind::default(),
            scratch: Vec::new(),
        }
    }

    /// An empty resolver with room for `n_contacts` contacts and `n_values` values.
    pub fn with_capacity(slots: Vec<Slot>, n_contacts: usize, n_values: usize) -> Self {
        let mut r = Self::new(slots);
        r.interner = ValueInterner::with_capacity(n_values);
        r.first_with.reserve(n_values);
        r.uf = UnionFind::with_capacity(n_contacts);
        r
    }

    /// How many contacts.
    pub fn n_contacts(&self) -> usize {
        self.uf.len()
    }

    /// Adds a new contact (the youngest) with its `(slot, normalised value)` pairs.
    pub fn add_contact<'a>(
        &mut self,
        scope: ScopeId,
        values: impl IntoIterator<Item = (u8, &'a str)>,
    ) -> (ContactIdx, Resolution) {
        let c = self.uf.push();
        let resolution = self.tie(c, scope, values, false);
        (c, resolution)
    }

    /// Updates contact `c` with its current values. Values it no longer has are not untied:
    /// merges are permanent.
    pub fn update_contact<'a>(
        &mut self,
        c: ContactIdx,
        scope: ScopeId,
        values: impl IntoIterator<Item = (u8, &'a str)>,
    ) -> Resolution {
        self.tie(c, scope, values, true)
    }

    fn tie<'a>(
        &mut self,
        c: ContactIdx,
        scope: ScopeId,
        values: impl IntoIterator<Item = (u8, &'a str)>,
        existing: bool,
    ) -> Resolution {
        self.scratch.clear();
        let own_root = self.uf.find(c);
        for (slot, value) in values {
            if !self.slots[slot as usize].merges {
                continue;
            }
            let (v, new) = self.interner.intern(scope, slot, value);
            if new {
                self.first_with.push(c);
                continue;
            }
            let root = self.uf.find(self.first_with[v as usize]);
            if root != own_root && !self.scratch.iter().any(|&(r, _)| r == root) {
                self.scratch.push((root, v));
            }
        }
        if self.scratch.is_empty() {
            return if existing {
                Resolution::Unchanged { profile: own_root }
            } else {
                Resolution::Created { profile: c }
            };
        }
        if !existing && self.scratch.len() == 1 {
            let (profile, via) = self.scratch[0];
            self.uf.union(profile, c);
            return Resolution::Joined { profile, via };
        }
        for i in 0..self.scratch.len() {
            self.uf.union(own_root, self.scratch[i].0);
        }
        let survivor = self.uf.find(c);
        let mut absorbed: Vec<(ContactIdx, ValueId)> = Vec::with_capacity(self.scratch.len());
        if existing && own_root != survivor {
            // The contact's own profile was absorbed; say which value tied it to the survivor.
            let via = self
                .scratch
                .iter()
                .find(|&&(r, _)| r == survivor)
                .map(|&(_, v)| v);
            absorbed.extend(via.map(|v| (own_root, v)));
        }
        absorbed.extend(self.scratch.iter().copied().filter(|&(r, _)| r != survivor));
        absorbed.sort_unstable();
        Resolution::Merged { survivor, absorbed }
    }

    /// The profile (oldest contact) of contact `c`.
    pub fn profile_of(&mut self, c: ContactIdx) -> ContactIdx {
        self.uf.find(c)
    }

    /// The slot and text of a value.
    pub fn value(&self, v: ValueId) -> (&Slot, &str) {
        let (_, slot, text) = self.interner.value(v);
        (&self.slots[slot as usize], text)
    }

    /// The current partition of all contacts.
    pub fn partition(&mut self) -> Partition {
        Partition::from_union_find(&mut self.uf)
    }
}
