//! Exclusive import/export tasks, claiming, restart recovery, and the import's semantics:
//! absent fields unchanged, null clears, bad rows fail alone, unmatched reported or created.

use cdh_store::Resource;
use cdh_store::model::{OrganizationId, TaskId};
use cdh_store::model::{TaskKind, TaskStatus};
use std::collections::BTreeMap;

use cdh_store::StoreError;
use cdh_store::model::{IMPORT_CHUNK_ROWS, ImportRow, ImportRows, ImportRowsWriter};

use crate::conformance;
use crate::support::{TestStore, apply_keys, hub, upsert};

fn row(n: usize, fields: &[(&str, Option<&str>)]) -> ImportRow {
    ImportRow {
        row: n,
        fields: fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned)))
            .collect::<BTreeMap<_, _>>(),
        ..ImportRow::default()
    }
}

conformance!(one_import_and_one_export_at_a_time, exclusive_body);
async fn exclusive_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let params = serde_json::json!({ "import_key": "display_email" });
    let first = s
        .start_task_exclusive(h.id, h.org, TaskKind::Import, &params)
        .await
        .unwrap();
    let err = s
        .start_task_exclusive(h.id, h.org, TaskKind::Import, &params)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::TaskInProgress {
            kind: TaskKind::Import,
            task_id: first
        }
    );
    assert_eq!(err.code(), "import_in_progress");
    // Another kind, or another organization, is not in the way.
    let export = s
        .start_task_exclusive(h.id, h.org, TaskKind::Export, &params)
        .await
        .unwrap();
    assert_eq!(
        s.start_task_exclusive(h.id, h.org, TaskKind::Export, &params)
            .await
            .unwrap_err()
            .code(),
        "export_in_progress"
    );
    let other = s.create_organization(h.id, "other", "TW").await.unwrap();
    s.start_task_exclusive(h.id, other, TaskKind::Import, &params)
        .await
        .unwrap();

    // Claiming is atomic: only the first claim wins; running still blocks a new import.
    assert!(s.claim_task(h.id, first).await.unwrap());
    assert!(!s.claim_task(h.id, first).await.unwrap());
    assert_eq!(
        s.get_task(h.id, first).await.unwrap().status,
        TaskStatus::Running
    );
    assert!(
        s.start_task_exclusive(h.id, h.org, TaskKind::Import, &params)
            .await
            .is_err()
    );
    let unfinished = s.unfinished_tasks().await.unwrap();
    let ours: Vec<cdh_store::model::TaskId> = unfinished
        .iter()
        .filter(|(hub, _)| *hub == h.id)
        .map(|(_, t)| t.id)
        .collect();
    assert_eq!(ours.len(), 3);
    assert!(ours.contains(&first) && ours.contains(&export));
    assert_eq!(
        unfinished
            .iter()
            .find(|(_, t)| t.id == first)
            .unwrap()
            .1
            .params,
        params
    );

    // Once finished, the next import may start.
    s.finish_task(h.id, first, Ok(serde_json::json!({})))
        .await
        .unwrap();
    let next = s
        .start_task_exclusive(h.id, h.org, TaskKind::Import, &params)
        .await
        .unwrap();
    assert_ne!(next, first);
    assert!(
        !s.unfinished_tasks()
            .await
            .unwrap()
            .iter()
            .any(|(_, t)| t.id == first)
    );

    assert!(matches!(
        s.start_task_exclusive(h.id, h.org, TaskKind::Apply, &params)
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.start_task_exclusive(h.id, OrganizationId(i64::MAX), TaskKind::Import, &params)
            .await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    assert_eq!(
        s.claim_task(h.id, TaskId(i64::MAX)).await,
        Err(StoreError::NotFound(Resource::Task))
    );
    t.finish(h.id).await;
}

conformance!(import_overwrites_matched_fields_only, import_body);
async fn import_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[
            ("display_email", "amy@example.com"),
            ("display_name", "Amy"),
            ("gender", "f"),
        ],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_maac,
        "b",
        &[
            ("display_email", "AMY@example.com"),
            ("birthday", "1990-01-01"),
        ],
    )
    .await;
    let task = s
        .start_task_exclusive(h.id, h.org, TaskKind::Import, &serde_json::json!({}))
        .await
        .unwrap();
    let rows = vec![
        // Matches a and b (same normalised email in the organization): name set, gender cleared.
        row(
            1,
            &[
                ("display_email", Some(" Amy@Example.com ")),
                ("display_name", Some("Amy Chen")),
                ("gender", None),
            ],
        ),
        // Matches nothing: reported.
        row(
            2,
            &[
                ("display_email", Some("nobody@example.com")),
                ("display_name", Some("No One")),
            ],
        ),
        // Bad rows fail alone.
        row(3, &[("display_name", Some("no key"))]),
        row(4, &[("display_email", Some("not an email"))]),
        row(
            5,
            &[
                ("display_email", Some("ok@example.com")),
                ("Bad Field", Some("x")),
            ],
        ),
    ];
    let outcome = s
        .import_rows(
            h.id,
            h.org,
            "display_email",
            ImportRows::Given(&rows),
            false,
            "importer",
            Some(task),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            outcome.total,
            outcome.matched,
            outcome.created,
            outcome.unmatched
        ),
        (5, 1, 0, 1)
    );
    let failed: Vec<(usize, &str)> = outcome
        .failed_rows
        .iter()
        .map(|f| (f.row, f.code.as_str()))
        .collect();
    assert_eq!(
        failed,
        vec![
            (3, "missing_import_key"),
            (4, "invalid_import_key"),
            (5, "invalid_field")
        ]
    );
    let a_now = s.get_contact(h.id, a.contact.id).await.unwrap();
    assert_eq!(a_now.fields["display_name"].value, "Amy Chen");
    assert!(!a_now.fields.contains_key("gender"));
    let b_now = s.get_contact(h.id, b.contact.id).await.unwrap();
    assert_eq!(b_now.fields["display_name"].value, "Amy Chen");
    // Absent fields stay.
    assert_eq!(b_now.fields["birthday"].value, "1990-01-01");
    let task_now = s.get_task(h.id, task).await.unwrap();
    assert_eq!(
        (task_now.status.as_str(), task_now.done, task_now.total),
        ("running", 5, 5)
    );
    t.finish(h.id).await;
}

conformance!(
    import_creates_unmatched_on_api_channel_and_unifies,
    create_body
);
async fn create_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["customer_id", "display_email"]).await;
    let existing = upsert(
        s,
        h.id,
        h.email_caac,
        "e",
        &[("display_email", "kim@example.com")],
    )
    .await;
    let rows = vec![
        // New by customer id, but its email ties it to the existing contact's profile.
        row(
            0,
            &[
                ("customer_id", Some("M-1")),
                ("display_email", Some("kim@example.com")),
            ],
        ),
        row(
            1,
            &[("customer_id", Some("M-2")), ("display_name", Some("Lee"))],
        ),
        // The same customer again in one import is a match, not a second contact.
        row(2, &[("customer_id", Some("M-2")), ("gender", Some("m"))]),
    ];
    let outcome = s
        .import_rows(
            h.id,
            h.org,
            "customer_id",
            ImportRows::Given(&rows),
            true,
            "importer",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.matched, outcome.created, outcome.unmatched),
        (1, 2, 0)
    );
    assert!(outcome.failed_rows.is_empty());
    let channels = s.list_channels(h.id, h.org).await.unwrap();
    let api: Vec<_> = channels
        .iter()
        .filter(|c| c.channel_type == "api")
        .collect();
    assert_eq!(api.len(), 1);
    let kim = s
        .lookup_golden_records(h.id, h.org, "customer_id", "M-1")
        .await
        .unwrap();
    assert_eq!(kim.len(), 1);
    assert_eq!(kim[0].0.id, existing.contact.profile_id);
    assert!(kim[0].0.members.iter().any(|m| m.channel_id == api[0].id));
    let lee = s
        .lookup_golden_records(h.id, h.org, "customer_id", "M-2")
        .await
        .unwrap();
    assert_eq!(lee[0].0.members.len(), 1);
    let lee_contact = s
        .get_contact(h.id, lee[0].0.members[0].contact_id)
        .await
        .unwrap();
    assert_eq!(lee_contact.fields["display_name"].value, "Lee");
    assert_eq!(lee_contact.fields["gender"].value, "m");
    // A second import reuses the api channel and matches what the first created.
    let again = s
        .import_rows(
            h.id,
            h.org,
            "customer_id",
            ImportRows::Given(&rows[1..2]),
            true,
            "importer",
            None,
        )
        .await
        .unwrap();
    assert_eq!((again.matched, again.created), (1, 0));
    assert_eq!(
        s.list_channels(h.id, h.org).await.unwrap().len(),
        channels.len()
    );

    assert_eq!(
        s.import_rows(
            h.id,
            h.org,
            "display_name",
            ImportRows::Given(&rows),
            true,
            "importer",
            None
        )
        .await
        .unwrap_err()
        .code(),
        "invalid_import_key"
    );
    assert_eq!(
        s.import_rows(
            h.id,
            OrganizationId(i64::MAX),
            "customer_id",
            ImportRows::Given(&rows),
            true,
            "importer",
            None
        )
        .await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    t.finish(h.id).await;
}

conformance!(import_of_many_rows_lands_in_batches, many_body);
async fn many_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["customer_id"]).await;
    let rows: Vec<ImportRow> = (0..1200)
        .map(|i| {
            let id = format!("C{}", i % 1000);
            let name = format!("N{i}");
            row(
                i,
                &[
                    ("customer_id", Some(id.as_str())),
                    ("display_name", Some(name.as_str())),
                ],
            )
        })
        .collect();
    let outcome = s
        .import_rows(
            h.id,
            h.org,
            "customer_id",
            ImportRows::Given(&rows),
            true,
            "importer",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        (outcome.total, outcome.created, outcome.matched),
        (1200, 1000, 200)
    );
    // The later row of a repeated customer wins.
    let p = s
        .lookup_golden_records(h.id, h.org, "customer_id", "C7")
        .await
        .unwrap();
    let c = s
        .get_contact(h.id, p[0].0.members[0].contact_id)
        .await
        .unwrap();
    assert_eq!(c.fields["display_name"].value, "N1007");
    t.finish(h.id).await;
}

conformance!(import_row_refused_by_the_database_fails_alone, refused_body);
async fn refused_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["customer_id"]).await;
    // A trigger stands in for any write the database refuses for one row only.
    if t.schema().is_some() {
        t.raw(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
             IF NEW.fields LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned row'; END IF; \
             RETURN NEW; END $$ LANGUAGE plpgsql",
        )
        .await;
        t.raw(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON contacts \
             FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        )
        .await;
    } else {
        t.raw(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON contacts \
             WHEN NEW.fields LIKE '%poison%' BEGIN SELECT RAISE(ABORT, 'poisoned row'); END",
        )
        .await;
    }
    let rows: Vec<ImportRow> = (0..6)
        .map(|i| {
            let id = format!("K{i}");
            let name = if i == 3 { "poison" } else { "fine" };
            row(
                i,
                &[
                    ("customer_id", Some(id.as_str())),
                    ("display_name", Some(name)),
                ],
            )
        })
        .collect();
    let outcome = s
        .import_rows(
            h.id,
            h.org,
            "customer_id",
            ImportRows::Given(&rows),
            true,
            "importer",
            None,
        )
        .await
        .unwrap();
    assert_eq!(outcome.created, 5);
    assert_eq!(outcome.failed_rows.len(), 1);
    assert_eq!(
        (
            outcome.failed_rows[0].row,
            outcome.failed_rows[0].code.as_str()
        ),
        (3, "row_rejected")
    );
    for i in [0, 1, 2, 4, 5] {
        let found = s
            .lookup_golden_records(h.id, h.org, "customer_id", &format!("K{i}"))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "row {i} landed");
    }
    assert!(
        s.lookup_golden_records(h.id, h.org, "customer_id", "K3")
            .await
            .unwrap()
            .is_empty()
    );
    t.finish(h.id).await;
}

conformance!(an_imports_rows_leave_the_task_when_it_ends, rows_leave_body);
async fn rows_leave_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let params = serde_json::json!({"import_key": "display_email", "total": 1});
    // Two full chunks and one row more: the reader crosses chunk boundaries.
    let n = 2 * IMPORT_CHUNK_ROWS + 1;
    let mut writer = ImportRowsWriter::default();
    for i in 0..n {
        writer.push(&ImportRow {
            row: i + 1,
            fields: [(
                "display_email".to_owned(),
                Some(format!("ann{i}@example.com")),
            )]
            .into(),
            ..ImportRow::default()
        });
    }
    let chunks = writer.finish();
    assert_eq!(
        chunks.iter().map(|c| c.n_rows).collect::<Vec<_>>(),
        [IMPORT_CHUNK_ROWS, IMPORT_CHUNK_ROWS, 1]
    );
    let import = s
        .start_import_task(h.id, h.org, &params, &chunks)
        .await
        .unwrap();
    // Reading the task never reads its rows: they are apart from its params.
    assert_eq!(s.get_task(h.id, import).await.unwrap().params, params);
    let listed = s
        .list_tasks(h.id, h.org, &[TaskKind::Import], 10)
        .await
        .unwrap();
    assert!(!format!("{listed:?}").contains("ann"), "{listed:?}");
    let kept = s.import_task_rows(h.id, import).await.unwrap();
    assert_eq!(kept, chunks);
    assert_eq!(
        kept[2].rows().unwrap()[0].fields["display_email"].as_deref(),
        Some(format!("ann{}@example.com", n - 1).as_str())
    );
    // The worker's path: every queued row read back, in order, once.
    let outcome = s
        .import_rows(
            h.id,
            h.org,
            "display_email",
            ImportRows::Queued,
            true,
            "importer",
            Some(import),
        )
        .await
        .unwrap();
    assert_eq!((outcome.total, outcome.created), (n as u64, n as u64));
    for i in [0, IMPORT_CHUNK_ROWS - 1, IMPORT_CHUNK_ROWS, n - 1] {
        let email = format!("ann{i}@example.com");
        let found = s
            .lookup_golden_records(h.id, h.org, "display_email", &email)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "row {i} landed");
    }
    // Queued rows belong to a task: without one there is nothing to read.
    assert!(
        s.import_rows(
            h.id,
            h.org,
            "display_email",
            ImportRows::Queued,
            true,
            "importer",
            None
        )
        .await
        .is_err()
    );
    s.finish_task(h.id, import, Ok(serde_json::json!({"total": 1})))
        .await
        .unwrap();
    assert_eq!(s.import_task_rows(h.id, import).await.unwrap(), []);
    let done = s.get_task(h.id, import).await.unwrap();
    assert_eq!(done.params, params);
    assert_eq!(done.result, Some(serde_json::json!({"total": 1})));
    // Another kind's params are its own business: an export keeps them.
    let export_params = serde_json::json!({"format": "csv", "rows": 3});
    let export = s
        .start_task_exclusive(h.id, h.org, TaskKind::Export, &export_params)
        .await
        .unwrap();
    s.finish_task(h.id, export, Ok(serde_json::json!({})))
        .await
        .unwrap();
    assert_eq!(
        s.get_task(h.id, export).await.unwrap().params,
        export_params
    );
    t.finish(h.id).await;
}
