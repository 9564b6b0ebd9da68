//! `POST /api/v1/reports` and `POST /api/v1/heartbeats`: device-authenticated documents through
//! the group-commit write queue, answered once they are durable; heartbeats the store can answer
//! from its cache (see `store::hbcache`) are answered here, without the queue.

use super::auth::bearer;
use super::body::{Document, decode};
use super::error::ApiError;
use crate::ingest::{SubmitError, WriteQueue};
use crate::metrics::Metrics;
use crate::store::{Auth, Denied, HeartbeatOk, Store, WriteItem, WriteKind, WriteOk};
use crate::{AppState, now};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use netmedic_proto::{
    Heartbeat, HeartbeatReply, Limits, ReportAck, ReportBatch, SCHEMA_VERSION, TimeWindow,
    Violation,
};
use std::sync::Arc;

impl Document for ReportBatch {
    const INVALID: &'static str = "invalid_report";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn violations(&self) -> Vec<Violation> {
        let mut v = self
            .validate(&Limits::default())
            .err()
            .map(|e| e.violations)
            .unwrap_or_default();
        // Device clocks are untrusted: times far from ours are refused (see TimeWindow).
        v.extend(self.check_times(now(), &TimeWindow::default()));
        // Storage keeps seq in a signed 64-bit integer (SQLite and PostgreSQL alike).
        for (i, e) in self.events.iter().enumerate() {
            if i64::try_from(e.seq).is_err() {
                v.push(Violation {
                    field: format!("events[{i}].seq"),
                    problem: "greater than 9223372036854775807".into(),
                });
            }
        }
        v
    }
}

impl Document for Heartbeat {
    const INVALID: &'static str = "invalid_heartbeat";
    fn schema_version(&self) -> u32 {
        self.schema_version
    }
    fn violations(&self) -> Vec<Violation> {
        self.validate(&Limits::default())
            .err()
            .map(|e| e.violations)
            .unwrap_or_default()
    }
}

/// What the device endpoints need from the application state, built once per router: a
/// request clones one `Arc` of it instead of the whole [`AppState`] (its own five `Arc`s and
/// the write queue's channel sender and `Arc`, each an atomic increment and decrement on a
/// shared cache line).
#[derive(Debug)]
pub(crate) struct Ingest {
    store: Arc<dyn Store>,
    queue: WriteQueue,
    metrics: Arc<Metrics>,
    heartbeat_interval_secs: u32,
    max_body_bytes: usize,
    retry_after_secs: u32,
}

impl Ingest {
    pub(crate) fn new(state: &AppState) -> Arc<Self> {
        Arc::new(Self {
            store: state.store.clone(),
            queue: state.queue.clone(),
            metrics: state.metrics.clone(),
            heartbeat_interval_secs: state.heartbeat_interval_secs,
            max_body_bytes: state.max_body_bytes,
            retry_after_secs: state.retry_after_secs,
        })
    }

    /// Counts a refused device token by reason and turns it into its answer.
    fn denied(&self, denied: Denied) -> ApiError {
        count_denied(&self.metrics, denied)
    }

    /// Queues one write and waits until it is durable.
    async fn submit(&self, auth: Auth, kind: WriteKind) -> Result<WriteOk, ApiError> {
        let item = WriteItem {
            auth,
            kind,
            received_at: now(),
        };
        match self.queue.submit(item).await {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(denied)) => Err(self.denied(denied)),
            Err(SubmitError::Full) => Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the write queue is full; retry after the given delay",
            )
            .with_retry_after(self.retry_after_secs)),
            Err(SubmitError::Closed) => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the collector is shutting down; retry later",
            )),
            Err(SubmitError::Store(e)) => Err(ApiError::from(&*e)),
        }
    }

    /// A heartbeat accepted here (not by a writer, which counts its own): counted, answered.
    fn accepted(&self, ok: HeartbeatOk) -> Json<HeartbeatReply> {
        self.metrics
            .inc("netmedic_collector_heartbeats_total", "", 1);
        self.reply(ok)
    }

    fn reply(&self, ok: HeartbeatOk) -> Json<HeartbeatReply> {
        Json(HeartbeatReply {
            schema_version: SCHEMA_VERSION,
            server_time: now(),
            heartbeat_interval_secs: self.heartbeat_interval_secs,
            advisories: ok.advisories,
            experiments: ok.experiments,
        })
    }
}

fn unexpected(what: &str) -> ApiError {
    log::error!("write queue answered a {what} with the wrong kind of result");
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "unexpected write result; see the collector log",
    )
}

pub(crate) async fn post_reports(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportAck>, ApiError> {
    let auth = bearer(&ingest.metrics, &headers)?;
    let batch: ReportBatch = decode(&headers, body, ingest.max_body_bytes)?;
    let agent = batch.agent_id.clone();
    match ingest.submit(auth, WriteKind::Report(batch)).await? {
        WriteOk::Report(ack) => {
            log::debug!(
                "report from {agent}: {} accepted, {} duplicates",
                ack.accepted,
                ack.duplicates
            );
            Ok(Json(ack))
        }
        WriteOk::Heartbeat(_) => Err(unexpected("report")),
    }
}

/// `POST /api/v1/heartbeats`: answered here from the store's cache when its token was verified
/// in the last seconds; else through the write queue, whose writers check the tokens of a whole
/// group in one read. (A token read per request in this task was measured 2.6 to 3.4 times
/// slower for a fleet that always misses the cache: a pool acquire and a round trip each; see
/// docs/perf-heartbeats.md.)
pub(crate) async fn post_heartbeat(
    State(ingest): State<Arc<Ingest>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let auth = bearer(&ingest.metrics, &headers)?;
    let hb: Heartbeat = decode(&headers, body, ingest.max_body_bytes)?;
    if let Auth::TokenSha256(token) = &auth
        && let Some(ok) = ingest.store.heartbeat_cached(token, &hb, now())
    {
        return Ok(ingest.accepted(ok));
    }
    match ingest.submit(auth, WriteKind::Heartbeat(hb)).await? {
        // Counted by the writer.
        WriteOk::Heartbeat(ok) => Ok(ingest.reply(ok)),
        WriteOk::Report(_) => Err(unexpected("heartbeat")),
    }
}

/// Counts a refused device token by reason (`netmedic_collector_auth_denied_total`) and turns
/// it into its answer; every device route that checks a token answers through this.
pub(crate) fn count_denied(metrics: &Metrics, denied: Denied) -> ApiError {
    let code = match denied {
        Denied::UnknownToken => "unknown_token",
        Denied::Revoked { .. } => "revoked_token",
        Denied::WrongDevice { .. } => "wrong_device",
    };
    metrics.inc(
        "netmedic_collector_auth_denied_total",
        &format!("reason=\"{code}\""),
        1,
    );
    denied.into()
}
