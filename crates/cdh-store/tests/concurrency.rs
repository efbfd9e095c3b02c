//! Concurrent writers whose contacts bridge profiles end in one profile.

use crate::conformance;
use crate::support::{TestStore, apply_keys, hub, upsert};

const WRITERS: usize = 16;

conformance!(concurrent_bridges_end_in_one_profile, concurrency_body);
async fn concurrency_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    // Email, not customer_id: customer ids are unique by default, and a bridge of two would be
    // refused (tests/conflicts.rs).
    apply_keys(s, h.id, h.org, &["display_email", "connect_id"]).await;
    for round in 0..3 {
        // Seeds: seed i holds email k<i> and connect c<i-1>; writer i holds k<i> and c<i>,
        // so it bridges seed i and seed i+1, and only all writers together chain every seed.
        for i in 0..=WRITERS {
            let k = format!("r{round}k{i}@x.io");
            let c = format!("r{round}c{}", i.wrapping_sub(1));
            upsert(
                s,
                h.id,
                h.email_caac,
                &format!("r{round}seed{i}"),
                &[("display_email", &k), ("connect_id", &c)],
            )
            .await;
        }
        let mut writers = Vec::new();
        for i in 0..WRITERS {
            let store = s.clone();
            let hub = h.id;
            let channel = h.email_caac;
            writers.push(tokio::spawn(async move {
                let k = format!("r{round}k{i}@x.io");
                let c = format!("r{round}c{i}");
                upsert(
                    &store,
                    hub,
                    channel,
                    &format!("r{round}w{i}"),
                    &[("display_email", &k), ("connect_id", &c)],
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

conformance!(
    concurrent_writers_and_feed_readers_see_every_event_once,
    feed_body
);
/// Writers upsert while a reader walks the feed with its cursor: the reader ends with every
/// event exactly once, numbered 1, 2, 3... with no gap, and every written contact is in it.
/// On PostgreSQL, upserts leave their events unnumbered and readers number them, so a reader
/// that skipped one whose writer committed late would show a gap or miss a contact.
async fn feed_body(t: TestStore) {
    const EACH: usize = 12;
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["customer_id"]).await;
    let start = s.events_after(h.id, h.org, 0, 10_000).await.unwrap();
    let mut cursor = start.last().map_or(0, |e| e.seq);
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = s.clone();
        let (hub, channel) = (h.id, h.email_caac);
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..EACH {
                // Pairs of writers share customer ids, so some upserts merge.
                let customer = format!("feed-k{}-{i}", w / 2);
                let c = upsert(
                    &store,
                    hub,
                    channel,
                    &format!("feed-w{w}-{i}"),
                    &[("customer_id", &customer)],
                )
                .await;
                ids.push(c.contact.id);
            }
            ids
        }));
    }
    let mut seen = Vec::new();
    let mut read = |batch: Vec<cdh_store::model::Event>, cursor: &mut i64| {
        for e in batch {
            assert_eq!(e.seq, *cursor + 1, "a gap or a repeat in the feed");
            *cursor = e.seq;
            seen.push(e);
        }
    };
    while !writers.iter().all(|w| w.is_finished()) {
        let batch = s.events_after(h.id, h.org, cursor, 5).await.unwrap();
        read(batch, &mut cursor);
        tokio::task::yield_now().await;
    }
    let mut written = Vec::new();
    for w in writers {
        written.extend(w.await.expect("writer"));
    }
    loop {
        let batch = s.events_after(h.id, h.org, cursor, 5).await.unwrap();
        if batch.is_empty() {
            break;
        }
        read(batch, &mut cursor);
    }
    assert!(seen.len() >= WRITERS * EACH, "{} events", seen.len());
    let mentioned: std::collections::BTreeSet<i64> = seen
        .iter()
        .filter_map(|e| e.payload.get("contact_id").and_then(|c| c.as_i64()))
        .collect();
    for id in &written {
        assert!(mentioned.contains(&id.0), "no event for contact {id}");
    }
    // A fresh walk from the start reads the same events.
    let again = s.events_after(h.id, h.org, 0, 10_000).await.unwrap();
    assert_eq!(again.len(), start.len() + seen.len());
    assert_eq!(
        again[start.len()..]
            .iter()
            .map(|e| (e.seq, e.kind.clone(), e.profile_id))
            .collect::<Vec<_>>(),
        seen.iter()
            .map(|e| (e.seq, e.kind.clone(), e.profile_id))
            .collect::<Vec<_>>()
    );
    crate::support::assert_invariants(s, h.id).await;
    t.finish(h.id).await;
}

conformance!(events_of_earlier_upserts_come_before_an_apply_s, order_body);
/// An apply numbers its merge events after every event of upserts committed before it, even
/// those no reader has numbered yet (PostgreSQL leaves them pending).
async fn order_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    let a = upsert(
        s,
        h.id,
        h.email_caac,
        "a",
        &[("display_email", "x@example.com")],
    )
    .await;
    let b = upsert(
        s,
        h.id,
        h.email_caac,
        "b",
        &[("display_email", "x@example.com")],
    )
    .await;
    assert_ne!(a.contact.profile_id, b.contact.profile_id, "no keys yet");
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let events = s.events_after(h.id, h.org, 0, 100).await.unwrap();
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["profile.created", "profile.created", "profile.merged"],
        "{events:?}"
    );
    t.finish(h.id).await;
}

conformance!(upserts_alongside_other_writes_lose_nothing, alongside_body);
/// Upserts from many tasks while other writes run at once (notes, and an apply of new keys):
/// on SQLite the two go through different connections (the writer connection and sqlx's writer),
/// which must take turns. Every upsert and note lands, and the invariants hold.
async fn alongside_body(t: TestStore) {
    let s = &t.store;
    let h = hub(s).await;
    apply_keys(s, h.id, h.org, &["display_email"]).await;
    let anchor = upsert(s, h.id, h.email_caac, "anchor", &[("customer_id", "k0")]).await;
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = s.clone();
        let (hub, channel) = (h.id, h.email_caac);
        writers.push(tokio::spawn(async move {
            let mut written = Vec::new();
            for i in 0..15 {
                // Pairs of writers share an email, and every contact a customer id, so
                // writes join and merge profiles once the second apply makes it a key.
                let email = format!("w{}-{i}@example.com", w / 2);
                let customer = format!("k{}", i % 3);
                let done = upsert(
                    &store,
                    hub,
                    channel,
                    &format!("w{w}-{i}"),
                    &[("display_email", &email), ("customer_id", &customer)],
                )
                .await;
                written.push((done.contact.id, email));
            }
            written
        }));
    }
    let mut notes = Vec::new();
    for n in 0..20 {
        let note = s
            .add_note(
                h.id,
                anchor.contact.id,
                &format!("note {n}"),
                "agent",
                1_000 + n,
            )
            .await
            .expect("note");
        notes.push(note);
        if n == 10 {
            apply_keys(s, h.id, h.org, &["display_email", "customer_id"]).await;
        }
    }
    for w in writers {
        for (id, email) in w.await.expect("writer") {
            let contact = s.get_contact(h.id, id).await.expect("written contact");
            assert_eq!(contact.fields["display_email"].value, email);
        }
    }
    let profile = s
        .get_profile(h.id, anchor.contact.profile_id)
        .await
        .unwrap();
    assert!(
        profile.members.len() > 1,
        "customer id k0 ties the anchor to the writers' contacts"
    );
    // Every note is in the timeline of the profile the anchor ended in, newest first.
    let timeline = s.timeline(h.id, profile.id, 100, None).await.unwrap();
    let ids: Vec<cdh_store::model::TimelineEntryId> = timeline
        .items
        .iter()
        .filter(|e| e.kind == "note")
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, notes.iter().rev().copied().collect::<Vec<_>>());
    crate::support::assert_invariants(s, h.id).await;
    t.finish(h.id).await;
}
