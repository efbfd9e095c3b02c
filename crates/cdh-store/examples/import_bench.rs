//! Measures an import of 10,000 rows (the vendor's per-request maximum) into a hub that
//! already holds contacts: half the rows match stored contacts, half are created.
//!
//! `cargo run --release -p cdh-store --example import_bench -- [stored contacts] [rows]`;
//! with `CDH_BENCH_PG=postgres://...` it runs on PostgreSQL in a schema of its own.

use std::collections::BTreeMap;
use std::time::Instant;

use cdh_store::model::{ContactInput, ImportRow, ImportRows, NewChannel, UnifySetting};
use cdh_store::{AnyStore, ApplyOptions, PgStore, SqliteStore};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let stored = args.next().unwrap_or(20_000);
    let n_rows = args.next().unwrap_or(10_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let pg = std::env::var("CDH_BENCH_PG").ok();
    let schema = format!("bench_{}", rand::random::<u32>());
    let store = match &pg {
        Some(url) => AnyStore::Postgres(
            PgStore::open_in_schema(url, Some(&schema))
                .await
                .expect("open"),
        ),
        None => AnyStore::Sqlite(
            SqliteStore::open(&format!(
                "sqlite://{}",
                dir.path().join("bench.sqlite").display()
            ))
            .await
            .expect("open"),
        ),
    };
    let hub = store.create_hub("bench").await.expect("hub");
    let org = store
        .create_organization(hub, "org", "TW")
        .await
        .expect("org");
    let channel = store
        .create_channel(
            hub,
            &NewChannel {
                organization_id: org,
                channel_type: "email".into(),
                product: "caac".into(),
                name: "email".into(),
                external_account_id: "acct".into(),
            },
        )
        .await
        .expect("channel");
    let setting = UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: vec!["customer_id".into(), "display_email".into()],
        excluded: Vec::new(),
    };
    let task = store
        .start_apply(hub, org, &setting, "bench")
        .await
        .expect("apply");
    store
        .run_apply(hub, task, &ApplyOptions::default())
        .await
        .expect("apply");
    for i in 0..stored {
        let mut fields = BTreeMap::new();
        fields.insert("customer_id".to_owned(), Some(format!("M{i}")));
        fields.insert(
            "display_email".to_owned(),
            Some(format!("u{i}@example.com")),
        );
        let input = ContactInput {
            channel_id: channel,
            external_id: format!("x{i}"),
            fields,
            ..ContactInput::default()
        };
        store
            .upsert_contact(hub, &input, "bench")
            .await
            .expect("upsert");
    }
    // Every other row matches a stored customer; the rest are new.
    let rows: Vec<ImportRow> = (0..n_rows)
        .map(|i| {
            let customer = if i % 2 == 0 {
                format!("M{}", i % stored.max(1))
            } else {
                format!("NEW{i}")
            };
            let mut fields = BTreeMap::new();
            fields.insert("customer_id".to_owned(), Some(customer));
            fields.insert("display_name".to_owned(), Some(format!("Name {i}")));
            fields.insert("gender".to_owned(), None);
            ImportRow {
                row: i,
                fields,
                ..ImportRow::default()
            }
        })
        .collect();
    let started = Instant::now();
    let outcome = store
        .import_rows(
            hub,
            org,
            "customer_id",
            ImportRows::Given(&rows),
            true,
            "bench",
            None,
        )
        .await
        .expect("import");
    let elapsed = started.elapsed();
    println!(
        "import of {n_rows} rows over {stored} stored contacts ({}): {:.3} s ({:.0} rows/s); matched {}, created {}, failed {}",
        if pg.is_some() { "PostgreSQL" } else { "SQLite" },
        elapsed.as_secs_f64(),
        n_rows as f64 / elapsed.as_secs_f64(),
        outcome.matched,
        outcome.created,
        outcome.failed_rows.len()
    );
    if let (Some(url), AnyStore::Postgres(pg)) = (&pg, &store) {
        pg.close().await;
        PgStore::drop_schema(url, &schema)
            .await
            .expect("drop schema");
    }
}
