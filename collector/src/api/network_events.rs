//! `GET /api/v1/network-events`: mass outages, optionally only the active ones and with their
//! member incidents.

use super::auth::Viewer;
use super::error::{ApiError, query_error};
use crate::AppState;
use crate::domain::NetworkEventList;
use crate::store::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, NetworkEventFilter};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use serde::Deserialize;

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

pub(crate) async fn list_network_events(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<NetworkEventQuery>, QueryRejection>,
) -> Result<Json<NetworkEventList>, ApiError> {
    let Query(q) = query.map_err(query_error)?;
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
