//! Operational endpoints: `/healthz` (the process answers), `/readyz` (the database answers),
//! `/metrics` (Prometheus text, optionally behind an API token) and `/api/openapi.json`.

use super::auth::authorize;
use super::error::ApiError;
use crate::AppState;
use crate::auth::Role;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};

pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document(),
    )
        .into_response()
}

pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

pub(crate) async fn healthz() -> &'static str {
    "ok"
}

pub(crate) async fn readyz(State(state): State<AppState>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}
