//! Synthetic contact files for benchmarks and demos: realistic, deterministic per seed, and fast.
//!
//! People are drawn one at a time; each gets 1 to 4 contacts on distinct channels, and each
//! contact carries a channel-plausible subset of its person's keys, written in varied forms
//! (phones national or international, emails in mixed case), with a few invalid values and, when
//! asked, about 5% of contacts carrying one of [`SHARED_VALUES`] instead of their own key.
//!
//! The random draws never depend on `shared_values`, so the files with and without shared
//! values are the same row for row except for those key fields.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "gen/data.rs"]
mod data;
#[path = "gen/people.rs"]
mod people;
#[path = "gen/render.rs"]
mod render;

pub use data::SHARED_VALUES;
use data::{CHANNELS, FLUSH_AT, UPDATED_FROM, UPDATED_SPAN};
use people::Person;
use render::{
    push_bad_phone, push_date, push_email, push_hex, push_name, push_padded, push_phone,
    push_timestamp, push_u64,
};

/// The header line of a generated file (without the line end).
pub const HEADER: &str = "contact_id,channel,line_uid,display_mobile,display_email,customer_id,connect_id,display_name,gender,birthday,updated_at";

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenOptions {
    /// How many contacts (rows) to write.
    pub n_contacts: u64,
    /// The seed: the same options write the same bytes.
    pub seed: u64,
    /// Put one of [`SHARED_VALUES`] on about 5% of contacts (default true).
    pub shared_values: bool,
    /// The brand's phone region: national numbers are written for it. Only `"TW"` for now.
    pub region: &'static str,
}

impl Default for GenOptions {
    fn default() -> Self {
        Self {
            n_contacts: 1000,
            seed: 1,
            shared_values: true,
            region: "TW",
        }
    }
}

/// What was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GenStats {
    /// Rows written.
    pub n_contacts: u64,
    /// Distinct people behind them (each has 1 to 4 contacts).
    pub n_people: u64,
    /// Contacts that carry one of [`SHARED_VALUES`] (0 without `shared_values`).
    pub n_shared_value_contacts: u64,
}

/// Writes `opts.n_contacts` rows of CSV (after [`HEADER`]) to `out`, in large chunks.
pub fn generate<W: Write>(opts: &GenOptions, mut out: W) -> io::Result<GenStats> {
    if opts.region != "TW" {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "the generator has data for region TW only, not {}",
                opts.region
            ),
        ));
    }
    let mut g = Gen {
        rng: ChaCha8Rng::seed_from_u64(opts.seed),
        key: 0,
        shared: opts.shared_values,
    };
    g.key = g.rng.next_u64();
    let mut stats = GenStats {
        n_contacts: opts.n_contacts,
        ..GenStats::default()
    };
    let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
    buf.extend_from_slice(HEADER.as_bytes());
    buf.push(b'\n');
    // Some later contacts of a person are held back a while (rendered, so the draws stay in
    // order) to interleave people without making the file random.
    let mut held: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut slots: Vec<Vec<u8>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let (mut remaining, mut written, mut contact_id) = (opts.n_contacts, 0u64, 0u64);
    while remaining > 0 {
        let person = g.person(stats.n_people);
        stats.n_people += 1;
        let k = u64::from(person.n_contacts).min(remaining);
        remaining -= k;
        let mut used = 0u32;
        for j in 0..k {
            let channel = loop {
                let c = g.weighted_channel();
                if used & (1 << c) == 0 {
                    used |= 1 << c;
                    break c;
                }
            };
            contact_id += 1;
            let start = buf.len();
            stats.n_shared_value_contacts +=
                u64::from(g.contact(&person, contact_id, channel, &mut buf));
            let delay = g.delay();
            if j > 0 && delay > 0 {
                let slot = free.pop().unwrap_or_else(|| {
                    slots.push(Vec::new());
                    slots.len() - 1
                });
                slots[slot].clear();
                slots[slot].extend_from_slice(&buf[start..]);
                buf.truncate(start);
                held.push(Reverse((written + delay, slot)));
            } else {
                written += 1;
            }
            while let Some(&Reverse((due, slot))) = held.peek() {
                if due > written {
                    break;
                }
                held.pop();
                buf.extend_from_slice(&slots[slot]);
                free.push(slot);
                written += 1;
            }
            if buf.len() >= FLUSH_AT {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
    }
    while let Some(Reverse((_, slot))) = held.pop() {
        buf.extend_from_slice(&slots[slot]);
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(stats)
}

struct Gen {
    rng: ChaCha8Rng,
    /// Keys the per-person number permutations.
    key: u64,
    shared: bool,
}

impl Gen {
    /// A uniform draw in `0..n` (multiply-shift: bias below 1e-6 for the small `n` used here).
    fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.rng.next_u32()) * u64::from(n)) >> 32) as u32
    }

    fn per_mille(&mut self, p: u32) -> bool {
        self.below(1000) < p
    }

    fn weighted_channel(&mut self) -> usize {
        let mut r = self.below(1000);
        CHANNELS
            .iter()
            .position(|c| {
                r < c.1 || {
                    r -= c.1;
                    false
                }
            })
            .unwrap_or(0)
    }

    /// Rows to hold a contact back: mostly 0, sometimes a few rows, now and then thousands.
    fn delay(&mut self) -> u64 {
        match self.below(1000) {
            0..750 => 0,
            750..925 => 1 + u64::from(self.below(20)),
            _ => 1 + u64::from(self.below(5000)),
        }
    }

    /// Renders one contact row into `buf`; returns whether it carries a shared value.
    fn contact(&mut self, p: &Person, contact_id: u64, channel: usize, buf: &mut Vec<u8>) -> bool {
        let (name, keys) = (CHANNELS[channel].0, CHANNELS[channel].2);
        buf.push(b'c');
        push_u64(buf, contact_id);
        buf.push(b',');
        buf.extend_from_slice(name.as_bytes());
        buf.push(b',');
        // Draw everything first, in a fixed order, so that `shared` changes no draw.
        let (has_uid, has_phone, has_email) = (
            self.per_mille(keys[0]),
            self.per_mille(keys[1]),
            self.per_mille(keys[2]),
        );
        let (phone_form, phone_bad) = (self.below(100), self.per_mille(5));
        let (email_case, email_space, email_bad) =
            (self.below(1000), self.below(1000), self.per_mille(3));
        let (has_customer, has_connect) = (self.per_mille(400), self.per_mille(600));
        let (name_form, has_gender, has_birthday) =
            (self.below(1000), self.per_mille(650), self.per_mille(500));
        let updated = UPDATED_FROM + u64::from(self.below(UPDATED_SPAN));
        let shared_draw = self.below(1000 * SHARED_VALUES.len() as u32);
        let bad_draw = self.rng.next_u32();
        let shared = (self.shared && shared_draw % 1000 < 50)
            .then(|| SHARED_VALUES[(shared_draw / 1000) as usize]);

        if has_uid {
            buf.push(b'U');
            push_hex(buf, p.uid);
        }
        buf.push(b',');
        match shared {
            Some((true, value)) => buf.extend_from_slice(value.as_bytes()),
            _ if !has_phone => {}
            _ if phone_bad => push_bad_phone(buf, bad_draw),
            _ => push_phone(buf, &p.phone, phone_form),
        }
        buf.push(b',');
        match shared {
            Some((false, value)) => buf.extend_from_slice(value.as_bytes()),
            _ if has_email => push_email(
                buf,
                p,
                email_case,
                email_space,
                email_bad.then_some(bad_draw),
            ),
            _ => {}
        }
        buf.push(b',');
        if let (Some(c), true) = (p.customer_id, has_customer) {
            buf.push(b'M');
            push_padded(buf, c, 8);
        }
        buf.push(b',');
        if let (Some(c), true) = (p.connect_id, has_connect) {
            buf.extend_from_slice(b"CN");
            push_padded(buf, c, 8);
        }
        buf.push(b',');
        push_name(buf, p, name_form);
        buf.push(b',');
        if has_gender {
            buf.extend_from_slice(p.gender.as_bytes());
        }
        buf.push(b',');
        if let (Some((y, m, d)), true) = (p.birthday, has_birthday) {
            push_date(buf, u64::from(y), u64::from(m), u64::from(d));
        }
        buf.push(b',');
        push_timestamp(buf, updated);
        buf.push(b'\n');
        shared.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::people::permute;
    use super::*;

    fn bytes(n: u64, seed: u64, shared_values: bool) -> (Vec<u8>, GenStats) {
        let opts = GenOptions {
            n_contacts: n,
            seed,
            shared_values,
            region: "TW",
        };
        let mut out = Vec::new();
        let stats = generate(&opts, &mut out).unwrap();
        (out, stats)
    }

    fn rows(data: &[u8]) -> Vec<csv::StringRecord> {
        let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
        assert_eq!(
            reader
                .headers()
                .unwrap()
                .iter()
                .collect::<Vec<_>>()
                .join(","),
            HEADER
        );
        reader.records().map(Result::unwrap).collect()
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, _) = bytes(3000, 7, true);
        assert_eq!(a, bytes(3000, 7, true).0);
        assert_ne!(a, bytes(3000, 8, true).0);
    }

    #[test]
    fn header_rows_fields_and_ids() {
        let (data, stats) = bytes(20_000, 3, true);
        let header = format!("{HEADER}\n");
        assert!(data.starts_with(header.as_bytes()));
        let rows = rows(&data);
        assert_eq!(rows.len(), 20_000);
        assert_eq!(stats.n_contacts, 20_000);
        let mut ids = std::collections::HashSet::new();
        let mut quoted = 0;
        for row in &rows {
            assert_eq!(row.len(), 11, "{row:?}");
            assert!(ids.insert(row[0].to_owned()), "duplicate {}", &row[0]);
            quoted += usize::from(row[7].contains(','));
            let uid = &row[2];
            assert_eq!(!uid.is_empty(), &row[1] == "line");
            assert!(uid.is_empty() || uid.len() == 33 && uid.starts_with('U'));
        }
        assert!(quoted > 0, "no name exercises quoting");
        let mean = stats.n_contacts as f64 / stats.n_people as f64;
        assert!((2.0..3.0).contains(&mean), "{mean} contacts per person");
        // Not sorted: some contacts of a person come later than the next person's.
        assert!(
            rows.windows(2).any(
                |w| w[0][0][1..].parse::<u64>().unwrap() > w[1][0][1..].parse::<u64>().unwrap()
            )
        );
    }

    #[test]
    fn without_shared_values_only_those_keys_differ() {
        let (with, stats) = bytes(20_000, 11, true);
        let (without, stats_without) = bytes(20_000, 11, false);
        assert_eq!(stats_without.n_shared_value_contacts, 0);
        assert_eq!(
            (stats.n_people, stats.n_contacts),
            (stats_without.n_people, stats_without.n_contacts)
        );
        let share = stats.n_shared_value_contacts as f64 / 20_000.0;
        assert!((0.04..0.06).contains(&share), "{share}");
        let (a, b) = (rows(&with), rows(&without));
        assert_eq!(a.len(), b.len());
        let mut differing = 0;
        for (x, y) in a.iter().zip(&b) {
            let diff: Vec<usize> = (0..11).filter(|&i| x[i] != y[i]).collect();
            assert!(
                diff.is_empty() || diff == [3] || diff == [4],
                "{x:?} vs {y:?}"
            );
            if let [i] = diff[..] {
                assert!(SHARED_VALUES.iter().any(|&(_, v)| v == &x[i]));
                differing += 1;
            }
        }
        assert_eq!(differing, stats.n_shared_value_contacts);
    }

    #[test]
    fn permute_is_a_bijection() {
        for m in [2, 10, 1000, 5_600] {
            let mut seen: Vec<u64> = (0..m).map(|x| permute(x, m, 0xfeed)).collect();
            seen.sort_unstable();
            assert!(seen.iter().copied().eq(0..m));
        }
    }

    #[test]
    fn other_regions_are_refused() {
        let opts = GenOptions {
            region: "JP",
            ..GenOptions::default()
        };
        assert!(generate(&opts, std::io::sink()).is_err());
    }
}
