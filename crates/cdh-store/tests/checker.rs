//! The invariants checker itself: it must notice a broken store, or the other tests prove nothing.

use crate::conformance;
use crate::support::{TestStore, apply_keys, hub, upsert};

conformance!(checker_notices_corruption, checker_body);
async fn checker_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "ed@example.com")],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_email", "ed@example.com")],
    )
    .await;
    let c = upsert(s, h.id, h.email_caac, "c", &[("customer_id", "Z1")]).await;
    let d = upsert(
        s,
        h.id,
        h.email_caac,
        "d",
        &[("customer_id", "Z1"), ("display_email", "ed@example.com")],
    )
    .await;
    assert!(s.check_invariants(h.id).await.unwrap().is_empty());
    let (hub, p1) = (h.id, a.contact.profile_id);

    // A merge the ledger does not record.
    t.raw(&format!("DELETE FROM merge_ledger WHERE hub_id = {hub}"))
        .await;
    let problems = s.check_invariants(hub).await.unwrap();
    assert!(
        problems.iter().any(|p| p.contains("no ledger row")),
        "{problems:?}"
    );

    // A profile split in two behind the store's back, with consistent bookkeeping: only the
    // value index and the core's resolution can tell.
    let split = b.contact.id;
    t.raw(&format!(
        "INSERT INTO profiles (hub_id, id, origin_contact, oldest_contact, member_count, \
         merged_into, created_at, updated_at) VALUES ({hub}, 999999, {split}, {split}, 1, NULL, 0, 0)"
    ))
    .await;
    t.raw(&format!(
        "UPDATE memberships SET bucket_id = 999999 WHERE hub_id = {hub} AND contact_id = {split}"
    ))
    .await;
    t.raw(&format!(
        "UPDATE profiles SET member_count = member_count - 1 WHERE hub_id = {hub} AND id = {p1}"
    ))
    .await;
    let problems = s.check_invariants(hub).await.unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains("differs from the core's resolution")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("display_email=ed@example.com")),
        "{problems:?}"
    );

    // A wrong member count.
    assert_eq!(d.contact.profile_id, p1);
    assert_ne!(c.contact.profile_id, p1);
    t.raw(&format!(
        "UPDATE profiles SET member_count = 7 WHERE hub_id = {hub} AND id = {p1}"
    ))
    .await;
    let problems = s.check_invariants(hub).await.unwrap();
    assert!(
        problems.iter().any(|p| p.contains("member_count 7")),
        "{problems:?}"
    );
    // Leave a sound store behind for `finish`: a fresh hub.
    let fresh = s.create_hub("fresh").await.unwrap();
    t.finish(fresh).await;
}
