//! Loading a contact CSV: the whole file in memory, parsed in parallel chunks, identifier
//! values normalised and interned into a sharded key graph.
//!
//! Pass one (here) touches every row once and keeps only row offsets and value ids; the golden
//! records re-parse member rows later, so memory stays near the size of the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use anyhow::{Context, bail};
use cdh_core::interner::{hash_key, shard_of};
use cdh_core::{
    BlockReason, IdentifierField, InvalidReason, KeyGraph, Normalizer, Outcome, Slot, ValueInterner,
};
use rayon::prelude::*;

use crate::csv_scan::{RecordBuf, RecordReader, check_quotes, line_of, split_records};
use crate::write::try_parse_time;

mod ids;
mod parts;
use ids::repeated_contact_id;
pub use parts::RowStarts;
use parts::{next_value, put_value, read_parallel};

/// The columns of the built-in schema that are not identifiers.
pub const KNOWN_COLUMNS: &[&str] = &[
    "contact_id",
    "channel",
    "line_uid",
    "display_mobile",
    "display_email",
    "customer_id",
    "connect_id",
    "display_name",
    "gender",
    "birthday",
    "updated_at",
];

/// Where each column of interest is.
#[derive(Clone, Debug)]
pub struct Columns {
    /// Every column name, in file order.
    pub header: Vec<String>,
    /// The `contact_id` column.
    pub contact_id: usize,
    /// The `channel` column, if any.
    pub channel: Option<usize>,
    /// The `updated_at` column, if any.
    pub updated_at: Option<usize>,
    /// For each key slot, its column.
    pub slot_columns: Vec<usize>,
    /// Identifier columns (built-in ones and custom keys), with their field.
    pub identifiers: Vec<(IdentifierField, usize)>,
    /// Every other column: profile fields and custom fields, merged by survivorship.
    pub fields: Vec<(String, usize)>,
}

/// Counts of what normalisation made of one slot's values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotStats {
    /// Values that will merge.
    pub valid: u64,
    /// Empty cells.
    pub empty: u64,
    /// Values that do not parse, by reason.
    pub invalid: BTreeMap<InvalidReason, u64>,
    /// Values blocked from merging, by reason.
    pub blocked: BTreeMap<BlockReason, u64>,
}

impl SlotStats {
    fn add(&mut self, other: &SlotStats) {
        self.valid += other.valid;
        self.empty += other.empty;
        for (k, v) in &other.invalid {
            *self.invalid.entry(*k).or_default() += v;
        }
        for (k, v) in &other.blocked {
            *self.blocked.entry(*k).or_default() += v;
        }
    }
}

/// A loaded file.
#[derive(Debug)]
pub struct Loaded {
    /// The file's bytes.
    pub data: Vec<u8>,
    /// Its columns.
    pub columns: Columns,
    /// The byte offset where each data row starts.
    pub row_starts: RowStarts,
    /// Contacts and their key values; contact `i` is data row `i`.
    pub graph: KeyGraph,
    /// Normalisation counts per slot.
    pub stats: Vec<SlotStats>,
}

/// What to load and how to normalise it.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// The unify keys' fields (merging slots come first, in this order).
    pub keys: Vec<IdentifierField>,
    /// Fields a profile may hold one value of (extra non-merging slots when not keys).
    pub unique: Vec<IdentifierField>,
    /// The normaliser (region and blocklist); cloned per worker.
    pub normalizer: Normalizer,
}

/// Reads and parses the file's header.
pub fn read_header(data: &[u8], path: &Path) -> anyhow::Result<(Vec<String>, usize)> {
    let mut reader = RecordReader::default();
    let mut rec = RecordBuf::default();
    let body = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    let bom = data.len() - body.len();
    let Some(n) = reader.read(body, &mut rec) else {
        bail!(
            "{}: the file is empty; expected a header line",
            path.display()
        );
    };
    if let Err(at) = check_quotes(&body[..n]) {
        bail!(
            "{} line 1, byte {}: a quote inside an unquoted field",
            path.display(),
            at + 1
        );
    }
    let header = (0..rec.len())
        .map(|i| std::str::from_utf8(rec.get(i)).map(|s| s.trim().to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| anyhow::anyhow!("{} line 1: the header is not valid UTF-8", path.display()))?;
    Ok((header, bom + n))
}

/// Maps the header to columns; checks that every key and unique field has a column.
pub fn columns(header: Vec<String>, spec: &LoadSpec) -> anyhow::Result<Columns> {
    for (i, name) in header.iter().enumerate() {
        if header[..i].contains(name) {
            bail!("the header names column `{name}` twice");
        }
    }
    let find = |name: &str| header.iter().position(|h| h == name);
    let Some(contact_id) = find("contact_id") else {
        bail!(
            "the header has no `contact_id` column (columns: {})",
            header.join(", ")
        );
    };
    let mut slot_columns = Vec::new();
    for field in spec
        .keys
        .iter()
        .chain(spec.unique.iter().filter(|u| !spec.keys.contains(u)))
    {
        match find(field.name()) {
            Some(c) => slot_columns.push(c),
            None if spec.keys.contains(field) => {
                bail!(
                    "unify key `{field}` has no column in the file (columns: {})",
                    header.join(", ")
                )
            }
            None => {}
        }
    }
    let mut identifiers = Vec::new();
    let mut fields = Vec::new();
    for (i, name) in header.iter().enumerate() {
        if matches!(name.as_str(), "contact_id" | "channel" | "updated_at") {
            continue;
        }
        match IdentifierField::built_in(name) {
            Some(f) => identifiers.push((f, i)),
            None if spec.keys.iter().any(|k| k.name() == name) => {
                identifiers.push((IdentifierField::Custom(name.clone()), i))
            }
            None => fields.push((name.clone(), i)),
        }
    }
    Ok(Columns {
        contact_id,
        channel: find("channel"),
        updated_at: find("updated_at"),
        slot_columns,
        identifiers,
        fields,
        header,
    })
}

/// The slots of the graph: keys (merging), then unique fields that are not keys.
pub fn slots(spec: &LoadSpec, columns: &Columns) -> Vec<Slot> {
    let mut slots: Vec<Slot> = spec
        .keys
        .iter()
        .map(|f| Slot {
            field: f.clone(),
            merges: true,
            unique: spec.unique.contains(f),
        })
        .collect();
    for f in &spec.unique {
        if !spec.keys.contains(f) && columns.header.iter().any(|h| h == f.name()) {
            slots.push(Slot {
                field: f.clone(),
                merges: false,
                unique: true,
            });
        }
    }
    slots
}

/// A row's slot whose value was empty, invalid or blocked (no shard holds it).
const NO_VALUE: u8 = u8::MAX;

/// The slot number contact ids are hashed under (no key slot has it).
pub(crate) const ID_SLOT: u8 = u8::MAX;

/// What parsing one chunk of the file found.
struct Chunk {
    /// Where each row starts, from the start of the chunk.
    rows: Vec<u32>,
    /// Per row and slot, the shard its value went to, or [`NO_VALUE`].
    cells: Vec<u8>,
    /// Per shard, the values bound for it in row order, each as its slot, its length (one
    /// byte, or 255 and four bytes) and its bytes.
    by_shard: Vec<Vec<u8>>,
    /// Per shard, how many values.
    counts: Vec<u32>,
    stats: Vec<SlotStats>,
    /// Per row, the hash of its contact id (to find an id given twice).
    id_hashes: Vec<u64>,
}

/// Loads the file at `path` using `threads` workers.
pub fn load(
    path: &Path,
    spec: &LoadSpec,
    threads: usize,
    progress: &dyn Fn(&str),
) -> anyhow::Result<Loaded> {
    let data =
        read_parallel(path, threads).with_context(|| format!("cannot read {}", path.display()))?;
    let (header, body_start) = read_header(&data, path)?;
    let columns = columns(header, spec)?;
    let slots = slots(spec, &columns);
    // Shard numbers fit a cell byte, below NO_VALUE.
    let n_shards = (threads * 4).next_power_of_two().min(128);
    progress("parsing and normalising");
    // Chunks stay under 2 GiB, so row offsets within one fit 32 bits.
    let ranges = split_records(&data, body_start, (threads * 8).max(data.len() >> 31));
    let mut chunks: Vec<Chunk> = ranges
        .par_iter()
        .map(|r| {
            load_chunk(
                &data,
                r.clone(),
                &columns,
                &slots,
                spec.normalizer.clone(),
                n_shards,
            )
        })
        .collect::<Result<_, usize>>()
        .map_err(|at| row_error(&data, path, at, &columns))?;

    let n_slots = slots.len();
    let mut row_starts = RowStarts::with_capacity(chunks.iter().map(|c| c.rows.len()).sum());
    for (c, r) in chunks.iter_mut().zip(&ranges) {
        for &at in &c.rows {
            row_starts.push((r.start + at as usize) as u64);
        }
        c.rows = Vec::new();
    }
    let n = row_starts.len();
    u32::try_from(n).context("more than 4 billion contacts in one file")?;
    progress("checking contact ids");
    let id_hashes: Vec<u64> = chunks
        .iter_mut()
        .flat_map(|c| std::mem::take(&mut c.id_hashes))
        .collect();
    if let Some((line, first_line, id)) =
        repeated_contact_id(&data, &row_starts, &columns, id_hashes)
    {
        bail!(
            "{} line {line}: contact_id `{id}` is given again (first on line {first_line}); \
             each row is one contact and needs an id of its own",
            path.display()
        );
    }
    let mut stats = vec![SlotStats::default(); n_slots];
    for c in &chunks {
        for (s, st) in stats.iter_mut().zip(&c.stats) {
            s.add(st);
        }
    }

    progress("interning key values");
    // Each shard's worker owns that shard's streams and frees each once interned, keeping
    // only the value ids, in stream order.
    let mut streams: Vec<Vec<Vec<u8>>> = (0..n_shards).map(|_| Vec::new()).collect();
    for c in &mut chunks {
        for (s, stream) in c.by_shard.drain(..).enumerate() {
            streams[s].push(stream);
        }
    }
    let shards: Vec<(ValueInterner, Vec<Vec<u32>>)> = streams
        .into_par_iter()
        .enumerate()
        .map(|(s, per_chunk)| {
            let expected: usize = chunks.iter().map(|c| c.counts[s] as usize).sum();
            let text: usize = per_chunk.iter().map(Vec::len).sum();
            // Sized for every occurrence (an upper bound on distinct values, and the streams'
            // bytes on their text): it never rehashes or reallocates.
            let mut interner = ValueInterner::with_capacities(expected + 16, text);
            let ids = per_chunk
                .into_iter()
                .zip(&chunks)
                .map(|(stream, c)| {
                    let mut ids = Vec::with_capacity(c.counts[s] as usize);
                    let mut at = 0;
                    while at < stream.len() {
                        let (slot, value) = next_value(&stream, &mut at);
                        let hash = hash_key(0, slot, value);
                        ids.push(interner.intern_hashed(hash, 0, slot, value).0);
                    }
                    ids
                })
                .collect();
            (interner, ids)
        })
        .collect();
    let (shards, ids): (Vec<ValueInterner>, Vec<Vec<Vec<u32>>>) = shards.into_iter().unzip();
    let mut graph = compact(slots, shards, &chunks, &ids, n);
    // Nothing is looked up by text from here on.
    graph.freeze();
    Ok(Loaded {
        data,
        columns,
        row_starts,
        graph,
        stats,
    })
}

/// Turns the chunks' cells and the shards' value ids (`ids[shard][chunk]`, in stream order)
/// into the graph's compressed rows, each row's values in slot order.
fn compact(
    slots: Vec<Slot>,
    shards: Vec<ValueInterner>,
    chunks: &[Chunk],
    ids: &[Vec<Vec<u32>>],
    n: usize,
) -> KeyGraph {
    let n_slots = slots.len();
    let mut base = Vec::with_capacity(shards.len());
    let mut total = 0u32;
    for s in &shards {
        base.push(total);
        total += s.len() as u32;
    }
    let n_values: usize = chunks
        .iter()
        .flat_map(|c| &c.counts)
        .map(|&k| k as usize)
        .sum();
    let mut offsets = Vec::with_capacity(n + 1);
    let mut values = Vec::with_capacity(n_values);
    offsets.push(0u32);
    let mut next = vec![0usize; shards.len()];
    for (c, chunk) in chunks.iter().enumerate() {
        next.fill(0);
        for row in chunk.cells.chunks(n_slots) {
            for &shard in row {
                if shard != NO_VALUE {
                    let s = shard as usize;
                    values.push(base[s] + ids[s][c][next[s]]);
                    next[s] += 1;
                }
            }
            offsets.push(values.len() as u32);
        }
    }
    debug_assert_eq!(offsets.len(), n + 1);
    KeyGraph::from_shards(slots, shards, offsets, values)
}

fn load_chunk(
    data: &[u8],
    range: Range<usize>,
    columns: &Columns,
    slots: &[Slot],
    mut normalizer: Normalizer,
    n_shards: usize,
) -> Result<Chunk, usize> {
    let mut reader = RecordReader::default();
    let mut rec = RecordBuf::default();
    let mut buf = String::with_capacity(64);
    let mut chunk = Chunk {
        rows: Vec::with_capacity(range.len() / 80),
        cells: Vec::with_capacity(range.len() / 80 * slots.len()),
        by_shard: (0..n_shards)
            .map(|_| Vec::with_capacity(range.len() / 2 / n_shards))
            .collect(),
        counts: vec![0; n_shards],
        stats: vec![SlotStats::default(); slots.len()],
        id_hashes: Vec::with_capacity(range.len() / 80),
    };
    let mut pos = range.start;
    let n_columns = columns.header.len();
    while pos < range.end {
        let Some(consumed) = reader.read(&data[pos..range.end], &mut rec) else {
            break;
        };
        let raw = &data[pos..pos + consumed];
        if rec.is_empty() || (rec.len() == 1 && rec.get(0).is_empty()) {
            pos += consumed;
            continue;
        }
        if check_quotes(raw).is_err() || rec.len() != n_columns {
            return Err(pos);
        }
        let Ok(text) = rec.text() else {
            return Err(pos);
        };
        let contact_id = text.get(columns.contact_id).trim();
        if contact_id.is_empty() {
            return Err(pos);
        }
        if let Some(col) = columns.updated_at
            && try_parse_time(text.get(col).trim()).is_none()
        {
            return Err(pos);
        }
        chunk.id_hashes.push(hash_key(0, ID_SLOT, contact_id));
        chunk.rows.push((pos - range.start) as u32);
        for (slot_no, (slot, &col)) in slots.iter().zip(&columns.slot_columns).enumerate() {
            let raw_value = text.get(col);
            let stats = &mut chunk.stats[slot_no];
            let mut cell = NO_VALUE;
            match normalizer.normalize_into(&slot.field, raw_value, &mut buf) {
                Outcome::Valid => {
                    stats.valid += 1;
                    let shard = shard_of(hash_key(0, slot_no as u8, &buf), n_shards);
                    put_value(&mut chunk.by_shard[shard], slot_no as u8, &buf);
                    chunk.counts[shard] += 1;
                    cell = shard as u8;
                }
                Outcome::Empty => stats.empty += 1,
                Outcome::Invalid(r) => *stats.invalid.entry(r).or_default() += 1,
                Outcome::Blocked(r) => *stats.blocked.entry(r).or_default() += 1,
            }
            chunk.cells.push(cell);
        }
        pos += consumed;
    }
    Ok(chunk)
}

/// Re-examines the row at byte `at` to say exactly what is wrong with it.
fn row_error(data: &[u8], path: &Path, at: usize, columns: &Columns) -> anyhow::Error {
    let line = line_of(data, at);
    let mut reader = RecordReader::default();
    let mut rec = RecordBuf::default();
    let consumed = reader
        .read(&data[at..], &mut rec)
        .unwrap_or(data.len() - at);
    let raw = &data[at..at + consumed];
    let place = format!("{} line {line}", path.display());
    if let Err(q) = check_quotes(raw) {
        let q_line = line + memchr::memchr_iter(b'\n', &raw[..q]).count() as u64;
        let opens_field = q == 0 || matches!(raw[q - 1], b',' | b'\n');
        if opens_field && memchr::memchr(b'"', &raw[q + 1..]).is_none() {
            return anyhow::anyhow!(
                "{} line {q_line}: a quoted field is never closed",
                path.display()
            );
        }
        return anyhow::anyhow!(
            "{} line {q_line}: bad quoting: a quote inside an unquoted field, or text after a closing quote (quote the whole field and double inner quotes)",
            path.display()
        );
    }
    if let Err(e) = std::str::from_utf8(rec.all_bytes()) {
        return anyhow::anyhow!(
            "{place}: not valid UTF-8 (byte {} of the row); save the file as UTF-8",
            e.valid_up_to() + 1
        );
    }
    let n = columns.header.len();
    if rec.len() != n {
        return anyhow::anyhow!(
            "{place}: the row has {} fields but the header has {n}",
            rec.len()
        );
    }
    let text = rec.text().unwrap_or(crate::csv_scan::TextRecord::EMPTY);
    if text.get(columns.contact_id).trim().is_empty() {
        return anyhow::anyhow!("{place}: contact_id is empty");
    }
    let Some(col) = columns.updated_at else {
        return anyhow::anyhow!("{place}: the row cannot be read");
    };
    let value: String = text.get(col).trim().chars().take(40).collect();
    anyhow::anyhow!(
        "{place}, column {} (updated_at): `{value}` is not a time; use RFC 3339, for example \
         2024-05-01T08:00:00Z",
        col + 1
    )
}
