//! Citus readiness: every key and index of the PostgreSQL schema leads with hub_id.

use crate::support::{TestStore, pg_url};

#[tokio::test]
async fn every_key_and_index_leads_with_hub_id() {
    let t = TestStore::postgres().await;
    let schema = t.schema().expect("a PostgreSQL store").to_owned();
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
    // sqlx's own bookkeeping table stays on the coordinator (docs/scale-out.md).
    let indexes: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, ic.relname::text, a.attname::text, i.indisunique \
         FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indrelid \
         JOIN pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = i.indkey[0] \
         WHERE n.nspname = $1 AND c.relname <> '_sqlx_migrations'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("indexes");
    let foreign: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT con.conrelid::regclass::text, con.conname::text, a.attname::text, fa.attname::text \
         FROM pg_constraint con \
         JOIN pg_namespace n ON n.oid = con.connamespace \
         JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = con.conkey[1] \
         JOIN pg_attribute fa ON fa.attrelid = con.confrelid AND fa.attnum = con.confkey[1] \
         WHERE n.nspname = $1 AND con.contype = 'f'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("foreign keys");
    let tables: Vec<(String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary) \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relname <> '_sqlx_migrations'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("tables");
    pool.close().await;

    let mut problems = Vec::new();
    for (table, index, first, unique) in &indexes {
        if first != "hub_id" {
            problems.push(format!(
                "{table}: index {index} (unique: {unique}) leads with {first}"
            ));
        }
    }
    for (table, name, from, to) in &foreign {
        if from != "hub_id" || to != "hub_id" {
            problems.push(format!(
                "{table}: foreign key {name} leads with {from} -> {to}"
            ));
        }
    }
    for (table, has_pk) in &tables {
        if !has_pk {
            problems.push(format!("{table} has no primary key"));
        }
    }
    assert!(
        tables.len() >= 15 && indexes.len() >= 20 && foreign.len() >= 10,
        "the catalog query found too little: {tables:?}"
    );
    assert!(
        problems.is_empty(),
        "not ready for Citus:\n{}",
        problems.join("\n")
    );
    // No hub was written; the invariants of an unknown hub hold trivially.
    t.finish(cdh_store::model::HubId(i64::MIN)).await;
}

/// An apply's staging tables skip the write-ahead log (migration 0008); every other table keeps it.
#[tokio::test]
async fn only_the_apply_staging_tables_are_unlogged() {
    let t = TestStore::postgres().await;
    let schema = t.schema().expect("a PostgreSQL store").to_owned();
    let pool = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
    let mut unlogged: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind = 'r' AND c.relpersistence = 'u'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("tables");
    pool.close().await;
    unlogged.sort();
    assert_eq!(
        unlogged,
        [
            ("apply_profile_staging".to_owned(),),
            ("apply_staging".to_owned(),)
        ]
    );
    t.finish(cdh_store::model::HubId(i64::MIN)).await;
}
