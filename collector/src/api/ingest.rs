//! `POST /api/v1/reports` and `POST /api/v1/heartbeats`: device-authenticated documents through
//! the group-commit write queue, answered once they are durable; heartbeats the store can answer
//! from its cache (see `store::hbcache`) are answered here, without the queue.

use super::auth::bearer;
use super::body::{Document, decode};
use super::error::ApiError;
use crate::ingest::SubmitError;
use crate::store::{Auth, Denied, HeartbeatOk, WriteItem, WriteKind, WriteOk};
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

/// Queues one write and waits until it is durable.
async fn submit(state: &AppState, auth: Auth, kind: WriteKind) -> Result<WriteOk, ApiError> {
    let item = WriteItem {
        auth,
        kind,
        received_at: now(),
    };
    match state.queue.submit(item).await {
        Ok(Ok(ok)) => Ok(ok),
        Ok(Err(denied)) => {
            let code = match denied {
                Denied::UnknownToken => "unknown_token",
                Denied::Revoked { .. } => "revoked_token",
                Denied::WrongDevice { .. } => "wrong_device",
            };
            state.metrics.inc(
                "netmedic_collector_auth_denied_total",
                &format!("reason=\"{code}\""),
                1,
            );
            Err(denied.into())
        }
        Err(SubmitError::Full) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            "the write queue is full; retry after the given delay",
        )
        .with_retry_after(state.retry_after_secs)),
        Err(SubmitError::Closed) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the collector is shutting down; retry later",
        )),
        Err(SubmitError::Store(e)) => Err(ApiError::from(&*e)),
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
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ReportAck>, ApiError> {
    let auth = bearer(&state, &headers)?;
    let batch: ReportBatch = decode(&headers, body, state.max_body_bytes)?;
    let agent = batch.agent_id.clone();
    match submit(&state, auth, WriteKind::Report(batch)).await? {
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

pub(crate) async fn post_heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let auth = bearer(&state, &headers)?;
    let hb: Heartbeat = decode(&headers, body, state.max_body_bytes)?;
    // The common case: answered here from the store's heartbeat cache, no hop to a writer.
    if let Auth::TokenSha256(token) = &auth
        && let Some(ok) = state.store.heartbeat_cached(token, &hb, now())
    {
        state
            .metrics
            .inc("netmedic_collector_heartbeats_total", "", 1);
        return Ok(reply(&state, ok));
    }
    match submit(&state, auth, WriteKind::Heartbeat(hb)).await? {
        WriteOk::Heartbeat(ok) => Ok(reply(&state, ok)),
        WriteOk::Report(_) => Err(unexpected("heartbeat")),
    }
}

fn reply(state: &AppState, ok: HeartbeatOk) -> Json<HeartbeatReply> {
    Json(HeartbeatReply {
        schema_version: SCHEMA_VERSION,
        server_time: now(),
        heartbeat_interval_secs: state.heartbeat_interval_secs,
        advisories: ok.advisories,
        experiments: ok.experiments,
    })
}
