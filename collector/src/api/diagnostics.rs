//! On-demand diagnostics: operators queue them (`POST /api/v1/devices/{agent_id}/diagnostics`)
//! and list them with their results (`GET` on the same path); agents post results with their
//! device token (`POST /api/v1/diagnostics-results`).

use super::auth::{Operator, Viewer, bearer};
use super::body::{Document, decode};
use super::error::{ApiError, json_error, path_error, query_error};
use crate::domain::{parse_limit, queue_diagnostics};
use crate::store::{Auth, CompleteOutcome, DiagnosticsRecord};
use crate::{AppState, now};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use netmedic_proto::{CheckId, CheckStatus, DiagnosticsResult, Limits, Violation};
use serde::{Deserialize, Serialize};

/// Body of `POST /api/v1/devices/{id}/diagnostics`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsRequest {
    pub checks: Vec<CheckId>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DiagnosticsQueued {
    pub request_id: String,
}

pub(crate) async fn post_diagnostics(
    Operator(caller): Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<DiagnosticsRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<DiagnosticsQueued>), ApiError> {
    let Path(agent_id) = path.map_err(path_error)?;
    let Json(req) = body.map_err(json_error)?;
    let request_id = queue_diagnostics(&*state.store, &agent_id, &req.checks).await?;
    log::info!(
        "diagnostics {request_id} for {agent_id} requested by {}",
        caller.name
    );
    Ok((StatusCode::ACCEPTED, Json(DiagnosticsQueued { request_id })))
}

impl Document for DiagnosticsResult {
    const INVALID: &'static str = "invalid_diagnostics_result";
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

/// The answer to `POST /api/v1/diagnostics-results`: the result is durably stored (now or
/// earlier).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticsResultAck {
    pub request_id: String,
    /// True when the request already had a result: this one changed nothing (a replay).
    pub duplicate: bool,
}

/// `POST /api/v1/diagnostics-results`: an agent's result of an on-demand diagnostics request,
/// with its device token (like heartbeats); stored on the request, idempotent by request id.
pub(crate) async fn post_diagnostics_results(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DiagnosticsResultAck>, ApiError> {
    let token = match bearer(&state.metrics, &headers)? {
        Auth::TokenSha256(h) => h,
        Auth::Trusted => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "no device token",
            ));
        }
    };
    let result: DiagnosticsResult = decode(&headers, body, state.max_body_bytes)?;
    let outcome = state
        .store
        .complete_diagnostics(&token, &result, now())
        .await?;
    let (agent, id) = (&result.agent_id, &result.request_id);
    match outcome {
        CompleteOutcome::Stored => {
            let not_ok = result
                .results
                .iter()
                .filter(|c| c.status != CheckStatus::Ok)
                .count();
            log::info!(
                "diagnostics {id} result from {agent}: {} check(s), {not_ok} not ok",
                result.results.len()
            );
            Ok(Json(DiagnosticsResultAck {
                request_id: result.request_id,
                duplicate: false,
            }))
        }
        CompleteOutcome::AlreadyCompleted => {
            log::debug!("diagnostics {id} result from {agent}: already stored");
            Ok(Json(DiagnosticsResultAck {
                request_id: result.request_id,
                duplicate: true,
            }))
        }
        CompleteOutcome::Denied(denied) => Err(super::ingest::count_denied(&state.metrics, denied)),
        CompleteOutcome::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_request",
            format!("no diagnostics request {id:?} was queued for device {agent:?}"),
        )),
    }
}

/// Query string of `GET /api/v1/devices/{agent_id}/diagnostics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsQuery {
    /// 1..=500, default 50.
    pub limit: Option<String>,
}

/// A device's diagnostics requests with their results, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticsList {
    pub agent_id: String,
    pub diagnostics: Vec<DiagnosticsRecord>,
}

pub(crate) async fn list_diagnostics(
    _: Viewer,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<DiagnosticsQuery>, QueryRejection>,
) -> Result<Json<DiagnosticsList>, ApiError> {
    let Path(agent_id) = path.map_err(path_error)?;
    let Query(q) = query.map_err(query_error)?;
    let limit = parse_limit(q.limit.as_deref()).map_err(|v| ApiError::invalid_query(vec![v]))?;
    if state.store.get_device(&agent_id).await?.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no device {agent_id:?}"),
        ));
    }
    let diagnostics = state.store.list_diagnostics(&agent_id, limit).await?;
    Ok(Json(DiagnosticsList {
        agent_id,
        diagnostics,
    }))
}
