//! The store benchmark: auto-unifying upserts, an apply, and database size, on SQLite or PostgreSQL.
//!
//! `cargo run --release -p cdh-store --example bench -- [stored contacts] [upserts per round] [rounds]`
//! (defaults 100000, 2000, 5). With `CDH_BENCH_PG=postgres://...` it runs on PostgreSQL in a
//! schema of its own, dropped after, and also measures 16 concurrent clients.
//!
//! 1. Seeds the stored contacts in bulk (multi-row inserts / `COPY`), each its own profile,
//!    as a hub looks before any unify key is set.
//! 2. Applies three unify keys (email, mobile, customer id) over all of them: timed.
//! 3. Upserts new contacts one per transaction (a mix of created, joined and merged): rounds,
//!    median throughput, p50/p99 latency over all rounds.
//!    With `CDH_BENCH_SETTLE=1`, checkpoints before the rounds (PostgreSQL: vacuums too).
//! 4. Grows one profile to thousands of members: p99 of its first and last upserts.
//! 5. PostgreSQL only: 16 clients upserting at once.
//! 6. Database size per contact, and the invariants checker.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use cdh_store::clock::system_now as now_ms;
use cdh_store::model::{ChannelId, ContactInput, FieldValue, HubId, NewChannel, UnifySetting};
use cdh_store::rules::{normalizer, scope_name};
use cdh_store::{AnyStore, ApplyOptions, Contacts, PgStore, SqliteStore};

/// The allocator `cdh serve` runs with, so the figures are the server's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Contact ids the seed uses, far above anything the store hands out before it.
const SEED_BASE: i64 = 1_000_000_000_000;

/// One generated contact: every group of four shares a phone between its first and last
/// member and a customer id within each pair, so the three keys make profiles of four.
fn contact(channel: ChannelId, i: usize) -> ContactInput {
    let mut fields = BTreeMap::new();
    for (name, value) in raw_fields(i) {
        fields.insert(name.to_owned(), Some(value));
    }
    ContactInput {
        channel_id: channel,
        external_id: format!("x{i}"),
        fields,
        ..ContactInput::default()
    }
}

fn raw_fields(i: usize) -> [(&'static str, String); 4] {
    [
        ("display_email", format!("u{i}@example.com")),
        (
            "display_mobile",
            format!("09{:08}", 10_000_000 + i / 4 * 3 + i % 3),
        ),
        // One customer id per group of four: a profile holds one (customer ids are unique).
        ("customer_id", format!("M{}", i / 4)),
        ("display_name", format!("User {i}")),
    ]
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let stored = args.next().unwrap_or(100_000);
    let per_round = args.next().unwrap_or(2_000);
    let rounds = args.next().unwrap_or(5).max(1);
    let dir = tempfile::tempdir().expect("temp dir");
    // CDH_BENCH_DIR keeps the SQLite file for a look afterwards.
    let path = std::env::var("CDH_BENCH_DIR")
        .map_or_else(|_| dir.path().to_path_buf(), std::path::PathBuf::from)
        .join("bench.sqlite");
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
    let backend = if pg.is_some() { "postgres" } else { "sqlite" };
    println!("backend {backend}, {stored} stored contacts, {rounds} rounds of {per_round} upserts");
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
    let scope = scope_name(org, None, false, "caac", false, false);

    let started = Instant::now();
    match &pg {
        Some(url) => seed_postgres(url, &schema, hub, channel, &scope, stored).await,
        None => seed_sqlite(&path, hub, channel, &scope, stored).await,
    }
    println!(
        "seeded {stored} contacts in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let keys = UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: vec![
            "display_email".into(),
            "display_mobile".into(),
            "customer_id".into(),
        ],
        excluded: vec![],
    };
    let task = store
        .start_apply(hub, org, &keys, "bench")
        .await
        .expect("start");
    let started = Instant::now();
    let done = store
        .run_apply(hub, task, &ApplyOptions::default())
        .await
        .expect("apply");
    println!(
        "apply of 3 keys over {stored} contacts: {:.2} s, {} {}",
        started.elapsed().as_secs_f64(),
        done.status,
        done.result.unwrap_or_default()
    );

    // CDH_BENCH_SETTLE=1: before the rounds, a checkpoint (SQLite: the WAL copied back into
    // the file, and the file fsynced, so the kernel is not writing the apply's pages back
    // meanwhile; PostgreSQL: a vacuum of the tables the apply rewrote, then a checkpoint), so
    // they measure upserts rather than the apply's aftermath.
    if std::env::var_os("CDH_BENCH_SETTLE").is_some() {
        let started = Instant::now();
        match (&pg, &store) {
            (Some(url), _) => settle_postgres(url, &schema).await,
            (None, AnyStore::Sqlite(s)) => {
                s.checkpoint().await.expect("checkpoint");
                let file = std::fs::File::open(&path).expect("the database file");
                tokio::task::spawn_blocking(move || file.sync_all())
                    .await
                    .expect("fsync")
                    .expect("fsync");
            }
            (None, AnyStore::Postgres(_)) => unreachable!("PostgreSQL without a URL"),
        }
        println!("settled in {:.1} s", started.elapsed().as_secs_f64());
    }

    // On a worker thread of the runtime, as the server's request handlers run.
    let writer = store.clone();
    let (mut latencies, rates) = tokio::spawn(async move {
        let mut latencies = Vec::with_capacity(per_round * rounds);
        let mut rates = Vec::with_capacity(rounds);
        let mut next = stored;
        for _ in 0..rounds {
            let started = Instant::now();
            for i in next..next + per_round {
                let one = Instant::now();
                writer
                    .upsert_contact(hub, &contact(channel, i), "bench")
                    .await
                    .expect("upsert");
                latencies.push(one.elapsed());
            }
            rates.push(per_round as f64 / started.elapsed().as_secs_f64());
            next += per_round;
        }
        (latencies, rates)
    })
    .await
    .expect("the upserts");
    let mut next = stored + per_round * rounds;
    latencies.sort_unstable();
    println!(
        "upserts with {stored}+ stored, one writer: median {:.0}/s (rounds {:?}), p50 {:?}, p99 {:?}",
        median(rates.clone()),
        rates.iter().map(|r| r.round() as i64).collect::<Vec<_>>(),
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99)
    );

    // One profile growing: every contact shares one customer id.
    let grow = per_round.max(1000);
    let mut growth = Vec::with_capacity(grow);
    for i in 0..grow {
        let mut input = contact(channel, next + i);
        input
            .fields
            .insert("customer_id".into(), Some("HOT".into()));
        let one = Instant::now();
        store
            .upsert_contact(hub, &input, "bench")
            .await
            .expect("upsert");
        growth.push(one.elapsed());
    }
    next += grow;
    let tenth = grow / 10;
    let mut first = growth[..tenth].to_vec();
    let mut last = growth[grow - tenth..].to_vec();
    first.sort_unstable();
    last.sort_unstable();
    println!(
        "one profile growing to {grow} members: first {tenth} p50 {:?} p99 {:?}, last {tenth} p50 {:?} p99 {:?}",
        percentile(&first, 0.5),
        percentile(&first, 0.99),
        percentile(&last, 0.5),
        percentile(&last, 0.99)
    );

    if let AnyStore::Postgres(p) = &store {
        let clients = 16;
        let each = per_round;
        let mut rates = Vec::new();
        for _ in 0..rounds.min(3) {
            let started = Instant::now();
            let mut handles = Vec::new();
            for c in 0..clients {
                let p = p.clone();
                let from = next + c * each;
                handles.push(tokio::spawn(async move {
                    for i in from..from + each {
                        p.upsert_contact(hub, &contact(channel, i), "bench")
                            .await
                            .expect("upsert");
                    }
                }));
            }
            for h in handles {
                h.await.expect("client");
            }
            next += clients * each;
            rates.push((clients * each) as f64 / started.elapsed().as_secs_f64());
        }
        println!(
            "upserts from {clients} concurrent clients: median {:.0}/s (rounds {:?}), {} of {} in shared transactions",
            median(rates.clone()),
            rates.iter().map(|r| r.round() as i64).collect::<Vec<_>>(),
            p.batched_upserts(),
            clients * each * rates.len()
        );
    }

    let contacts = next as u64;
    match &pg {
        Some(url) => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let (bytes,): (i64,) = sqlx::query_as(
                "SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'r'",
            )
            .bind(&schema)
            .fetch_one(&pool)
            .await
            .expect("size");
            println!(
                "database size: {} MB, {} bytes per contact",
                bytes >> 20,
                bytes as u64 / contacts
            );
        }
        None => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .expect("connect");
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await
                .expect("checkpoint");
            let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            println!(
                "database size: {} MB, {} bytes per contact",
                bytes >> 20,
                bytes / contacts
            );
        }
    }
    let started = Instant::now();
    let problems = store.check_invariants(hub).await.expect("check");
    println!(
        "invariants ({:.1} s): {}",
        started.elapsed().as_secs_f64(),
        if problems.is_empty() {
            "hold".to_owned()
        } else {
            problems.join("; ")
        }
    );
    if let (Some(url), AnyStore::Postgres(p)) = (&pg, &store) {
        p.close().await;
        PgStore::drop_schema(url, &schema)
            .await
            .expect("drop schema");
    }
}

/// The rows of one seeded contact: (contact row fields JSON, identifiers (field, value)).
fn seed_rows(
    normalizer: &mut cdh_core::Normalizer,
    i: usize,
    at: i64,
) -> (String, Vec<(&'static str, String)>) {
    let fields: BTreeMap<&str, FieldValue> = raw_fields(i)
        .into_iter()
        .map(|(name, value)| {
            (
                name,
                FieldValue {
                    value,
                    updated_at: at,
                },
            )
        })
        .collect();
    let mut identifiers = Vec::new();
    for field in cdh_core::field::BUILT_IN_FIELDS.iter() {
        if let Some(raw) = fields.get(field.name())
            && let Ok(value) = normalizer.normalize(field, &raw.value)
        {
            identifiers.push((field.name(), value));
        }
    }
    (serde_json::to_string(&fields).expect("json"), identifiers)
}

fn seed_normalizer() -> cdh_core::Normalizer {
    normalizer(
        "TW",
        &UnifySetting {
            unique_fields: cdh_store::model::default_unique_fields(),
            keys: vec![],
            excluded: vec![],
        },
    )
    .expect("normalizer")
}

/// Contacts, identifiers, one profile and membership each, in multi-row inserts.
async fn seed_sqlite(
    path: &std::path::Path,
    hub: HubId,
    channel: ChannelId,
    scope: &str,
    n: usize,
) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let mut normalizer = seed_normalizer();
    let at = now_ms();
    let mut tx = pool.begin().await.expect("begin");
    const ROWS: usize = 500;
    for start in (0..n).step_by(ROWS) {
        let end = (start + ROWS).min(n);
        let mut contacts = String::new();
        let mut identifiers = String::new();
        let mut profiles = String::new();
        let mut members = String::new();
        for i in start..end {
            let id = SEED_BASE + i as i64;
            let pid = SEED_BASE + (n + i) as i64;
            let (fields, ids) = seed_rows(&mut normalizer, i, at);
            let sep = if i == start { "" } else { "," };
            contacts.push_str(&format!(
                "{sep}({hub},{id},{channel},'x{i}','{scope}','{}','[]','{{}}','[]',{at},{at})",
                fields.replace('\'', "''")
            ));
            for (f, v) in ids {
                if !identifiers.is_empty() {
                    identifiers.push(',');
                }
                identifiers.push_str(&format!("({hub},{id},'{f}','{v}','{scope}')"));
            }
            profiles.push_str(&format!("{sep}({hub},{pid},{id},{id},1,NULL,{at},{at})"));
            members.push_str(&format!("{sep}({hub},{id},{pid})"));
        }
        for sql in [
            format!(
                "INSERT INTO contacts (hub_id, id, channel_id, external_id, scope, fields, tags, custom_fields, invalid_fields, created_at, updated_at) VALUES {contacts}"
            ),
            format!(
                "INSERT INTO identifiers (hub_id, contact_id, field, value, scope) VALUES {identifiers}"
            ),
            format!(
                "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, member_count, merged_into, created_at, updated_at) VALUES {profiles}"
            ),
            format!("INSERT INTO memberships (hub_id, contact_id, bucket_id) VALUES {members}"),
        ] {
            sqlx::raw_sql(&sql).execute(&mut *tx).await.expect("seed");
        }
    }
    sqlx::query("UPDATE hubs SET next_id = $2 WHERE hub_id = $1")
        .bind(hub)
        .bind(SEED_BASE + 2 * n as i64 + 1)
        .execute(&mut *tx)
        .await
        .expect("counter");
    tx.commit().await.expect("commit");
    sqlx::query("ANALYZE")
        .execute(&pool)
        .await
        .expect("analyze");
    pool.close().await;
}

/// The same rows with `COPY`.
/// Vacuums and analyses the tables an apply rewrites, then checkpoints.
async fn settle_postgres(url: &str, schema: &str) {
    use sqlx::Connection;
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let mut conn = sqlx::PgConnection::connect_with(&options.options([("search_path", schema)]))
        .await
        .expect("connect");
    for statement in [
        "VACUUM (ANALYZE) profiles, memberships, merge_ledger, events, contacts, identifiers",
        "CHECKPOINT",
    ] {
        sqlx::query(statement)
            .execute(&mut conn)
            .await
            .expect("settle");
    }
}

async fn seed_postgres(
    url: &str,
    schema: &str,
    hub: HubId,
    channel: ChannelId,
    scope: &str,
    n: usize,
) {
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .expect("connect");
    let mut normalizer = seed_normalizer();
    let at = now_ms();
    let mut contacts = String::new();
    let mut identifiers = String::new();
    let mut profiles = String::new();
    let mut members = String::new();
    for i in 0..n {
        let id = SEED_BASE + i as i64;
        let pid = SEED_BASE + (n + i) as i64;
        let (fields, ids) = seed_rows(&mut normalizer, i, at);
        contacts.push_str(&format!(
            "{hub}\t{id}\t{channel}\tx{i}\t{scope}\t{}\t[]\t{{}}\t[]\t{at}\t{at}\n",
            fields.replace('\\', "\\\\")
        ));
        for (f, v) in ids {
            identifiers.push_str(&format!("{hub}\t{id}\t{f}\t{v}\t{scope}\n"));
        }
        profiles.push_str(&format!("{hub}\t{pid}\t{id}\t{id}\t1\t\\N\t{at}\t{at}\n"));
        members.push_str(&format!("{hub}\t{id}\t{pid}\n"));
    }
    let mut conn = pool.acquire().await.expect("conn");
    for (table, data) in [
        (
            "contacts (hub_id, id, channel_id, external_id, scope, fields, tags, custom_fields, invalid_fields, created_at, updated_at)",
            contacts,
        ),
        (
            "identifiers (hub_id, contact_id, field, value, scope)",
            identifiers,
        ),
        (
            "profiles (hub_id, id, origin_contact, oldest_contact, member_count, merged_into, created_at, updated_at)",
            profiles,
        ),
        ("memberships (hub_id, contact_id, bucket_id)", members),
    ] {
        let mut copy = conn
            .copy_in_raw(&format!("COPY {table} FROM STDIN"))
            .await
            .expect("copy");
        copy.send(data.into_bytes()).await.expect("send");
        copy.finish().await.expect("finish");
    }
    sqlx::query("SELECT setval('cdh_ids', $1)")
        .bind(SEED_BASE + 2 * n as i64 + 8)
        .execute(&mut *conn)
        .await
        .expect("sequence");
    sqlx::query("ANALYZE")
        .execute(&mut *conn)
        .await
        .expect("analyze");
    drop(conn);
    pool.close().await;
}
