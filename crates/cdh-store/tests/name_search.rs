//! Finding profiles by the start of a contact's name: prefix, case, organizations, merged
//! profiles, limits and ties, literal wildcards, and the index that serves it.

use cdh_store::Resource;
use cdh_store::model::{HubId, OrganizationId, ProfileId};
use cdh_store::{AnyStore, StoreError};

use crate::conformance;
use crate::support::{TestStore, apply_keys, channel, hub, upsert};

async fn ids(
    s: &AnyStore,
    hub: HubId,
    org: OrganizationId,
    text: &str,
    limit: u32,
) -> Vec<ProfileId> {
    s.search_profiles_by_name(hub, org, text, limit)
        .await
        .expect("search")
        .iter()
        .map(|(p, _)| p.id)
        .collect()
}

conformance!(names_match_by_prefix_in_any_ascii_case, prefix_body);
async fn prefix_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let name = |n: &'static str| [("display_name", n)];
    let chen = upsert(s, h.id, h.line_caac, "a", &name("Amy Chen")).await;
    let wong = upsert(s, h.id, h.line_caac, "b", &name("amy WONG")).await;
    let amanda = upsert(s, h.id, h.line_caac, "c", &name("  Amanda ")).await;
    upsert(s, h.id, h.line_caac, "d", &name("Bob Amy")).await;
    let cjk = upsert(s, h.id, h.line_caac, "e", &name("陳小明")).await;
    upsert(
        s,
        h.id,
        h.line_caac,
        "f",
        &[("display_email", "amy@example.com")],
    )
    .await;
    let other = s.create_organization(h.id, "other", "TW").await.unwrap();
    let other_channel = channel(s, h.id, other, "line", "caac").await;
    let other_amy = upsert(s, h.id, other_channel, "a", &name("Amy Lin")).await;
    let p = |u: &cdh_store::model::Upserted| u.contact.profile_id;

    // Ordered by the lower-cased name: "amy chen" < "amy wong".
    assert_eq!(
        ids(s, h.id, h.org, "amy", 25).await,
        vec![p(&chen), p(&wong)]
    );
    assert_eq!(ids(s, h.id, h.org, "AMY W", 25).await, vec![p(&wong)]);
    assert_eq!(
        ids(s, h.id, h.org, "  am ", 25).await,
        vec![p(&amanda), p(&chen), p(&wong)]
    );
    assert_eq!(ids(s, h.id, h.org, "陳", 25).await, vec![p(&cjk)]);
    assert_eq!(ids(s, h.id, h.org, "陳小明", 25).await, vec![p(&cjk)]);
    assert!(ids(s, h.id, h.org, "陳大", 25).await.is_empty());
    assert!(ids(s, h.id, h.org, "amz", 25).await.is_empty());
    assert!(ids(s, h.id, h.org, "   ", 25).await.is_empty());
    // Another organization's contacts are found in that organization only.
    assert_eq!(ids(s, h.id, other, "amy", 25).await, vec![p(&other_amy)]);
    // Another hub sees nothing of this one; an unknown organization is not found.
    let other_hub = s.create_hub("other").await.unwrap();
    assert_eq!(
        s.search_profiles_by_name(other_hub, h.org, "amy", 25).await,
        Err(StoreError::NotFound(Resource::Organization))
    );
    // A search finds whole profiles, with their members.
    let found = s
        .search_profiles_by_name(h.id, h.org, "amy c", 25)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0.members.len(), 1);
    assert_eq!(found[0].0.members[0].contact_id, chen.contact.id);
    // ... each with the merged record `golden_record` gives.
    let record = s.golden_record(h.id, found[0].0.id).await.unwrap();
    assert_eq!(found[0], record);
    t.finish(h.id).await;
}

conformance!(a_merged_profile_is_found_once, merged_body);
async fn merged_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email", "display_mobile"]).await;
    let x = upsert(
        s,
        h.id,
        h.email_caac,
        "x",
        &[
            ("display_name", "Amy X"),
            ("display_email", "x@example.com"),
        ],
    )
    .await;
    let y = upsert(
        s,
        h.id,
        h.line_caac,
        "y",
        &[("display_name", "Amy Y"), ("display_mobile", "0912345678")],
    )
    .await;
    assert_ne!(x.contact.profile_id, y.contact.profile_id);
    // A third contact ties both: y's profile is merged into x's.
    let z = upsert(
        s,
        h.id,
        h.line_caac,
        "z",
        &[
            ("display_name", "Amy Z"),
            ("display_email", "x@example.com"),
            ("display_mobile", "0912345678"),
        ],
    )
    .await;
    assert_eq!(z.contact.profile_id, x.contact.profile_id);
    let found = s
        .search_profiles_by_name(h.id, h.org, "amy", 25)
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0.id, x.contact.profile_id);
    assert_eq!(found[0].0.merged_from, None);
    assert_eq!(found[0].0.members.len(), 3);
    assert_eq!(
        ids(s, h.id, h.org, "amy y", 25).await,
        vec![x.contact.profile_id]
    );
    t.finish(h.id).await;
}

conformance!(the_limit_holds_and_ties_go_by_profile_id, limit_body);
async fn limit_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let mut anns = Vec::new();
    for i in 1..=5 {
        let u = upsert(
            s,
            h.id,
            h.line_caac,
            &format!("ann{i}"),
            &[("display_name", &format!("Ann {i}"))],
        )
        .await;
        anns.push(u.contact.profile_id);
    }
    assert_eq!(ids(s, h.id, h.org, "ann", 2).await, anns[..2].to_vec());
    assert_eq!(ids(s, h.id, h.org, "ann", 25).await, anns);
    assert!(ids(s, h.id, h.org, "ann", 0).await.is_empty());

    // An older profile gains a "Lee" contact after a younger "Lee": the walk meets the younger
    // one first, yet the page (by name, then profile id) starts with the older.
    let old = upsert(
        s,
        h.id,
        h.email_caac,
        "old",
        &[
            ("display_name", "Mia"),
            ("display_email", "mia@example.com"),
        ],
    )
    .await
    .contact
    .profile_id;
    let young = upsert(s, h.id, h.line_caac, "young", &[("display_name", "Lee")])
        .await
        .contact
        .profile_id;
    let joined = upsert(
        s,
        h.id,
        h.line_caac,
        "old2",
        &[
            ("display_name", "Lee"),
            ("display_email", "mia@example.com"),
        ],
    )
    .await;
    assert_eq!(joined.contact.profile_id, old);
    assert!(old < young);
    assert_eq!(ids(s, h.id, h.org, "lee", 1).await, vec![old]);
    assert_eq!(ids(s, h.id, h.org, "lee", 25).await, vec![old, young]);

    // One profile with more matching contacts than a step of the walk reads, and another.
    for i in 0..70 {
        upsert(
            s,
            h.id,
            h.email_caac,
            &format!("kim{i}"),
            &[
                ("display_name", &format!("Kim {i:02}")),
                ("display_email", "kim@example.com"),
            ],
        )
        .await;
    }
    let big = s
        .lookup_golden_records(h.id, h.org, "display_email", "kim@example.com")
        .await
        .unwrap();
    assert_eq!(big.len(), 1);
    let small = upsert(
        s,
        h.id,
        h.line_caac,
        "kim-last",
        &[("display_name", "Kim 99")],
    )
    .await
    .contact
    .profile_id;
    assert_eq!(
        ids(s, h.id, h.org, "kim", 2).await,
        vec![big[0].0.id, small]
    );
    assert_eq!(ids(s, h.id, h.org, "KIM 9", 2).await, vec![small]);
    t.finish(h.id).await;
}

conformance!(wildcards_in_a_name_match_literally, wildcard_body);
async fn wildcard_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let percent = upsert(s, h.id, h.line_caac, "a", &[("display_name", "50% Club")])
        .await
        .contact
        .profile_id;
    upsert(s, h.id, h.line_caac, "b", &[("display_name", "5000 Club")]).await;
    let under = upsert(s, h.id, h.line_caac, "c", &[("display_name", "a_b")])
        .await
        .contact
        .profile_id;
    upsert(s, h.id, h.line_caac, "d", &[("display_name", "axb")]).await;
    let back = upsert(s, h.id, h.line_caac, "e", &[("display_name", "c\\d")])
        .await
        .contact
        .profile_id;
    upsert(s, h.id, h.line_caac, "f", &[("display_name", "cd")]).await;
    assert_eq!(ids(s, h.id, h.org, "50%", 25).await, vec![percent]);
    assert_eq!(ids(s, h.id, h.org, "a_", 25).await, vec![under]);
    assert_eq!(ids(s, h.id, h.org, "c\\", 25).await, vec![back]);
    assert!(ids(s, h.id, h.org, "%", 25).await.is_empty());
    assert!(ids(s, h.id, h.org, "_", 25).await.is_empty());
    t.finish(h.id).await;
}

conformance!(a_name_search_walks_the_name_index, plan_body);
async fn plan_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    upsert(s, h.id, h.line_caac, "a", &[("display_name", "Amy")]).await;
    // Thousands of named contacts in another hub, and fresh statistics, so the planner
    // chooses with numbers to go on.
    let bulk_hub = s.create_hub("bulk").await.unwrap();
    let bulk_org = s.create_organization(bulk_hub, "bulk", "TW").await.unwrap();
    let bulk_channel = channel(s, bulk_hub, bulk_org, "line", "caac").await;
    let columns = "hub_id, id, channel_id, external_id, scope, fields, tags, custom_fields, \
                   invalid_fields, created_at, updated_at";
    let values = format!(
        "{bulk_hub}, 1000000 + n, {bulk_channel}, 'x' || n, 's', \
         '{{\"display_name\":{{\"value\":\"Name ' || n || '\",\"updated_at\":0}}}}', \
         '[]', '{{}}', '[]', 0, 0"
    );
    if t.schema().is_some() {
        t.raw(&format!(
            "INSERT INTO contacts ({columns}) SELECT {values} FROM generate_series(1, 5000) AS g(n)"
        ))
        .await;
        t.raw("ANALYZE").await;
    } else {
        t.raw(&format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 5000) \
             INSERT INTO contacts ({columns}) SELECT {values} FROM g"
        ))
        .await;
        t.raw("ANALYZE").await;
    }
    let plan = s.name_search_plan(h.id, h.org, "am").await.expect("plan");
    let text = plan.join("\n");
    assert!(
        text.contains("contacts_by_name"),
        "the name index is not used:\n{text}"
    );
    assert!(
        !text.contains("Seq Scan on contacts"),
        "contacts are scanned:\n{text}"
    );
    assert!(!text.contains("SCAN c "), "contacts are scanned:\n{text}");
    // The index gives the order: no sort of the matching contacts.
    assert!(
        !text.contains("TEMP B-TREE FOR ORDER BY"),
        "the walk sorts:\n{text}"
    );
    assert!(!text.contains("Sort"), "the walk sorts:\n{text}");
    assert_eq!(ids(s, h.id, h.org, "am", 25).await.len(), 1);
    t.finish(h.id).await;
}
