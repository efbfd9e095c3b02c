//! [`Events`] for every backend: the events feed and webhook endpoints with their
//! deliveries. Each endpoint walks the events of its organization's realms (its own, and its
//! connection's) with its own cursor, one event at a time, so events arrive in order and a
//! failing endpoint holds back only itself. Of a connection's events, an organization reads
//! and receives only those about profiles holding a contact of its (`feed::numbered_events`).

use async_trait::async_trait;

use crate::error::{Rejection, Resource, StoreError, StoreResult};
use crate::model::{
    ConnectionId, Delivery, DeliveryLog, EventsPage, HubId, Millis, OrganizationId, Realm,
    WebhookEndpoint, WebhookId,
};
use crate::ops::feed::numbered_events;
use crate::ops::realms::load_realm;
use crate::ops::setup::ensure_organization;
use crate::port::Events;
use crate::sql::{Adapter, fetch_one, query};

/// The longest URL and secret accepted.
const MAX_WEBHOOK_TEXT: usize = 2048;

/// How many times one page of the feed reads on past events the reader does not see.
const FEED_READS_PER_PAGE: usize = 4;

/// Events a connected organization's endpoint reads ahead for the next one it sees.
const DELIVERY_LOOKAHEAD: u32 = 100;

/// A webhook endpoint due for a try, as read across hubs, with its hub's last event number
/// and its organization's connection.
#[derive(sqlx::FromRow)]
struct DueRow {
    hub_id: HubId,
    id: WebhookId,
    organization_id: OrganizationId,
    url: String,
    secret: String,
    delivered_seq: i64,
    attempt: i64,
    hub_event_seq: i64,
    connection_id: Option<ConnectionId>,
}

impl DueRow {
    /// The realms whose events the endpoint's organization receives.
    fn realms(&self) -> Vec<Realm> {
        let own = Realm::Organization(self.organization_id);
        match self.connection_id {
            Some(connection) => vec![own, Realm::Connection(connection)],
            None => vec![own],
        }
    }
}

/// A recorded delivery try.
#[derive(sqlx::FromRow)]
struct DeliveryRow {
    event_seq: i64,
    attempt: i64,
    status: Option<i64>,
    error: Option<String>,
    at: i64,
    next_attempt_at: Option<i64>,
}

#[async_trait]
impl<B: Adapter> Events for B {
    async fn events_page(
        &self,
        hub: HubId,
        org: OrganizationId,
        after: i64,
        limit: u32,
    ) -> StoreResult<EventsPage> {
        let realms = {
            let mut conn = self.acquire().await?;
            load_realm::<B>(&mut conn, hub, org)
                .await?
                .visible_realms(org)
        };
        self.sequence_events(Some(hub)).await?;
        let limit = limit.clamp(1, 10_000);
        let mut page = EventsPage {
            events: Vec::new(),
            next_after: after,
        };
        // Events of a connection's profiles the organization has no contact in are left out;
        // read on (a bounded number of times) rather than answer a short page.
        for _ in 0..FEED_READS_PER_PAGE {
            let room = limit - page.events.len() as u32;
            let read = numbered_events(self, hub, org, &realms, page.next_after, room).await?;
            page.events.extend(read.events);
            match read.read_to {
                Some(seq) => page.next_after = seq,
                None => break,
            }
            if page.events.len() as u32 >= limit {
                break;
            }
        }
        Ok(page)
    }

    async fn create_webhook(
        &self,
        hub: HubId,
        org: OrganizationId,
        url: &str,
        secret: &str,
    ) -> StoreResult<WebhookId> {
        let url = url.trim();
        if !(url.starts_with("https://") || url.starts_with("http://"))
            || url.len() > MAX_WEBHOOK_TEXT
            || url.chars().any(char::is_whitespace)
        {
            return Err(StoreError::rejected(
                Rejection::InvalidUrl,
                format!("a webhook URL must be an http(s) URL, not `{url}`"),
            ));
        }
        if secret.len() < 16 || secret.len() > MAX_WEBHOOK_TEXT {
            return Err(StoreError::rejected(
                Rejection::InvalidSecret,
                "a webhook secret must be 16 to 2048 characters",
            ));
        }
        let mut tx = self.begin_write().await?;
        ensure_organization::<B>(&mut tx, hub, org).await?;
        // Events written before the endpoint exists are not delivered to it, pending or not.
        B::move_pending_events(&mut tx, hub).await?;
        let (seq,): (i64,) = fetch_one::<B, _>(
            &mut tx,
            query("SELECT event_seq FROM hubs WHERE hub_id = $1").bind(hub),
            Resource::Hub,
        )
        .await?;
        let id = WebhookId(B::next_id(&mut tx, hub).await?);
        B::execute(
            &mut tx,
            query(
                "INSERT INTO webhook_endpoints (hub_id, id, organization_id, url, secret, \
                 delivered_seq, attempt, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 1, 0, $7)",
            )
            .bind(hub)
            .bind(id)
            .bind(org)
            .bind(url)
            .bind(secret)
            .bind(seq)
            .bind(self.clock().now()),
        )
        .await?;
        B::commit(tx).await?;
        Ok(id)
    }

    async fn list_webhooks(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let mut conn = self.acquire().await?;
        B::fetch_all(
            &mut conn,
            query(
                "SELECT id, organization_id, url, secret, delivered_seq, created_at \
                 FROM webhook_endpoints WHERE hub_id = $1 AND organization_id = $2 ORDER BY id",
            )
            .bind(hub)
            .bind(org),
        )
        .await
    }

    async fn delete_webhook(&self, hub: HubId, id: WebhookId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        B::execute(
            &mut tx,
            query("DELETE FROM webhook_deliveries WHERE hub_id = $1 AND endpoint_id = $2")
                .bind(hub)
                .bind(id),
        )
        .await?;
        let n = B::execute(
            &mut tx,
            query("DELETE FROM webhook_endpoints WHERE hub_id = $1 AND id = $2")
                .bind(hub)
                .bind(id),
        )
        .await?;
        if n == 0 {
            return Err(StoreError::NotFound(Resource::Webhook));
        }
        B::commit(tx).await
    }

    async fn due_deliveries(&self, now: Millis, limit: u32) -> StoreResult<Vec<Delivery>> {
        // Across hubs, like the task queue: the deliverer serves every hub. The join stays
        // within each endpoint's hub. Pending events are numbered first; this poll is also
        // what keeps them few when no one reads the feed.
        self.sequence_events(None).await?;
        let due: Vec<DueRow> = {
            let mut conn = self.acquire().await?;
            B::fetch_all(
                &mut conn,
                query(
                    "SELECT w.hub_id, w.id, w.organization_id, w.url, w.secret, \
                     w.delivered_seq, w.attempt, h.event_seq AS hub_event_seq, \
                     cm.connection_id AS connection_id \
                     FROM webhook_endpoints w JOIN hubs h ON h.hub_id = w.hub_id \
                     LEFT JOIN connection_members cm \
                       ON cm.hub_id = w.hub_id AND cm.organization_id = w.organization_id \
                     WHERE w.next_attempt_at <= $1 AND h.event_seq > w.delivered_seq \
                     ORDER BY w.next_attempt_at, w.hub_id, w.id LIMIT $2",
                )
                .bind(now)
                .bind(i64::from(limit.clamp(1, 10_000))),
            )
            .await?
        };
        let mut deliveries = Vec::with_capacity(due.len());
        for row in due {
            let realms = row.realms();
            let next = numbered_events(
                self,
                row.hub_id,
                row.organization_id,
                &realms,
                row.delivered_seq,
                // Only a connection's events can be left out; read past a few of them at once.
                if row.connection_id.is_some() {
                    DELIVERY_LOOKAHEAD
                } else {
                    1
                },
            )
            .await?;
            let Some(event) = next.events.into_iter().next() else {
                // The events read (or, when none was, every event up to the hub's last number
                // read above) are ones the organization does not see: move past them, or the
                // endpoint stays due and crowds out the others.
                let past = next.read_to.unwrap_or(row.hub_event_seq);
                skip_unseen_events::<B>(self, &row, past).await?;
                continue;
            };
            deliveries.push(Delivery {
                hub_id: row.hub_id,
                endpoint_id: row.id,
                url: row.url,
                secret: row.secret,
                event,
                attempt: u32::try_from(row.attempt).unwrap_or(1),
            });
        }
        Ok(deliveries)
    }

    async fn record_delivery(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        event_seq: i64,
        attempt: u32,
        outcome: Result<u16, String>,
        next_attempt_at: Option<Millis>,
    ) -> StoreResult<()> {
        let (status, error) = match outcome {
            Ok(status) => (Some(i64::from(status)), None),
            Err(message) => (None, Some(message)),
        };
        let mut tx = self.begin_write().await?;
        let (delivered,): (i64,) = fetch_one::<B, _>(
            &mut tx,
            query(format!(
                "SELECT delivered_seq FROM webhook_endpoints WHERE hub_id = $1 AND id = $2{}",
                B::FOR_UPDATE
            ))
            .bind(hub)
            .bind(endpoint),
            Resource::Webhook,
        )
        .await?;
        if event_seq <= delivered {
            return Err(StoreError::Conflict(format!(
                "event {event_seq} was already delivered to webhook {endpoint}"
            )));
        }
        B::execute(
            &mut tx,
            query(
                "INSERT INTO webhook_deliveries (hub_id, endpoint_id, event_seq, attempt, \
                 status, error, at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(hub)
            .bind(endpoint)
            .bind(event_seq)
            .bind(i64::from(attempt))
            .bind(status)
            .bind(error)
            .bind(self.clock().now())
            .bind(next_attempt_at),
        )
        .await
        .map_err(|e| match e {
            StoreError::Backend { .. } => StoreError::Conflict(format!(
                "attempt {attempt} of event {event_seq} is already recorded"
            )),
            other => other,
        })?;
        let advance = match next_attempt_at {
            Some(at) => query(
                "UPDATE webhook_endpoints SET attempt = $3, next_attempt_at = $4 \
                 WHERE hub_id = $1 AND id = $2",
            )
            .bind(hub)
            .bind(endpoint)
            .bind(i64::from(attempt) + 1)
            .bind(at),
            None => query(
                "UPDATE webhook_endpoints SET delivered_seq = $3, attempt = 1, \
                 next_attempt_at = 0 WHERE hub_id = $1 AND id = $2",
            )
            .bind(hub)
            .bind(endpoint)
            .bind(event_seq),
        };
        B::execute(&mut tx, advance).await?;
        B::commit(tx).await
    }

    async fn deliveries(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryLog>> {
        let mut conn = self.acquire().await?;
        let rows: Vec<DeliveryRow> = B::fetch_all(
            &mut conn,
            query(
                "SELECT event_seq, attempt, status, error, at, next_attempt_at \
                 FROM webhook_deliveries WHERE hub_id = $1 AND endpoint_id = $2 \
                 ORDER BY at DESC, event_seq DESC, attempt DESC LIMIT $3",
            )
            .bind(hub)
            .bind(endpoint)
            .bind(i64::from(limit.clamp(1, 1000))),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|row| DeliveryLog {
                event_seq: row.event_seq,
                attempt: u32::try_from(row.attempt).unwrap_or(0),
                status: row.status.and_then(|s| u16::try_from(s).ok()),
                error: row.error,
                at: row.at,
                next_attempt_at: row.next_attempt_at,
            })
            .collect())
    }
}

/// Moves an endpoint's cursor to its hub's last event number read with it, unless a try was
/// recorded meanwhile.
async fn skip_unseen_events<B: Adapter>(store: &B, row: &DueRow, past: i64) -> StoreResult<()> {
    let mut tx = store.begin_write().await?;
    B::execute(
        &mut tx,
        query(
            "UPDATE webhook_endpoints SET delivered_seq = $3 \
             WHERE hub_id = $1 AND id = $2 AND delivered_seq = $4",
        )
        .bind(row.hub_id)
        .bind(row.id)
        .bind(past)
        .bind(row.delivered_seq),
    )
    .await?;
    B::commit(tx).await
}
