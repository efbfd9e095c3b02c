//! Appending CSV records to a byte buffer, as the csv crate writes them, without its per-byte
//! state machine.

/// A CSV record writer over a borrowed buffer: fields are quoted only when they hold a comma, a
/// quote or a line break (the csv crate's `QuoteStyle::Necessary`), quotes are doubled, and
/// records end with `\n`.
pub struct CsvOut<'b> {
    buf: &'b mut Vec<u8>,
    n_fields: usize,
    record_start: usize,
}

impl<'b> CsvOut<'b> {
    /// Starts writing records at the end of `buf`.
    pub fn new(buf: &'b mut Vec<u8>) -> Self {
        let record_start = buf.len();
        Self {
            buf,
            n_fields: 0,
            record_start,
        }
    }

    /// Appends one field to the current record.
    pub fn field(&mut self, bytes: &[u8]) {
        if self.n_fields > 0 {
            self.buf.push(b',');
        }
        self.n_fields += 1;
        if needs_quotes(bytes) {
            self.buf.push(b'"');
            for &b in bytes {
                if b == b'"' {
                    self.buf.push(b'"');
                }
                self.buf.push(b);
            }
            self.buf.push(b'"');
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    /// Ends the current record.
    pub fn end_record(&mut self) {
        // A record of one empty field would be a blank line, which readers skip: the csv crate
        // writes it as `""`.
        if self.n_fields == 1 && self.buf.len() == self.record_start {
            self.buf.extend_from_slice(b"\"\"");
        }
        self.buf.push(b'\n');
        self.n_fields = 0;
        self.record_start = self.buf.len();
    }
}

/// Whether `bytes` holds a byte that forces quoting (`,` `"` `\n` `\r`), eight bytes at a time:
/// a word has a byte equal to `b` exactly when `w ^ (b * ONES)` has a zero byte.
fn needs_quotes(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let has_zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS != 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let w = <[u8; 8]>::try_from(chunk).map_or(0, u64::from_le_bytes);
        if has_zero_byte(w ^ (ONES * u64::from(b',')))
            | has_zero_byte(w ^ (ONES * u64::from(b'"')))
            | has_zero_byte(w ^ (ONES * u64::from(b'\n')))
            | has_zero_byte(w ^ (ONES * u64::from(b'\r')))
        {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};

    use super::*;

    #[test]
    fn writes_what_the_csv_crate_writes() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let alphabet = ["a", "1", ",", "\"", "\n", "\r", " ", "é", "|", "#"];
        let mut ours = Vec::new();
        let mut theirs = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        for _ in 0..5_000 {
            let n_fields = rng.random_range(1..5);
            let fields: Vec<String> = (0..n_fields)
                .map(|_| {
                    // Past eight bytes too, where fields are checked a word at a time.
                    let len = rng.random_range(0..20);
                    (0..len)
                        .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                        .collect()
                })
                .collect();
            let mut out = CsvOut::new(&mut ours);
            for f in &fields {
                out.field(f.as_bytes());
            }
            out.end_record();
            theirs.write_record(&fields).unwrap();
        }
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs.into_inner().unwrap())
        );
    }
}
