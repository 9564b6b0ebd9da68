//! The HTTP API (axum): authenticated ingest of reports and heartbeats through the group-commit
//! queue, the incident and device query API, kill switches and diagnostics, health probes,
//! `/metrics` and `/api/openapi.json`. Every error answer is a JSON `netmedic_proto::ErrorBody`;
//! bad input gets a 4xx and stores nothing; a full write queue gets 429 and storage trouble 503,
//! both with `Retry-After`.

use crate::analytics::{NetworkEventView, Report, ReportParams};
use crate::auth::{BearerError, Role, parse_bearer, token_sha256};
use crate::fleet::{DevicePage, DeviceView, offline_before_ms, valid_id};
use crate::import::{ImportFormat, ImportKind, ImportReport};
use crate::ingest::SubmitError;
use crate::store::{
    Auth, Cursor, DEFAULT_PAGE_LIMIT, Denied, DeviceFilter, DeviceState, IncidentDetail,
    IncidentFilter, KillScope, KillSwitch, ListOrder, MAX_PAGE_LIMIT, NetworkEventFilter,
    StoreError, WriteItem, WriteKind, WriteOk,
};
use crate::{AppState, now};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use netmedic_proto::{
    Category, CheckId, ErrorBody, Heartbeat, HeartbeatReply, IncidentStatus, Limits, ReportAck,
    ReportBatch, SCHEMA_VERSION, Timestamp, Violation, paths,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::time::Instant;

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Builds the router. `max_body_bytes` bounds every request body (413 above it), compressed and
/// decompressed alike.
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
        .route("/api/v1/devices", get(list_devices))
        .route("/api/v1/devices/{agent_id}", get(get_device))
        .route(
            "/api/v1/devices/{agent_id}/diagnostics",
            post(post_diagnostics),
        )
        .route(
            "/api/v1/devices/{agent_id}/diagnostics",
            get(list_diagnostics),
        )
        .route(paths::DIAGNOSTICS_RESULTS, post(post_diagnostics_results))
        .route(
            "/api/v1/killswitches",
            get(list_killswitches)
                .put(put_killswitch)
                .delete(delete_killswitch),
        )
        .route("/api/v1/import/{kind}", post(post_import))
        .route("/api/v1/report", get(get_report))
        .route("/api/v1/network-events", get(list_network_events))
        .route("/api/openapi.json", get(openapi))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::web::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), track))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Counts every routed request by route template and status, and times it.
async fn track(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let started = Instant::now();
    let resp = next.run(req).await;
    let route = format!("route=\"{route}\"");
    state.metrics.observe(
        "netmedic_collector_http_request_duration_seconds",
        &route,
        started.elapsed().as_secs_f64(),
    );
    state.metrics.inc(
        "netmedic_collector_http_requests_total",
        &format!("{route},status=\"{}\"", resp.status().as_u16()),
        1,
    );
    resp
}

/// An error answer: status, `ErrorBody`, and the `Retry-After` seconds when the client should
/// come back.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after_secs: Option<u32>,
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
            retry_after_secs: (status == StatusCode::SERVICE_UNAVAILABLE)
                .then_some(RETRY_AFTER_SECS),
        }
    }

    fn bad_request(error: &str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, reason)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.retry_after_secs;
        let mut resp = (self.status, Json(self.body)).into_response();
        if let Some(secs) = retry {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::from(&e)
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::UnknownToken => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown_token",
                "no enrolled device has this token",
            ),
            Denied::Revoked { agent_id } => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "revoked_token",
                format!("the token of device {agent_id:?} was revoked"),
            ),
            Denied::WrongDevice {
                token_device,
                claimed,
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                "wrong_device",
                format!(
                    "the token belongs to device {token_device:?}; it may not report as {claimed:?}"
                ),
            ),
        }
    }
}

impl From<&StoreError> for ApiError {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => {
                ApiError::bad_request("invalid_cursor", "the cursor is not one this server issued")
            }
            StoreError::OutOfRange(msg) => ApiError::bad_request("invalid_report", msg.clone()),
            StoreError::Conflict(msg) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", msg.clone())
            }
            StoreError::NoSuchDevice(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_device",
                format!("no enrolled, active device {id:?}"),
            ),
            StoreError::NoSuchIncident(id) => ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_incident",
                format!("no incident {id:?}"),
            ),
            StoreError::Corrupt(msg) => {
                log::error!("storage returned corrupt data: {msg}");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "stored data could not be read; see the collector log",
                )
            }
            e @ (StoreError::Unavailable(_) | StoreError::Migrate(_) | StoreError::NotFound(_)) => {
                log::warn!("storage unavailable: {}", crate::error_chain(e));
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
    max_body_bytes: usize,
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
    let gzip = match headers.get(header::CONTENT_ENCODING) {
        None => false,
        Some(enc) => {
            let enc = enc.to_str().unwrap_or("?").trim();
            if enc.eq_ignore_ascii_case("gzip") {
                true
            } else if enc.eq_ignore_ascii_case("identity") {
                false
            } else {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_content_encoding",
                    format!("Content-Encoding {enc:?} is not supported; send gzip or identity"),
                ));
            }
        }
    };
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
    let body = if gzip {
        gunzip(&body, max_body_bytes)?
    } else {
        body
    };
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

/// Inflates a gzip body, refusing it as soon as the output passes `max` bytes (zip bombs).
fn gunzip(body: &[u8], max: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max));
    let mut decoder = flate2::read::GzDecoder::new(body).take(max as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|e| {
        ApiError::bad_request(
            "invalid_gzip",
            format!("the gzip body does not decode: {e}"),
        )
    })?;
    if out.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the decompressed body is larger than the configured limit of {max} bytes"),
        ));
    }
    Ok(Bytes::from(out))
}

/// The bearer token's hash, or a 401 saying what is wrong with the header.
fn bearer(state: &AppState, headers: &HeaderMap) -> Result<Auth, ApiError> {
    match parse_bearer(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        Ok(token) => Ok(Auth::TokenSha256(token_sha256(token))),
        Err(e) => {
            let (code, reason) = match e {
                BearerError::Missing => (
                    "missing_token",
                    "send `Authorization: Bearer <token>` (see `netmedic-collector device add`)"
                        .to_owned(),
                ),
                BearerError::Malformed(why) => ("malformed_token", why.to_owned()),
            };
            state.metrics.inc(
                "netmedic_collector_auth_denied_total",
                &format!("reason=\"{code}\""),
                1,
            );
            Err(ApiError::new(StatusCode::UNAUTHORIZED, code, reason))
        }
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
        Err(SubmitError::Full) => {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "overloaded",
                "the write queue is full; retry after the given delay",
            );
            e.retry_after_secs = Some(state.retry_after_secs);
            Err(e)
        }
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

async fn post_reports(
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

async fn post_heartbeat(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let auth = bearer(&state, &headers)?;
    let hb: Heartbeat = decode(&headers, body, state.max_body_bytes)?;
    match submit(&state, auth, WriteKind::Heartbeat(hb)).await? {
        WriteOk::Heartbeat(advisories) => Ok(Json(HeartbeatReply {
            schema_version: SCHEMA_VERSION,
            server_time: now(),
            heartbeat_interval_secs: state.heartbeat_interval_secs,
            advisories,
        })),
        WriteOk::Report(_) => Err(unexpected("heartbeat")),
    }
}

/// Query string of `GET /api/v1/incidents`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub status: Option<String>,
    pub category: Option<String>,
    pub check: Option<String>,
    pub agent_id: Option<String>,
    pub customer_id: Option<String>,
    pub region: Option<String>,
    pub access_node: Option<String>,
    /// RFC 3339: incidents that started at or after this instant.
    pub from: Option<String>,
    /// RFC 3339: incidents that started before this instant.
    pub to: Option<String>,
    /// CPE model (subscribers table).
    pub cpe_model: Option<String>,
    /// Firmware (subscribers table, else the device's heartbeat).
    pub firmware: Option<String>,
    /// `newest` (default), `oldest` or `severity` (most severe first, then newest).
    pub order: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Validates an incident query (API and console share it), listing every bad field at once.
pub fn parse_query(q: IncidentQuery) -> Result<(IncidentFilter, u32, Option<Cursor>), ApiError> {
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
    let order = match q.order.as_deref() {
        None | Some("") => ListOrder::default(),
        Some(o) => ListOrder::parse(o).unwrap_or_else(|| {
            bad(
                "order",
                format!("{o:?} is not one of newest, oldest, severity"),
            );
            ListOrder::default()
        }),
    };
    let check = match q.check.as_deref() {
        None | Some("") => None,
        Some(c) => CheckId::parse(c).or_else(|| {
            bad("check", format!("{c:?} is not a known check"));
            None
        }),
    };
    let category = match q.category.as_deref() {
        None | Some("") => None,
        Some(c) => Category::parse(c).or_else(|| {
            bad("category", format!("{c:?} is not a known category"));
            None
        }),
    };
    let mut time = |field: &str, v: Option<&str>| match v {
        None | Some("") => None,
        Some(t) => t.parse::<Timestamp>().ok().or_else(|| {
            bad(field, format!("{t:?} is not an RFC 3339 UTC timestamp"));
            None
        }),
    };
    let from = time("from", q.from.as_deref());
    let to = time("to", q.to.as_deref());
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
        Some(c) => match Cursor::decode(c) {
            Ok(c) if c.fits(order) => Some(c),
            Ok(_) => {
                bad(
                    "cursor",
                    format!(
                        "belongs to a list in another order than {:?}: start from the first page",
                        order.as_str()
                    ),
                );
                None
            }
            Err(_) => {
                bad("cursor", "not a cursor this server issued".into());
                None
            }
        },
    };
    if !violations.is_empty() {
        let mut err = ApiError::bad_request("invalid_query", "invalid query parameters");
        err.body.violations = violations;
        return Err(err);
    }
    let some = |s: Option<String>| s.filter(|a| !a.is_empty());
    let filter = IncidentFilter {
        status,
        category,
        check,
        agent_id: some(q.agent_id),
        customer_id: some(q.customer_id),
        region: some(q.region),
        access_node: some(q.access_node),
        from,
        to,
        cpe_model: some(q.cpe_model),
        firmware: some(q.firmware),
        order,
    };
    Ok((filter, limit, cursor))
}

async fn list_incidents(
    _: Viewer,
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
    _: Viewer,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
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

/// Query string of `GET /api/v1/devices`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    pub state: Option<String>,
    pub region: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
}

async fn list_devices(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Json<DevicePage>, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let mut violations = Vec::new();
    let dev_state = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => DeviceState::parse(s).or_else(|| {
            violations.push(Violation {
                field: "state".into(),
                problem: format!("{s:?} is not one of online, offline, never_seen, revoked"),
            });
            None
        }),
    };
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
            _ => {
                violations.push(Violation {
                    field: "limit".into(),
                    problem: format!("{l:?} is not an integer in 1..={MAX_PAGE_LIMIT}"),
                });
                DEFAULT_PAGE_LIMIT
            }
        },
    };
    if !violations.is_empty() {
        let mut err = ApiError::bad_request("invalid_query", "invalid query parameters");
        err.body.violations = violations;
        return Err(err);
    }
    let cutoff = offline_before_ms(now(), state.heartbeat_interval_secs);
    let filter = DeviceFilter {
        state: dev_state,
        region: q.region.filter(|r| !r.is_empty()),
        after: q.after.filter(|a| !a.is_empty()),
        limit,
        offline_before_ms: cutoff,
    };
    let records = state.store.list_devices(&filter).await?;
    let next_after = (records.len() == limit as usize)
        .then(|| records.last().map(|d| d.agent_id.clone()))
        .flatten();
    Ok(Json(DevicePage {
        devices: records
            .into_iter()
            .map(|d| DeviceView::from_record(d, cutoff, false))
            .collect(),
        next_after,
    }))
}

async fn get_device(
    _: Viewer,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let Path(agent_id) = path.map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))?;
    let cutoff = offline_before_ms(now(), state.heartbeat_interval_secs);
    match state.store.get_device(&agent_id).await? {
        Some(d) => Ok(Json(DeviceView::from_record(d, cutoff, true))),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no device {agent_id:?}"),
        )),
    }
}

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

fn json_error(r: JsonRejection) -> ApiError {
    ApiError::new(r.status(), "invalid_body", r.body_text())
}

async fn post_diagnostics(
    Operator(caller): Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<DiagnosticsRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<DiagnosticsQueued>), ApiError> {
    let Path(agent_id) = path.map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))?;
    let Json(req) = body.map_err(json_error)?;
    let request_id = queue_diagnostics(&*state.store, &agent_id, &req.checks)
        .await
        .map_err(|e| match e {
            DiagError::Invalid(m) => ApiError::bad_request("invalid_body", m),
            DiagError::Store(e) => ApiError::from(e),
        })?;
    log::info!(
        "diagnostics {request_id} for {agent_id} requested by {}",
        caller.name
    );
    Ok((StatusCode::ACCEPTED, Json(DiagnosticsQueued { request_id })))
}

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues diagnostics (shared by the API and the CLI); returns the request id.
pub async fn queue_diagnostics(
    store: &dyn crate::store::Store,
    agent_id: &str,
    checks: &[CheckId],
) -> Result<String, DiagError> {
    if checks.is_empty() {
        return Err(DiagError::Invalid("name at least one check".into()));
    }
    let mut checks = checks.to_vec();
    checks.sort();
    checks.dedup();
    let request_id = crate::auth::random_hex(8)
        .map(|h| format!("diag-{h}"))
        .map_err(|e| DiagError::Invalid(e.to_string()))?;
    store
        .request_diagnostics(agent_id, &checks, &request_id, now())
        .await?;
    Ok(request_id)
}

impl Document for netmedic_proto::DiagnosticsResult {
    const INVALID: &'static str = "invalid_diagnostics_result";
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
async fn post_diagnostics_results(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<DiagnosticsResultAck>, ApiError> {
    let token = match bearer(&state, &headers)? {
        Auth::TokenSha256(h) => h,
        Auth::Trusted => {
            return Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "no device token",
            ));
        }
    };
    let result: netmedic_proto::DiagnosticsResult = decode(&headers, body, state.max_body_bytes)?;
    let outcome = state
        .store
        .complete_diagnostics(&token, &result, now())
        .await?;
    let (agent, id) = (&result.agent_id, &result.request_id);
    match outcome {
        crate::store::CompleteOutcome::Stored => {
            let not_ok = result
                .results
                .iter()
                .filter(|c| c.status != netmedic_proto::CheckStatus::Ok)
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
        crate::store::CompleteOutcome::AlreadyCompleted => {
            log::debug!("diagnostics {id} result from {agent}: already stored");
            Ok(Json(DiagnosticsResultAck {
                request_id: result.request_id,
                duplicate: true,
            }))
        }
        crate::store::CompleteOutcome::Denied(denied) => {
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
        crate::store::CompleteOutcome::NotFound => Err(ApiError::new(
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
    pub diagnostics: Vec<crate::store::DiagnosticsRecord>,
}

async fn list_diagnostics(
    _: Viewer,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<DiagnosticsQuery>, QueryRejection>,
) -> Result<Json<DiagnosticsList>, ApiError> {
    let Path(agent_id) = path.map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))?;
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let limit = match q.limit.as_deref() {
        None | Some("") => DEFAULT_PAGE_LIMIT,
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => n,
            _ => {
                let mut err = ApiError::bad_request("invalid_query", "invalid query parameters");
                err.body.violations = vec![Violation {
                    field: "limit".into(),
                    problem: format!("{l:?} is not an integer in 1..={MAX_PAGE_LIMIT}"),
                }];
                return Err(err);
            }
        },
    };
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

/// Body of `PUT /api/v1/killswitches`; also the selector of `DELETE` (as a query string).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchRequest {
    /// `fleet`, `region` or `device`.
    pub scope: String,
    /// The region or device id; omitted for the fleet.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Turns a scope and target into a [`KillScope`]; an empty selector never means "all".
pub fn kill_scope(scope: &str, target: Option<&str>) -> Result<KillScope, String> {
    let target = target.map(str::trim).filter(|t| !t.is_empty());
    match (scope, target) {
        ("fleet", None) => Ok(KillScope::Fleet),
        ("fleet", Some(_)) => Err("the fleet scope takes no target".into()),
        ("region" | "device", None) => Err(format!("the {scope} scope needs a target")),
        ("region", Some(t)) if valid_id(t) => Ok(KillScope::Region(t.to_owned())),
        ("device", Some(t)) if valid_id(t) => Ok(KillScope::Device(t.to_owned())),
        ("region" | "device", Some(t)) => Err(format!(
            "{t:?} is not an identifier (1..=64 of A-Z a-z 0-9 . _ : -)"
        )),
        (other, _) => Err(format!(
            "scope {other:?} is not one of fleet, region, device"
        )),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KillSwitchList {
    pub killswitches: Vec<KillSwitchView>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KillSwitchView {
    pub scope: String,
    pub target: String,
    pub reason: String,
    pub set_at: Timestamp,
}

impl From<KillSwitch> for KillSwitchView {
    fn from(k: KillSwitch) -> Self {
        Self {
            scope: k.scope.to_owned(),
            target: k.target,
            reason: k.reason,
            set_at: k.set_at,
        }
    }
}

async fn list_killswitches(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<KillSwitchList>, ApiError> {
    killswitch_list(&state).await
}

async fn killswitch_list(state: &AppState) -> Result<Json<KillSwitchList>, ApiError> {
    let list = state.store.list_killswitches().await?;
    Ok(Json(KillSwitchList {
        killswitches: list.into_iter().map(KillSwitchView::from).collect(),
    }))
}

async fn put_killswitch(
    Operator(caller): Operator,
    State(state): State<AppState>,
    body: Result<Json<KillSwitchRequest>, JsonRejection>,
) -> Result<Json<KillSwitchList>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let scope = kill_scope(&req.scope, req.target.as_deref())
        .map_err(|m| ApiError::bad_request("invalid_body", m))?;
    let reason = req.reason.unwrap_or_default();
    let reason = reason.trim();
    if reason.is_empty() || reason.len() > 512 || reason.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "reason must be 1..=512 bytes of text without control characters",
        ));
    }
    state.store.set_killswitch(&scope, reason, now()).await?;
    log::info!("kill switch {scope:?} set by {}: {reason}", caller.name);
    killswitch_list(&state).await
}

async fn delete_killswitch(
    Operator(caller): Operator,
    State(state): State<AppState>,
    query: Result<Query<KillSwitchRequest>, QueryRejection>,
) -> Result<Json<KillSwitchList>, ApiError> {
    let Query(req) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let scope = kill_scope(&req.scope, req.target.as_deref())
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    if !state.store.clear_killswitch(&scope).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such kill switch is set",
        ));
    }
    log::info!("kill switch {scope:?} cleared by {}", caller.name);
    killswitch_list(&state).await
}

async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if state.metrics_requires_token
        && let Err(e) = authorize(&state, &headers, Role::Viewer).await
    {
        return e.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
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

/// Who called a query or admin endpoint: the API token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Extractor: any valid API token (viewer or operator).
#[derive(Debug)]
pub struct Viewer(pub Caller);

/// Extractor: an API token with the operator role.
#[derive(Debug)]
pub struct Operator(pub Caller);

impl FromRequestParts<AppState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorize(state, &parts.headers, Role::Viewer)
            .await
            .map(Viewer)
    }
}

impl FromRequestParts<AppState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authorize(state, &parts.headers, Role::Operator)
            .await
            .map(Operator)
    }
}

/// Checks `Authorization: Bearer` against the API tokens: 401 without a valid one, 403 when its
/// role is not enough.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    needed: Role,
) -> Result<Caller, ApiError> {
    let deny = |status, code: &str, reason: String| {
        state.metrics.inc(
            "netmedic_collector_api_auth_denied_total",
            &format!("reason=\"{code}\""),
            1,
        );
        Err(ApiError::new(status, code, reason))
    };
    let token = match parse_bearer(headers.get(header::AUTHORIZATION).map(|v| v.as_bytes())) {
        Ok(t) => t,
        Err(BearerError::Missing) => {
            return deny(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "send `Authorization: Bearer <API token>` (see `netmedic-collector token add`)"
                    .into(),
            );
        }
        Err(BearerError::Malformed(why)) => {
            return deny(StatusCode::UNAUTHORIZED, "malformed_token", why.to_owned());
        }
    };
    match state.store.api_token_lookup(&token_sha256(token)).await? {
        None => deny(
            StatusCode::UNAUTHORIZED,
            "unknown_token",
            "no active API token has this value (device tokens only report and heartbeat)".into(),
        ),
        Some((name, role)) if !role.allows(needed) => deny(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the token {name:?} has the role {}; this needs {}",
                role.as_str(),
                needed.as_str()
            ),
        ),
        Some((name, role)) => Ok(Caller { name, role }),
    }
}

/// Query string of `POST /api/v1/import/{kind}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// `csv` or `jsonl`; default from the Content-Type (`application/x-ndjson`,
    /// `application/jsonl` → JSON Lines), else CSV.
    pub format: Option<String>,
    /// `true`: any bad row aborts the import and nothing is written.
    pub strict: Option<bool>,
}

async fn post_import(
    Operator(caller): Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    let Path(kind) = path.map_err(|r| ApiError::bad_request("invalid_path", r.body_text()))?;
    let kind = ImportKind::parse(&kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind:?} is not one of subscribers, surveys, contacts"),
        )
    })?;
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let format = match q.format.as_deref() {
        Some(f) => ImportFormat::parse(f).ok_or_else(|| {
            ApiError::bad_request("invalid_query", format!("format {f:?} is not csv or jsonl"))
        })?,
        None => {
            let ct = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if ct.contains("ndjson") || ct.contains("jsonl") || ct.contains("json-seq") {
                ImportFormat::Jsonl
            } else {
                ImportFormat::Csv
            }
        }
    };
    let body = body.map_err(|rej| {
        ApiError::new(
            rej.status(),
            if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "body_too_large"
            } else {
                "unreadable_body"
            },
            format!(
                "{} (import larger files with `netmedic-collector import`)",
                rej.body_text()
            ),
        )
    })?;
    let mut source = crate::import::source(kind, format, Box::new(std::io::Cursor::new(body)))
        .map_err(|e| ApiError::bad_request("invalid_import", e.to_string()))?;
    let report = state
        .store
        .import(&mut *source, q.strict.unwrap_or(false))
        .await
        .map_err(|e| match e {
            crate::import::ImportError::Store(e) => ApiError::from(e),
            other => ApiError::bad_request("invalid_import", other.to_string()),
        })?;
    log::info!("import by {}: {}", caller.name, report.summary());
    Ok(Json(report))
}

/// Query string of `GET /api/v1/report`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

async fn get_report(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let time = |field: &str, v: Option<&str>| -> Result<Option<Timestamp>, ApiError> {
        match v {
            None | Some("") => Ok(None),
            Some(t) => t.parse::<Timestamp>().map(Some).map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{field}: {t:?} is not an RFC 3339 timestamp"),
                )
            }),
        }
    };
    let params = ReportParams::from_config(
        &state.experience,
        time("from", q.from.as_deref())?,
        time("to", q.to.as_deref())?,
    );
    Ok(Json(state.store.report(&params).await?))
}

/// Query string of `GET /api/v1/network-events`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkEventQuery {
    /// `true`: only unresolved events.
    pub active: Option<bool>,
    /// `true`: list each event's member incidents.
    pub members: Option<bool>,
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkEventList {
    pub network_events: Vec<NetworkEventView>,
}

async fn list_network_events(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<NetworkEventQuery>, QueryRejection>,
) -> Result<Json<NetworkEventList>, ApiError> {
    let Query(q) = query.map_err(|r| ApiError::bad_request("invalid_query", r.body_text()))?;
    let filter = NetworkEventFilter {
        active_only: q.active.unwrap_or(false),
        from_ms: None,
        to_ms: None,
        limit: q
            .limit
            .unwrap_or(DEFAULT_PAGE_LIMIT)
            .clamp(1, MAX_PAGE_LIMIT),
    };
    let network_events = state
        .store
        .network_events(&filter, q.members.unwrap_or(false))
        .await?;
    Ok(Json(NetworkEventList { network_events }))
}
