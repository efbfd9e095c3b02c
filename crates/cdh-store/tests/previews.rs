//! Unification previews: the report, exclusions normalised by region, stable error codes,
//! applying exactly what was previewed, and stale previews.

use cdh_store::Resource;
use cdh_store::model::PreviewId;
use cdh_store::model::UnifySetting;
use cdh_store::model::{TaskKind, TaskStatus};
use cdh_store::{ApplyOptions, StoreError};

use crate::conformance;
use crate::support::{TestStore, hub, upsert};

fn setting(keys: &[&str], excluded: &[(&str, &str)]) -> UnifySetting {
    UnifySetting {
        unique_fields: cdh_store::model::default_unique_fields(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        excluded: excluded
            .iter()
            .map(|(f, v)| ((*f).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

conformance!(preview_reports_then_applies_exactly, preview_body);
async fn preview_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    // a - b share a phone, b - c share an email: one chain of three. d shares the store's
    // phone with e, which the admin excludes.
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_mobile", "0912-345-678")],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[
            ("display_mobile", "+886912345678"),
            ("display_email", "b@example.com"),
        ],
    )
    .await;
    let c = upsert(
        s,
        h.id,
        h.email_caac,
        "c",
        &[("display_email", "B@example.com")],
    )
    .await;
    let d = upsert(
        s,
        h.id,
        h.email_caac,
        "d",
        &[("display_mobile", "02-2771-8866")],
    )
    .await;
    let e = upsert(
        s,
        h.id,
        h.email_caac,
        "e",
        &[("display_mobile", "+886227718866")],
    )
    .await;
    let created = s
        .create_preview(
            h.id,
            h.org,
            &setting(
                &["display_mobile", "display_email"],
                &[("display_mobile", "02-2771-8866")],
            ),
            1,
        )
        .await
        .unwrap();
    let r = &created.report;
    assert_eq!(
        (r.profiles_before, r.profiles_after, r.contacts_merged),
        (5, 3, 3)
    );
    assert_eq!(r.largest_profiles[0].n_contacts, 3);
    assert_eq!(
        r.largest_profiles[0].contact_ids,
        vec![a.contact.id, b.contact.id, c.contact.id]
    );
    // The excluded phone (given in national form) is normalised and does not merge d and e.
    assert!(
        r.suspicious_values
            .iter()
            .all(|v| v.value != "+886227718866"),
        "{:?}",
        r.suspicious_values
    );
    assert!(
        r.suspicious_values
            .iter()
            .any(|v| v.field == "display_mobile"
                && v.value == "+886912345678"
                && v.n_contacts == 2)
    );
    assert_eq!(r.samples.len(), 1);
    let chain = &r.samples[0].chain;
    assert_eq!(chain[0].contact_id, a.contact.id);
    assert_eq!(chain[0].tie, "start");
    assert_eq!(chain.last().unwrap().contact_id, c.contact.id);
    assert_eq!(
        chain
            .iter()
            .skip(1)
            .map(|l| (l.field.as_deref(), l.value.as_deref()))
            .collect::<Vec<_>>(),
        vec![
            (Some("display_mobile"), Some("+886912345678")),
            (Some("display_email"), Some("b@example.com"))
        ]
    );
    // Stored as computed.
    assert_eq!(
        s.get_preview(h.id, h.org, created.id).await.unwrap(),
        created
    );

    let task = s
        .apply_preview(h.id, h.org, created.id, "admin")
        .await
        .unwrap();
    let done = s
        .run_apply(h.id, task, &ApplyOptions::default())
        .await
        .unwrap();
    assert_eq!(done.status, TaskStatus::Succeeded, "{:?}", done.error);
    let applied = s.unify_setting(h.id, h.org).await.unwrap();
    assert_eq!(
        applied.setting,
        setting(
            &["display_mobile", "display_email"],
            &[("display_mobile", "02-2771-8866")],
        )
    );
    let profile_of = |id| async move { s.get_contact(h.id, id).await.unwrap().profile_id };
    assert_eq!(
        profile_of(b.contact.id).await,
        profile_of(a.contact.id).await
    );
    assert_eq!(
        profile_of(c.contact.id).await,
        profile_of(a.contact.id).await
    );
    assert_ne!(
        profile_of(d.contact.id).await,
        profile_of(e.contact.id).await
    );
    t.finish(h.id).await;
}

conformance!(preview_goes_stale_when_contacts_change, stale_body);
async fn stale_body(t: TestStore) {
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
    let preview = s
        .create_preview(h.id, h.org, &setting(&["display_email"], &[]), 20)
        .await
        .unwrap();
    upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_email", "a@example.com")],
    )
    .await;
    let err = s
        .apply_preview(h.id, h.org, preview.id, "admin")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        StoreError::PreviewStale {
            preview_id: preview.id
        }
    );
    assert_eq!(err.code(), "preview_stale");
    // Nothing was queued.
    let kinds = [TaskKind::Apply, TaskKind::Import, TaskKind::Export];
    assert!(
        s.list_tasks(h.id, h.org, &kinds, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // A fresh preview sees the new contact and applies.
    let fresh = s
        .create_preview(h.id, h.org, &setting(&["display_email"], &[]), 20)
        .await
        .unwrap();
    assert_eq!(fresh.report.profiles_after, 1);
    assert_ne!(fresh.fingerprint, preview.fingerprint);
    s.apply_preview(h.id, h.org, fresh.id, "admin")
        .await
        .unwrap();
    assert_eq!(
        s.get_preview(h.id, h.org, PreviewId(i64::MAX)).await,
        Err(StoreError::NotFound(Resource::Preview))
    );
    assert_eq!(
        s.apply_preview(h.id, h.org, PreviewId(i64::MAX), "admin")
            .await,
        Err(StoreError::NotFound(Resource::Preview))
    );
    t.finish(h.id).await;
}

conformance!(preview_rejects_bad_keys_with_codes, bad_keys_body);
async fn bad_keys_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let mut with_custom = crate::support::input(h.email_caac, "m", &[]);
    with_custom.custom_fields = Some([("member_no".to_owned(), "M1".to_owned())].into());
    s.upsert_contact(h.id, &with_custom, "test").await.unwrap();
    let code = |r: Result<_, StoreError>| {
        r.map(|_: cdh_store::model::StoredPreview| ())
            .unwrap_err()
            .code()
    };
    assert_eq!(
        code(
            s.create_preview(
                h.id,
                h.org,
                &setting(
                    &["line_uid", "display_email", "display_mobile", "customer_id"],
                    &[]
                ),
                20
            )
            .await
        ),
        "too_many_keys"
    );
    assert_eq!(
        code(
            s.create_preview(
                h.id,
                h.org,
                &setting(&["display_email", "display_email"], &[]),
                20
            )
            .await
        ),
        "duplicate_key"
    );
    assert_eq!(
        code(
            s.create_preview(h.id, h.org, &setting(&["display_emial"], &[]), 20)
                .await
        ),
        "unknown_field"
    );
    assert_eq!(
        code(
            s.create_preview(
                h.id,
                h.org,
                &setting(&["display_email"], &[("nickname", "x")]),
                20
            )
            .await
        ),
        "unknown_field"
    );
    // A custom field that contacts carry is a valid key.
    let custom = s
        .create_preview(h.id, h.org, &setting(&["member_no"], &[]), 20)
        .await
        .unwrap();
    assert_eq!(custom.report.profiles_after, 1);
    // Cross-product without line_uid is noted.
    s.set_cross_product(h.id, h.org, true).await.unwrap();
    let noted = s
        .create_preview(h.id, h.org, &setting(&["display_email"], &[]), 20)
        .await
        .unwrap();
    assert!(noted.report.notes.iter().any(|n| n.contains("line_uid")));
    t.finish(h.id).await;
}
