//! Request bodies of the device endpoints: Content-Type and Content-Encoding checks, gzip with a
//! size cap, the schema-version probe, JSON decoding and validation with field paths.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use netmedic_proto::{SCHEMA_VERSION, Violation};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::io::Read;

/// Which JSON document an ingest endpoint takes, for error codes.
pub(crate) trait Document: DeserializeOwned {
    /// Error code for a well-formed but invalid document, e.g. `invalid_report`.
    const INVALID: &'static str;
    fn violations(&self) -> Vec<Violation>;
    /// The document's `schema_version` field.
    fn schema_version(&self) -> u32;
}

/// Only `schema_version`, read when the full document does not parse, so a newer agent gets
/// `unsupported_schema_version` rather than "unknown field" for fields this version lacks.
#[derive(Deserialize)]
struct VersionProbe {
    schema_version: Option<u32>,
}

/// Checks the headers, then decodes and validates a JSON document body.
pub(crate) fn decode<T: Document>(
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
    // The document is parsed once in the common case; the version probe (a second pass over
    // the body) runs only when that fails, to tell a newer agent's fields from a broken body.
    let doc: T = match serde_json::from_slice::<T>(&body) {
        Ok(doc) if doc.schema_version() == SCHEMA_VERSION => doc,
        Ok(doc) => return Err(unsupported_version(doc.schema_version())),
        Err(e) => {
            return Err(match serde_json::from_slice::<VersionProbe>(&body) {
                Err(e) if e.is_syntax() || e.is_eof() => {
                    ApiError::bad_request("invalid_json", format!("malformed JSON: {e}"))
                }
                Ok(VersionProbe {
                    schema_version: Some(v),
                }) if v != SCHEMA_VERSION => unsupported_version(v),
                _ => ApiError::bad_request(T::INVALID, format!("{e}")),
            });
        }
    };
    let violations = doc.violations();
    if !violations.is_empty() {
        return Err(ApiError::bad_request(
            T::INVALID,
            format!("{} field(s) failed validation", violations.len()),
        )
        .with_violations(violations));
    }
    Ok(doc)
}

fn unsupported_version(v: u32) -> ApiError {
    ApiError::bad_request(
        "unsupported_schema_version",
        format!("schema_version {v} is not supported; this collector speaks {SCHEMA_VERSION}"),
    )
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
