//! The hub's HTTP server: the Profile API (`/v1/...`) over axum on top of `cdh_store`.
//!
//! [`start`] opens and migrates the store, binds the listener (port 0 in tests), spawns the
//! server and the task worker, and returns an [`AppHandle`] whose [`AppHandle::shutdown`]
//! lets in-flight requests finish.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use cdh_store::AnyStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod access;
pub mod auth;
pub mod console;
pub mod error;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod routes;
pub mod state;
pub mod users;
pub mod wire;
pub mod worker;

pub use error::{ApiError, ApiResult, ErrorCode};
pub use state::{AppState, Clock};

/// How to run the server.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on (`127.0.0.1:0` picks a free port).
    pub listen: String,
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    /// The operator's token; when `None`, one is generated at first start and its hash
    /// kept in `data_dir`.
    pub operator_token: Option<String>,
    /// Where exports and the generated operator token's hash live.
    pub data_dir: PathBuf,
    /// The largest request body accepted, in bytes (routes may set their own).
    pub body_limit: usize,
    /// Start the background task worker (tests may drive it by hand instead).
    pub run_worker: bool,
    /// What time it is.
    pub clock: Clock,
    /// An address of its own to serve `/metrics` on without a token (for a scraper on a
    /// private network); on the main address `/metrics` needs the operator token.
    pub metrics_listen: Option<String>,
    /// Let webhooks reach private addresses (loopback, RFC 1918, link-local, ...): for
    /// on-premise receivers. Off by default: a webhook reaches public addresses only.
    pub webhook_allow_private: bool,
    /// The address browsers reach the server at (behind a proxy, the proxy's); when it is
    /// `https://...`, console cookies are marked `Secure`.
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://./cdh-data/cdh.db".into(),
            operator_token: None,
            data_dir: PathBuf::from("./cdh-data"),
            body_limit: 1024 * 1024,
            run_worker: true,
            clock: Clock::system(),
            metrics_listen: None,
            webhook_allow_private: false,
            public_url: None,
        }
    }
}

/// A running server.
#[derive(Debug)]
pub struct AppHandle {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it serves `/metrics` without a token, when configured to.
    pub metrics_addr: Option<SocketAddr>,
    /// The state its handlers share (the store, the worker, ...).
    pub state: AppState,
    /// The operator token, when this start generated it (print it once).
    pub generated_operator_token: Option<String>,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    worker: Option<JoinHandle<()>>,
}

impl AppHandle {
    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting connections, lets in-flight requests finish, stops the worker (a
    /// running task is left for the next start to resume).
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server
            .await
            .context("the server task panicked")?
            .context("the server failed")?;
        if let Some(worker) = self.worker {
            worker.await.context("the worker panicked")?;
        }
        Ok(())
    }
}

/// Opens the store named by the configuration, migrates it, and starts the server.
pub async fn start(config: Config) -> anyhow::Result<AppHandle> {
    if let Some(path) = config.database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path);
        if let Some(parent) = std::path::Path::new(path).parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let store = cdh_store::open_with_clock(&config.database_url, config.clock.clone())
        .await
        .with_context(|| format!("opening the database {}", redact(&config.database_url)))?;
    start_with_store(config, store).await
}

/// Starts the server on a store that is already open (tests use a fresh schema per test).
pub async fn start_with_store(config: Config, store: AnyStore) -> anyhow::Result<AppHandle> {
    let (operator, generated) = match &config.operator_token {
        Some(token) => (auth::OperatorKey::from_configured(token)?, None),
        None => auth::OperatorKey::load_or_create(&config.data_dir)?,
    };
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let console_key = console::session::load_or_create_key(&config.data_dir)?;
    let state = AppState {
        store,
        operator: Arc::new(operator),
        clock: config.clock.clone(),
        worker: worker::Worker::new(),
        metrics: Arc::new(metrics::Metrics::default()),
        channel_orgs: Arc::default(),
        console_key,
        sign_in_guard: Arc::default(),
        config: Arc::new(config),
    };
    let (stop, stopped) = watch::channel(false);
    let worker = state
        .config
        .run_worker
        .then(|| state.worker.spawn(state.clone(), stopped.clone()));
    let app = routes::app(state.clone());
    let metrics_addr = match &state.config.metrics_listen {
        Some(address) => Some(serve_metrics(address, state.clone(), stopped.clone()).await?),
        None => None,
    };
    let mut stopped_server = stopped;
    let server = tokio::spawn(async move {
        // The client's address keys the console's sign-in back-off.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped_server.wait_for(|stop| *stop).await;
        })
        .await
    });
    tracing::info!(%addr, "listening");
    Ok(AppHandle {
        addr,
        metrics_addr,
        state,
        generated_operator_token: generated,
        stop,
        server,
        worker,
    })
}

/// Serves `GET /metrics` alone, without a token, on an address of its own until `stopped`.
async fn serve_metrics(
    address: &str,
    state: AppState,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the metrics address {address}"))?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || async move { routes::ops::metrics_text(&state).await }),
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, "metrics listening");
    Ok(addr)
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
