//! Delivers the events feed to webhook endpoints: signed POSTs with an idempotency key, a
//! 5 s timeout, and retries with exponential backoff recorded in each endpoint's log.
//!
//! The store hands out, per endpoint, its next undelivered event once its next try is due,
//! so events reach an endpoint one at a time and in order, and a failing endpoint only
//! delays itself. Each try is recorded before the next is handed out; a crash between the
//! POST and the record sends the event again, which the idempotency key lets receivers drop.

use std::time::Duration;

use cdh_store::StoreResult;
use cdh_store::model::{Delivery, Event, Millis};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::task::JoinSet;

use super::targets;
use crate::metrics::Counter;
use crate::state::AppState;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body keyed by the endpoint's secret>`.
pub const SIGNATURE_HEADER: &str = "X-CDH-Signature";
/// The header carrying the event's id, the same on every try.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Tries per event: the first and 3 retries.
pub const MAX_ATTEMPTS: u32 = 4;
/// The wait before the first retry; each later retry waits twice as long as the one before.
pub const FIRST_RETRY_DELAY_MS: Millis = 10_000;

/// Deliveries started per pass.
const BATCH: u32 = 64;
/// Passes per call, so one call drains endpoints that have several events waiting.
const MAX_PASSES: usize = 100;

/// Delivers every due event, pass after pass until none is due, and returns the tries made.
pub async fn deliver_due(state: &AppState) -> StoreResult<usize> {
    let mut tries = 0;
    for _ in 0..MAX_PASSES {
        let due = state.store.due_deliveries(state.now(), BATCH).await?;
        if due.is_empty() {
            break;
        }
        let mut sending = JoinSet::new();
        let allow_private = state.config.webhook_allow_private;
        for delivery in due {
            let client = state.worker.http_client(allow_private).clone();
            sending.spawn(async move {
                let outcome = send(&client, &delivery, allow_private).await;
                (delivery, outcome)
            });
        }
        while let Some(joined) = sending.join_next().await {
            let Ok((delivery, outcome)) = joined else {
                continue;
            };
            tries += 1;
            record(state, &delivery, outcome).await?;
        }
    }
    Ok(tries)
}

/// The body POSTed for an event: the same object as an item of `GET /v1/events`.
pub fn body(event: &Event) -> String {
    serde_json::to_string(&crate::routes::events::view(event.clone()))
        .unwrap_or_else(|_| "{}".to_owned())
}

/// An event's id: its place in the hub's feed.
pub fn event_id(event: &Event) -> String {
    event.seq.to_string()
}

/// `sha256=<hex>` of the body keyed by the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// When to try again after failed try number `attempt`, or `None` when it was the last.
pub fn next_attempt_at(now: Millis, attempt: u32) -> Option<Millis> {
    (attempt < MAX_ATTEMPTS)
        .then(|| now + FIRST_RETRY_DELAY_MS * (1 << (attempt.max(1) - 1).min(20)))
}

/// Whether a status counts as delivered.
fn delivered(status: u16) -> bool {
    (200..300).contains(&status)
}

async fn send(
    client: &reqwest::Client,
    delivery: &Delivery,
    allow_private: bool,
) -> Result<u16, String> {
    // The client resolves names itself and refuses private ones; an address it never
    // resolves, so it is checked here.
    if targets::refuses_address_host(&delivery.url, allow_private) {
        return Err(targets::REFUSED.to_owned());
    }
    let body = body(&delivery.event);
    let response = client
        .post(&delivery.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(
            SIGNATURE_HEADER,
            signature(&delivery.secret, body.as_bytes()),
        )
        .header(IDEMPOTENCY_HEADER, event_id(&delivery.event))
        .body(body)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    Ok(response.status().as_u16())
}

async fn record(
    state: &AppState,
    delivery: &Delivery,
    outcome: Result<u16, String>,
) -> StoreResult<()> {
    let ok = matches!(outcome, Ok(status) if delivered(status));
    let label = match &outcome {
        _ if ok => "delivered",
        Err(why) if why == targets::REFUSED => "refused",
        _ => "failed",
    };
    state.metrics.count(Counter::WebhookDeliveries, &[label], 1);
    let next = if ok {
        None
    } else {
        next_attempt_at(state.now(), delivery.attempt)
    };
    if !ok {
        tracing::warn!(
            hub = %delivery.hub_id,
            endpoint = %delivery.endpoint_id,
            event = delivery.event.seq,
            attempt = delivery.attempt,
            outcome = ?outcome,
            retry = next.is_some(),
            "webhook delivery failed"
        );
    }
    state
        .store
        .record_delivery(
            delivery.hub_id,
            delivery.endpoint_id,
            delivery.event.seq,
            delivery.attempt,
            outcome,
            next,
        )
        .await
}

/// A client for deliveries (it pools connections); redirects are not followed, so a
/// receiver cannot bounce signed events elsewhere, and names resolve only to the addresses
/// a delivery may reach (`targets::PublicResolver`).
pub fn new_client(allow_private: bool) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(targets::resolver(allow_private))
        .user_agent(concat!("cdh-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// A transport error in a sentence for the delivery log.
fn describe(e: &reqwest::Error) -> String {
    if targets::was_refused(e) {
        targets::REFUSED.to_owned()
    } else if e.is_timeout() {
        format!("no answer within {} s", TIMEOUT.as_secs())
    } else if e.is_connect() {
        "could not connect to the endpoint".into()
    } else {
        format!("request failed: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn retries_back_off_exponentially_and_stop_after_the_last_try() {
        assert_eq!(next_attempt_at(0, 1), Some(10_000));
        assert_eq!(next_attempt_at(0, 2), Some(20_000));
        assert_eq!(next_attempt_at(0, 3), Some(40_000));
        assert_eq!(next_attempt_at(0, MAX_ATTEMPTS), None);
    }
}
