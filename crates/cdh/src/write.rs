//! Pass two of `cdh unify`: golden records per profile, written with the assignments.
//!
//! Profiles are processed in batches, each batch split among the workers; every worker
//! re-parses its profiles' member rows from the in-memory file, merges them, and renders CSV
//! into its own buffer; buffers are written in profile order, so output is deterministic, and
//! one batch is written while the next one renders.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use cdh_core::golden::{Candidate, beats};
use cdh_core::resolve::Members;
use cdh_core::{Partition, Timestamp};
use rayon::prelude::*;

use crate::csv_out::CsvOut;
use crate::csv_scan::{RecordBuf, RecordReader, TextRecord};
use crate::load::Loaded;

const PROFILES_PER_TASK: usize = 4096;
const TASKS_PER_BATCH: usize = 8;

/// One task's rendered output: (profiles.csv rows, assignments.csv rows).
type Buffers = (Vec<u8>, Vec<u8>);

/// Writes `assignments.csv` and `profiles.csv` into `out_dir`. The partition is consumed: only
/// its members lists are kept while writing.
pub fn write_outputs(
    loaded: &Loaded,
    partition: Partition,
    out_dir: &Path,
    progress: &dyn Fn(u64),
) -> anyhow::Result<()> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let create = |name: &str| -> anyhow::Result<BufWriter<File>> {
        let path = out_dir.join(name);
        let f = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    };
    let mut assignments = create("assignments.csv")?;
    let mut profiles = create("profiles.csv")?;
    assignments.write_all(b"contact_id,profile_id\n")?;
    profiles.write_all(&profiles_header(loaded))?;

    let members = partition.members();
    let n_profiles = partition.n_profiles();
    drop(partition);
    let batch = PROFILES_PER_TASK * TASKS_PER_BATCH;
    // Output buffers are reused from batch to batch: freeing and re-allocating tens of
    // megabytes per batch costs more in page faults than the rendering itself.
    let mut pool: Vec<Buffers> = Vec::new();
    // One batch is written while the next one renders, so no worker waits for the write.
    let mut rendered: Vec<Buffers> = Vec::new();
    let mut done = 0;
    loop {
        let end = (done + batch).min(n_profiles);
        let tasks: Vec<(usize, Buffers)> = (done..end)
            .step_by(PROFILES_PER_TASK)
            .map(|start| (start, pool.pop().unwrap_or_default()))
            .collect();
        let (written, parts) = rayon::join(
            || -> std::io::Result<Vec<Buffers>> {
                for (p, a) in &mut rendered {
                    profiles.write_all(p)?;
                    assignments.write_all(a)?;
                    p.clear();
                    a.clear();
                }
                Ok(std::mem::take(&mut rendered))
            },
            || -> Vec<Buffers> {
                tasks
                    .into_par_iter()
                    .map(|(start, buffers)| {
                        render(
                            loaded,
                            &members,
                            start..(start + PROFILES_PER_TASK).min(end),
                            buffers,
                        )
                    })
                    .collect()
            },
        );
        pool.extend(written?);
        if done > 0 {
            progress(done as u64);
        }
        if parts.is_empty() {
            break;
        }
        rendered = parts;
        done = end;
    }
    profiles.flush()?;
    assignments.flush()?;
    Ok(())
}

fn profiles_header(loaded: &Loaded) -> Vec<u8> {
    let c = &loaded.columns;
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut names: Vec<&str> = vec!["profile_id", "n_contacts", "contact_ids", "channels"];
    names.extend(c.identifiers.iter().map(|(f, _)| f.name()));
    names.extend(c.fields.iter().map(|(n, _)| n.as_str()));
    names.push("updated_at");
    w.write_record(&names).expect("writing to memory");
    w.into_inner().expect("writing to memory")
}

/// Reusable per-worker buffers.
#[derive(Default)]
struct Scratch {
    reader: RecordReader,
    rows: Vec<RecordBuf>,
    cell: Vec<u8>,
}

/// One profile's member rows, parsed, with what every column needs from them.
struct ProfileRows<'a> {
    contacts: &'a [u32],
    rows: Vec<TextRecord<'a>>,
    ids: Vec<&'a str>,
    times: Vec<Timestamp>,
}

fn render(
    loaded: &Loaded,
    members: &Members,
    profiles: std::ops::Range<usize>,
    (mut profile_buf, mut assign_buf): Buffers,
) -> Buffers {
    let mut out = CsvOut::new(&mut profile_buf);
    let mut assign = CsvOut::new(&mut assign_buf);
    let mut s = Scratch::default();
    let c = &loaded.columns;
    for p in profiles {
        let contacts = members.of(p as u32);
        if s.rows.len() < contacts.len() {
            s.rows.resize_with(contacts.len(), RecordBuf::default);
        }
        for (i, &contact) in contacts.iter().enumerate() {
            let start = loaded.row_starts.get(contact as usize);
            s.reader.read(&loaded.data[start..], &mut s.rows[i]);
        }
        // Rows were checked as UTF-8 when loaded.
        let rows: Vec<TextRecord<'_>> = s.rows[..contacts.len()]
            .iter()
            .map(|r| r.text().unwrap_or(TextRecord::EMPTY))
            .collect();
        let members = ProfileRows {
            contacts,
            ids: rows.iter().map(|r| field(r, c.contact_id)).collect(),
            times: rows
                .iter()
                .map(|r| {
                    c.updated_at
                        .map_or(Timestamp::MIN, |col| parse_time(field(r, col)))
                })
                .collect(),
            rows,
        };
        let profile_id = members.ids[0];
        for id in &members.ids {
            assign.field(id.as_bytes());
            assign.field(profile_id.as_bytes());
            assign.end_record();
        }
        write_profile(&mut out, &mut s.cell, loaded, &members);
    }
    (profile_buf, assign_buf)
}

/// One row of `profiles.csv`, in the column order of [`profiles_header`].
fn write_profile(out: &mut CsvOut<'_>, cell: &mut Vec<u8>, loaded: &Loaded, m: &ProfileRows<'_>) {
    let c = &loaded.columns;
    let graph = &loaded.graph;
    let mut put = |bytes: &[u8]| out.field(bytes);
    put(m.ids[0].as_bytes());
    cell.clear();
    write!(cell, "{}", m.ids.len()).expect("writing to memory");
    put(cell);
    // Contact ids are listed as given (a repeated id would be a repeated row).
    cell.clear();
    for (i, id) in m.ids.iter().enumerate() {
        if i > 0 {
            cell.push(b'|');
        }
        cell.extend_from_slice(id.as_bytes());
    }
    put(cell);
    let mut seen = Distinct::default();
    match c.channel {
        Some(col) => join_distinct(cell, &mut seen, m.rows.iter().map(|r| field(r, col))),
        None => cell.clear(),
    }
    put(cell);
    for (f, col) in &c.identifiers {
        let slot = graph.slots().iter().position(|sl| &sl.field == f);
        // A slot's value when the graph has one (normalised); otherwise the value as given
        // (invalid, blocked, or a field that is not a slot).
        let values = m.contacts.iter().zip(&m.rows).map(|(&contact, row)| {
            slot.and_then(|sl| {
                graph
                    .values_of(contact)
                    .iter()
                    .find(|&&v| graph.slot_of(v) as usize == sl)
                    .map(|&v| graph.value(v).1)
            })
            .unwrap_or_else(|| field(row, *col))
        });
        join_distinct(cell, &mut seen, values);
        put(cell);
    }
    for (_, col) in &c.fields {
        let winner = (0..m.rows.len())
            .map(|i| Candidate {
                value: field(&m.rows[i], *col),
                updated_at: m.times[i],
                contact_id: m.ids[i],
            })
            .reduce(|best, cand| if beats(&cand, &best) { cand } else { best });
        put(winner.map_or("", |w| w.value).as_bytes());
    }
    let latest = (0..m.rows.len())
        .max_by_key(|&i| m.times[i])
        .and_then(|i| c.updated_at.map(|col| field(&m.rows[i], col)));
    put(latest.unwrap_or("").as_bytes());
    out.end_record();
}

/// A field of a parsed row, trimmed.
fn field<'a>(row: &TextRecord<'a>, col: usize) -> &'a str {
    row.get_or_empty(col).trim()
}

/// Writes the distinct non-empty values, `|`-separated, in first-seen order. Profiles formed by
/// a shared value can hold many thousands of contacts, so membership is a hash set past a few.
fn join_distinct<'a>(
    cell: &mut Vec<u8>,
    seen: &mut Distinct<'a>,
    values: impl Iterator<Item = &'a str>,
) {
    cell.clear();
    seen.clear();
    for v in values {
        if v.is_empty() || !seen.insert(v) {
            continue;
        }
        if !cell.is_empty() {
            cell.push(b'|');
        }
        cell.extend_from_slice(v.as_bytes());
    }
}

/// A set of strings that is a short vector while small and a hash set once large.
#[derive(Default)]
struct Distinct<'a> {
    small: Vec<&'a str>,
    large: std::collections::HashSet<&'a str, foldhash::fast::RandomState>,
}

impl<'a> Distinct<'a> {
    const SMALL: usize = 16;

    fn clear(&mut self) {
        self.small.clear();
        self.large.clear();
    }

    /// Adds `v`; false when it was there already.
    fn insert(&mut self, v: &'a str) -> bool {
        if self.large.is_empty() {
            if self.small.contains(&v) {
                return false;
            }
            self.small.push(v);
            if self.small.len() > Self::SMALL {
                self.large.extend(self.small.drain(..));
            }
            true
        } else {
            self.large.insert(v)
        }
    }
}

/// RFC 3339 to milliseconds; an empty or unreadable time counts as the oldest.
pub fn parse_time(s: &str) -> Timestamp {
    try_parse_time(s).unwrap_or(Timestamp::MIN)
}

/// An `updated_at` cell as a time: `Some(Timestamp::MIN)` when empty, `None` when it is not an
/// RFC 3339 time (the loader refuses such a row, so `parse_time` never sees one).
pub fn try_parse_time(s: &str) -> Option<Timestamp> {
    if s.is_empty() {
        return Some(Timestamp::MIN);
    }
    fast_utc_seconds(s.as_bytes()).or_else(|| {
        time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Timestamp)
    })
}

/// The common `YYYY-MM-DDTHH:MM:SSZ` form without a general parser; anything else (offsets,
/// fractions, out-of-range fields) is left to the `time` crate.
fn fast_utc_seconds(b: &[u8]) -> Option<Timestamp> {
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
        || !matches!(b[19], b'Z' | b'z')
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        b[r].iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m)
        || d < 1
        || d > month_days[(m - 1) as usize]
        || hh > 23
        || mm > 59
        || ss > 59
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3_600 + mm * 60 + ss) * 1_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_time_parsing_equals_the_time_crate() {
        let slow = |s: &str| {
            time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Timestamp)
                .ok()
        };
        for s in [
            "1970-01-01T00:00:00Z",
            "2025-03-01T12:34:56Z",
            "2024-02-29T23:59:59Z",
            "2000-12-31T00:00:01Z",
            "1999-01-01T00:00:00Z",
            "2100-02-28T10:00:00Z",
            "2026-11-29T02:01:10Z",
        ] {
            assert_eq!(fast_utc_seconds(s.as_bytes()), slow(s), "{s}");
        }
        for bad in [
            "2023-02-29T00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01 00:00:00Z",
        ] {
            assert_eq!(fast_utc_seconds(bad.as_bytes()), None, "{bad}");
        }
        assert_eq!(
            parse_time("2025-03-01T20:34:56+08:00"),
            parse_time("2025-03-01T12:34:56Z")
        );
        assert_eq!(parse_time("yesterday"), Timestamp::MIN);
    }
}
