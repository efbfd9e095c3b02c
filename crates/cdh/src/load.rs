//! Loading a contact CSV: the whole file in memory, parsed in parallel chunks, identifier
//! values normalised and interned into a sharded key graph.
//!
//! Pass one (here) touches every row once and keeps only row offsets and value ids; the golden
//! records re-parse member rows later, so memory stays near the size of the file.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::{Context, bail};
use cdh_core::interner::{hash_key, shard_of};
use cdh_core::{
    BlockReason, IdentifierField, InvalidReason, KeyGraph, Normalizer, Outcome, Slot, ValueInterner,
};
use rayon::prelude::*;

use crate::csv_scan::{RecordBuf, RecordReader, check_quotes, line_of, split_records};

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
    pub row_starts: Vec<u64>,
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

/// One normalised value found in a chunk: its row, slot, and place in the chunk's arena.
struct Entry {
    row: u32,
    slot: u8,
    start: u32,
    len: u32,
}

struct Chunk {
    rows: Vec<u64>,
    arena: String,
    by_shard: Vec<Vec<Entry>>,
    stats: Vec<SlotStats>,
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
    let n_shards = (threads * 4).next_power_of_two();
    progress("parsing and normalising");
    let ranges = split_records(&data, body_start, threads * 8);
    let chunks: Vec<Chunk> = ranges
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
    let mut row_starts = Vec::with_capacity(chunks.iter().map(|c| c.rows.len()).sum());
    let mut bases = Vec::with_capacity(chunks.len());
    for c in &chunks {
        bases.push(row_starts.len() as u32);
        row_starts.extend_from_slice(&c.rows);
    }
    let n = row_starts.len();
    u32::try_from(n).context("more than 4 billion contacts in one file")?;
    let mut stats = vec![SlotStats::default(); n_slots];
    for c in &chunks {
        for (s, st) in stats.iter_mut().zip(&c.stats) {
            s.add(st);
        }
    }

    progress("interning key values");
    const NONE: u32 = u32::MAX;
    let table: Vec<AtomicU32> = (0..n * n_slots)
        .into_par_iter()
        .map(|_| AtomicU32::new(NONE))
        .collect();
    let shard_bits = n_shards.trailing_zeros();
    let local_mask = u32::MAX >> shard_bits;
    let shards: Vec<ValueInterner> = (0..n_shards)
        .into_par_iter()
        .map(|s| {
            let expected: usize = chunks.iter().map(|c| c.by_shard[s].len()).sum();
            // Sized for every occurrence (an upper bound on distinct values): it never rehashes.
            let mut interner = ValueInterner::with_capacity(expected + 16);
            for (c, base) in chunks.iter().zip(&bases) {
                for e in &c.by_shard[s] {
                    let value = &c.arena[e.start as usize..(e.start + e.len) as usize];
                    let (id, _) =
                        interner.intern_hashed(hash_key(0, e.slot, value), 0, e.slot, value);
                    // Tag the shard-local id with its shard (in the top bits) until the
                    // shards' sizes, and so the global ids, are known.
                    assert!(id < local_mask, "too many distinct values in one shard");
                    let tagged = id | ((s as u32) << (32 - shard_bits));
                    table[(*base + e.row) as usize * n_slots + e.slot as usize]
                        .store(tagged, Ordering::Relaxed);
                }
            }
            interner
        })
        .collect();
    drop(chunks);
    let graph = compact(slots, shards, &table, n, n_slots);
    Ok(Loaded {
        data,
        columns,
        row_starts,
        graph,
        stats,
    })
}

/// Reads a whole file with `threads` positioned reads at once: one thread copying a large
/// file out of the page cache (and faulting in the buffer) is a serial half second at 10M
/// contacts, with the other core idle.
fn read_parallel(path: &Path, threads: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let len = usize::try_from(file.metadata()?.len()).unwrap_or(usize::MAX);
    const MIN_PART: usize = 16 << 20;
    if len < 2 * MIN_PART || threads < 2 {
        return std::fs::read(path);
    }
    let mut data = vec![0u8; len];
    let part = len.div_ceil(threads);
    data.par_chunks_mut(part)
        .enumerate()
        .try_for_each(|(i, chunk)| file.read_exact_at(chunk, (i * part) as u64))?;
    // A file that grew while it was read is read again whole, as `fs::read` would see it.
    if file.metadata()?.len() != len as u64 {
        return std::fs::read(path);
    }
    Ok(data)
}

/// Turns the fixed-width slot table of shard-tagged ids into the graph's compressed rows.
fn compact(
    slots: Vec<Slot>,
    shards: Vec<ValueInterner>,
    table: &[AtomicU32],
    n: usize,
    n_slots: usize,
) -> KeyGraph {
    let shard_bits = shards.len().trailing_zeros();
    let local_mask = u32::MAX >> shard_bits;
    let mut base = Vec::with_capacity(shards.len());
    let mut total = 0u32;
    for s in &shards {
        base.push(total);
        total += s.len() as u32;
    }
    let mut offsets = Vec::with_capacity(n + 1);
    let mut values = Vec::with_capacity(table.len() * 2 / 3);
    offsets.push(0u32);
    for row in table.chunks(n_slots) {
        for cell in row {
            let tagged = cell.load(Ordering::Relaxed);
            if tagged != u32::MAX {
                let shard = (tagged >> (32 - shard_bits)) as usize;
                values.push(base[shard] + (tagged & local_mask));
            }
        }
        offsets.push(values.len() as u32);
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
        arena: String::with_capacity(range.len() / 3),
        by_shard: (0..n_shards)
            .map(|_| Vec::with_capacity(range.len() / 40 / n_shards))
            .collect(),
        stats: vec![SlotStats::default(); slots.len()],
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
        if text.get(columns.contact_id).trim().is_empty() {
            return Err(pos);
        }
        let row = chunk.rows.len() as u32;
        chunk.rows.push(pos as u64);
        for (slot_no, (slot, &col)) in slots.iter().zip(&columns.slot_columns).enumerate() {
            let raw_value = text.get(col);
            let stats = &mut chunk.stats[slot_no];
            match normalizer.normalize_into(&slot.field, raw_value, &mut buf) {
                Outcome::Valid => {
                    stats.valid += 1;
                    let shard = shard_of(hash_key(0, slot_no as u8, &buf), n_shards);
                    chunk.by_shard[shard].push(Entry {
                        row,
                        slot: slot_no as u8,
                        start: chunk.arena.len() as u32,
                        len: buf.len() as u32,
                    });
                    chunk.arena.push_str(&buf);
                }
                Outcome::Empty => stats.empty += 1,
                Outcome::Invalid(r) => *stats.invalid.entry(r).or_default() += 1,
                Outcome::Blocked(r) => *stats.blocked.entry(r).or_default() += 1,
            }
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
    anyhow::anyhow!("{place}: contact_id is empty")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_read_equals_a_plain_read() {
        // Over the size where the read is split, with parts that do not divide it evenly.
        let len = (40 << 20) + 12_345;
        let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), &bytes).unwrap();
        for threads in [1, 2, 3] {
            assert!(
                read_parallel(file.path(), threads).unwrap() == bytes,
                "{threads} threads"
            );
        }
        assert!(read_parallel(Path::new("/nonexistent/contacts.csv"), 2).is_err());
    }
}
