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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netmedic_proto::{
    Heartbeat, HeartbeatReply, Limits, ReportAck, ReportBatch, SCHEMA_VERSION, TimeWindow,
    Timestamp, Violation,
};
use prometheus_client::metrics::counter::Counter;
use std::io::Write;
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
    /// `netmedic_collector_heartbeats_total`, resolved once.
    heartbeats: Counter,
    /// The reply with nothing to advise, encoded once around its `server_time` (see
    /// [`Ingest::plain_reply`]).
    plain: PlainReply,
    heartbeat_interval_secs: u32,
    max_body_bytes: usize,
    retry_after_secs: u32,
}

/// The JSON of a heartbeat reply without advisories or experiments (nearly every reply), split
/// around its `server_time`: the bytes before and after it, as `serde_json` writes them.
#[derive(Debug)]
struct PlainReply {
    head: Vec<u8>,
    tail: Vec<u8>,
}

impl PlainReply {
    fn new(heartbeat_interval_secs: u32) -> Self {
        let none = Self {
            head: Vec::new(),
            tail: Vec::new(),
        };
        let Some(epoch) = Timestamp::from_unix_millis(0) else {
            return none;
        };
        let reply = HeartbeatReply {
            schema_version: SCHEMA_VERSION,
            server_time: epoch,
            heartbeat_interval_secs,
            advisories: Vec::new(),
            experiments: Vec::new(),
        };
        // Encoding a reply of plain numbers and an empty list cannot fail, and the time appears
        // once (nothing else in it is a string); the fallback keeps a working (slower) reply.
        let json = serde_json::to_vec(&reply).unwrap_or_default();
        let time = format!("\"{epoch}\"");
        match json.windows(time.len()).position(|w| w == time.as_bytes()) {
            Some(at) => Self {
                head: json[..at + 1].to_vec(),
                tail: json[at + time.len() - 1..].to_vec(),
            },
            None => none,
        }
    }

    /// The reply's body at `server_time`, or `None` if the template could not be built.
    fn body(&self, server_time: Timestamp) -> Option<Vec<u8>> {
        if self.head.is_empty() {
            return None;
        }
        let mut out = Vec::with_capacity(self.head.len() + 24 + self.tail.len());
        out.extend_from_slice(&self.head);
        // A timestamp's text is ASCII digits and separators: nothing to escape.
        write!(out, "{server_time}").ok()?;
        out.extend_from_slice(&self.tail);
        Some(out)
    }
}

impl Ingest {
    pub(crate) fn new(state: &AppState) -> Arc<Self> {
        Arc::new(Self {
            store: state.store.clone(),
            queue: state.queue.clone(),
            metrics: state.metrics.clone(),
            heartbeats: state
                .metrics
                .counter("netmedic_collector_heartbeats_total", ""),
            plain: PlainReply::new(state.heartbeat_interval_secs),
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

    /// A heartbeat accepted here (not by a writer, which counts its own) at `at`: counted,
    /// answered with `at` as the server time.
    fn accepted(&self, ok: HeartbeatOk, at: Timestamp) -> Response {
        self.heartbeats.inc();
        self.reply(ok, at)
    }

    /// The reply to an accepted heartbeat: with nothing to advise (nearly always) the
    /// pre-encoded [`PlainReply`] around the time, else the whole reply encoded.
    fn reply(&self, ok: HeartbeatOk, server_time: Timestamp) -> Response {
        if ok.advisories.is_empty()
            && ok.experiments.is_empty()
            && let Some(body) = self.plain.body(server_time)
        {
            return (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response();
        }
        Json(HeartbeatReply {
            schema_version: SCHEMA_VERSION,
            server_time,
            heartbeat_interval_secs: self.heartbeat_interval_secs,
            advisories: ok.advisories,
            experiments: ok.experiments,
        })
        .into_response()
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
    // Encoded here, in the request's task: the writer that stores it is serial.
    match ingest.submit(auth, WriteKind::report(batch)?).await? {
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
) -> Result<Response, ApiError> {
    let auth = bearer(&ingest.metrics, &headers)?;
    let mut hb: Heartbeat = decode(&headers, body, ingest.max_body_bytes)?;
    if let Auth::TokenSha256(token) = &auth {
        let at = now();
        match ingest.store.heartbeat_cached(token, hb, at) {
            Ok(ok) => return Ok(ingest.accepted(ok, at)),
            Err(back) => hb = back,
        }
    }
    match ingest.submit(auth, WriteKind::Heartbeat(hb)).await? {
        // Counted by the writer.
        WriteOk::Heartbeat(ok) => Ok(ingest.reply(ok, now())),
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

#[cfg(test)]
mod tests {
    use super::PlainReply;
    use netmedic_proto::{HeartbeatReply, SCHEMA_VERSION, Timestamp};

    /// The pre-encoded reply is byte for byte what `serde_json` writes for the same reply.
    #[test]
    fn the_plain_reply_is_the_encoded_reply() {
        for (interval, ms) in [
            (300, 1_764_000_000_123),
            (1, 0),
            (86_400, 4_102_444_799_999),
        ] {
            let at = Timestamp::from_unix_millis(ms).expect("valid time");
            let want = serde_json::to_vec(&HeartbeatReply {
                schema_version: SCHEMA_VERSION,
                server_time: at,
                heartbeat_interval_secs: interval,
                advisories: Vec::new(),
                experiments: Vec::new(),
            })
            .expect("encodes");
            let got = PlainReply::new(interval).body(at).expect("template built");
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want)
            );
        }
    }
}
