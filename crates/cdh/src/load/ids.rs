//! Contact ids given twice in one file: each row is one contact, so a repeated id is a
//! mistake in the file (two profiles would carry one name), reported with both lines.

use std::collections::{HashMap, HashSet};

use cdh_core::interner::hash_key;
use rayon::prelude::*;

use super::{Columns, ID_SLOT, RowStarts};
use crate::csv_scan::{RecordBuf, RecordReader, line_of};

/// The first row (by line) whose contact id an earlier row has, as (its line, the earlier
/// row's line, the id). `id_hashes` (each row's id hash, in any order) are sorted in place to
/// find a repeated hash in O(n log n); only when one repeats are the rows read again and
/// their ids compared as text (a collision of two ids is no repeat).
pub(super) fn repeated_contact_id(
    data: &[u8],
    row_starts: &RowStarts,
    columns: &Columns,
    mut id_hashes: Vec<u64>,
) -> Option<(u64, u64, String)> {
    id_hashes.par_sort_unstable();
    let repeated: HashSet<u64> = id_hashes
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(id_hashes);
    if repeated.is_empty() {
        return None;
    }
    let mut reader = RecordReader::default();
    let mut rec = RecordBuf::default();
    let mut first_row: HashMap<String, usize> = HashMap::new();
    for row in 0..row_starts.len() {
        let start = row_starts.get(row);
        reader.read(&data[start..], &mut rec);
        // Rows were checked as UTF-8 when loaded.
        let Ok(text) = rec.text() else { continue };
        let id = text.get(columns.contact_id).trim();
        if !repeated.contains(&hash_key(0, ID_SLOT, id)) {
            continue;
        }
        match first_row.get(id) {
            Some(&first) => {
                let line = line_of(data, start);
                let first_line = line_of(data, row_starts.get(first));
                return Some((line, first_line, id.to_owned()));
            }
            None => {
                first_row.insert(id.to_owned(), row);
            }
        }
    }
    None
}
