//! Compact pieces of the loader: row offsets in 4 bytes a row, and the per-shard streams of
//! normalised values that parsing hands to interning, and the parallel read of the file.

use std::path::Path;

use rayon::prelude::*;

/// The byte offset where each data row starts, in 4 bytes a row: the low 32 bits per row, and
/// the rows where the high word steps up (none for files under 4 GiB).
#[derive(Debug, Default)]
pub struct RowStarts {
    low: Vec<u32>,
    /// `steps[k]` is the first row whose start is at least `(k + 1) << 32`.
    steps: Vec<u32>,
}

impl RowStarts {
    pub(super) fn with_capacity(n: usize) -> Self {
        Self {
            low: Vec::with_capacity(n),
            steps: Vec::new(),
        }
    }

    /// Appends the next row's start (never below the previous one's).
    pub(super) fn push(&mut self, start: u64) {
        while start >> 32 > self.steps.len() as u64 {
            self.steps.push(self.low.len() as u32);
        }
        self.low.push(start as u32);
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.low.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.low.is_empty()
    }

    /// Where row `i` starts.
    pub fn get(&self, i: usize) -> usize {
        let high = self.steps.partition_point(|&s| s as usize <= i);
        (high << 32) | self.low[i] as usize
    }
}

/// Appends one value to a shard's stream (a shard's stream in a chunk).
pub(super) fn put_value(stream: &mut Vec<u8>, slot: u8, value: &str) {
    stream.push(slot);
    match u8::try_from(value.len()) {
        Ok(len) if len < u8::MAX => stream.push(len),
        _ => {
            stream.push(u8::MAX);
            stream.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
    }
    stream.extend_from_slice(value.as_bytes());
}

/// Reads the value at `*at` of a shard's stream and steps past it.
pub(super) fn next_value<'a>(stream: &'a [u8], at: &mut usize) -> (u8, &'a str) {
    let slot = stream[*at];
    let mut len = stream[*at + 1] as usize;
    *at += 2;
    if len == u8::MAX as usize {
        let b = &stream[*at..*at + 4];
        len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        *at += 4;
    }
    let bytes = &stream[*at..*at + len];
    *at += len;
    // The stream was written from `&str`s, whole.
    (slot, std::str::from_utf8(bytes).unwrap_or_default())
}

/// Reads a whole file with `threads` positioned reads at once: one thread copying a large
/// file out of the page cache (and faulting in the buffer) is serial work with the other
/// cores idle.
pub(super) fn read_parallel(path: &Path, threads: usize) -> std::io::Result<Vec<u8>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_starts_past_4_gib() {
        let starts = [
            0u64,
            10,
            (1 << 32) - 1,
            1 << 32,
            (1 << 32) + 7,
            (3 << 32) + 1,
        ];
        let mut rows = RowStarts::with_capacity(starts.len());
        for &s in &starts {
            rows.push(s);
        }
        assert_eq!(rows.len(), starts.len());
        for (i, &s) in starts.iter().enumerate() {
            assert_eq!(rows.get(i) as u64, s, "row {i}");
        }
    }

    #[test]
    fn streams_read_back_what_was_written() {
        let long = "x".repeat(300);
        let values = [
            (0u8, "U0123"),
            (3, ""),
            (1, long.as_str()),
            (2, "é@example.com"),
        ];
        let mut stream = Vec::new();
        for (slot, v) in values {
            put_value(&mut stream, slot, v);
        }
        let mut at = 0;
        for (slot, v) in values {
            assert_eq!(next_value(&stream, &mut at), (slot, v));
        }
        assert_eq!(at, stream.len());
    }

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
