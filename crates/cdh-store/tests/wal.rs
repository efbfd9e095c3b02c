//! SQLite's write-ahead log: a checkpoint lets the next write start it over, so the WAL stays
//! the size of the writes since the last checkpoint instead of growing with every write.

use cdh_store::AnyStore;

use crate::support::{TestStore, hub, upsert};

/// Frames in the WAL now, read by a checkpoint on a connection of the test's own.
async fn wal_frames(t: &TestStore) -> i64 {
    use sqlx::Connection;
    let url = t.sqlite_url().expect("a SQLite store");
    let mut c = sqlx::SqliteConnection::connect(url)
        .await
        .expect("raw connect");
    let (_busy, log, _copied): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut c)
        .await
        .expect("wal_checkpoint");
    log
}

#[tokio::test]
async fn a_checkpoint_lets_the_next_write_start_the_wal_over() {
    let t = TestStore::sqlite().await;
    let h = hub(&t.store).await;
    let n = 60;
    for i in 0..n {
        let email = format!("p{i}@example.com");
        upsert(
            &t.store,
            h.id,
            h.email_caac,
            &format!("c{i}"),
            &[("display_email", &email)],
        )
        .await;
    }
    // Every upsert commits at least one frame, so a WAL that was never started over holds at
    // least `n` frames by now.
    let AnyStore::Sqlite(sqlite) = &t.store else {
        unreachable!("a SQLite store")
    };
    sqlite.checkpoint().await.expect("checkpoint");
    upsert(
        &t.store,
        h.id,
        h.email_caac,
        "last",
        &[("display_email", "last@example.com")],
    )
    .await;
    let frames = wal_frames(&t).await;
    assert!(
        frames > 0 && frames < i64::from(n),
        "after a checkpoint the WAL should hold only the last write's frames, holds {frames}"
    );
    t.finish(h.id).await;
}

/// An in-memory database would be a different database on each of the store's connections
/// (its writer connection, sqlx's writer, its readers): it is refused, with a message that says so.
#[tokio::test]
async fn an_in_memory_database_is_refused() {
    let refused = cdh_store::SqliteStore::open("sqlite::memory:").await;
    match refused {
        Err(cdh_store::StoreError::Invalid(message)) => {
            assert!(message.contains("needs a database file"), "{message}");
        }
        other => panic!("expected Invalid, got {:?}", other.map(|_| "a store")),
    }
}
