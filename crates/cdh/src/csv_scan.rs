//! Fast CSV scanning over an in-memory file: splitting into independent chunks, strict
//! (RFC 4180) quoting checks, and parsing one record at a time without allocating.
//!
//! Splitting relies on strict quoting: a newline ends a record exactly when the number of
//! quotes before it is even. Records are checked for stray quotes, so a file that breaks that
//! rule is refused with the line, never silently mis-split.

use std::ops::Range;

/// A record's fields after parsing: `fields[ends[i-1]..ends[i]]` is field `i`.
#[derive(Debug, Default)]
pub struct RecordBuf {
    fields: Vec<u8>,
    ends: Vec<usize>,
    /// Bytes between one field's end and the next one's start: 0 when csv_core unquoted the
    /// fields into `fields`, 1 when a plain line was kept with its commas.
    separator: usize,
}

impl RecordBuf {
    /// How many fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i` as bytes.
    pub fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] + self.separator
        };
        &self.fields[start..self.ends[i]]
    }

    /// All the field bytes, for one UTF-8 check per record.
    pub fn all_bytes(&self) -> &[u8] {
        &self.fields[..self.ends.last().copied().unwrap_or(0)]
    }

    /// The record as text, checked as UTF-8 once; fields are then free to slice.
    pub fn text(&self) -> Result<TextRecord<'_>, std::str::Utf8Error> {
        Ok(TextRecord {
            text: std::str::from_utf8(self.all_bytes())?,
            ends: &self.ends,
            separator: self.separator,
        })
    }
}

/// A record known to be UTF-8.
#[derive(Debug, Clone, Copy)]
pub struct TextRecord<'a> {
    text: &'a str,
    ends: &'a [usize],
    separator: usize,
}

impl<'a> TextRecord<'a> {
    /// A record with no fields.
    pub const EMPTY: TextRecord<'static> = TextRecord {
        text: "",
        ends: &[],
        separator: 0,
    };

    /// Field `i`, as given; empty when the record has fewer fields.
    pub fn get_or_empty(&self, i: usize) -> &'a str {
        if i < self.ends.len() { self.get(i) } else { "" }
    }

    /// Field `i`, as given.
    pub fn get(&self, i: usize) -> &'a str {
        let start = if i == 0 {
            0
        } else {
            self.ends[i - 1] + self.separator
        };
        // Field boundaries fall between characters: fields are split on ASCII bytes only.
        &self.text[start..self.ends[i]]
    }

    /// How many fields.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Parses records one after another from a byte slice.
#[derive(Debug)]
pub struct RecordReader {
    reader: csv_core::Reader,
}

impl Default for RecordReader {
    fn default() -> Self {
        Self {
            reader: csv_core::ReaderBuilder::new().build(),
        }
    }
}

impl RecordReader {
    /// Reads the record at the start of `input` into `record`; returns the bytes consumed, or
    /// `None` at the end of input. Blank lines are skipped.
    pub fn read(&mut self, input: &[u8], record: &mut RecordBuf) -> Option<usize> {
        if let Some(consumed) = read_plain(input, record) {
            return Some(consumed);
        }
        self.read_general(input, record)
    }

    /// Any record, with csv_core.
    fn read_general(&mut self, input: &[u8], record: &mut RecordBuf) -> Option<usize> {
        use csv_core::ReadRecordResult::*;
        record.separator = 0;
        record.fields.clear();
        record.ends.clear();
        if record.fields.capacity() < 256 {
            record.fields.reserve(256);
        }
        let mut consumed = 0;
        let (mut out_len, mut ends_len) = (0, 0);
        loop {
            record.fields.resize(record.fields.capacity(), 0);
            if record.ends.len() < 32 {
                record.ends.resize(32, 0);
            }
            let (result, n_in, n_out, n_ends) = self.reader.read_record(
                &input[consumed..],
                &mut record.fields[out_len..],
                &mut record.ends[ends_len..],
            );
            // csv_core reports field ends relative to the start of the record, across calls.
            consumed += n_in;
            out_len += n_out;
            ends_len += n_ends;
            match result {
                InputEmpty => {
                    if consumed >= input.len() {
                        // Flush the last record when the input has no final newline.
                        let (r, _, n_out2, n_ends2) = self.reader.read_record(
                            &[],
                            &mut record.fields[out_len..],
                            &mut record.ends[ends_len..],
                        );
                        out_len += n_out2;
                        ends_len += n_ends2;
                        record.fields.truncate(out_len);
                        record.ends.truncate(ends_len);
                        self.reader.reset();
                        return matches!(r, Record).then_some(consumed);
                    }
                }
                OutputFull => {
                    let cap = record.fields.capacity() * 2;
                    record.fields.reserve(cap - record.fields.len());
                }
                OutputEndsFull => {
                    let n = record.ends.len() * 2;
                    record.ends.resize(n, 0);
                }
                Record => {
                    record.fields.truncate(out_len);
                    record.ends.truncate(ends_len);
                    return Some(consumed);
                }
                End => {
                    record.fields.truncate(out_len);
                    record.ends.truncate(ends_len);
                    self.reader.reset();
                    return None;
                }
            }
        }
    }
}

/// Reads a record that is one plain line: no quote, no carriage return except the one before
/// the newline, not blank. Such a line's fields are exactly its comma-separated pieces, which
/// csv_core would also give, stepping its state machine byte by byte; nearly every line of a
/// contact export is plain, so this halves the cost of a read. `None`: not plain, ask csv_core.
fn read_plain(input: &[u8], record: &mut RecordBuf) -> Option<usize> {
    let (line, consumed) = match memchr::memchr3(b'\n', b'"', b'\r', input) {
        None => (input, input.len()),
        Some(end) if input[end] == b'\n' => (&input[..end], end + 1),
        Some(end) if input[end] == b'\r' && input.get(end + 1) == Some(&b'\n') => {
            (&input[..end], end + 2)
        }
        Some(_) => return None,
    };
    if line.is_empty() {
        return None;
    }
    // The line is kept whole, commas included: field i starts one byte after field i-1 ends.
    record.fields.clear();
    record.fields.extend_from_slice(line);
    record.ends.clear();
    // A byte loop: fields are short, and memchr_iter's per-call set-up costs more (callgrind).
    for (at, &byte) in line.iter().enumerate() {
        if byte == b',' {
            record.ends.push(at);
        }
    }
    record.ends.push(line.len());
    record.separator = 1;
    Some(consumed)
}

/// Splits `data[start..]` into about `n` ranges that each begin at a record start.
pub fn split_records(data: &[u8], start: usize, n: usize) -> Vec<Range<usize>> {
    let len = data.len();
    let mut cuts = vec![start];
    let mut pos = start;
    let mut quotes_even = true;
    for i in 1..n.max(1) {
        let target = start + (len - start) * i / n;
        if target <= pos {
            continue;
        }
        quotes_even ^= memchr::memchr_iter(b'"', &data[pos..target]).count() % 2 == 1;
        pos = target;
        // Find the first newline from `target` outside quotes.
        let mut cut = None;
        let base = pos;
        for nl in memchr::memchr_iter(b'\n', &data[base..]) {
            let at = base + nl;
            quotes_even ^= memchr::memchr_iter(b'"', &data[pos..at]).count() % 2 == 1;
            pos = at;
            if quotes_even {
                cut = Some(at + 1);
                break;
            }
        }
        match cut {
            Some(c) if c < len => {
                pos = c;
                cuts.push(c);
            }
            _ => break,
        }
    }
    cuts.push(len);
    cuts.windows(2)
        .filter(|w| w[0] < w[1])
        .map(|w| w[0]..w[1])
        .collect()
}

/// The 1-based line of byte offset `at`.
pub fn line_of(data: &[u8], at: usize) -> u64 {
    memchr::memchr_iter(b'\n', &data[..at]).count() as u64 + 1
}

/// Checks the quoting of one raw record (its bytes up to the next record): a quote may only
/// open a field, close it, or be doubled inside a quoted field. Returns the offset of the
/// first offending quote.
pub fn check_quotes(raw: &[u8]) -> Result<(), usize> {
    if memchr::memchr(b'"', raw).is_none() {
        return Ok(());
    }
    let mut i = 0;
    let mut at_field_start = true;
    while i < raw.len() {
        let b = raw[i];
        if at_field_start && b == b'"' {
            // Quoted field: runs to a quote not followed by another quote.
            i += 1;
            loop {
                match memchr::memchr(b'"', &raw[i..]) {
                    None => return Err(i - 1),
                    Some(q) => {
                        i += q + 1;
                        if raw.get(i) == Some(&b'"') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            match raw.get(i) {
                None | Some(b',') | Some(b'\n') | Some(b'\r') => {}
                Some(_) => return Err(i),
            }
            at_field_start = false;
            continue;
        }
        match b {
            b'"' => return Err(i),
            b',' | b'\n' => at_field_start = true,
            _ => at_field_start = false,
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `input` as owned fields, read with `read`, or with csv_core alone.
    fn records(input: &[u8], plain_first: bool) -> Vec<Vec<Vec<u8>>> {
        let (mut reader, mut rec, mut pos, mut out) =
            (RecordReader::default(), RecordBuf::default(), 0, Vec::new());
        loop {
            let step = if plain_first {
                reader.read(&input[pos..], &mut rec)
            } else {
                reader.read_general(&input[pos..], &mut rec)
            };
            let Some(consumed) = step else { break };
            pos += consumed;
            out.push((0..rec.len()).map(|i| rec.get(i).to_vec()).collect());
            if pos >= input.len() {
                break;
            }
        }
        out
    }

    #[test]
    fn plain_lines_read_like_csv_core() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let alphabet: &[&[u8]] = &[
            b"a",
            b"1",
            b",",
            b"\n",
            b"\r\n",
            b"\r",
            b"\"",
            b"\"\"",
            b" ",
            "é".as_bytes(),
        ];
        for _ in 0..20_000 {
            let len = rng.random_range(0..24);
            let input: Vec<u8> = (0..len)
                .flat_map(|_| {
                    alphabet[rng.random_range(0..alphabet.len())]
                        .iter()
                        .copied()
                })
                .collect();
            assert_eq!(
                records(&input, true),
                records(&input, false),
                "input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn splits_only_between_records() {
        let data = b"h\n\"a\nb\",1\nc,2\n\"d\",3\nlast,4\n";
        for n in 1..8 {
            for r in split_records(data, 2, n) {
                assert!(r.start == 2 || data[r.start - 1] == b'\n');
                // Never inside the quoted "a\nb".
                assert_ne!(r.start, 5);
            }
        }
        let all: usize = split_records(data, 2, 3).iter().map(|r| r.len()).sum();
        assert_eq!(all, data.len() - 2);
    }

    /// Every split of a file with quoted newlines parses to the same records as one pass.
    #[test]
    fn any_split_parses_like_one_pass() {
        let mut data = b"h1,h2\n".to_vec();
        for i in 0..300 {
            match i % 4 {
                0 => data.extend_from_slice(format!("a{i},\"multi\nline {i}\"\n").as_bytes()),
                1 => data.extend_from_slice(format!("\"q\"\"{i}\",x\n").as_bytes()),
                2 => data.extend_from_slice(b"\n"),
                _ => data.extend_from_slice(format!("plain{i},y\n").as_bytes()),
            }
        }
        let parse = |range: Range<usize>| {
            let mut reader = RecordReader::default();
            let mut rec = RecordBuf::default();
            let mut out = Vec::new();
            let mut pos = range.start;
            while let Some(n) = reader.read(&data[pos..range.end], &mut rec) {
                if !(rec.len() == 1 && rec.get(0).is_empty()) {
                    out.push(
                        (0..rec.len())
                            .map(|i| rec.get(i).to_vec())
                            .collect::<Vec<_>>(),
                    );
                }
                pos += n;
            }
            out
        };
        let whole = parse(6..data.len());
        assert_eq!(whole.len(), 225);
        for n in 1..40 {
            let pieces: Vec<_> = split_records(&data, 6, n)
                .into_iter()
                .flat_map(parse)
                .collect();
            assert_eq!(pieces, whole, "split into {n}");
        }
    }

    #[test]
    fn reads_records_with_quotes_and_without_final_newline() {
        let mut reader = RecordReader::default();
        let mut rec = RecordBuf::default();
        let data = b"\"Chen, Alice\",\"say \"\"hi\"\"\"\nx,y";
        let n = reader.read(data, &mut rec).unwrap();
        assert_eq!(
            (rec.len(), rec.get(0), rec.get(1)),
            (2, &b"Chen, Alice"[..], &b"say \"hi\""[..])
        );
        let m = reader.read(&data[n..], &mut rec).unwrap();
        assert_eq!(
            (rec.get(0), rec.get(1), n + m),
            (&b"x"[..], &b"y"[..], data.len())
        );
        assert!(reader.read(&data[n + m..], &mut rec).is_none());
    }

    #[test]
    fn stray_and_unterminated_quotes_are_found() {
        assert_eq!(check_quotes(b"a,\"b\",c\n"), Ok(()));
        assert_eq!(check_quotes(b"a,\"b\"\"x\",c\n"), Ok(()));
        assert_eq!(check_quotes(b"a,5\" tv,c\n"), Err(3));
        assert_eq!(check_quotes(b"a,\"b\"x,c\n"), Err(5));
        assert_eq!(check_quotes(b"a,\"open"), Err(2));
    }

    #[test]
    fn line_numbers_are_one_based() {
        assert_eq!(line_of(b"a\nb\nc", 0), 1);
        assert_eq!(line_of(b"a\nb\nc", 4), 3);
    }
}
