//! Concurrent writers whose contacts bridge profiles end in one profile.

use cdh_store::Store;

use crate::conformance;
use crate::support::{TestStore, apply_keys, hub, upsert};

const WRITERS: usize = 16;

conformance!(concurrent_bridges_end_in_one_profile, concurrency_body);
async fn concurrency_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, &["customer_id", "connect_id"]).await;
    for round in 0..3 {
        // Seeds: seed i holds customer k<i> and connect c<i-1>; writer i holds k<i> and c<i>,
        // so it bridges seed i and seed i+1, and only all writers together chain every seed.
        for i in 0..=WRITERS {
            let k = format!("r{round}k{i}");
            let c = format!("r{round}c{}", i.wrapping_sub(1));
            upsert(
                s,
                h.id,
                h.email_caac,
                &format!("r{round}seed{i}"),
                &[("customer_id", &k), ("connect_id", &c)],
            )
            .await;
        }
        let mut writers = Vec::new();
        for i in 0..WRITERS {
            let store = s.clone();
            let hub = h.id;
            let channel = h.email_caac;
            writers.push(tokio::spawn(async move {
                let k = format!("r{round}k{i}");
                let c = format!("r{round}c{i}");
                upsert(
                    &store,
                    hub,
                    channel,
                    &format!("r{round}w{i}"),
                    &[("customer_id", &k), ("connect_id", &c)],
                )
                .await
            }));
        }
        let mut written = Vec::new();
        for w in writers {
            written.push(w.await.expect("writer"));
        }
        let first = s
            .get_contact(h.id, written[0].contact.id)
            .await
            .unwrap()
            .profile_id;
        let profile = s.get_profile(h.id, first).await.unwrap();
        assert_eq!(
            profile.members.len(),
            2 * WRITERS + 1,
            "round {round}: not one profile"
        );
        for w in &written {
            // Each writer's answer named a profile that resolves to the final one.
            assert_eq!(
                s.get_profile(h.id, w.contact.profile_id).await.unwrap().id,
                profile.id
            );
        }
        crate::support::assert_invariants(s, h.id).await;
    }
    t.finish(h.id).await;
}
