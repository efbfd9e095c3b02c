//! The events feed: numbering events in commit order, appending them, and reading them back
//! with an apply's merged ranges expanded (see `merged_range`).

use std::collections::HashMap;

use crate::error::{StoreError, StoreResult};
use crate::merged_range::{MERGED_RANGE_KIND, MergedRange};
use crate::model::{Event, HubId, Millis, OrganizationId, ProfileId, Realm};
use crate::ops::profiles::{LEDGER_COLUMNS, LedgerRow};
use crate::plan::unify::{NewEvent, merged_event};
use crate::sql::batch::queue_events;
use crate::sql::text::buckets_of;
use crate::sql::{Adapter, WriteBatch, query};

/// Appends events of `realm` at `at`, numbering them after the hub's last one.
pub(crate) async fn append_events<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: &str,
    events: &[NewEvent],
    at: Millis,
) -> StoreResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let first = take_event_numbers::<B>(conn, hub, realm, events.len()).await?;
    let mut batch = WriteBatch::default();
    queue_events(&mut batch, hub, realm, first, events, at);
    B::run_batch(conn, batch).await
}

/// Takes `n` event numbers after the hub's last one for events of `realm`; returns the first.
/// Runs last in a transaction: the hub row it updates is held to commit, so numbers follow
/// commit order. Events of upserts committed before and still pending are numbered first, so
/// they come before these. The realm's count of numbered events grows by `n`
/// (`Dialect::REALM_WRITTEN`).
pub(crate) async fn take_event_numbers<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    realm: &str,
    n: usize,
) -> StoreResult<i64> {
    B::move_pending_events(conn, hub).await?;
    B::execute(
        conn,
        query(
            "UPDATE realms SET numbered_events = numbered_events + $3 \
             WHERE hub_id = $1 AND realm = $2",
        )
        .bind(hub)
        .bind(realm)
        .bind(n as i64),
    )
    .await?;
    let (last,): (i64,) = crate::sql::fetch_one::<B, _>(
        conn,
        query("UPDATE hubs SET event_seq = event_seq + $2 WHERE hub_id = $1 RETURNING event_seq")
            .bind(hub)
            .bind(n as i64),
        crate::error::Resource::Hub,
    )
    .await?;
    Ok(last - n as i64 + 1)
}

/// An events row as stored: an event, or a merged range standing for many.
#[derive(sqlx::FromRow)]
struct EventRow {
    seq: i64,
    at: i64,
    kind: String,
    profile_id: ProfileId,
    payload: String,
}

/// A page of the feed as one organization reads it.
pub(crate) struct FeedPage {
    /// The events it sees, in order.
    pub events: Vec<Event>,
    /// The number of the last event read, seen or not (where the next page starts); `None`
    /// when there was none.
    pub read_to: Option<i64>,
}

/// Events of `realms` already numbered, after `after`, in order, at most `limit`, as
/// organization `reader` sees them: every event of its own realm, and of a connection's
/// realm only those about a profile that holds a contact of `reader` now ("events about a
/// profile go to every organization that has a contact in it"). A row of kind
/// `MERGED_RANGE_KIND` is expanded into its `profile.merged` events. Pending events are not
/// seen: number them first (`EventNumbers::sequence_events`).
///
/// At most `limit` events are read; those of profiles the reader has no contact in are
/// left out, so a page may hold fewer (see `read_to`).
pub(crate) async fn numbered_events<B: Adapter>(
    store: &B,
    hub: HubId,
    reader: OrganizationId,
    realms: &[Realm],
    after: i64,
    limit: u32,
) -> StoreResult<FeedPage> {
    let limit = i64::from(limit.clamp(1, 10_000));
    let mut conn = store.acquire().await?;
    // Each realm's rows are read by its index, at most `limit` of them, and merged in order:
    // since every row is at least one event, the first `limit` events of the merge are the
    // first `limit` of all the realms' events.
    let mut rows: Vec<(EventRow, bool)> = Vec::new();
    for realm in realms {
        let of_realm: Vec<EventRow> = B::fetch_all(
            &mut conn,
            query(
                "SELECT seq, at, kind, profile_id, payload FROM events \
                 WHERE hub_id = $1 AND realm = $2 AND seq > $3 ORDER BY seq LIMIT $4",
            )
            .bind(hub)
            .bind(realm.key())
            .bind(after)
            .bind(limit),
        )
        .await?;
        let shared = matches!(realm, Realm::Connection(_));
        rows.extend(of_realm.into_iter().map(|row| (row, shared)));
    }
    rows.sort_unstable_by_key(|(row, _)| row.seq);
    let mut read: Vec<(Event, bool)> = Vec::with_capacity(rows.len().min(limit as usize));
    for (row, shared) in rows {
        let room = limit - read.len() as i64;
        if room <= 0 {
            break;
        }
        if row.kind == MERGED_RANGE_KIND {
            let range: MergedRange = serde_json::from_str(&row.payload)?;
            let from = range.first.max(after + 1);
            let to = row.seq.min(from + room - 1);
            let mut expanded = Vec::new();
            expand_merged_range::<B>(&mut conn, hub, &range, from..=to, &mut expanded).await?;
            read.extend(expanded.into_iter().map(|event| (event, shared)));
        } else {
            let event = Event {
                seq: row.seq,
                at: row.at,
                kind: row.kind,
                profile_id: row.profile_id,
                payload: serde_json::from_str(&row.payload)?,
            };
            read.push((event, shared));
        }
    }
    let read_to = read.last().map(|(event, _)| event.seq);
    // One check per profile of the page, only for events of a connection's realm.
    let mut seen_by_reader: HashMap<ProfileId, bool> = HashMap::new();
    let mut events = Vec::with_capacity(read.len());
    for (event, shared) in read {
        if shared {
            let seen = match seen_by_reader.get(&event.profile_id) {
                Some(seen) => *seen,
                None => {
                    let seen =
                        has_contact_of::<B>(&mut conn, hub, event.profile_id, reader).await?;
                    seen_by_reader.insert(event.profile_id, seen);
                    seen
                }
            };
            if !seen {
                continue;
            }
        }
        events.push(event);
    }
    Ok(FeedPage { events, read_to })
}

/// Whether the live profile of `profile` (itself, or the one it was merged into) holds a
/// contact of `org`.
async fn has_contact_of<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    profile: ProfileId,
    org: OrganizationId,
) -> StoreResult<bool> {
    let j = B::ORDERED_JOIN;
    let found: Option<(ProfileId,)> = B::fetch_optional(
        conn,
        query(format!(
            "SELECT e.id FROM profiles e \
             {j} profiles p ON p.hub_id = e.hub_id AND p.id = COALESCE(e.merged_into, e.id) \
             WHERE e.hub_id = $1 AND e.id = $2 AND EXISTS (SELECT 1 FROM ({}) b \
               {j} memberships m ON m.hub_id = $1 AND m.bucket_id = b.bucket_id \
               {j} contacts c ON c.hub_id = m.hub_id AND c.id = m.contact_id \
               {j} channels ch ON ch.hub_id = c.hub_id AND ch.id = c.channel_id \
               WHERE ch.organization_id = $3)",
            buckets_of("p.id")
        ))
        .bind(hub)
        .bind(profile)
        .bind(org),
    )
    .await?;
    Ok(found.is_some())
}

/// The `profile.merged` events numbered `seqs` of a merged range, built from its ledger rows
/// as `merged_event` builds them when each is written as a row of its own.
async fn expand_merged_range<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    range: &MergedRange,
    seqs: std::ops::RangeInclusive<i64>,
    events: &mut Vec<Event>,
) -> StoreResult<()> {
    let missing = || {
        StoreError::Corrupt(format!(
            "events {}..={} of hub {hub} name ledger rows that are not there",
            seqs.start(),
            seqs.end()
        ))
    };
    let from = range.ledger_seq_of(*seqs.start()).ok_or_else(missing)?;
    let to = range.ledger_seq_of(*seqs.end()).ok_or_else(missing)?;
    // No other ledger row of the hub lies between an apply's first and last
    // (`merged_range`), so the rows between these two are the events' rows, in order.
    let rows: Vec<LedgerRow> = B::fetch_all(
        conn,
        query(format!(
            "SELECT {LEDGER_COLUMNS} FROM merge_ledger l \
             WHERE l.hub_id = $1 AND l.seq BETWEEN $2 AND $3 ORDER BY l.seq"
        ))
        .bind(hub)
        .bind(from)
        .bind(to),
    )
    .await?;
    if rows.len() as i64 != seqs.end() - seqs.start() + 1 {
        return Err(missing());
    }
    for (seq, row) in seqs.zip(rows) {
        let l = row.into_entry()?;
        let event = merged_event(l.survivor_id, &l.absorbed_ids, &l.key_field, &l.key_value);
        events.push(Event {
            seq,
            at: l.at,
            kind: event.kind.to_owned(),
            profile_id: event.profile_id,
            payload: event.payload,
        });
    }
    Ok(())
}
