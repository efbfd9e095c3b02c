//! Incremental resolution: add or update one contact against an existing partition and learn
//! what happened (a new profile, a join, or a merge of several profiles into the oldest).

use crate::constrained::{Carriers, Refusal, UniqueSets, UniqueTexts};
use crate::graph::{ContactIdx, Slot};
use crate::interner::{ScopeId, ValueId, ValueInterner};
use crate::resolve::Partition;

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

/// A partition kept up to date one contact at a time, by the rule of [`crate::constrained`]:
/// a new contact joins the profiles holding its values oldest first, each it does not clash
/// with on a unique slot, so adding contacts in order gives what batch resolution gives.
#[derive(Clone, Debug)]
pub struct IncrementalResolver {
    slots: Vec<Slot>,
    interner: ValueInterner,
    texts: UniqueTexts,
    carriers: Carriers,
    sets: UniqueSets,
    /// Scratch space reused between calls, so the hot path does not allocate.
    merging: Vec<ValueId>,
    unique: Vec<(u8, u32, ValueId)>,
    candidates: Vec<(ContactIdx, ValueId)>,
    refusals: Vec<Refusal>,
}

impl IncrementalResolver {
    /// An empty resolver over `slots`; only slots that merge tie contacts, and unique slots
    /// refuse merges.
    pub fn new(slots: Vec<Slot>) -> Self {
        Self {
            slots,
            interner: ValueInterner::default(),
            texts: UniqueTexts::default(),
            carriers: Carriers::new(0),
            sets: UniqueSets::default(),
            merging: Vec::new(),
            unique: Vec::new(),
            candidates: Vec::new(),
            refusals: Vec::new(),
        }
    }

    /// An empty resolver with room for `n_contacts` contacts and `n_values` values.
    pub fn with_capacity(slots: Vec<Slot>, n_contacts: usize, n_values: usize) -> Self {
        let mut r = Self::new(slots);
        r.interner = ValueInterner::with_capacity(n_values);
        r.carriers = Carriers::new(n_values);
        r.sets = UniqueSets::with_capacity(n_contacts);
        r
    }

    /// How many contacts.
    pub fn n_contacts(&self) -> usize {
        self.sets.uf.len()
    }

    /// Adds a new contact (the youngest) with its `(slot, normalised value)` pairs.
    pub fn add_contact<'a>(
        &mut self,
        scope: ScopeId,
        values: impl IntoIterator<Item = (u8, &'a str)>,
    ) -> (ContactIdx, Resolution) {
        self.intern(scope, values);
        let c = self.sets.push(self.unique.drain(..));
        let resolution = self.tie(c, false);
        (c, resolution)
    }

    /// Updates contact `c` with its current values. Values it no longer has are not untied
    /// (merges are permanent), and the unique values its profile held stay held.
    pub fn update_contact<'a>(
        &mut self,
        c: ContactIdx,
        scope: ScopeId,
        values: impl IntoIterator<Item = (u8, &'a str)>,
    ) -> Resolution {
        self.intern(scope, values);
        self.sets.add_held(c, self.unique.drain(..));
        self.tie(c, true)
    }

    /// The ties the last add or update refused, by value.
    pub fn refusals(&self) -> &[Refusal] {
        &self.refusals
    }

    fn intern<'a>(&mut self, scope: ScopeId, values: impl IntoIterator<Item = (u8, &'a str)>) {
        self.merging.clear();
        self.unique.clear();
        for (slot, value) in values {
            let s = &self.slots[slot as usize];
            if !s.merges && !s.unique {
                continue;
            }
            let (merges, unique) = (s.merges, s.unique);
            let (v, _) = self.interner.intern(scope, slot, value);
            self.carriers.grow_to(v as usize + 1);
            if merges && !self.merging.contains(&v) {
                self.merging.push(v);
            }
            if unique {
                self.unique.push((slot, self.texts.id(slot, value), v));
            }
        }
    }

    fn tie(&mut self, c: ContactIdx, existing: bool) -> Resolution {
        let own_root = self.sets.find(c);
        self.candidates.clear();
        for &v in &self.merging {
            self.carriers
                .holders(v, &mut self.sets, &mut self.candidates);
        }
        self.sets.join_oldest_first(c, &mut self.candidates);
        self.refusals.clear();
        for &v in &self.merging {
            self.refusals
                .extend(self.carriers.place(c, v, &mut self.sets));
        }
        let joined = &self.candidates;
        if joined.is_empty() {
            return if existing {
                Resolution::Unchanged { profile: own_root }
            } else {
                Resolution::Created { profile: c }
            };
        }
        if !existing && joined.len() == 1 {
            let (profile, via) = joined[0];
            return Resolution::Joined { profile, via };
        }
        let survivor = self.sets.find(c);
        let mut absorbed: Vec<(ContactIdx, ValueId)> = Vec::with_capacity(joined.len());
        if existing && own_root != survivor {
            // The contact's own profile was absorbed; say which value tied it to the survivor.
            let via = joined
                .iter()
                .find(|&&(r, _)| r == survivor)
                .map(|&(_, v)| v);
            absorbed.extend(via.map(|v| (own_root, v)));
        }
        absorbed.extend(joined.iter().copied().filter(|&(r, _)| r != survivor));
        absorbed.sort_unstable();
        Resolution::Merged { survivor, absorbed }
    }

    /// The profile (oldest contact) of contact `c`.
    pub fn profile_of(&mut self, c: ContactIdx) -> ContactIdx {
        self.sets.find(c)
    }

    /// The slot and text of a value.
    pub fn value(&self, v: ValueId) -> (&Slot, &str) {
        let (_, slot, text) = self.interner.value(v);
        (&self.slots[slot as usize], text)
    }

    /// The current partition of all contacts.
    pub fn partition(&mut self) -> Partition {
        Partition::from_union_find(&mut self.sets.uf)
    }
}
