//! Measures auto-unifying upserts (one contact per transaction) and an apply on SQLite.
//!
//! `cargo run -p cdh-store --example bench -- [stored contacts] [measured upserts]`; with
//! `CDH_BENCH_PG=postgres://...` it runs on PostgreSQL in a schema of its own, dropped after.

use std::collections::BTreeMap;
use std::time::Instant;

use cdh_store::model::{ContactInput, NewChannel, UnifySetting};
use cdh_store::{AnyStore, ApplyOptions, PgStore, SqliteStore, Store};

fn contact(channel: i64, i: usize) -> ContactInput {
    // Every fourth contact shares a phone with the one before it, so upserts join and merge.
    let phone = format!("09{:08}", 10_000_000 + i / 4 * 3 + i % 3);
    let mut fields = BTreeMap::new();
    fields.insert(
        "display_email".to_owned(),
        Some(format!("u{i}@example.com")),
    );
    fields.insert("display_mobile".to_owned(), Some(phone));
    fields.insert("customer_id".to_owned(), Some(format!("M{}", i / 2)));
    fields.insert("display_name".to_owned(), Some(format!("User {i}")));
    ContactInput {
        channel_id: channel,
        external_id: format!("x{i}"),
        fields,
        ..ContactInput::default()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let stored = args.next().unwrap_or(50_000);
    let measured = args.next().unwrap_or(5_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bench.sqlite");
    let pg = std::env::var("CDH_BENCH_PG").ok();
    let schema = format!("bench_{}", rand::random::<u32>());
    let store = match &pg {
        Some(url) => AnyStore::Postgres(
            PgStore::open_in_schema(url, Some(&schema))
                .await
                .expect("open"),
        ),
        None => AnyStore::Sqlite(
            SqliteStore::open(&format!("sqlite://{}", path.display()))
                .await
                .expect("open"),
        ),
    };
    let hub = store.create_hub("bench").await.expect("hub");
    let org = store
        .create_organization(hub, "org", "TW")
        .await
        .expect("org");
    let channel = NewChannel {
        organization_id: org,
        channel_type: "email".into(),
        product: "caac".into(),
        name: "email".into(),
        external_account_id: "acct".into(),
    };
    let channel = store.create_channel(hub, &channel).await.expect("channel");
    let keys = UnifySetting {
        keys: vec!["display_email".into(), "display_mobile".into()],
        excluded: vec![],
    };
    let task = store.start_apply(hub, &keys, "bench").await.expect("start");
    store
        .run_apply(hub, task, &ApplyOptions::default())
        .await
        .expect("apply");

    let started = Instant::now();
    for i in 0..stored {
        store
            .upsert_contact(hub, &contact(channel, i), "bench")
            .await
            .expect("upsert");
    }
    println!(
        "preloaded {stored} contacts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let mut latencies = Vec::with_capacity(measured);
    let started = Instant::now();
    for i in stored..stored + measured {
        let one = Instant::now();
        store
            .upsert_contact(hub, &contact(channel, i), "bench")
            .await
            .expect("upsert");
        latencies.push(one.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "upserts with {stored} stored: {:.0}/s, p50 {:?}, p99 {:?}",
        measured as f64 / secs,
        p(0.50),
        p(0.99)
    );

    let keys = UnifySetting {
        keys: vec![
            "display_email".into(),
            "display_mobile".into(),
            "customer_id".into(),
        ],
        excluded: vec![],
    };
    let task = store.start_apply(hub, &keys, "bench").await.expect("start");
    let started = Instant::now();
    let done = store
        .run_apply(hub, task, &ApplyOptions::default())
        .await
        .expect("apply");
    println!(
        "apply of 3 keys over {} contacts: {:.2} s, result {}",
        stored + measured,
        started.elapsed().as_secs_f64(),
        done.result.unwrap_or_default()
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(path.with_extension("sqlite-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    if pg.is_none() {
        println!(
            "database size: {} bytes per contact",
            size / (stored + measured) as u64
        );
    }
    let problems = store.check_invariants(hub).await.expect("check");
    println!(
        "invariants: {}",
        if problems.is_empty() {
            "hold".to_owned()
        } else {
            problems.join("; ")
        }
    );
    if let (Some(url), AnyStore::Postgres(p)) = (&pg, &store) {
        p.close().await;
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&pool)
            .await
            .expect("drop");
    }
}
