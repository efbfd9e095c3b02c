//! The phonenumber crate's metadata, recompiled once into fast automata for the fast path.
//!
//! The crate keeps its patterns in a global, mutex-guarded LRU of 100 compiled regexes, so every
//! match takes a lock and a cold pattern is recompiled; that is most of its time. Here
//! each metadata record gets its own patterns, compiled the first time a number needs that
//! record and never evicted, as dense DFAs (see `dfa.rs`).
//!
//! The records come from the same XML the crate compiles into its database
//! (`assets/PhoneNumberMetadata.xml`, read with the crate's own loader), not from the crate's
//! `DATABASE`: building that compiles every pattern of every region, which the fast path never
//! needs. A test checks that every record equals the crate's, field by field.

use std::sync::OnceLock;

use phonenumber::country::Id;
use phonenumber::metadata::loader::{self, Descriptor, Metadata};
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, meta};

use super::dfa::{Dfa, DigitDfa};

/// The longest national significant number the crate accepts (`MAX_LENGTH_FOR_NSN`).
pub(super) const MAX_NSN: usize = 17;

/// Every metadata record of the crate's database, indexed by country calling code.
pub(super) struct Table {
    /// One entry per metadata record, grouped by code in `by_code` order.
    pub(super) entries: Vec<Entry>,
    /// Entry indices per calling code (index = code, 0..1000), main region first, as the crate
    /// orders them: its multi-region lookup tries them in this order.
    by_code: Vec<Vec<u16>>,
    /// `(region id, entry index)` sorted by id, for regions the crate can take as a default.
    regions: Vec<(&'static str, u16)>,
}

/// One metadata record and its lazily compiled rules.
pub(super) struct Entry {
    /// The region id, e.g. "TW", or "001" for non-geographic codes.
    pub(super) id: &'static str,
    /// The crate's id for the region; `None` for "001".
    pub(super) country: Option<Id>,
    meta: &'static Metadata,
    rules: OnceLock<Option<Rules>>,
}

/// The crate's metadata records, loaded from the bundled XML on first use.
fn records() -> &'static [Metadata] {
    static RECORDS: OnceLock<Vec<Metadata>> = OnceLock::new();
    RECORDS.get_or_init(|| {
        let xml: &[u8] = include_bytes!("../../assets/PhoneNumberMetadata.xml");
        // The crate's own build script loads this very file the same way.
        loader::load(xml).unwrap_or_default()
    })
}

/// The global table, built on first use from the crate's metadata records.
pub(super) fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Table::build)
}

impl Table {
    fn build() -> Table {
        // Per calling code, in the crate's order: file order, except that the region marked
        // `main_country_for_code` goes first (`Database::from` inserts it at 0).
        let mut per_code: Vec<Vec<&'static Metadata>> = vec![Vec::new(); 1000];
        for meta in records() {
            // Codes are at most three digits, so 1..1000 covers the database.
            let Some(slot) = meta.country_code.and_then(|c| per_code.get_mut(c as usize)) else {
                continue;
            };
            if meta.main_country_for_code {
                slot.insert(0, meta);
            } else {
                slot.push(meta);
            }
        }
        let mut entries = Vec::new();
        let mut by_code = vec![Vec::new(); 1000];
        for (slot, metas) in by_code.iter_mut().zip(per_code) {
            for meta in metas {
                let id = meta.id.as_deref().unwrap_or("");
                slot.push(entries.len() as u16);
                entries.push(Entry {
                    id,
                    country: id.parse().ok(),
                    meta,
                    rules: OnceLock::new(),
                });
            }
        }
        let mut regions: Vec<(&'static str, u16)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.country.is_some())
            .map(|(i, e)| (e.id, i as u16))
            .collect();
        regions.sort_unstable();
        regions.dedup_by_key(|r| r.0);
        Table {
            entries,
            by_code,
            regions,
        }
    }

    /// The entry index of a default region such as "TW" (exact, upper-case id).
    pub(super) fn region_index(&self, id: &str) -> Option<u16> {
        let i = self.regions.binary_search_by(|r| r.0.cmp(id)).ok()?;
        Some(self.regions[i].1)
    }

    /// The entries for a calling code, in the crate's order; empty if the code is unknown.
    pub(super) fn code_entries(&self, code: u16) -> &[u16] {
        self.by_code.get(code as usize).map_or(&[], Vec::as_slice)
    }

    /// Whether the crate knows this calling code at all.
    pub(super) fn has_code(&self, code: u16) -> bool {
        !self.code_entries(code).is_empty()
    }

    /// The compiled rules of an entry; `None` if a pattern would not compile (then: fall back).
    pub(super) fn rules(&self, index: u16) -> Option<&Rules> {
        let entry = self.entries.get(index as usize)?;
        entry
            .rules
            .get_or_init(|| Rules::compile(entry.meta))
            .as_ref()
    }
}

/// The number-type patterns for one set of lengths, alone and combined with the general one.
struct TypeCheck {
    types: Dfa,
    with_general: Option<DigitDfa>,
}

/// A descriptor's possible lengths and its pattern.
struct Pattern {
    lengths: Vec<u16>,
    dfa: Dfa,
}

impl Pattern {
    /// The crate's `Descriptor::is_match`.
    fn is_match(&self, value: &[u8]) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(value.len() as u16)))
            && self.dfa.matches(value)
    }
}

/// A national-prefix-for-parsing pattern with a transform rule: the rare case that needs
/// capture groups, so a full regex (the crate's semantics: Unicode on, leftmost-first).
pub(super) struct Transform {
    pub(super) regex: meta::Regex,
    pub(super) rule: String,
}

impl Transform {
    /// The crate's `captures_len()`: the number of groups, group 0 included.
    pub(super) fn groups(&self) -> usize {
        self.regex.captures_len()
    }

    /// The anchored search the crate's `captures`/`replace` amount to when the match is at 0.
    pub(super) fn input<'h>(&self, haystack: &'h str) -> Input<'h> {
        Input::new(haystack).anchored(Anchored::Yes)
    }
}

/// What the parser needs to know about one metadata record.
pub(super) struct Rules {
    /// The calling code, e.g. 886.
    pub(super) code: u16,
    /// The same as decimal digits, e.g. "886".
    pub(super) code_digits: String,
    general: Pattern,
    general_local_lengths: Vec<u16>,
    /// Per national-number length 0..=17, an index into `types`: the alternation of every
    /// number-type pattern whose possible lengths admit that length (`None`: no type can match).
    type_by_len: [Option<u8>; MAX_NSN + 1],
    types: Vec<TypeCheck>,
    pub(super) national_prefix: Option<String>,
    /// `national_prefix_for_parsing` when there is no transform rule: only its match end counts.
    pub(super) prefix_for_parsing: Option<Dfa>,
    /// `national_prefix_for_parsing` with its transform rule.
    pub(super) transform: Option<Transform>,
    pub(super) idd: Option<Dfa>,
    pub(super) leading_digits: Option<Dfa>,
}

impl Rules {
    fn compile(meta: &Metadata) -> Option<Rules> {
        // The types `validator::number_type` tries; any match means "not Unknown", i.e. valid.
        let types: Vec<&Descriptor> = [
            &meta.premium_rate,
            &meta.toll_free,
            &meta.shared_cost,
            &meta.voip,
            &meta.personal_number,
            &meta.pager,
            &meta.uan,
            &meta.voicemail,
            &meta.fixed_line,
            &meta.mobile,
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut type_by_len = [None; MAX_NSN + 1];
        let mut masks: Vec<u32> = Vec::new();
        let mut dfas = Vec::new();
        for (len, slot) in type_by_len.iter_mut().enumerate() {
            let admits = |t: &Descriptor| {
                t.possible_length.is_empty() || t.possible_length.contains(&(len as u16))
            };
            let mask = (types.iter().enumerate())
                .filter(|(_, t)| admits(t))
                .fold(0u32, |m, (i, _)| m | 1 << i);
            if mask == 0 {
                continue;
            }
            let at = match masks.iter().position(|&m| m == mask) {
                Some(at) => at,
                None => {
                    // The crate refuses a database with a descriptor without a pattern.
                    let sources: Vec<&str> = (types.iter())
                        .filter(|t| admits(t))
                        .map(|t| t.national_number.as_deref())
                        .collect::<Option<_>>()?;
                    dfas.push(Dfa::compile(&sources)?);
                    masks.push(mask);
                    masks.len() - 1
                }
            };
            *slot = Some(at as u8);
        }
        let parsing = meta.national_prefix_for_parsing.as_deref();
        let (prefix_for_parsing, transform) =
            match (parsing, meta.national_prefix_transform_rule.as_deref()) {
                (None, _) => (None, None),
                (Some(source), None) => (Some(Dfa::compile(&[source])?), None),
                (Some(source), Some(rule)) => {
                    let regex = meta::Regex::builder()
                        .syntax(syntax::Config::new().ignore_whitespace(true))
                        .build(source)
                        .ok()?;
                    let rule = rule.to_owned();
                    (None, Some(Transform { regex, rule }))
                }
            };
        let optional = |source: Option<&str>| match source {
            Some(source) => Dfa::compile(&[source]).map(Some),
            None => Some(None),
        };
        let general = meta.general.as_ref()?;
        let general_dfa = Dfa::compile(&[general.national_number.as_deref()?])?;
        let types = (dfas.into_iter())
            .map(|types| TypeCheck {
                with_general: DigitDfa::product(&general_dfa, &types),
                types,
            })
            .collect();
        let code = meta.country_code?;
        Some(Rules {
            code,
            code_digits: code.to_string(),
            general: Pattern {
                lengths: general.possible_length.clone(),
                dfa: general_dfa,
            },
            general_local_lengths: general.possible_local_length.clone(),
            type_by_len,
            types,
            national_prefix: meta.national_prefix.clone(),
            prefix_for_parsing,
            transform,
            idd: optional(meta.international_prefix.as_deref())?,
            leading_digits: optional(meta.leading_digits.as_deref())?,
        })
    }

    /// The general descriptor's `is_match`.
    pub(super) fn general_match(&self, value: &[u8]) -> bool {
        self.general.is_match(value)
    }

    /// `validator::length(meta, number, Type::Unknown).is_possible()`, quirks included: the crate
    /// reads only the general descriptor, and with no general lengths it says `InvalidLength`.
    pub(super) fn length_possible(&self, len: usize) -> bool {
        self.length_check(len) == Length::Possible
    }

    /// `validator::length(..) == Validation::TooShort` for the same inputs.
    pub(super) fn length_too_short(&self, len: usize) -> bool {
        self.length_check(len) == Length::TooShort
    }

    fn length_check(&self, len: usize) -> Length {
        let len = len as u16;
        let possible = &self.general.lengths;
        // The crate takes the first and last as the extremes.
        let (Some(&min), Some(&max)) = (possible.first(), possible.last()) else {
            return Length::Other;
        };
        if self.general_local_lengths.contains(&len) || len == min {
            Length::Possible
        } else if len < min {
            Length::TooShort
        } else if len > max || !possible.contains(&len) {
            Length::Other
        } else {
            Length::Possible
        }
    }

    /// `validator::number_type(meta, value) != Type::Unknown`.
    pub(super) fn is_valid_number(&self, value: &[u8]) -> bool {
        let Some(check) = (self.type_by_len.get(value.len()).copied().flatten())
            .and_then(|at| self.types.get(usize::from(at)))
        else {
            return false;
        };
        let general = &self.general;
        if !(general.lengths.is_empty() || general.lengths.contains(&(value.len() as u16))) {
            return false;
        }
        match &check.with_general {
            Some(both) => both.matches(value),
            None => general.dfa.matches(value) && check.types.matches(value),
        }
    }
}

/// The outcomes of the crate's `validator::length` that the parser distinguishes.
#[derive(PartialEq, Eq)]
enum Length {
    Possible,
    TooShort,
    Other,
}

#[cfg(test)]
mod tests {
    use phonenumber::metadata::{DATABASE, Descriptor as CrateDescriptor};

    use super::*;

    fn same_descriptor(ours: Option<&Descriptor>, theirs: Option<&CrateDescriptor>) -> bool {
        match (ours, theirs) {
            (None, None) => true,
            (Some(o), Some(t)) => {
                o.national_number.as_deref() == Some(t.national_number().as_str())
                    && o.possible_length == t.possible_length()
                    && o.possible_local_length == t.possible_local_length()
            }
            _ => false,
        }
    }

    /// The bundled XML must be exactly what the crate's database was built from: every record,
    /// in the crate's order per calling code, with every field the fast path reads.
    #[test]
    fn bundled_records_equal_the_crates_database() {
        let table = table();
        assert!(table.entries.len() > 200, "the metadata did not load");
        let mut compared = 0;
        for code in 1..1000u16 {
            let ours = table.code_entries(code);
            let theirs = DATABASE.by_code(&code).unwrap_or_default();
            assert_eq!(ours.len(), theirs.len(), "records of calling code {code}");
            for (&i, theirs) in ours.iter().zip(theirs) {
                let entry = &table.entries[i as usize];
                assert_eq!(entry.id, theirs.id(), "order of calling code {code}");
                compared += 1;
                check_record(entry, theirs);
            }
        }
        assert_eq!(compared, table.entries.len());
    }

    fn check_record(entry: &Entry, theirs: &phonenumber::metadata::Metadata) {
        let ours = entry.meta;
        let id = entry.id;
        let d = theirs.descriptors();
        assert_eq!(ours.country_code, Some(theirs.country_code()), "{id}");
        assert_eq!(
            ours.national_prefix.as_deref(),
            theirs.national_prefix(),
            "{id}"
        );
        assert_eq!(
            ours.national_prefix_for_parsing.as_deref(),
            theirs.national_prefix_for_parsing().map(|r| r.as_str()),
            "{id}"
        );
        assert_eq!(
            ours.national_prefix_transform_rule.as_deref(),
            theirs.national_prefix_transform_rule(),
            "{id}"
        );
        assert_eq!(
            ours.international_prefix.as_deref(),
            theirs.international_prefix().map(|r| r.as_str()),
            "{id}"
        );
        assert_eq!(
            ours.leading_digits.as_deref(),
            theirs.leading_digits().map(|r| r.as_str()),
            "{id}"
        );
        let pairs = [
            (ours.general.as_ref(), Some(d.general())),
            (ours.premium_rate.as_ref(), d.premium_rate()),
            (ours.toll_free.as_ref(), d.toll_free()),
            (ours.shared_cost.as_ref(), d.shared_cost()),
            (ours.voip.as_ref(), d.voip()),
            (ours.personal_number.as_ref(), d.personal_number()),
            (ours.pager.as_ref(), d.pager()),
            (ours.uan.as_ref(), d.uan()),
            (ours.voicemail.as_ref(), d.voicemail()),
            (ours.fixed_line.as_ref(), d.fixed_line()),
            (ours.mobile.as_ref(), d.mobile()),
        ];
        for (n, (o, t)) in pairs.into_iter().enumerate() {
            assert!(same_descriptor(o, t), "{id}: descriptor {n} differs");
        }
    }
}
