//! The HTTP API (axum): ingest of reports and heartbeats, the incident query API, health probes.
//! Every error answer is a JSON `netmedic_proto::ErrorBody`; bad input gets a 4xx and stores
//! nothing; storage trouble gets a 503 with `Retry-After`.

use crate::store::{Cursor, DEFAULT_PAGE_LIMIT, IncidentFilter, MAX_PAGE_LIMIT, StoreError};
use crate::{AppState, now};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use netmedic_proto::{
    CheckId, ErrorBody, Heartbeat, HeartbeatReply, IncidentStatus, Limits, ReportBatch,
    SCHEMA_VERSION, Violation, paths,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Builds the router. `max_body_bytes` bounds every request body (413 above it).
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route(paths::REPORTS, post(post_reports))
        .route(paths::HEARTBEATS, post(post_heartbeat))
        .route(paths::INCIDENTS, get(list_incidents))
        .route(
            &format!("{}/{{agent_id}}/{{incident_id}}", paths::INCIDENTS),
            get(get_incident),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// An error answer: status, `ErrorBody`, and whether to add `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    fn new(status: StatusCode, error: &str, reason: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error: error.to_owned(),
                reason: reason.into(),
                violations: Vec::new(),
            },
        }
    }

    fn bad_request(error: &str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.status == StatusCode::SERVICE_UNAVAILABLE;
        let mut resp = (self.status, Json(self.body)).into_response();
        if retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => {
                ApiError::bad_request("invalid_cursor", "the cursor is not one this server issued")
            }
            StoreError::OutOfRange(msg) => ApiError::bad_request("invalid_report", msg),
            StoreError::Corrupt(msg) => {
                log::error!("storage returned corrupt data: {msg}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "stored data could not be read; see the collector log",
                )
            }
            e @ (StoreError::Unavailable(_) | StoreError::Migrate(_) | StoreError::NotFound(_)) => {
                log::warn!("storage unavailable: {}", crate::error_chain(&e));
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage_unavailable",
                    "the database is busy or unreachable; retry later",
                )
            }
        }
    }
}

/// Which JSON document an ingest endpoint takes, for error codes.
trait Document: DeserializeOwned {
    /// Error code for a well-formed but invalid document, e.g. `invalid_report`.
    const INVALID: &'static str;
    fn violations(&self) -> Vec<Violation>;
}

impl Document for ReportBatch {
    const INVALID: &'static str = "invalid_report";
    fn violations(&self) -> Vec<Violation> {
        let mut v = self
            .validate(&Limits::default())
            .err()
            .map(|e| e.violations)
            .unwrap_or_default();
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
    fn violations(&self) -> Vec<Violation> {
        self.validate(&Limits::default())
            .err()
            .map(|e| e.violations)
            .unwrap_or_default()
    }
}

/// Only `schema_version`, read before the full document so a newer agent gets
/// `unsupported_schema_version` rather than "unknown field" for fields this version lacks.
#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<u32>,
}

/// Checks the headers, then decodes and validates a JSON document body.
fn decode<T: Document>(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: application/json, got {content_type:?}"),
        ));
    }
    if let Some(enc) = headers.get(header::CONTENT_ENCODING) {
        let enc = enc.to_str().unwrap_or("?");
        if !enc.trim().eq_ignore_ascii_case("identity") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_encoding",
                format!("Content-Encoding {enc:?} is not supported; send the body uncompressed"),
            ));
        }
    }
    let body = body.map_err(|rej| {
        let status = rej.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                status,
                "body_too_large",
                format!(
                    "request body is larger than the configured limit: {}",
                    rej.body_text()
                ),
            )
        } else {
            ApiError::new(status, "unreadable_body", rej.body_text())
        }
    })?;
    match serde_json::from_slice::<VersionProbe>(&body) {
        Err(e) if e.is_syntax() || e.is_eof() => {
            return Err(ApiError::bad_request(
                "invalid_json",
                format!("malformed JSON: {e}"),
            ));
        }
        Ok(VersionProbe {
            schema_version: Some(v),
        }) if v != SCHEMA_VERSION => {
            return Err(ApiError::bad_request(
                "unsupported_schema_version",
                format!(
                    "schema_version {v} is not supported; this collector speaks {SCHEMA_VERSION}"
                ),
            ));
        }
        _ => {}
    }
    let doc: T = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(T::INVALID, format!("{e}")))?;
    let violations = doc.violations();
    if !violations.is_empty() {
        let mut err = ApiError::bad_request(
            T::INVALID,
            format!("{} field(s) failed validation", violations.len()),
        );
        err.body.violations = violations;
        return Err(err);
    }
    Ok(doc)
}

async fn post_reports(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<netmedic_proto::ReportAck>, ApiError> {
    let batch: ReportBatch = decode(&headers, body)?;
    let ack = state.store.ingest_report(&batch, now()).await?;
    log::debug!(
        "report from {}: {} accepted, {} duplicates",
        batch.agent_id,
        ack.accepted,
        ack.duplicates
    );
    Ok(Json(ack))
}

async fn post_heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let hb: Heartbeat = decode(&headers, body)?;
    let received = now();
    state.store.record_heartbeat(&hb, received).await?;
    Ok(Json(HeartbeatReply {
        schema_version: SCHEMA_VERSION,
        server_time: received,
        heartbeat_interval_secs: state.heartbeat_interval_secs,
        advisories: Vec::new(),
    }))
}

/// Query string of `GET /api/v1/incidents`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub status: Option<String>,
    pub check: Option<String>,
    pub agent_id: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

fn parse_query(q: IncidentQuery) -> Result<(IncidentFilter, u32, Option<Cursor>), ApiError> {
    let mut violations = Vec::new();
    let mut bad = |field: &str, problem: String| {
        violations.push(Violation {
            field: field.to_owned(),
            problem,
        })
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            bad("status", format!("{other:?} is not one of open, resolved"));
            None
        }
    };
    let check = match q.check.as_deref() {
        None | Some("") => None,
        Some(c) => CheckId::parse(c).or_else(|| {
            bad("check", format!("{c:?} is not a known check"));
            None
        }),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
            _ => {
                bad(
                    "limit",
                    format!("{l:?} is not an integer in 1..={MAX_PAGE_LIMIT}"),
                );
                DEFAULT_PAGE_LIMIT
            }
        },
    };
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => Cursor::decode(c).ok().or_else(|| {
            bad("cursor", "not a cursor this server issued".into());
            None
        }),
    };
    if !violations.is_empty() {
        let mut err = ApiError::bad_request("invalid_query", "invalid query parameters");
        err.body.violations = violations;
        return Err(err);
    }
    let filter = IncidentFilter {
        status,
        check,
        agent_id: q.agent_id.filter(|a| !a.is_empty()),
    };
    Ok((filter, limit, cursor))
}

async fn list_incidents(
    State(state): State<AppState>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<netmedic_proto::IncidentPage>, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let (filter, limit, cursor) = parse_query(q)?;
    let page = state
        .store
        .list_incidents(&filter, limit, cursor.as_ref())
        .await?;
    Ok(Json(page))
}

async fn get_incident(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<netmedic_proto::IncidentView>, ApiError> {
    let Path((agent_id, incident_id)) =
        path.map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))?;
    match state.store.get_incident(&agent_id, &incident_id).await? {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no incident {incident_id:?} from agent {agent_id:?}"),
        )),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
