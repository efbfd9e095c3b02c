// Webhook endpoints and their deliveries (included by both adapters). Each endpoint walks the
// hub's event log with its own cursor, one event at a time, so events arrive in order and a
// failing endpoint holds back only itself.

/// A delivery log row: event, attempt, status, error, time, next try.
type DeliveryRow = (i64, i64, Option<i64>, Option<String>, i64, Option<i64>);

/// The longest URL and secret accepted.
const MAX_WEBHOOK_TEXT: usize = 2048;

impl ThisStore {
    async fn create_webhook_impl(
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
                "invalid_url",
                format!("a webhook URL must be an http(s) URL, not `{url}`"),
            ));
        }
        if secret.len() < 16 || secret.len() > MAX_WEBHOOK_TEXT {
            return Err(StoreError::rejected(
                "invalid_secret",
                "a webhook secret must be 16 to 2048 characters",
            ));
        }
        let mut tx = self.begin_write().await?;
        ensure_organization(&mut tx, hub, org).await?;
        // Events written before the endpoint exists are not delivered to it, pending or not.
        move_pending_events(&mut tx, hub).await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT event_seq FROM hubs WHERE hub_id = $1")
            .bind(hub)
            .fetch_one(&mut *tx)
            .await?;
        let id = next_id(&mut tx, hub).await?;
        sqlx::query(
            "INSERT INTO webhook_endpoints (hub_id, id, organization_id, url, secret, delivered_seq, \
             attempt, next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, 1, 0, $7)",
        )
        .bind(hub)
        .bind(id)
        .bind(org)
        .bind(url.to_owned())
        .bind(secret.to_owned())
        .bind(seq)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn list_webhooks_impl(
        &self,
        hub: HubId,
        org: OrganizationId,
    ) -> StoreResult<Vec<WebhookEndpoint>> {
        let rows: Vec<(i64, i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT id, organization_id, url, secret, delivered_seq, created_at FROM webhook_endpoints \
             WHERE hub_id = $1 AND organization_id = $2 ORDER BY id",
        )
        .bind(hub)
        .bind(org)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, organization_id, url, secret, delivered_seq, created_at)| WebhookEndpoint {
                    id,
                    organization_id,
                    url,
                    secret,
                    delivered_seq,
                    created_at,
                },
            )
            .collect())
    }

    async fn delete_webhook_impl(&self, hub: HubId, id: WebhookId) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE hub_id = $1 AND endpoint_id = $2")
            .bind(hub)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM webhook_endpoints WHERE hub_id = $1 AND id = $2")
            .bind(hub)
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound("webhook"));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due_deliveries_impl(&self, now: Millis, limit: u32) -> StoreResult<Vec<Delivery>> {
        // Across hubs, like the task queue: the deliverer serves every hub. The join stays
        // within each endpoint's hub. Pending events are numbered first; this poll is also what
        // keeps them few when no one reads the feed.
        self.sequence_events(None).await?;
        let due: Vec<(i64, i64, String, String, i64, i64)> = sqlx::query_as(
            "SELECT w.hub_id, w.id, w.url, w.secret, w.delivered_seq, w.attempt \
             FROM webhook_endpoints w JOIN hubs h ON h.hub_id = w.hub_id \
             WHERE w.next_attempt_at <= $1 AND h.event_seq > w.delivered_seq \
             ORDER BY w.next_attempt_at, w.hub_id, w.id LIMIT $2",
        )
        .bind(now)
        .bind(i64::from(limit.clamp(1, 10_000)))
        .fetch_all(&self.pool)
        .await?;
        let mut deliveries = Vec::with_capacity(due.len());
        for (hub, endpoint_id, url, secret, delivered, attempt) in due {
            let Some(event) = self
                .numbered_events(hub, delivered, 1)
                .await?
                .into_iter()
                .next()
            else {
                continue;
            };
            deliveries.push(Delivery {
                hub_id: hub,
                endpoint_id,
                url,
                secret,
                event,
                attempt: u32::try_from(attempt).unwrap_or(1),
            });
        }
        Ok(deliveries)
    }

    async fn record_delivery_impl(
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
        let row: Option<(i64,)> = sqlx::query_as(&format!(
            "SELECT delivered_seq FROM webhook_endpoints WHERE hub_id = $1 AND id = $2{FOR_UPDATE}"
        ))
        .bind(hub)
        .bind(endpoint)
        .fetch_optional(&mut *tx)
        .await?;
        let (delivered,) = row.ok_or(StoreError::NotFound("webhook"))?;
        if event_seq <= delivered {
            return Err(StoreError::Conflict(format!(
                "event {event_seq} was already delivered to webhook {endpoint}"
            )));
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO webhook_deliveries (hub_id, endpoint_id, event_seq, attempt, status, error, \
             at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(hub)
        .bind(endpoint)
        .bind(event_seq)
        .bind(i64::from(attempt))
        .bind(status)
        .bind(error)
        .bind(now)
        .bind(next_attempt_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match StoreError::from(e) {
            StoreError::Backend { .. } => StoreError::Conflict(format!(
                "attempt {attempt} of event {event_seq} is already recorded"
            )),
            other => other,
        })?;
        match next_attempt_at {
            Some(at) => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET attempt = $3, next_attempt_at = $4 \
                     WHERE hub_id = $1 AND id = $2",
                )
                .bind(hub)
                .bind(endpoint)
                .bind(i64::from(attempt) + 1)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE webhook_endpoints SET delivered_seq = $3, attempt = 1, next_attempt_at = 0 \
                     WHERE hub_id = $1 AND id = $2",
                )
                .bind(hub)
                .bind(endpoint)
                .bind(event_seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn deliveries_impl(
        &self,
        hub: HubId,
        endpoint: WebhookId,
        limit: u32,
    ) -> StoreResult<Vec<DeliveryLog>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT event_seq, attempt, status, error, at, next_attempt_at FROM webhook_deliveries \
             WHERE hub_id = $1 AND endpoint_id = $2 ORDER BY at DESC, event_seq DESC, attempt DESC LIMIT $3",
        )
        .bind(hub)
        .bind(endpoint)
        .bind(i64::from(limit.clamp(1, 1000)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(event_seq, attempt, status, error, at, next_attempt_at)| DeliveryLog {
                    event_seq,
                    attempt: u32::try_from(attempt).unwrap_or(0),
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    error,
                    at,
                    next_attempt_at,
                },
            )
            .collect())
    }
}
