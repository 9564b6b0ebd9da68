//! Who may call: the device bearer token of the ingest endpoints ([`bearer`]), and the API
//! tokens of every other `/api/v1/` route ([`authorize`], the [`Viewer`] and [`Operator`]
//! extractors).

use super::error::ApiError;
use crate::AppState;
use crate::auth::{BearerError, Role, parse_bearer, token_sha256};
use crate::metrics::Metrics;
use crate::store::Auth;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};

/// The device bearer token's hash, or a 401 saying what is wrong with the header.
pub(crate) fn bearer(metrics: &Metrics, headers: &HeaderMap) -> Result<Auth, ApiError> {
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
            metrics.inc(
                "netmedic_collector_auth_denied_total",
                &format!("reason=\"{code}\""),
                1,
            );
            Err(ApiError::new(StatusCode::UNAUTHORIZED, code, reason))
        }
    }
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
