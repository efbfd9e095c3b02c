//! Exports read one snapshot: every write committed before the export started, nothing after.

use cdh_store::Resource;
use cdh_store::StoreError;
use cdh_store::model::ExportRow;
use cdh_store::model::OrganizationId;

use crate::conformance;
use crate::support::{TestStore, apply_keys, channel, hub, upsert};

conformance!(export_reads_one_snapshot, snapshot_body);
async fn snapshot_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    for i in 0..5 {
        let email = format!("e{i}@example.com");
        upsert(
            s,
            h.id,
            h.email_caac,
            &format!("c{i}"),
            &[
                ("display_email", email.as_str()),
                ("display_name", "Before"),
            ],
        )
        .await;
    }
    let other = s.create_organization(h.id, "other", "TW").await.unwrap();
    let other_channel = channel(s, h.id, other, "email", "caac").await;
    upsert(
        s,
        h.id,
        other_channel,
        "x",
        &[("display_email", "x@example.com")],
    )
    .await;

    // While the export runs, a new contact arrives and an exported one changes: neither shows.
    // They are written a millisecond after everything before.
    t.clock.advance(1);
    let mut rows: Vec<ExportRow> = Vec::new();
    let store = s.clone();
    let hub_id = h.id;
    let channel_id = h.email_caac;
    let mut wrote = false;
    let mut sink = |row: ExportRow| -> Result<(), String> {
        if !wrote {
            wrote = true;
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async {
                    upsert(
                        &store,
                        hub_id,
                        channel_id,
                        "late",
                        &[("display_email", "late@example.com")],
                    )
                    .await;
                    upsert(
                        &store,
                        hub_id,
                        channel_id,
                        "c4",
                        &[("display_name", "After")],
                    )
                    .await;
                })
            });
        }
        rows.push(row);
        Ok(())
    };
    let n = s
        .export_profiles(h.id, h.org, None, &mut sink)
        .await
        .unwrap();
    assert!(wrote);
    assert_eq!(n, 5);
    assert_eq!(rows.len(), 5);
    for r in &rows {
        assert_eq!(r.golden.fields["display_name"].value, "Before");
        assert!(r.golden.fields["display_email"].value != "late@example.com");
    }
    // A new export sees both writes.
    let mut after: Vec<ExportRow> = Vec::new();
    let mut collect = |row: ExportRow| -> Result<(), String> {
        after.push(row);
        Ok(())
    };
    assert_eq!(
        s.export_profiles(h.id, h.org, None, &mut collect)
            .await
            .unwrap(),
        6
    );
    assert!(after.iter().any(|r| {
        r.golden
            .fields
            .get("display_name")
            .is_some_and(|f| f.value == "After")
    }));

    // updated_since keeps only what changed from then on.
    let since = after.iter().map(|r| r.profile.updated_at).max().unwrap();
    let mut recent = 0;
    let mut count = |_: ExportRow| -> Result<(), String> {
        recent += 1;
        Ok(())
    };
    s.export_profiles(h.id, h.org, Some(since), &mut count)
        .await
        .unwrap();
    assert!((1..6).contains(&recent), "{recent}");
    t.finish(h.id).await;
}

conformance!(export_errors_stop_cleanly, errors_body);
async fn errors_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "a@example.com")],
    )
    .await;
    let mut failing = |_: ExportRow| -> Result<(), String> { Err("disk full".into()) };
    let err = s
        .export_profiles(h.id, h.org, None, &mut failing)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "export_write_failed");
    assert!(err.to_string().contains("disk full"));
    let mut ignore = |_: ExportRow| -> Result<(), String> { Ok(()) };
    assert_eq!(
        s.export_profiles(h.id, OrganizationId(i64::MAX), None, &mut ignore)
            .await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    t.finish(h.id).await;
}
