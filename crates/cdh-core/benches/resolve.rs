//! Criterion benchmarks of batch and incremental resolution.
//!
//! The graph is shaped like `cdh gen` files: people with 1 to 4 contacts sharing a phone, an
//! email or a LINE uid, with some keys missing.

use std::hint::black_box;

use cdh_core::{IdentifierField, IncrementalResolver, KeyGraph, Slot, resolve};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn slots() -> Vec<Slot> {
    [
        IdentifierField::LineUid,
        IdentifierField::DisplayMobile,
        IdentifierField::DisplayEmail,
    ]
    .into_iter()
    .map(|field| Slot {
        field,
        merges: true,
        unique: false,
    })
    .collect()
}

/// Per contact: up to three (slot, value) pairs, as owned text.
fn contacts(n: usize, seed: u64) -> Vec<Vec<(u8, String)>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    let mut person = 0u64;
    while out.len() < n {
        person += 1;
        let k = rng.random_range(1..=4);
        for _ in 0..k {
            let mut values = Vec::new();
            if rng.random_bool(0.5) {
                values.push((0, format!("U{person:032x}")));
            }
            if rng.random_bool(0.6) {
                values.push((1, format!("+8869{:08}", person % 100_000_000)));
            }
            if rng.random_bool(0.5) {
                values.push((2, format!("user{person}@example.com")));
            }
            out.push(values);
        }
    }
    out.truncate(n);
    out
}

fn graph(cs: &[Vec<(u8, String)>]) -> KeyGraph {
    let mut g = KeyGraph::with_capacity(slots(), cs.len(), cs.len() * 2);
    for c in cs {
        g.add_contact(0, c.iter().map(|(s, v)| (*s, v.as_str())));
    }
    g
}

fn batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("batch_resolve");
    group.sample_size(10);
    for n in [100_000usize, 1_000_000] {
        let g = graph(&contacts(n, 1));
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &g, |b, g| {
            b.iter(|| resolve(black_box(g), None))
        });
    }
    group.finish();
}

fn incremental(c: &mut Criterion) {
    let n = 1_000_000;
    let cs = contacts(n + 200_000, 2);
    let mut resolver = IncrementalResolver::with_capacity(slots(), n + 300_000, 3 * n);
    for c in &cs[..n] {
        resolver.add_contact(0, c.iter().map(|(s, v)| (*s, v.as_str())));
    }
    let mut next = n;
    let mut group = c.benchmark_group("incremental_resolve");
    group.throughput(Throughput::Elements(1));
    group.bench_function("add_one_contact_with_1M_resolved", |b| {
        b.iter(|| {
            // Contacts beyond the first million join, merge or create profiles like real ones.
            let c = &cs[n + next % 200_000];
            next += 1;
            black_box(resolver.add_contact(0, c.iter().map(|(s, v)| (*s, v.as_str()))))
        })
    });
    group.finish();
}

criterion_group!(benches, batch, incremental);
criterion_main!(benches);
