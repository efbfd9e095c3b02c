//! Contact ids given twice in one file: each row is one contact, so a repeated id is a
//! mistake in the file (two profiles would carry one name), reported with both lines.

use rayon::prelude::*;

use super::{Columns, RowStarts};
use crate::csv_scan::{RecordBuf, RecordReader, line_of};

/// The first row (by line) whose contact id an earlier row has, as (its line, the earlier
/// row's line, the id). Hashes are sorted to find candidates in O(n log n); only rows whose
/// hash repeats are read again, and their ids compared as text (a collision is no repeat).
pub(super) fn repeated_contact_id(
    data: &[u8],
    row_starts: &RowStarts,
    columns: &Columns,
    id_hashes: &[u64],
) -> Option<(u64, u64, String)> {
    let mut sorted = id_hashes.to_vec();
    sorted.par_sort_unstable();
    let repeated: std::collections::HashSet<u64> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    drop(sorted);
    if repeated.is_empty() {
        return None;
    }
    let mut reader = RecordReader::default();
    let mut rec = RecordBuf::default();
    let mut first_row: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (row, hash) in id_hashes.iter().enumerate() {
        if !repeated.contains(hash) {
            continue;
        }
        let start = row_starts.get(row);
        reader.read(&data[start..], &mut rec);
        // Rows were checked as UTF-8 when loaded.
        let id = rec
            .text()
            .map(|t| t.get(columns.contact_id).trim().to_owned())
            .unwrap_or_default();
        match first_row.get(&id) {
            Some(&first) => {
                let line = line_of(data, start);
                let first_line = line_of(data, row_starts.get(first));
                return Some((line, first_line, id));
            }
            None => {
                first_row.insert(id, row);
            }
        }
    }
    None
}
