//! Listing an organization's profiles with a stable cursor, and manual profile edits.

use cdh_store::Resource;
use cdh_store::model::{MANUAL_SOURCE, OrganizationId, ProfileId};
use std::collections::BTreeMap;

use cdh_store::StoreError;

use crate::conformance;
use crate::support::{TestStore, apply_keys, channel, hub, input, upsert};

conformance!(list_profiles_pages_by_update_time, list_body);
async fn list_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let mut profiles = Vec::new();
    for i in 0..7 {
        let email = format!("p{i}@example.com");
        let u = upsert(
            s,
            h.id,
            h.email_caac,
            &format!("c{i}"),
            &[("display_email", email.as_str())],
        )
        .await;
        profiles.push(u.contact.profile_id);
    }
    // Another organization's profile never shows.
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
    // Touching the first profile moves it last (a later millisecond than every other).
    t.clock.advance(3);
    upsert(s, h.id, h.email_caac, "c0", &[("display_name", "Zoe")]).await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s
            .list_profiles(h.id, h.org, None, 3, cursor.as_deref())
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        // Each profile comes with the merged record `golden_record` gives.
        for (profile, golden) in &page.items {
            let record = s.golden_record(h.id, profile.id).await.unwrap();
            assert_eq!((profile, golden), (&record.0, &record.1));
        }
        seen.extend(page.items.iter().map(|(p, _)| p.id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = profiles[1..].to_vec();
    expected.push(profiles[0]);
    assert_eq!(seen, expected);

    // updated_since is inclusive and filters by the profile's update time.
    let last = s.get_profile(h.id, profiles[0]).await.unwrap();
    let since = s
        .list_profiles(h.id, h.org, Some(last.updated_at), 100, None)
        .await
        .unwrap();
    assert!(since.items.iter().any(|(p, _)| p.id == profiles[0]));
    assert!(
        since
            .items
            .iter()
            .all(|(p, _)| p.updated_at >= last.updated_at)
    );
    assert_eq!(since.next_cursor, None);
    let future = s
        .list_profiles(h.id, h.org, Some(last.updated_at + 60_000), 100, None)
        .await
        .unwrap();
    assert!(future.items.is_empty());

    assert!(matches!(
        s.list_profiles(h.id, h.org, None, 3, Some("garbage")).await,
        Err(StoreError::Invalid(_))
    ));
    assert_eq!(
        s.list_profiles(h.id, OrganizationId(i64::MAX), None, 3, None)
            .await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    t.finish(h.id).await;
}

conformance!(a_manual_value_holds_until_cleared, patch_body);
async fn patch_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[
            ("display_email", "a@example.com"),
            ("display_name", "Amy"),
            ("gender", "f"),
        ],
    )
    .await;
    let pid = a.contact.profile_id;
    let before = s.events_after(h.id, h.org, 0, 1000).await.unwrap().len();
    let edits: BTreeMap<String, Option<String>> = [
        ("display_name".to_owned(), Some("Amy Chen".to_owned())),
        ("gender".to_owned(), None),
    ]
    .into();
    let (profile, golden) = s.patch_profile(h.id, pid, &edits, "admin").await.unwrap();
    assert_eq!(profile.id, pid);
    assert_eq!(golden.fields["display_name"].value, "Amy Chen");
    assert_eq!(golden.fields["display_name"].source, MANUAL_SOURCE);
    // `None` returns a field to its merged value (here it had no manual value).
    assert_eq!(golden.fields["gender"].value, "f");
    assert_ne!(golden.fields["gender"].source, MANUAL_SOURCE);
    // Reads see the override; the contact itself is unchanged.
    let (_, read) = s.golden_record(h.id, pid).await.unwrap();
    assert_eq!(read.fields["display_name"].value, "Amy Chen");
    assert_eq!(
        s.get_contact(h.id, a.contact.id).await.unwrap().fields["display_name"].value,
        "Amy"
    );
    let events = s.events_after(h.id, h.org, 0, 1000).await.unwrap();
    assert_eq!(events.len(), before + 1);
    let last = events.last().unwrap();
    assert_eq!(
        (last.kind.as_str(), last.profile_id),
        ("profile.updated", pid)
    );
    assert_eq!(last.payload["actor"], "admin");

    // A later write of the field by a member does not change it; clearing the edit shows
    // the merged value again.
    t.clock.advance(5);
    upsert(s, h.id, h.email_caac, "a", &[("display_name", "Amy C.")]).await;
    let (_, read) = s.golden_record(h.id, pid).await.unwrap();
    assert_eq!(read.fields["display_name"].value, "Amy Chen");
    let clear: BTreeMap<String, Option<String>> = [("display_name".to_owned(), None)].into();
    let (_, read) = s.patch_profile(h.id, pid, &clear, "admin").await.unwrap();
    assert_eq!(read.fields["display_name"].value, "Amy C.");
    assert_ne!(read.fields["display_name"].source, MANUAL_SOURCE);

    // A merged-away id resolves to its survivor, and overrides follow the merge.
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_email", "b@example.com")],
    )
    .await;
    let nick: BTreeMap<String, Option<String>> =
        [("nickname".to_owned(), Some("Bee".to_owned()))].into();
    s.patch_profile(h.id, b.contact.profile_id, &nick, "admin")
        .await
        .unwrap();
    let mut bridge = input(h.email_caac, "b", &[("display_email", "a@example.com")]);
    bridge.fields.insert("display_name".into(), None);
    s.upsert_contact(h.id, &bridge, "test").await.unwrap();
    let (merged, read) = s
        .patch_profile(h.id, b.contact.profile_id, &edits, "admin")
        .await
        .unwrap();
    assert_eq!(merged.id, pid);
    assert_eq!(read.fields["nickname"].value, "Bee");

    assert_eq!(
        s.patch_profile(h.id, pid, &BTreeMap::new(), "admin")
            .await
            .unwrap_err()
            .code(),
        "empty_patch"
    );
    let bad: BTreeMap<String, Option<String>> = [("Bad Name".to_owned(), None)].into();
    assert_eq!(
        s.patch_profile(h.id, pid, &bad, "admin")
            .await
            .unwrap_err()
            .code(),
        "invalid_field"
    );
    assert_eq!(
        s.patch_profile(h.id, ProfileId(i64::MAX), &edits, "admin")
            .await,
        Err(StoreError::NotFound(Resource::Profile))
    );
    t.finish(h.id).await;
}
