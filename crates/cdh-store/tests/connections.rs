//! PostgreSQL: upserts go on when the server closes the pool's connections.

use cdh_store::model::Unification;

use crate::support::{TestStore, apply_keys, hub, pg_url, upsert};

/// The pool pings only connections that sat idle a while, so a connection the server closed
/// just after its last use (a restart, an administrator's `pg_terminate_backend`) is handed
/// out as it is. An upsert that finds its connection closed starts again on another, before
/// it has written anything: none fails, and none is written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upserts_go_on_when_the_server_closes_the_connections() {
    let t = TestStore::postgres().await;
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    // Concurrent upserts open several of the pool's connections.
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (s, h) = (s.clone(), (h.id, h.email_caac));
            tokio::spawn(async move {
                let id = format!("before-{i}");
                upsert(&s, h.0, h.1, &id, &[("display_email", "a@x.io")]).await
            })
        })
        .collect();
    let mut first = Vec::new();
    for w in writers {
        first.push(w.await.expect("writer"));
    }
    let profile = first[0].contact.profile_id;

    let admin = sqlx::PgPool::connect(&pg_url()).await.expect("connect");
    let name = format!("cdh {}", t.schema().expect("a PostgreSQL store"));
    // The pids first: in one statement the planner may call `pg_terminate_backend` before
    // it filters, on every session of the server.
    let pids: Vec<(i32,)> =
        sqlx::query_as("SELECT pid FROM pg_stat_activity WHERE application_name = $1")
            .bind(&name)
            .fetch_all(&admin)
            .await
            .expect("activity");
    let pids: Vec<i32> = pids.into_iter().map(|p| p.0).collect();
    sqlx::query("SELECT pg_terminate_backend(p) FROM unnest($1::int[]) AS p")
        .bind(&pids)
        .execute(&admin)
        .await
        .expect("terminate");
    let closed = pids.len();
    assert!(
        closed >= 2,
        "only {closed} of the store's connections were open"
    );
    // Wait until the server has closed them all (polling, not timing).
    loop {
        let (left,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1")
                .bind(&name)
                .fetch_one(&admin)
                .await
                .expect("activity");
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    for i in 0..closed {
        let after = upsert(
            s,
            h.id,
            h.email_caac,
            &format!("after-{i}"),
            &[("display_email", "a@x.io")],
        )
        .await;
        assert_eq!(after.unification, Unification::Joined);
        assert_eq!(after.contact.profile_id, profile);
    }
    t.finish(h.id).await;
}
