//! A process killed in the middle of an import: after a restart the import goes on from its
//! last committed batch and ends with the counts and events of an import never interrupted
//! (no row created twice, no `profile.created` event twice). The child is this test binary
//! again, running the import named in its environment; the parent watches the task's
//! progress and, once a batch or more has landed, kills the child mid-import and resumes the
//! import itself. Both backends.

use std::process::{Command, Stdio};
use std::time::Duration;

use cdh_store::model::{
    HubId, ImportRow, ImportRows, ImportRowsWriter, OrganizationId, TaskId, TaskStatus,
};
use cdh_store::{AnyStore, Clock, PgStore, SqliteStore};

use crate::support::{assert_invariants, hub, pg_url};

/// Rows in the import (the 10,000): 40 batches, so a kill right after the first lands
/// well before the end.
const ROWS: usize = 10_000;

fn rows() -> Vec<ImportRow> {
    (0..ROWS)
        .map(|i| ImportRow {
            row: i + 1,
            fields: [(
                "display_email".to_owned(),
                Some(format!("buyer{i}@example.com")),
            )]
            .into_iter()
            .collect(),
            ..ImportRow::default()
        })
        .collect()
}

/// Where the store lives, as the child is told.
#[derive(Clone)]
enum Place {
    Sqlite(String),
    Postgres(String),
}

async fn open(place: &Place) -> AnyStore {
    match place {
        Place::Sqlite(url) => AnyStore::Sqlite(SqliteStore::open(url).await.unwrap()),
        Place::Postgres(schema) => AnyStore::Postgres(
            PgStore::open_with(&pg_url(), Some(schema), Clock::system())
                .await
                .unwrap(),
        ),
    }
}

async fn import(store: &AnyStore, hub: HubId, org: OrganizationId, task: TaskId) -> u64 {
    let outcome = store
        .import_rows(
            hub,
            org,
            "display_email",
            ImportRows::Queued,
            true,
            "admin",
            Some(task),
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.total, outcome.matched, outcome.unmatched),
        (ROWS as u64, 0, 0),
        "{:?}",
        outcome.failed_rows.first()
    );
    assert!(outcome.failed_rows.is_empty());
    outcome.created
}

/// The child: runs the import to its end (the parent kills it long before).
async fn child(place: Place) {
    let var = |name: &str| std::env::var(name).unwrap();
    let store = open(&place).await;
    let hub: HubId = var("CDH_IMPORT_HUB").parse().unwrap();
    let org: OrganizationId = var("CDH_IMPORT_ORG").parse().unwrap();
    let task: TaskId = var("CDH_IMPORT_TASK").parse().unwrap();
    import(&store, hub, org, task).await;
}

/// On PostgreSQL, a transaction that holds every batch off (each records its progress in
/// `tasks` before it commits) until dropped, so the child is caught mid-import. SQLite has no
/// such hold (a waiting writer starves while the child writes batch after batch): there the
/// kill follows the first batch at once, long before the fortieth.
async fn hold(place: &Place) -> Option<sqlx::PgConnection> {
    use sqlx::Connection;
    match place {
        Place::Sqlite(_) => None,
        Place::Postgres(schema) => {
            let mut conn = sqlx::PgConnection::connect(&pg_url()).await.unwrap();
            sqlx::query(&format!("SET search_path TO {schema}"))
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
            // Every batch records its progress in `tasks` before it commits.
            sqlx::query("LOCK TABLE tasks IN EXCLUSIVE MODE")
                .execute(&mut conn)
                .await
                .unwrap();
            Some(conn)
        }
    }
}

async fn killed_import_resumes(name: &str, place: Place) {
    let store = open(&place).await;
    let h = hub(&store).await;
    // Queued as the server queues an import: its rows in chunks beside the task, read back
    // a chunk at a time by the child and again by the resumed import.
    let mut writer = ImportRowsWriter::default();
    for row in rows() {
        writer.push(&row);
    }
    let task = store
        .start_import_task(h.id, h.org, &serde_json::json!({}), &writer.finish())
        .await
        .unwrap();
    assert!(store.claim_task(h.id, task).await.unwrap());
    let (kind, value) = match &place {
        Place::Sqlite(url) => ("CDH_IMPORT_SQLITE", url.clone()),
        Place::Postgres(schema) => ("CDH_IMPORT_SCHEMA", schema.clone()),
    };
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1"])
        .env(kind, value)
        .env("CDH_IMPORT_HUB", h.id.to_string())
        .env("CDH_IMPORT_ORG", h.org.to_string())
        .env("CDH_IMPORT_TASK", task.to_string())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Wait for the first committed batch (polling, not timing: nothing is asserted on time).
    loop {
        let done = store.get_task(h.id, task).await.unwrap().done;
        if done > 0 {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "the child ended early");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let held = hold(&place).await;
    child.kill().unwrap();
    child.wait().unwrap();
    drop(held);
    let stopped = store.get_task(h.id, task).await.unwrap();
    assert_eq!(stopped.status, TaskStatus::Running);
    assert!(
        stopped.done > 0 && stopped.done < ROWS as i64,
        "killed mid-import: {} of {ROWS}",
        stopped.done
    );
    // The restart: the same import again, as the worker resumes it.
    assert_eq!(import(&store, h.id, h.org, task).await, ROWS as u64);
    let mut created = 0;
    let mut after = 0;
    loop {
        let page = store.events_after(h.id, h.org, after, 1000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.seq;
        created += page.iter().filter(|e| e.kind == "profile.created").count();
    }
    assert_eq!(
        created, ROWS,
        "one profile.created event per row, none twice"
    );
    assert_invariants(&store, h.id).await;
    if let (Place::Postgres(schema), AnyStore::Postgres(pg)) = (&place, &store) {
        pg.close().await;
        PgStore::drop_schema(&pg_url(), schema).await.unwrap();
    }
}

fn parent_or_child(name: &str, postgres: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(url) = std::env::var("CDH_IMPORT_SQLITE") {
        return runtime.block_on(child(Place::Sqlite(url)));
    }
    if let Ok(schema) = std::env::var("CDH_IMPORT_SCHEMA") {
        return runtime.block_on(child(Place::Postgres(schema)));
    }
    let dir = tempfile::tempdir().unwrap();
    let place = if postgres {
        Place::Postgres(format!("t_{}", rand::random::<u64>()))
    } else {
        Place::Sqlite(format!(
            "sqlite://{}",
            dir.path().join("hub.sqlite").display()
        ))
    };
    runtime.block_on(killed_import_resumes(name, place));
}

#[test]
fn a_killed_import_resumes_from_its_last_batch_sqlite() {
    parent_or_child(
        "import_crash::a_killed_import_resumes_from_its_last_batch_sqlite",
        false,
    );
}

#[test]
fn a_killed_import_resumes_from_its_last_batch_postgres() {
    parent_or_child(
        "import_crash::a_killed_import_resumes_from_its_last_batch_postgres",
        true,
    );
}
