//! `GET /api/v1/devices` (filtered by state and region, paged by agent id) and
//! `GET /api/v1/devices/{agent_id}`.

use super::auth::Viewer;
use super::error::{ApiError, path_error, query_error};
use crate::domain::parse_limit;
use crate::fleet::{DevicePage, DeviceView, offline_before_ms};
use crate::store::{DEFAULT_PAGE_LIMIT, DeviceFilter, DeviceState};
use crate::{AppState, now};
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use netmedic_proto::Violation;
use serde::Deserialize;

/// Query string of `GET /api/v1/devices`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceQuery {
    pub state: Option<String>,
    pub region: Option<String>,
    pub after: Option<String>,
    pub limit: Option<String>,
}

pub(crate) async fn list_devices(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<DeviceQuery>, QueryRejection>,
) -> Result<Json<DevicePage>, ApiError> {
    let Query(q) = query.map_err(query_error)?;
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
    let limit = parse_limit(q.limit.as_deref()).unwrap_or_else(|v| {
        violations.push(v);
        DEFAULT_PAGE_LIMIT
    });
    if !violations.is_empty() {
        return Err(ApiError::invalid_query(violations));
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

pub(crate) async fn get_device(
    _: Viewer,
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<DeviceView>, ApiError> {
    let Path(agent_id) = path.map_err(path_error)?;
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
