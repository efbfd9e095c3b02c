//! One events row that stands for an apply's run of `profile.merged` events, and how its
//! events map onto the ledger rows they are built from.
//!
//! An apply over a large hub writes hundreds of thousands of ledger rows, and each is also a
//! `profile.merged` event. Both adapters write one events row of kind `MERGED_RANGE_KIND`
//! instead of a row per event; the feed (`numbered_events`) expands it, so no reader ever sees
//! it. The row's own `seq` is the run's last event number.
//!
//! Event `first + k` is the apply's k-th ledger row. SQLite numbers its ledger rows one after
//! another, so they follow from `ledger_seq`. PostgreSQL's come from a sequence shared by every
//! hub, in blocks that other hubs' writes may interleave with, so `runs` lists where they are.
//! Either way no other ledger row of the hub lies between the apply's first and last, because
//! the apply numbers them holding the hub's exclusive lock.

use serde::{Deserialize, Serialize};

/// The `kind` of an events row that stands for a run of `profile.merged` events.
pub(crate) const MERGED_RANGE_KIND: &str = "profile.merged.range";

/// Where a merged range's events and ledger rows are: its first event's number, its first
/// ledger row, and the runs of consecutive ledger numbers in order (none: the ledger rows
/// follow one another from `ledger_seq`, as written by SQLite and before runs were recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MergedRange {
    pub first: i64,
    pub ledger_seq: i64,
    /// `[first ledger number, count]` per run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<[i64; 2]>,
}

impl MergedRange {
    /// The range of events from `first_event`, one per ledger row numbered `ledger_seqs`
    /// (strictly increasing, in the order of the events). `None` when there are none or they
    /// do not increase.
    pub fn new(first_event: i64, ledger_seqs: &[i64]) -> Option<Self> {
        let (&ledger_seq, _) = ledger_seqs.split_first()?;
        let mut runs: Vec<[i64; 2]> = vec![[ledger_seq, 1]];
        for pair in ledger_seqs.windows(2) {
            let (previous, seq) = (pair[0], pair[1]);
            if seq <= previous {
                return None;
            }
            let run = runs.last_mut().expect("runs start with one");
            if seq == previous + 1 {
                run[1] += 1;
            } else {
                runs.push([seq, 1]);
            }
        }
        if runs.len() == 1 {
            // One run needs no list: the rows follow one another from `ledger_seq`.
            runs.clear();
        }
        Some(Self {
            first: first_event,
            ledger_seq,
            runs,
        })
    }

    /// The ledger number of event `event`, or `None` when the event is not in the range's
    /// runs (a range without runs has no end of its own: its events row's `seq` is its last).
    pub fn ledger_seq_of(&self, event: i64) -> Option<i64> {
        let mut position = event.checked_sub(self.first).filter(|p| *p >= 0)?;
        if self.runs.is_empty() {
            return self.ledger_seq.checked_add(position);
        }
        for &[start, count] in &self.runs {
            if position < count {
                return Some(start + position);
            }
            position -= count;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn consecutive_ledger_rows_need_no_runs() {
        let range = MergedRange::new(11, &[40, 41, 42]).unwrap();
        assert_eq!(
            serde_json::to_string(&range).unwrap(),
            r#"{"first":11,"ledger_seq":40}"#
        );
        assert_eq!(range.ledger_seq_of(10), None);
        assert_eq!(range.ledger_seq_of(11), Some(40));
        assert_eq!(range.ledger_seq_of(13), Some(42));
    }

    #[test]
    fn ranges_written_before_runs_read_as_one_run() {
        let range: MergedRange = serde_json::from_str(r#"{"first":5,"ledger_seq":100}"#).unwrap();
        assert_eq!(range.ledger_seq_of(7), Some(102));
    }

    #[test]
    fn ledger_numbers_must_increase() {
        assert_eq!(MergedRange::new(1, &[]), None);
        assert_eq!(MergedRange::new(1, &[5, 5]), None);
        assert_eq!(MergedRange::new(1, &[5, 9, 7]), None);
    }

    proptest! {
        /// Against the list itself: event `first + k` is ledger row `seqs[k]`, and nothing
        /// past the list maps anywhere.
        #[test]
        fn each_event_maps_to_its_ledger_row(
            first in 1i64..1_000_000,
            start in 1i64..1_000_000,
            steps in prop::collection::vec(prop_oneof![3 => Just(1i64), 1 => 2i64..20], 0..200),
        ) {
            let seqs: Vec<i64> = std::iter::once(start)
                .chain(steps.iter().scan(start, |seq, step| { *seq += step; Some(*seq) }))
                .collect();
            let range = MergedRange::new(first, &seqs).unwrap();
            let json = serde_json::to_string(&range).unwrap();
            let range: MergedRange = serde_json::from_str(&json).unwrap();
            for (k, seq) in seqs.iter().enumerate() {
                prop_assert_eq!(range.ledger_seq_of(first + k as i64), Some(*seq));
            }
            prop_assert_eq!(range.ledger_seq_of(first - 1), None);
            if !range.runs.is_empty() {
                prop_assert_eq!(range.ledger_seq_of(first + seqs.len() as i64), None);
            }
        }
    }
}
