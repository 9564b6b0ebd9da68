//! netmedic collector library: configuration, storage, the HTTP API, the NOC console and the CLI
//! commands, the last three sharing their rules through `domain`; the binary (`main.rs`) only
//! parses arguments and maps errors to exit codes. This file is the composition root: it builds
//! the state and merges the console's routes into the API router.

pub mod analytics;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod domain;
pub mod fleet;
pub mod import;
pub mod ingest;
pub mod listen;
pub mod logging;
pub mod metrics;
#[cfg(test)]
mod module_graph;
pub mod openapi;
pub mod store;
pub mod text;
pub mod web;

use config::{CollectorConfig, StorageUrl};
use ingest::WriteQueue;
use metrics::Metrics;
use netmedic_proto::Timestamp;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use store::{OpenMode, Store, StoreError};
use tokio::task::JoinHandle;

/// What every request handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub queue: WriteQueue,
    pub metrics: Arc<Metrics>,
    pub heartbeat_interval_secs: u32,
    pub max_body_bytes: usize,
    /// `Retry-After` of a 429 when the write queue is full.
    pub retry_after_secs: u32,
    /// `[experience]`: linking windows, reason mapping, cost per contact. Behind an `Arc`, like
    /// `web`: the state is cloned for every request.
    pub experience: Arc<config::CxConfig>,
    /// `/metrics` needs an API token.
    pub metrics_requires_token: bool,
    /// `[web]`: console sessions.
    pub web: Arc<config::WebConfig>,
    /// The console's per-process state (report cache, login throttle).
    pub console: Arc<web::Console>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open storage {url}")]
    Storage {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed")]
    Server(#[source] std::io::Error),
    #[error("HTTP server task panicked or was cancelled")]
    Join(#[source] tokio::task::JoinError),
}

/// A running collector. Dropping it does not stop the server: resolve the shutdown future given
/// to [`serve`], then [`Server::wait`].
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    store: Arc<dyn Store>,
    task: JoinHandle<Result<(), std::io::Error>>,
    writers: Vec<JoinHandle<()>>,
    correlator: JoinHandle<()>,
    maintainer: JoinHandle<()>,
}

impl Server {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The store the server writes to.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Waits for the server to finish (after the shutdown future resolved and in-flight requests
    /// completed), then closes the database.
    pub async fn wait(self) -> Result<(), ServeError> {
        let result = self.task.await;
        self.correlator.abort();
        let _ = self.correlator.await;
        self.maintainer.abort();
        let _ = self.maintainer.await;
        // The router (and its queue senders) is gone: the writers drain the queue and stop.
        for w in self.writers {
            let _ = w.await;
        }
        self.store.close().await;
        result
            .map_err(ServeError::Join)?
            .map_err(ServeError::Server)
    }
}

/// Opens the storage, binds the listener and starts serving in the background. Returns once the
/// socket is bound, so callers (tests) can read the address; `shutdown` resolving starts a
/// graceful shutdown.
pub async fn serve<F>(config: &CollectorConfig, shutdown: F) -> Result<Server, ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let store = store::open(&config.storage, OpenMode::CreateAndMigrate)
        .await
        .map_err(|source| ServeError::Storage {
            url: config.storage.url.to_string(),
            source,
        })?;
    let bind = |source| ServeError::Bind {
        addr: config.server.listen_addr,
        source,
    };
    let listener = tokio::net::TcpListener::bind(config.server.listen_addr)
        .await
        .map_err(bind)?;
    let addr = listener.local_addr().map_err(bind)?;
    let metrics = Arc::new(Metrics::default());
    // SQLite has one writer at a time: a second writer task would only wait on the lock.
    let writers = match config.storage.url {
        StorageUrl::Sqlite { .. } => 1,
        StorageUrl::Postgres { .. } => config.ingest.writers as usize,
    };
    let (queue, writers) = ingest::start(
        store.clone(),
        metrics.clone(),
        config.ingest.queue_capacity as usize,
        config.ingest.max_group_requests as usize,
        writers,
    );
    let state = AppState {
        store: store.clone(),
        queue,
        metrics,
        heartbeat_interval_secs: config.fleet.heartbeat_interval_secs,
        max_body_bytes: config.server.max_body_bytes,
        retry_after_secs: config.ingest.retry_after_secs,
        experience: Arc::new(config.experience.clone()),
        metrics_requires_token: config.server.metrics_requires_token,
        web: Arc::new(config.web.clone()),
        console: Arc::new(web::Console::new(&config.web)),
    };
    let correlator = tokio::spawn(correlate_loop(
        store.clone(),
        correlate::OutageParams::from_config(&config.outage),
        config.outage.interval_secs,
    ));
    let maintainer = tokio::spawn(maintain_loop(store.clone()));
    let app = api::router(state, web::routes());
    let limits = listen::Limits::from_config(&config.server);
    let task = tokio::spawn(listen::run(listener, app, limits, shutdown));
    log::info!(
        "netmedic-collector listening on http://{addr} (storage {}, at most {} connections)",
        config.storage.url,
        limits.max_connections
    );
    Ok(Server {
        addr,
        store,
        task,
        writers,
        correlator,
        maintainer,
    })
}

/// Runs a mass-outage correlation pass every `interval_secs` (every process does; passes are
/// idempotent and serialised by the database).
async fn correlate_loop(
    store: Arc<dyn Store>,
    params: correlate::OutageParams,
    interval_secs: u32,
) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(u64::from(interval_secs)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.correlate(&params, now()).await {
            Ok(o) if o != correlate::PassOutcome::default() => {
                log::debug!("correlation pass: {o:?}");
            }
            Ok(_) => {}
            Err(e) => log::warn!("correlation pass failed: {}", error_chain(&e)),
        }
    }
}

/// How often the store refreshes its planner statistics ([`Store::maintain`]).
const MAINTAIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs [`Store::maintain`] at start and then every [`MAINTAIN_INTERVAL`].
async fn maintain_loop(store: Arc<dyn Store>) {
    let mut tick = tokio::time::interval(MAINTAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let started = std::time::Instant::now();
        match store.maintain().await {
            Ok(()) => log::debug!("store maintenance took {:?}", started.elapsed()),
            Err(e) => log::warn!("store maintenance failed: {}", error_chain(&e)),
        }
    }
}

/// Serves until `shutdown` resolves and every in-flight request is answered.
pub async fn run_server<F>(config: &CollectorConfig, shutdown: F) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    serve(config, shutdown).await?.wait().await
}

/// An error and all its sources on one line (`a: b: c`), for logs.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// The current time as a wire timestamp (clamped into the range `Timestamp` supports).
pub fn now() -> Timestamp {
    /// 9999-12-31T23:59:59.999Z, the latest instant `Timestamp` accepts.
    const MAX_MILLIS: i64 = 253_402_300_799_999;
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
        .clamp(0, MAX_MILLIS);
    // Invariant, not input: every value in 0..=MAX_MILLIS is accepted.
    Timestamp::from_unix_millis(ms).expect("clamped into the supported range")
}
