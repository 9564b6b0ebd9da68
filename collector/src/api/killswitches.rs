//! `GET`, `PUT` and `DELETE /api/v1/killswitches`: stop all remediation on a device, a region or
//! the whole fleet (delivered to the agents in heartbeat replies).

use super::auth::{Operator, Viewer};
use super::error::{ApiError, json_error, query_error};
use crate::domain::{MAX_REASON_BYTES, kill_scope, valid_reason};
use crate::store::KillSwitch;
use crate::{AppState, now};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use netmedic_proto::Timestamp;
use serde::{Deserialize, Serialize};

/// Body of `PUT /api/v1/killswitches`; also the selector of `DELETE` (as a query string).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillSwitchRequest {
    /// `fleet`, `region` or `device`.
    pub scope: String,
    /// The region or device id; omitted for the fleet.
    #[serde(default)]
    pub target: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct KillSwitchList {
    pub killswitches: Vec<KillSwitchView>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KillSwitchView {
    pub scope: String,
    pub target: String,
    pub reason: String,
    pub set_at: Timestamp,
}

impl From<KillSwitch> for KillSwitchView {
    fn from(k: KillSwitch) -> Self {
        Self {
            scope: k.scope.to_owned(),
            target: k.target,
            reason: k.reason,
            set_at: k.set_at,
        }
    }
}

pub(crate) async fn list_killswitches(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<KillSwitchList>, ApiError> {
    killswitch_list(&state).await
}

async fn killswitch_list(state: &AppState) -> Result<Json<KillSwitchList>, ApiError> {
    let list = state.store.list_killswitches().await?;
    Ok(Json(KillSwitchList {
        killswitches: list.into_iter().map(KillSwitchView::from).collect(),
    }))
}

pub(crate) async fn put_killswitch(
    Operator(caller): Operator,
    State(state): State<AppState>,
    body: Result<Json<KillSwitchRequest>, JsonRejection>,
) -> Result<Json<KillSwitchList>, ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let scope = kill_scope(&req.scope, req.target.as_deref())
        .map_err(|m| ApiError::bad_request("invalid_body", m))?;
    let reason = req.reason.unwrap_or_default();
    let reason = reason.trim();
    if !valid_reason(reason) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "reason must be 1..={MAX_REASON_BYTES} bytes of text without control characters"
            ),
        ));
    }
    state.store.set_killswitch(&scope, reason, now()).await?;
    log::info!("kill switch {scope:?} set by {}: {reason}", caller.name);
    killswitch_list(&state).await
}

pub(crate) async fn delete_killswitch(
    Operator(caller): Operator,
    State(state): State<AppState>,
    query: Result<Query<KillSwitchRequest>, QueryRejection>,
) -> Result<Json<KillSwitchList>, ApiError> {
    let Query(req) = query.map_err(query_error)?;
    let scope = kill_scope(&req.scope, req.target.as_deref())
        .map_err(|m| ApiError::bad_request("invalid_query", m))?;
    if !state.store.clear_killswitch(&scope).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such kill switch is set",
        ));
    }
    log::info!("kill switch {scope:?} cleared by {}", caller.name);
    killswitch_list(&state).await
}
