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

/// Rows of the hub's events a page reads at most: it scans the hub's events in order and
/// keeps those of its realms, so in a hub of several organizations a page that finds few of
/// its own still ends (`read_to` moves past what it scanned).
pub(crate) const FEED_SCAN_ROWS: i64 = 10_000;

/// One events row as the feed scans it, with the realm it belongs to.
#[derive(sqlx::FromRow)]
struct ScannedRow {
    #[sqlx(flatten)]
    row: EventRow,
    realm: String,
}

/// Events of `realms` already numbered, after `after`, in order, at most `limit`, as
/// organization `reader` sees them: every event of its own realm, and of a connection's
/// realm only those about a profile that holds a contact of `reader` now ("events about a
/// profile go to every organization that has a contact in it"). A row of kind
/// `MERGED_RANGE_KIND` is expanded into its `profile.merged` events. Pending events are not
/// seen: number them first (`EventNumbers::sequence_events`).
///
/// The hub's events are scanned in order by their primary key (no index by realm: on SQLite
/// one cost a third of the one-writer upsert rate), at most `FEED_SCAN_ROWS` rows; those of
/// other realms, and those of profiles the reader has no contact in, are left out, so a page
/// may hold fewer than `limit` (see `read_to`).
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
    let keys: HashMap<String, bool> = realms
        .iter()
        .map(|realm| (realm.key(), matches!(realm, Realm::Connection(_))))
        .collect();
    let mut read: Vec<(Event, bool)> = Vec::with_capacity(limit as usize);
    // The last row scanned, of any realm: every row up to it was looked at. Numbers are
    // taken in commit order, so a read that sees a row sees every row before it.
    let mut scanned_to: Option<i64> = None;
    let mut scanned = 0;
    'scan: while scanned < FEED_SCAN_ROWS {
        let room = limit - read.len() as i64;
        if room <= 0 {
            break;
        }
        // In a hub of one organization every row is the reader's: one step of `room` rows.
        let step = room.min(FEED_SCAN_ROWS - scanned);
        let rows: Vec<ScannedRow> = B::fetch_all(
            &mut conn,
            query(
                "SELECT seq, at, kind, profile_id, payload, realm FROM events \
                 WHERE hub_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
            )
            .bind(hub)
            .bind(scanned_to.unwrap_or(after))
            .bind(step),
        )
        .await?;
        let n_rows = rows.len() as i64;
        scanned += n_rows;
        for ScannedRow { row, realm } in rows {
            let room = limit - read.len() as i64;
            if room <= 0 {
                break 'scan;
            }
            let seq = row.seq;
            if let Some(&shared) = keys.get(&realm) {
                push_row::<B>(&mut conn, hub, row, shared, after, room, &mut read).await?;
            }
            // A merged range cut short by the page's room is read on by the next page.
            if read.len() as i64 >= limit {
                break 'scan;
            }
            scanned_to = Some(seq);
        }
        if n_rows < step {
            break;
        }
    }
    let read_to = if read.len() as i64 >= limit {
        read.last().map(|(event, _)| event.seq)
    } else {
        scanned_to
    };

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

/// Adds the events of one scanned row of the reader's realms to `read`: the event, or the
/// events of a merged range after `after`, at most `room`.
async fn push_row<B: Adapter>(
    conn: &mut B::Conn,
    hub: HubId,
    row: EventRow,
    shared: bool,
    after: i64,
    room: i64,
    read: &mut Vec<(Event, bool)>,
) -> StoreResult<()> {
    if row.kind == MERGED_RANGE_KIND {
        let range: MergedRange = serde_json::from_str(&row.payload)?;
        let from = range.first.max(after + 1);
        let to = row.seq.min(from + room - 1);
        let mut expanded = Vec::new();
        expand_merged_range::<B>(conn, hub, &range, from..=to, &mut expanded).await?;
        read.extend(expanded.into_iter().map(|event| (event, shared)));
    } else {
        read.push((
            Event {
                seq: row.seq,
                at: row.at,
                kind: row.kind,
                profile_id: row.profile_id,
                payload: serde_json::from_str(&row.payload)?,
            },
            shared,
        ));
    }
    Ok(())
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
