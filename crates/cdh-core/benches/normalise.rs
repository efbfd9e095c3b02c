//! Phone normalisation speed: the crate's parser, the fast path, and the warm cache.
//!
//! Each iteration parses the same fixed mix of 1,000 realistic raw values (mostly TW numbers
//! written every which way, some foreign, some junk), so time per iteration / 1,000 is the
//! cost of one number. `parse_fast_only` runs on the ~975 values the fast path answers.

use std::hint::black_box;

use cdh_core::phone::{PhoneNormalizer, Region, parse, parse_fast, parse_with_crate};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// How many raw values the mix has.
const MIX: usize = 1_000;

/// A tiny deterministic generator (xorshift), so the mix is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// The fixed mix of raw values, with the shares a TW customer base roughly has.
fn mix() -> Vec<String> {
    let mut rng = Rng(0x5eed_cafe_f00d_d00d);
    (0..MIX)
        .map(|_| {
            let kind = rng.below(100);
            let m = rng.digits(8);
            let (a, b, c) = (&m[..2], &m[2..5], &m[5..]);
            match kind {
                0..=19 => format!("09{a}-{b}-{c}"),
                20..=34 => format!("09{a}{b}{c}"),
                35..=41 => format!("09{a} {b} {c}"),
                42..=49 => format!("+886 9{a} {b} {c}"),
                50..=54 => format!("+886-9{a}-{b}-{c}"),
                55..=57 => format!("+8869{a}{b}{c}"),
                58..=65 => format!("02-2{}-{}", &m[..3], &m[3..7]),
                66..=70 => format!("(02) 2{} {}", &m[..3], &m[3..7]),
                71..=74 => format!("0{}-{}-{}", 4 + rng.below(4), &m[..3], &m[3..7]),
                75..=76 => format!("002-886-9{a}-{b}-{c}"),
                77..=79 => format!("+1 (415) 555-{}", &m[..4]),
                80..=82 => format!("+81 90-{}-{}", &m[..4], &m[4..]),
                83..=84 => format!("+44 20 79{} {}", &m[..2], &m[2..6]),
                85..=86 => format!("+852 9{} {}", &m[..3], &m[3..7]),
                87..=88 => format!("+65 9{} {}", &m[..3], &m[3..7]),
                89 => format!("+60 12-{} {}", &m[..3], &m[3..7]),
                90..=93 => format!("09{a}-{b}"),
                94..=96 => {
                    let n = 1 + rng.below(12) as usize;
                    rng.digits(n)
                }
                97 => format!("+886 {}", &m[..4]),
                98 => "0912-345-678 ext. 12".to_owned(),
                _ => format!("tel:+886-9{a}-{b}-{c}"),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let tw = Region::parse("TW").expect("TW is a region");
    let raws = mix();
    let answered = raws.iter().filter(|r| parse_fast(r, tw).is_some()).count();
    eprintln!("fast path answers {answered} of {MIX} values");

    let mut group = c.benchmark_group("phone");
    group.throughput(Throughput::Elements(MIX as u64));
    group.bench_function("parse_with_crate", |b| {
        b.iter(|| {
            for raw in &raws {
                black_box(parse_with_crate(black_box(raw), tw)).ok();
            }
        })
    });
    // The fast path alone, on the values it answers: its cost per number.
    let handled: Vec<&String> = raws
        .iter()
        .filter(|r| parse_fast(r, tw).is_some())
        .collect();
    group.throughput(Throughput::Elements(handled.len() as u64));
    group.bench_function("parse_fast_only", |b| {
        b.iter(|| {
            for raw in &handled {
                black_box(parse_fast(black_box(raw), tw));
            }
        })
    });
    group.throughput(Throughput::Elements(MIX as u64));
    group.bench_function("parse_fast_then_crate", |b| {
        b.iter(|| {
            for raw in &raws {
                black_box(parse(black_box(raw), tw)).ok();
            }
        })
    });
    let mut normalizer = PhoneNormalizer::new(tw);
    for raw in &raws {
        normalizer.normalize(raw).ok();
    }
    group.bench_function("normalizer_warm_cache", |b| {
        b.iter(|| {
            for raw in &raws {
                black_box(normalizer.normalize(black_box(raw))).ok();
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
