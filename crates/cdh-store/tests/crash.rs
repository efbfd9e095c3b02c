//! A process killed in the middle of an apply leaves the database before or after, never
//! between. The child is this test binary again, running the same test with its work in
//! environment variables.

use cdh_store::model::{ContactId, HubId, TaskId, TaskStatus};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;

use cdh_store::{AnyStore, ApplyOptions, SqliteStore, Unification};

use crate::support::{apply_keys, assert_invariants, hub, upsert};

const CONTACTS: usize = 400;

/// The child side of a crash test: the same test run again in a process of its own, with its
/// work in the environment (`CDH_CRASH_DB` says it is the child). It runs the apply named
/// there, reporting each staged batch on stdout; with `CDH_CRASH_PAUSE=1` it then waits on
/// stdin, which never answers, so the parent's kill lands with the apply half written.
async fn child(url: String) {
    let hub: HubId = std::env::var("CDH_CRASH_HUB").unwrap().parse().unwrap();
    let task: TaskId = std::env::var("CDH_CRASH_TASK").unwrap().parse().unwrap();
    let pause = std::env::var("CDH_CRASH_PAUSE").is_ok_and(|v| v == "1");
    let store = SqliteStore::open(&url).await.unwrap();
    let hook = Arc::new(move |done: i64, total: i64| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "batch {done}/{total}").unwrap();
        out.flush().unwrap();
        if pause {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
    });
    store
        .run_apply(
            hub,
            task,
            &ApplyOptions {
                batch_size: 10,
                on_batch: Some(hook),
            },
        )
        .await
        .unwrap();
}

/// Runs the test named `name` (its path in this binary): as the parent, which kills its child
/// mid-apply and checks what is left, or as that child.
fn parent_or_child(name: &str, pause: bool) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match std::env::var("CDH_CRASH_DB") {
        Ok(url) => runtime.block_on(child(url)),
        Err(_) => runtime.block_on(killed_apply_is_all_or_nothing(name, pause)),
    }
}

async fn killed_apply_is_all_or_nothing(name: &str, pause: bool) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("hub.sqlite").display());
    let store = AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap());
    let h = hub(&store).await;
    apply_keys(&store, h.id, h.org, &["display_email"]).await;
    let mut contacts = Vec::new();
    for i in 0..CONTACTS {
        // Pairs share a phone: applying the phone key merges every pair.
        let phone = format!("09{:08}", 12_345_000 + i / 2);
        let fields = [
            ("display_email", format!("p{i}@example.com")),
            ("display_mobile", phone),
        ];
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        contacts.push(
            upsert(&store, h.id, h.email_caac, &format!("c{i}"), &fields)
                .await
                .contact
                .id,
        );
    }
    let setting = cdh_store::model::UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: vec!["display_email".into(), "display_mobile".into()],
        excluded: vec![],
    };
    let task = store
        .start_apply(h.id, h.org, &setting, "admin")
        .await
        .unwrap();
    drop(store);

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("CDH_CRASH_DB", &url)
        .env("CDH_CRASH_HUB", h.id.to_string())
        .env("CDH_CRASH_TASK", task.to_string())
        .env("CDH_CRASH_PAUSE", if pause { "1" } else { "0" })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = loop {
        let line = lines
            .next()
            .expect("child ended before its first batch")
            .unwrap();
        // libtest may print the test's name on the same line first.
        if let Some(at) = line.find("batch ") {
            break line[at..].to_owned();
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // Each pair merges: its survivor and its absorbed profile are two staged rows.
    assert_eq!(first, format!("batch 10/{CONTACTS}"));

    let store = AnyStore::Sqlite(SqliteStore::open(&url).await.unwrap());
    assert_invariants(&store, h.id).await;
    let version = store.unify_setting(h.id, h.org).await.unwrap();
    let profiles = distinct_profiles(&store, h.id, &contacts).await;
    if version.version == 1 {
        assert_eq!(profiles, CONTACTS, "old setting but some merges landed");
    } else {
        assert!(!pause, "the paused child cannot have finished");
        assert_eq!((version.version, profiles), (2, CONTACTS / 2));
    }
    if pause {
        assert_eq!(
            version.version, 1,
            "the kill landed mid-apply, so the old setting must remain"
        );
        assert_eq!(
            store.get_task(h.id, task).await.unwrap().status,
            TaskStatus::Running
        );
    }
    // After a restart the task runs again from the start and completes.
    let done = store
        .run_apply(h.id, task, &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded);
    assert_eq!(store.unify_setting(h.id, h.org).await.unwrap().version, 2);
    assert_eq!(
        distinct_profiles(&store, h.id, &contacts).await,
        CONTACTS / 2
    );
    assert_invariants(&store, h.id).await;
}

async fn distinct_profiles(store: &AnyStore, hub: HubId, contacts: &[ContactId]) -> usize {
    let mut ids = Vec::new();
    for &c in contacts {
        ids.push(store.get_contact(hub, c).await.unwrap().profile_id);
    }
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

#[test]
fn killed_mid_apply_leaves_the_old_state() {
    parent_or_child("crash::killed_mid_apply_leaves_the_old_state", true);
}

#[test]
fn killed_at_any_moment_leaves_old_or_new() {
    parent_or_child("crash::killed_at_any_moment_leaves_old_or_new", false);
}
