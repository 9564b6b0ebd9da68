//! API error answers: a status, a JSON `ErrorBody` and, when the client should come back, a
//! `Retry-After`. This is the one place where a store error, a device-token denial or a domain
//! error becomes an HTTP status.

use crate::domain::{DiagError, InvalidQuery};
use crate::store::{Denied, StoreError};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use netmedic_proto::{ErrorBody, Violation};

/// Seconds a client is told to wait after a 503.
const RETRY_AFTER_SECS: u32 = 5;

/// An error answer: status, `ErrorBody`, and the `Retry-After` seconds when the client should
/// come back.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
    retry_after_secs: Option<u32>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, error: &str, reason: impl Into<String>) -> Self {
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

    pub(crate) fn bad_request(error: &str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, reason)
    }

    /// The same error, listing the fields that failed validation.
    pub(crate) fn with_violations(mut self, violations: Vec<Violation>) -> Self {
        self.body.violations = violations;
        self
    }

    /// The same error, telling the client to come back after `secs` seconds.
    pub(crate) fn with_retry_after(mut self, secs: u32) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    /// `400 invalid_query` listing the bad query parameters.
    pub(crate) fn invalid_query(violations: Vec<Violation>) -> Self {
        Self::bad_request("invalid_query", "invalid query parameters").with_violations(violations)
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

impl From<InvalidQuery> for ApiError {
    fn from(e: InvalidQuery) -> Self {
        ApiError::invalid_query(e.violations)
    }
}

/// Diagnostics requests come as JSON bodies: a bad one is `invalid_body`.
impl From<DiagError> for ApiError {
    fn from(e: DiagError) -> Self {
        match e {
            DiagError::Invalid(m) => ApiError::bad_request("invalid_body", m),
            DiagError::Store(e) => ApiError::from(e),
        }
    }
}

/// A JSON body axum could not read or deserialize.
pub(crate) fn json_error(r: JsonRejection) -> ApiError {
    ApiError::new(r.status(), "invalid_body", r.body_text())
}

/// A path parameter axum could not deserialize.
pub(crate) fn path_error(r: PathRejection) -> ApiError {
    ApiError::bad_request("invalid_path", r.body_text())
}

/// A query string axum could not deserialize (unknown or mistyped parameters).
pub(crate) fn query_error(r: QueryRejection) -> ApiError {
    ApiError::bad_request("invalid_query", r.body_text())
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
