//! Request counts and latency histograms, written as Prometheus text for `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters by route; one lock, held for a few nanoseconds per request.
#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<(String, String), RouteStats>>,
    /// What the hub did, by counter and label values (all `'static`: none comes from a
    /// client, so the set of series is fixed).
    counts: Mutex<BTreeMap<(Counter, Vec<&'static str>), u64>>,
}

/// A count of what the hub did, beside the request metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Counter {
    /// Contacts written, by `source` (`api`, `import`) and `outcome`.
    ContactsWritten,
    /// Profiles merged into another, by `source` (`upsert`, `apply`).
    Merges,
    /// Webhook delivery attempts, by `outcome` (`delivered`, `failed`, `refused`).
    WebhookDeliveries,
    /// Tasks ended, by `kind` and `status`.
    TasksFinished,
    /// Merges refused on a unique field (conflicts recorded), by `source` (`upsert`,
    /// `apply`: the conflicts an apply leaves).
    ConflictsRefused,
}

impl Counter {
    const ALL: [Counter; 5] = [
        Counter::ContactsWritten,
        Counter::Merges,
        Counter::WebhookDeliveries,
        Counter::TasksFinished,
        Counter::ConflictsRefused,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::ContactsWritten => "cdh_contacts_written_total",
            Self::Merges => "cdh_merges_total",
            Self::WebhookDeliveries => "cdh_webhook_deliveries_total",
            Self::TasksFinished => "cdh_tasks_finished_total",
            Self::ConflictsRefused => "cdh_conflicts_refused_total",
        }
    }

    fn help(self) -> &'static str {
        match self {
            Self::ContactsWritten => "Contacts written, by source and outcome.",
            Self::Merges => "Profiles merged into another, by source.",
            Self::WebhookDeliveries => "Webhook delivery attempts, by outcome.",
            Self::TasksFinished => "Tasks ended, by kind and status.",
            Self::ConflictsRefused => "Merges refused on a unique field, by source.",
        }
    }

    fn label_names(self) -> &'static [&'static str] {
        match self {
            Self::ContactsWritten => &["source", "outcome"],
            Self::Merges => &["source"],
            Self::WebhookDeliveries => &["outcome"],
            Self::TasksFinished => &["kind", "status"],
            Self::ConflictsRefused => &["source"],
        }
    }
}

#[derive(Debug, Default, Clone)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    /// Records one request.
    pub fn record(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let stats = routes
            .entry((method.to_owned(), route.to_owned()))
            .or_default();
        *stats.by_status.entry(status).or_default() += 1;
        stats.count += 1;
        stats.sum_seconds += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// Adds `n` to `counter` with `labels` (one value per label name, in order).
    pub fn count(&self, counter: Counter, labels: &[&'static str], n: u64) {
        debug_assert_eq!(labels.len(), counter.label_names().len());
        if n == 0 {
            return;
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        *counts.entry((counter, labels.to_vec())).or_default() += n;
    }

    /// The Prometheus text of the hub's counters (every counter named, even at zero).
    fn render_counts(&self, out: &mut String) {
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for counter in Counter::ALL {
            let name = counter.name();
            let _ = writeln!(out, "# HELP {name} {}", counter.help());
            let _ = writeln!(out, "# TYPE {name} counter");
            for ((_, values), n) in counts.iter().filter(|((c, _), _)| *c == counter) {
                let labels: Vec<String> = counter
                    .label_names()
                    .iter()
                    .zip(values)
                    .map(|(label, value)| format!("{label}=\"{value}\""))
                    .collect();
                let _ = writeln!(out, "{name}{{{}}} {n}", labels.join(","));
            }
        }
    }

    /// The Prometheus text of the request metrics and the hub's counters.
    pub fn render(&self, out: &mut String) {
        self.render_counts(out);
        let routes = self
            .routes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        out.push_str("# HELP cdh_http_requests_total HTTP requests by route and status.\n");
        out.push_str("# TYPE cdh_http_requests_total counter\n");
        for ((method, route), stats) in &routes {
            for (status, n) in &stats.by_status {
                let _ = writeln!(
                    out,
                    "cdh_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP cdh_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE cdh_http_request_duration_seconds histogram\n");
        for ((method, route), stats) in &routes {
            let labels = format!("method=\"{method}\",route=\"{route}\"");
            for (bound, n) in BUCKETS.iter().zip(stats.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "cdh_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "cdh_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                stats.count
            );
            let _ = writeln!(
                out,
                "cdh_http_request_duration_seconds_sum{{{labels}}} {}",
                stats.sum_seconds
            );
            let _ = writeln!(
                out,
                "cdh_http_request_duration_seconds_count{{{labels}}} {}",
                stats.count
            );
        }
    }
}

/// Middleware: times each request and records it under its route template and a known
/// method. Neither comes from what a client may invent: a raw path or a made-up method would
/// grow the label set, and `/metrics`, without bound.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    state.metrics.record(
        method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// The method as a label: one of the standard methods, or `other`.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for invented in ["FROB", "X1", "BREW"] {
            let method = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other");
        }
    }
}
