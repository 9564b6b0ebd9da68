//! `POST /api/v1/import/{kind}`: subscribers, surveys or contacts as CSV or JSON Lines in the
//! request body (large files go through `netmedic-collector import`).

use super::auth::Operator;
use super::error::{ApiError, path_error, query_error};
use crate::AppState;
use crate::import::{ImportError, ImportFormat, ImportKind, ImportReport};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;

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

pub(crate) async fn post_import(
    Operator(caller): Operator,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<ImportQuery>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportReport>, ApiError> {
    let Path(kind) = path.map_err(path_error)?;
    let kind = ImportKind::parse(&kind).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{kind:?} is not one of subscribers, surveys, contacts"),
        )
    })?;
    let Query(q) = query.map_err(query_error)?;
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
            ImportError::Store(e) => ApiError::from(e),
            other => ApiError::bad_request("invalid_import", other.to_string()),
        })?;
    log::info!("import by {}: {}", caller.name, report.summary());
    Ok(Json(report))
}
