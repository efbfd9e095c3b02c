//! The events feed: numbering events in commit order, appending them, and reading them back
//! with an apply's merged ranges expanded (see `merged_range`).

use crate::error::{StoreError, StoreResult};
use crate::merged_range::{MERGED_RANGE_KIND, MergedRange};
use crate::model::{Event, HubId, Millis, ProfileId, Realm};
use crate::ops::profiles::{LEDGER_COLUMNS, LedgerRow};
use crate::plan::unify::{NewEvent, merged_event};
use crate::sql::batch::queue_events;
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

/// Events of `realms` already numbered, after `after`, in order, at most `limit`; a row of
/// kind `MERGED_RANGE_KIND` is expanded into its `profile.merged` events. Pending events are
/// not seen: number them first (`EventNumbers::sequence_events`).
///
/// Each realm's rows are read by its index, at most `limit` of them, and merged in order:
/// since every row is at least one event, the first `limit` events of the merge are the
/// first `limit` of all the realms' events.
pub(crate) async fn numbered_events<B: Adapter>(
    store: &B,
    hub: HubId,
    realms: &[Realm],
    after: i64,
    limit: u32,
) -> StoreResult<Vec<Event>> {
    let limit = i64::from(limit.clamp(1, 10_000));
    let mut conn = store.acquire().await?;
    let mut rows: Vec<EventRow> = Vec::new();
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
        rows.extend(of_realm);
    }
    rows.sort_unstable_by_key(|row| row.seq);
    let mut events = Vec::with_capacity(rows.len().min(limit as usize));
    for row in rows {
        let room = limit - events.len() as i64;
        if room <= 0 {
            break;
        }
        if row.kind == MERGED_RANGE_KIND {
            let range: MergedRange = serde_json::from_str(&row.payload)?;
            let from = range.first.max(after + 1);
            let to = row.seq.min(from + room - 1);
            expand_merged_range::<B>(&mut conn, hub, &range, from..=to, &mut events).await?;
        } else {
            events.push(Event {
                seq: row.seq,
                at: row.at,
                kind: row.kind,
                profile_id: row.profile_id,
                payload: serde_json::from_str(&row.payload)?,
            });
        }
    }
    Ok(events)
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
