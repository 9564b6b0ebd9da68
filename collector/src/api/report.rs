//! `GET /api/v1/report`: the customer-experience report over an optional time range.

use super::auth::Viewer;
use super::error::{ApiError, query_error};
use crate::AppState;
use crate::analytics::{Report, ReportParams};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use netmedic_proto::Timestamp;
use serde::Deserialize;

/// Query string of `GET /api/v1/report`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

pub(crate) async fn get_report(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Json<Report>, ApiError> {
    let Query(q) = query.map_err(query_error)?;
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
