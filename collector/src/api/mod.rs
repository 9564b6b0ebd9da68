//! The HTTP API (axum): authenticated ingest of reports and heartbeats through the group-commit
//! queue, the incident and device query API, kill switches and diagnostics, health probes,
//! `/metrics` and `/api/openapi.json`. Every error answer is a JSON `netmedic_proto::ErrorBody`;
//! bad input gets a 4xx and stores nothing; a full write queue gets 429 and storage trouble 503,
//! both with `Retry-After`.
//!
//! Layout: [`router`] here; [`error`] is the one place a store or domain error becomes a status;
//! [`body`] decodes and validates JSON documents; [`auth`] holds the bearer checks and the
//! `Viewer`/`Operator` extractors; then one file per resource. Rules shared with the console and
//! the CLI live in [`crate::domain`].

pub mod auth;
pub mod body;
pub mod devices;
pub mod diagnostics;
pub mod error;
pub mod experiments;
pub mod imports;
pub mod incidents;
pub mod ingest;
pub mod killswitches;
pub mod network_events;
pub mod probes;
pub mod report;

pub use crate::domain::{IncidentQuery, NetworkEventList};
pub use auth::{Caller, Operator, Viewer, authorize};
pub use devices::DeviceQuery;
pub use diagnostics::{
    DiagnosticsList, DiagnosticsQuery, DiagnosticsQueued, DiagnosticsRequest, DiagnosticsResultAck,
};
pub use error::ApiError;
pub use experiments::{ExperimentList, ExperimentRequest};
pub use imports::ImportQuery;
pub use killswitches::{KillSwitchList, KillSwitchRequest, KillSwitchView};
pub use network_events::NetworkEventQuery;
pub use report::ReportQuery;

use crate::AppState;
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use netmedic_proto::paths;
use std::sync::Arc;
use std::time::Instant;

/// Builds the application's router: the API's routes plus `console` (the NOC pages, handed in
/// by the caller so that the API does not depend on the console), all under one request metric,
/// one JSON 404/405 and one body limit. `max_body_bytes` bounds every request body (413 above
/// it), compressed and decompressed alike.
pub fn router(state: AppState, console: Router<AppState>) -> Router {
    let limit = state.max_body_bytes;
    // The device endpoints take their own small state (see `ingest::Ingest`).
    let devices = ingest::Ingest::new(&state);
    Router::new()
        .route(
            paths::REPORTS,
            post(ingest::post_reports).with_state(devices.clone()),
        )
        .route(
            paths::HEARTBEATS,
            post(ingest::post_heartbeat).with_state(devices),
        )
        .route(paths::INCIDENTS, get(incidents::list_incidents))
        .route(
            &format!("{}/{{agent_id}}/{{incident_id}}", paths::INCIDENTS),
            get(incidents::get_incident),
        )
        .route("/api/v1/devices", get(devices::list_devices))
        .route("/api/v1/devices/{agent_id}", get(devices::get_device))
        .route(
            "/api/v1/devices/{agent_id}/diagnostics",
            post(diagnostics::post_diagnostics),
        )
        .route(
            "/api/v1/devices/{agent_id}/diagnostics",
            get(diagnostics::list_diagnostics),
        )
        .route(
            paths::DIAGNOSTICS_RESULTS,
            post(diagnostics::post_diagnostics_results),
        )
        .route(
            "/api/v1/killswitches",
            get(killswitches::list_killswitches)
                .put(killswitches::put_killswitch)
                .delete(killswitches::delete_killswitch),
        )
        .route(
            "/api/v1/experiments",
            get(experiments::list_experiments).post(experiments::post_experiment),
        )
        .route(
            "/api/v1/experiments/{id}",
            axum::routing::delete(experiments::delete_experiment),
        )
        .route("/api/v1/import/{kind}", post(imports::post_import))
        .route("/api/v1/report", get(report::get_report))
        .route(
            "/api/v1/network-events",
            get(network_events::list_network_events),
        )
        .route("/api/openapi.json", get(probes::openapi))
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(probes::metrics))
        .merge(console)
        .route_layer(middleware::from_fn_with_state(state.metrics.clone(), track))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::map_response(nosniff))
        .with_state(state)
}

/// `X-Content-Type-Options: nosniff` on every answer (JSON, errors, metrics), so a browser never
/// reads an API body as HTML or script.
async fn nosniff(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        axum::http::header::X_CONTENT_TYPE_OPTIONS,
        axum::http::HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Counts every routed request by route template and status, and times it. Its state is the
/// metrics alone: the middleware's state is cloned for every request. The route's metric handles
/// are resolved once (see [`Metrics::request`]): no label is formatted per request.
async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    // A clone of the matched path shares its string (an `Arc<str>`).
    let route = req.extensions().get::<MatchedPath>().cloned();
    let started = Instant::now();
    let resp = next.run(req).await;
    metrics.request(
        route.as_ref().map_or("", MatchedPath::as_str),
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}
