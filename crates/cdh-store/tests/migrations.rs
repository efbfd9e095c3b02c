//! Migrations over a database that already holds data: a table a later migration rebuilds
//! keeps every row, and every row that references it; planner statistics gathered before are
//! kept.

use std::str::FromStr;

use cdh_store::SqliteStore;
use cdh_store::model::{HubId, TaskId};
use cdh_store::port::Tasks;
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// A database in `dir` made by the migrations numbered below `version` (foreign keys on, as
/// the store's migrations run): its URL and a connection to it.
async fn migrated_before(dir: &tempfile::TempDir, version: i64) -> (String, SqlitePool) {
    let url = format!("sqlite://{}", dir.path().join("old.sqlite").display());
    let options = SqliteConnectOptions::from_str(&url)
        .expect("url")
        .create_if_missing(true)
        .foreign_keys(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("connect");
    let mut before = sqlx::migrate!("migrations/sqlite");
    let kept: Vec<_> = before
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect();
    before.migrations = kept.into();
    before
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("migrations before {version}: {e}"));
    (url, pool)
}

/// The store opened on `url` (which runs the migrations not yet run), and a connection of the
/// test's own to read what they left.
async fn opened_and_migrated(url: &str) -> (SqliteStore, SqlitePool) {
    let store = SqliteStore::open(url).await.expect("opens and migrates");
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(SqliteConnectOptions::from_str(url).expect("url"))
        .await
        .expect("connect again");
    (store, pool)
}

/// A database made by the migrations before 0008, with a manual override on a profile, keeps
/// the profile and the override when the store opens it and 0008 rebuilds `profiles` without
/// rowid (the override references the profile, and migrations run with foreign keys on).
#[tokio::test]
async fn rebuilding_profiles_keeps_their_manual_overrides() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pool) = migrated_before(&dir, 8).await;
    sqlx::query(
        "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, bucket_id, \
         member_count, merged_into, created_at, updated_at) \
         VALUES (1, 10, 100, 100, 10, 1, NULL, 5, 6), (1, 11, 101, 101, 11, 1, 10, 5, 7)",
    )
    .execute(&pool)
    .await
    .expect("profiles");
    sqlx::query(
        "INSERT INTO profile_overrides (hub_id, profile_id, field, value, actor, updated_at) \
         VALUES (1, 10, 'display_name', 'Ms Override', 'admin', 8)",
    )
    .execute(&pool)
    .await
    .expect("override");
    pool.close().await;

    let (store, pool) = opened_and_migrated(&url).await;
    let overrides: Vec<(i64, i64, String, Option<String>, String, i64)> = sqlx::query_as(
        "SELECT hub_id, profile_id, field, value, actor, updated_at FROM profile_overrides",
    )
    .fetch_all(&pool)
    .await
    .expect("overrides");
    assert_eq!(
        overrides,
        vec![(
            1,
            10,
            "display_name".to_owned(),
            Some("Ms Override".to_owned()),
            "admin".to_owned(),
            8
        )]
    );
    let profiles: Vec<(i64, Option<i64>, i64)> =
        sqlx::query_as("SELECT id, merged_into, updated_at FROM profiles ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("profiles");
    assert_eq!(profiles, vec![(10, None, 6), (11, Some(10), 7)]);
    let (schema,): (String,) =
        sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'profiles'")
            .fetch_one(&pool)
            .await
            .expect("schema");
    assert!(schema.contains("WITHOUT ROWID"), "{schema}");
    let dangling: Vec<(String, Option<i64>, String, i64)> =
        sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&pool)
            .await
            .expect("foreign key check");
    assert!(dangling.is_empty(), "{dangling:?}");
    drop(store);
}

/// Migration 0009 gives a database that was never analyzed the planner statistics of a large
/// hub, and keeps the statistics of a table that was analyzed.
#[tokio::test]
async fn planner_statistics_fill_in_what_analyze_never_gathered() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pool) = migrated_before(&dir, 9).await;
    sqlx::query(
        "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, bucket_id, \
         member_count, merged_into, created_at, updated_at) \
         VALUES (1, 10, 100, 100, 10, 1, NULL, 5, 6), (1, 11, 101, 101, 11, 1, NULL, 5, 7)",
    )
    .execute(&pool)
    .await
    .expect("profiles");
    sqlx::query("ANALYZE profiles")
        .execute(&pool)
        .await
        .expect("analyze");
    pool.close().await;

    let (_store, pool) = opened_and_migrated(&url).await;
    let stat = |idx: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String,)>("SELECT stat FROM sqlite_stat1 WHERE idx = $1")
                .bind(idx)
                .fetch_all(&pool)
                .await
                .expect("stat")
                .into_iter()
                .map(|r| r.0)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(stat("profiles").await, ["2 2 1"]);
    assert_eq!(stat("memberships_by_bucket").await, ["1000000 1000000 2 1"]);
}

/// Profiles merged the old way (before SQLite's 0010 and PostgreSQL's 0013): 10 survived and
/// took over 11's bucket (the larger), and 12's members moved there; 20 is a profile that
/// absorbed 21 and kept its own bucket.
const OLD_PROFILES: &str = "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, \
     bucket_id, member_count, merged_into, created_at, updated_at) \
     VALUES (1, 10, 100, 100, 11, 3, NULL, 5, 6), (1, 11, 101, 101, 11, 2, 10, 5, 6), \
     (1, 12, 102, 102, 12, 1, 10, 5, 6), (1, 20, 200, 200, 20, 2, NULL, 5, 6), \
     (1, 21, 201, 201, 21, 1, 20, 5, 6)";
const OLD_MEMBERSHIPS: &str = "INSERT INTO memberships (hub_id, contact_id, bucket_id) \
     VALUES (1, 100, 11), (1, 101, 11), (1, 102, 11), (1, 200, 20), (1, 201, 20)";

/// Each contact's bucket, and the live profile it resolves to, after the migration.
const BUCKETS: &str = "SELECT contact_id, bucket_id FROM memberships ORDER BY contact_id";
const RESOLVED: &str = "SELECT m.contact_id, COALESCE(o.merged_into, o.id) FROM memberships m \
     JOIN profiles o ON o.hub_id = m.hub_id AND o.id = m.bucket_id ORDER BY m.contact_id";
const EXPECTED: [(i64, i64); 5] = [(100, 10), (101, 10), (102, 10), (200, 20), (201, 20)];

/// Migration 0010 over a hub merged the old way, where merges moved members into the largest
/// bucket and the survivor took that bucket over: afterwards every membership names a profile
/// by its bucket, and each contact resolves to the survivor exactly once.
#[tokio::test]
async fn survivors_members_move_to_the_bucket_of_their_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pool) = migrated_before(&dir, 10).await;
    // Memberships reference contacts; only the two tables matter here.
    for sql in ["PRAGMA foreign_keys = OFF", OLD_PROFILES, OLD_MEMBERSHIPS] {
        sqlx::query(sql).execute(&pool).await.expect("old rows");
    }
    pool.close().await;

    let (store, pool) = opened_and_migrated(&url).await;
    for sql in [BUCKETS, RESOLVED] {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql).fetch_all(&pool).await.expect(sql);
        assert_eq!(rows, EXPECTED, "{sql}");
    }
    drop(store);
}

/// Migration 0013 does on PostgreSQL what 0010 does on SQLite (see above), on the same rows.
#[tokio::test]
async fn survivors_members_move_to_the_bucket_of_their_id_on_postgres() {
    use sqlx::Connection;
    let url = crate::support::pg_url();
    let schema = format!("t_mig_{}", rand::random::<u64>());
    let mut conn = sqlx::PgConnection::connect(&url)
        .await
        .expect("PostgreSQL is needed for this test");
    for sql in [
        format!("CREATE SCHEMA {schema}"),
        format!("SET search_path TO {schema}"),
    ] {
        sqlx::query(&sql).execute(&mut conn).await.expect("schema");
    }
    let mut before = sqlx::migrate!("migrations/postgres");
    let kept: Vec<_> = before
        .migrations
        .iter()
        .filter(|m| m.version < 13)
        .cloned()
        .collect();
    before.migrations = kept.into();
    before.run(&mut conn).await.expect("migrations before 13");
    // Memberships reference contacts; only the two tables matter here.
    for sql in [
        "SET session_replication_role = replica",
        OLD_PROFILES,
        OLD_MEMBERSHIPS,
    ] {
        sqlx::query(sql).execute(&mut conn).await.expect("old rows");
    }
    conn.close().await.expect("close");

    let store = cdh_store::PgStore::open_in_schema(&url, Some(&schema))
        .await
        .expect("opens and migrates");
    let mut conn = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query(&format!("SET search_path TO {schema}"))
        .execute(&mut conn)
        .await
        .expect("search_path");
    for sql in [BUCKETS, RESOLVED] {
        let rows: Vec<(i64, i64)> = sqlx::query_as(sql).fetch_all(&mut conn).await.expect(sql);
        assert_eq!(rows, EXPECTED, "{sql}");
    }
    conn.close().await.expect("close");
    store.close().await;
    cdh_store::PgStore::drop_schema(&url, &schema)
        .await
        .expect("drop schema");
}

/// Migration 0014 moves a queued import's rows out of its params, and 0015 into the import's
/// first chunk, where the worker reads them; a finished import's params stay as they were and
/// keep no rows, and another kind's params are untouched.
#[tokio::test]
async fn a_queued_imports_rows_move_apart_from_its_params() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (url, pool) = migrated_before(&dir, 14).await;
    sqlx::query("INSERT INTO hubs (hub_id, name, created_at) VALUES (1, 'h', 0)")
        .execute(&pool)
        .await
        .expect("hub");
    sqlx::query(
        "INSERT INTO tasks (hub_id, id, kind, status, params, created_at) VALUES \
         (1, 5, 'import', 'queued', \
          '{\"import_key\":\"customer_id\",\"rows\":[{\"row\":1,\"fields\":{\"customer_id\":\"c1\"}},{\"row\":2,\"fields\":{\"customer_id\":\"c2\"}}]}', 0), \
         (1, 6, 'import', 'succeeded', '{\"import_key\":\"customer_id\"}', 0), \
         (1, 7, 'export', 'queued', '{\"format\":\"csv\",\"rows\":3}', 0)",
    )
    .execute(&pool)
    .await
    .expect("tasks");
    pool.close().await;

    let (store, pool) = opened_and_migrated(&url).await;
    let tasks: Vec<(i64, String)> = sqlx::query_as("SELECT id, params FROM tasks ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("tasks");
    let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
    assert_eq!(
        json(&tasks[0].1),
        serde_json::json!({"import_key": "customer_id"})
    );
    assert_eq!(
        json(&tasks[2].1),
        serde_json::json!({"format": "csv", "rows": 3})
    );
    let chunks: Vec<(i64, i64, i64, String)> =
        sqlx::query_as("SELECT task_id, chunk, n_rows, rows_text FROM import_chunks")
            .fetch_all(&pool)
            .await
            .expect("chunks");
    assert_eq!(chunks.len(), 1, "only the queued import keeps rows");
    assert_eq!((chunks[0].0, chunks[0].1, chunks[0].2), (5, 0, 2));
    assert_eq!(
        json(&chunks[0].3),
        serde_json::json!([
            {"row": 1, "fields": {"customer_id": "c1"}},
            {"row": 2, "fields": {"customer_id": "c2"}}
        ])
    );
    // The store reads the migrated chunk as it reads its own.
    let kept = store
        .import_task_rows(HubId(1), TaskId(5))
        .await
        .expect("rows");
    assert_eq!(kept[0].rows().expect("typed").len(), 2);
    drop(store);
}
