//! PostgreSQL's event numbers ([`EventNumbers`] for [`PgStore`]).
//!
//! The feed's cursor is an event's number (`events.seq`); a reader must never see a number
//! appear below one it has already read. Whoever numbers events locks the hub row
//! (`hubs.event_seq`) and holds it to commit, so numbers follow commit order. SQLite's one
//! writer numbers its own events as it writes them. Here that lock, held by every upsert until
//! its commit, made concurrent upserts commit one at a time, so an upsert writes its events to
//! `pending_events` instead (ids from `cdh_ids`, no hub row), and `move_pending_events`
//! numbers the committed ones in a transaction that holds the hub row. It runs before the feed
//! is read (`sequence_events`), on every poll of the webhook deliverer (which keeps the table
//! small when no one reads the feed), when a webhook is created, and before any other writer
//! numbers events (an apply, a profile edit), so events of earlier upserts come first. Stale
//! checks count `Dialect::REALM_WRITTEN`, a realm's numbered events plus its pending ones,
//! which moving events leaves unchanged (the move adds what it numbers to
//! `realms.numbered_events`).

use super::PgStore;
use super::upsert::text_literal_into;
use crate::error::StoreResult;
use crate::model::{HubId, Millis};
use crate::plan::unify::NewEvent;
use crate::sql::EventNumbers;

/// One statement that queues the events of `realm`, written at `at`, in `pending_events`. They take no
/// number from the hub row: that row, updated by every writer and held to commit, made
/// concurrent upserts commit one at a time. Ids come from `cdh_ids` in the order listed, so
/// one upsert's events keep their order.
pub(super) fn events_statement_into(
    out: &mut String,
    hub: HubId,
    realm: &str,
    events: &[NewEvent],
    at: Millis,
) -> StoreResult<()> {
    use std::fmt::Write;
    let _ = write!(
        out,
        "INSERT INTO pending_events (hub_id, id, at, kind, profile_id, payload, realm) \
         SELECT {hub}, nextval('cdh_ids'), {at}, v.kind, v.profile_id, v.payload, "
    );
    text_literal_into(out, realm)?;
    out.push_str(" FROM (VALUES ");
    for (i, event) in events.iter().enumerate() {
        let _ = write!(out, "{}({}, ", if i > 0 { ", " } else { "" }, i + 1);
        text_literal_into(out, event.kind)?;
        let _ = write!(out, ", CAST({} AS BIGINT), ", event.profile_id);
        text_literal_into(out, &event.payload.to_string())?;
        out.push(')');
    }
    out.push_str(") AS v (i, kind, profile_id, payload);\n");
    Ok(())
}

impl EventNumbers for PgStore {
    /// Numbers the hub's committed pending events after its last event and moves them into
    /// the feed, in their id order. The hub row is locked first and held to commit, as by
    /// every writer that numbers events, so numbers follow commit order and a reader never
    /// sees a number below one it has already read appear later. Run before an event is
    /// numbered (`append_events`) and before the feed is read (`sequence_events`); pending
    /// events of transactions still open are not visible here and are numbered by a later
    /// call.
    async fn move_pending_events(conn: &mut sqlx::PgConnection, hub: HubId) -> StoreResult<()> {
        sqlx::query("SELECT event_seq FROM hubs WHERE hub_id = $1 FOR UPDATE")
            .bind(hub)
            .fetch_optional(&mut *conn)
            .await?;
        sqlx::query(
            "WITH moved AS (DELETE FROM pending_events WHERE hub_id = $1 \
               RETURNING id, at, kind, profile_id, payload, realm), \
             counted AS (SELECT count(*) AS n FROM moved), \
             h AS (UPDATE hubs SET event_seq = event_seq + counted.n FROM counted \
               WHERE hub_id = $1 AND counted.n > 0 RETURNING event_seq, counted.n), \
             per_realm AS (INSERT INTO realms (hub_id, realm, cross_product, numbered_events) \
               SELECT $1, realm, 0, count(*) FROM moved GROUP BY realm \
               ON CONFLICT (hub_id, realm) DO UPDATE \
               SET numbered_events = realms.numbered_events + EXCLUDED.numbered_events) \
             INSERT INTO events (hub_id, seq, at, kind, profile_id, payload, realm) \
             SELECT $1, h.event_seq - h.n + row_number() OVER (ORDER BY m.id), \
               m.at, m.kind, m.profile_id, m.payload, m.realm \
             FROM moved m, h",
        )
        .bind(hub)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Moves committed pending events into the feed, for `hub` or for every hub that has
    /// some, each hub in a transaction of its own. Cheap when none are pending.
    async fn sequence_events(&self, hub: Option<HubId>) -> StoreResult<()> {
        let pool = &self.pool;
        let hubs: Vec<(HubId,)> = match hub {
            Some(hub) => {
                sqlx::query_as("SELECT hub_id FROM pending_events WHERE hub_id = $1 LIMIT 1")
                    .bind(hub)
                    .fetch_optional(pool)
                    .await?
                    .into_iter()
                    .collect()
            }
            None => {
                sqlx::query_as("SELECT DISTINCT hub_id FROM pending_events")
                    .fetch_all(pool)
                    .await?
            }
        };
        for (hub,) in hubs {
            let mut tx = pool.begin().await?;
            Self::move_pending_events(&mut tx, hub).await?;
            tx.commit().await?;
        }
        Ok(())
    }
}
