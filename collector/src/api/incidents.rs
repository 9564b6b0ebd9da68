//! `GET /api/v1/incidents` (filtered, paged by cursor) and
//! `GET /api/v1/incidents/{agent_id}/{incident_id}`.

use super::auth::Viewer;
use super::error::{ApiError, path_error, query_error};
use crate::AppState;
use crate::domain::{IncidentQuery, parse_query};
use crate::store::IncidentDetail;
use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;

pub(crate) async fn list_incidents(
    _: Viewer,
    State(state): State<AppState>,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<netmedic_proto::IncidentPage>, ApiError> {
    let Query(q) = query.map_err(query_error)?;
    let (filter, limit, cursor) = parse_query(q)?;
    let page = state
        .store
        .list_incidents(&filter, limit, cursor.as_ref())
        .await?;
    Ok(Json(page))
}

pub(crate) async fn get_incident(
    _: Viewer,
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<IncidentDetail>, ApiError> {
    let Path((agent_id, incident_id)) = path.map_err(path_error)?;
    match state.store.get_incident(&agent_id, &incident_id).await? {
        Some(v) => Ok(Json(v)),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no incident {incident_id:?} from agent {agent_id:?}"),
        )),
    }
}
