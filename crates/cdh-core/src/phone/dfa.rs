//! The crate's patterns as dense DFAs walked byte by byte, and the product of two of them.
//!
//! Every haystack here is a short run of ASCII digits, so the fixed per-call cost of a regex
//! engine would dwarf the work; a dense DFA walk is a table lookup a byte.

use regex_automata::dfa::{Automaton, StartKind, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::{start, syntax};
use regex_automata::{Anchored, MatchKind};

/// One or more of the crate's patterns as an anchored, leftmost-first dense DFA.
///
/// The crate matches with `find(..)` and wants the match to start at 0, i.e. "some match starts
/// at 0", not a full match: an anchored search without an end anchor is exactly that.
pub(super) struct Dfa {
    dfa: dense::DFA<Vec<u32>>,
    start: StateID,
}

impl Dfa {
    /// Compiles the alternation of `sources` as the crate does (`ignore_whitespace`, the
    /// metadata is indented), with Unicode off when the pattern allows: every haystack is ASCII
    /// digits, where `\d` means the same either way, and the automaton stays small.
    pub(super) fn compile(sources: &[&str]) -> Option<Dfa> {
        // The newlines keep a `#` comment in a pattern from swallowing the parenthesis.
        let pattern = sources
            .iter()
            .map(|s| format!("(?:\n{s}\n)"))
            .collect::<Vec<_>>()
            .join("|");
        let build = |unicode: bool| {
            dense::Builder::new()
                .syntax(
                    syntax::Config::new()
                        .ignore_whitespace(true)
                        .unicode(unicode)
                        .utf8(unicode),
                )
                .configure(
                    dense::Config::new()
                        .start_kind(StartKind::Anchored)
                        .match_kind(MatchKind::LeftmostFirst)
                        // Bounded: a pathological pattern falls back to the crate instead.
                        .dfa_size_limit(Some(8 << 20))
                        .determinize_size_limit(Some(8 << 20)),
                )
                .build(&pattern)
                .ok()
        };
        let dfa = build(false).or_else(|| build(true))?;
        let start = dfa
            .start_state(&start::Config::new().anchored(Anchored::Yes))
            .ok()?;
        Some(Dfa { dfa, start })
    }

    /// Whether a match starts at 0 (`find(..).start() == 0` on the crate's regex).
    pub(super) fn matches(&self, haystack: &[u8]) -> bool {
        let dfa = &self.dfa;
        let mut state = self.start;
        for &byte in haystack {
            state = dfa.next_state(state, byte);
            if dfa.is_special_state(state) {
                // Match states are delayed by a byte: this one says a match ended before `byte`.
                if dfa.is_match_state(state) {
                    return true;
                }
                if dfa.is_dead_state(state) || dfa.is_quit_state(state) {
                    return false;
                }
            }
        }
        dfa.is_match_state(dfa.next_eoi_state(state))
    }

    /// The end of the leftmost-first match starting at 0 (`find(..).end()`), if any.
    pub(super) fn match_end(&self, haystack: &[u8]) -> Option<usize> {
        let dfa = &self.dfa;
        let mut state = self.start;
        let mut end = None;
        for (at, &byte) in haystack.iter().enumerate() {
            state = dfa.next_state(state, byte);
            if dfa.is_special_state(state) {
                if dfa.is_match_state(state) {
                    end = Some(at);
                } else if dfa.is_dead_state(state) {
                    return end;
                } else if dfa.is_quit_state(state) {
                    return None;
                }
            }
        }
        if dfa.is_match_state(dfa.next_eoi_state(state)) {
            end = Some(haystack.len());
        }
        end
    }
}

/// Where one DFA is in a product walk: still walking, or past a match (which is all that
/// "a match starts at 0" needs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Side {
    Walking(StateID),
    Matched,
}

impl Dfa {
    /// One digit on: `None` once the DFA can no longer match.
    fn step(&self, side: Side, byte: u8) -> Option<Side> {
        let Side::Walking(state) = side else {
            return Some(Side::Matched);
        };
        let next = self.dfa.next_state(state, byte);
        if self.dfa.is_match_state(next) {
            Some(Side::Matched)
        } else if self.dfa.is_dead_state(next) || self.dfa.is_quit_state(next) {
            None
        } else {
            Some(Side::Walking(next))
        }
    }

    /// Whether the DFA has matched when the input ends here.
    fn ends(&self, side: Side) -> bool {
        match side {
            Side::Matched => true,
            Side::Walking(state) => self.dfa.is_match_state(self.dfa.next_eoi_state(state)),
        }
    }
}

/// "Both DFAs match at 0" over ASCII digits only, as one table of ten `u16`s a state.
///
/// Validity needs the general pattern *and* a number-type pattern; walking both dense DFAs
/// costs two byte-class lookups and two special-state tests a byte. The product, restricted to
/// the ten digits the haystack can hold, is one lookup a byte.
pub(super) struct DigitDfa {
    next: Vec<[u16; 10]>,
    accept_at_end: Vec<bool>,
}

/// The product's fixed states: no match possible, both matched, and the start.
const FAIL: u16 = 0;
const PASS: u16 = 1;
const START: u16 = 2;
/// Larger products are not built (then the two DFAs are walked one after the other).
const PRODUCT_LIMIT: usize = 1 << 14;

impl DigitDfa {
    pub(super) fn product(a: &Dfa, b: &Dfa) -> Option<DigitDfa> {
        let start = (Side::Walking(a.start), Side::Walking(b.start));
        let mut ids = std::collections::HashMap::from([(start, START)]);
        let mut queue = vec![start];
        let mut next = vec![[FAIL; 10]; 3];
        let mut accept_at_end = vec![false, true, false];
        let mut done = 0;
        while let Some(&(sa, sb)) = queue.get(done) {
            let id = usize::from(START) + done;
            done += 1;
            accept_at_end[id] = a.ends(sa) && b.ends(sb);
            for digit in 0..10u8 {
                let target = match (a.step(sa, b'0' + digit), b.step(sb, b'0' + digit)) {
                    (None, _) | (_, None) => FAIL,
                    (Some(Side::Matched), Some(Side::Matched)) => PASS,
                    (Some(x), Some(y)) => match ids.get(&(x, y)) {
                        Some(&t) => t,
                        None => {
                            if next.len() >= PRODUCT_LIMIT {
                                return None;
                            }
                            let t = next.len() as u16;
                            ids.insert((x, y), t);
                            queue.push((x, y));
                            next.push([FAIL; 10]);
                            accept_at_end.push(false);
                            t
                        }
                    },
                };
                next[id][usize::from(digit)] = target;
            }
        }
        Some(DigitDfa {
            next,
            accept_at_end,
        })
    }

    pub(super) fn matches(&self, digits: &[u8]) -> bool {
        let mut state = START;
        for &byte in digits {
            let row = self.next.get(usize::from(state));
            match row.and_then(|row| row.get(usize::from(byte.wrapping_sub(b'0')))) {
                Some(&PASS) => return true,
                Some(&FAIL) | None => return false,
                Some(&s) => state = s,
            }
        }
        self.accept_at_end.get(usize::from(state)) == Some(&true)
    }
}
