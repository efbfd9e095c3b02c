//! Pass two of `cdh unify`: golden records per profile, written with the assignments.
//!
//! Profiles are processed in batches, each batch split among the workers; every worker
//! re-parses its profiles' member rows from the in-memory file, merges them, and renders CSV
//! into its own buffer; buffers are written in profile order, so output is deterministic.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use cdh_core::golden::{Candidate, beats};
use cdh_core::resolve::Members;
use cdh_core::{Partition, Timestamp};
use rayon::prelude::*;

use crate::csv_scan::{RecordBuf, RecordReader};
use crate::load::Loaded;

const PROFILES_PER_TASK: usize = 4096;
const TASKS_PER_BATCH: usize = 64;

/// Writes `assignments.csv` and `profiles.csv` into `out_dir`.
pub fn write_outputs(
    loaded: &Loaded,
    partition: &Partition,
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
    let batch = PROFILES_PER_TASK * TASKS_PER_BATCH;
    let mut done = 0;
    while done < n_profiles {
        let end = (done + batch).min(n_profiles);
        let parts: Vec<(Vec<u8>, Vec<u8>)> = (done..end)
            .step_by(PROFILES_PER_TASK)
            .collect::<Vec<_>>()
            .into_par_iter()
            .map(|start| {
                render(
                    loaded,
                    &members,
                    start..(start + PROFILES_PER_TASK).min(end),
                )
            })
            .collect();
        for (p, a) in parts {
            profiles.write_all(&p)?;
            assignments.write_all(&a)?;
        }
        done = end;
        progress(done as u64);
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
    times: Vec<Timestamp>,
    cell: Vec<u8>,
}

fn render(
    loaded: &Loaded,
    members: &Members,
    profiles: std::ops::Range<usize>,
) -> (Vec<u8>, Vec<u8>) {
    let mut out = csv::WriterBuilder::new().from_writer(Vec::with_capacity(profiles.len() * 200));
    let mut assign = csv::WriterBuilder::new().from_writer(Vec::with_capacity(profiles.len() * 40));
    let mut s = Scratch::default();
    let c = &loaded.columns;
    let graph = &loaded.graph;
    let mut n_buf = itoa_buf();
    for p in profiles {
        let m = members.of(p as u32);
        if s.rows.len() < m.len() {
            s.rows.resize_with(m.len(), RecordBuf::default);
        }
        s.times.clear();
        for (i, &contact) in m.iter().enumerate() {
            let start = loaded.row_starts[contact as usize] as usize;
            s.reader.read(&loaded.data[start..], &mut s.rows[i]);
            let at = c
                .updated_at
                .map_or(Timestamp::MIN, |col| parse_time(field(&s.rows[i], col)));
            s.times.push(at);
        }
        let rows = &s.rows[..m.len()];
        let profile_id = field(&rows[0], c.contact_id);
        for row in rows {
            assign
                .write_record([field(row, c.contact_id), profile_id])
                .expect("memory");
        }
        out.write_field(profile_id).expect("memory");
        out.write_field(n_buf.format(m.len())).expect("memory");
        join_distinct(&mut s.cell, rows.iter().map(|r| field(r, c.contact_id)));
        out.write_field(&s.cell).expect("memory");
        match c.channel {
            Some(col) => join_distinct(&mut s.cell, rows.iter().map(|r| field(r, col))),
            None => s.cell.clear(),
        }
        out.write_field(&s.cell).expect("memory");
        for (f, col) in &c.identifiers {
            let slot = graph.slots().iter().position(|sl| &sl.field == f);
            s.cell.clear();
            let mut seen: Vec<&str> = Vec::new();
            for (i, &contact) in m.iter().enumerate() {
                let raw = field(&rows[i], *col);
                // A slot value when the graph has one (normalised); otherwise the raw value,
                // kept as given (invalid, blocked, or not a slot).
                let value = slot
                    .and_then(|sl| {
                        graph
                            .values_of(contact)
                            .iter()
                            .find(|&&v| graph.slot_of(v) as usize == sl)
                            .map(|&v| graph.value(v).1)
                    })
                    .unwrap_or(raw);
                if !value.is_empty() && !seen.contains(&value) {
                    seen.push(value);
                }
            }
            join_distinct(&mut s.cell, seen.into_iter());
            out.write_field(&s.cell).expect("memory");
        }
        for (_, col) in &c.fields {
            let mut best: Option<Candidate<'_>> = None;
            for (i, row) in rows.iter().enumerate() {
                let cand = Candidate {
                    value: field(row, *col),
                    updated_at: s.times[i],
                    contact_id: field(row, c.contact_id),
                };
                if best.as_ref().is_none_or(|b| beats(&cand, b)) {
                    best = Some(cand);
                }
            }
            out.write_field(best.map_or("", |b| b.value))
                .expect("memory");
        }
        let latest = (0..rows.len())
            .max_by_key(|&i| s.times[i])
            .map_or("", |i| c.updated_at.map_or("", |col| field(&rows[i], col)));
        out.write_field(latest).expect("memory");
        out.write_record(None::<&[u8]>).expect("memory");
    }
    (
        out.into_inner().expect("memory"),
        assign.into_inner().expect("memory"),
    )
}

/// A field of a parsed row, trimmed; rows were checked as UTF-8 when loaded.
fn field(row: &RecordBuf, col: usize) -> &str {
    std::str::from_utf8(row.get(col)).unwrap_or_default().trim()
}

fn join_distinct<'a>(cell: &mut Vec<u8>, values: impl Iterator<Item = &'a str>) {
    cell.clear();
    let mut seen: Vec<&str> = Vec::new();
    for v in values {
        if v.is_empty() || seen.contains(&v) {
            continue;
        }
        if !cell.is_empty() {
            cell.push(b'|');
        }
        cell.extend_from_slice(v.as_bytes());
        seen.push(v);
    }
}

/// RFC 3339 to milliseconds; an empty or unreadable time counts as the oldest.
pub fn parse_time(s: &str) -> Timestamp {
    if s.is_empty() {
        return Timestamp::MIN;
    }
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as Timestamp)
        .unwrap_or(Timestamp::MIN)
}

struct ItoaBuf(String);

fn itoa_buf() -> ItoaBuf {
    ItoaBuf(String::with_capacity(20))
}

impl ItoaBuf {
    fn format(&mut self, n: usize) -> &str {
        use std::fmt::Write as _;
        self.0.clear();
        let _ = write!(self.0, "{n}");
        &self.0
    }
}
