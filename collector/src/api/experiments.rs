//! `GET` and `POST /api/v1/experiments`, `DELETE /api/v1/experiments/{id}`: holdout experiments
//! (a random, stable share of devices runs a playbook in `dry_run`), delivered to the agents in
//! heartbeat replies while active and kept for the report once ended.

use super::auth::{Operator, Viewer};
use super::error::{ApiError, json_error, path_error};
use crate::domain::{ExperimentError, new_experiment};
use crate::store::ExperimentRecord;
use crate::{AppState, now};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use netmedic_proto::ExperimentScope;
use serde::{Deserialize, Serialize};

/// Body of `POST /api/v1/experiments`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentRequest {
    pub id: String,
    pub scope: ExperimentScope,
    /// Share of devices in the control arm, in thousandths (50 = 5 %).
    pub control_permille: u16,
    /// Fixed salt for reproducible tests; random (16 bytes as hex) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ExperimentList {
    pub experiments: Vec<ExperimentRecord>,
}

pub(crate) async fn list_experiments(
    _: Viewer,
    State(state): State<AppState>,
) -> Result<Json<ExperimentList>, ApiError> {
    Ok(Json(ExperimentList {
        experiments: state.store.list_experiments().await?,
    }))
}

pub(crate) async fn post_experiment(
    Operator(caller): Operator,
    State(state): State<AppState>,
    body: Result<Json<ExperimentRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ExperimentRecord>), ApiError> {
    let Json(req) = body.map_err(json_error)?;
    let e = new_experiment(
        &req.id,
        req.scope,
        req.control_permille,
        req.salt.as_deref(),
    )
    .map_err(experiment_error)?;
    state
        .store
        .start_experiment(&e, &caller.name, now())
        .await?;
    log::info!(
        "experiment {} started by {}: {:?}, control {}‰",
        e.id,
        caller.name,
        e.scope,
        e.control_permille
    );
    let stored = state
        .store
        .list_experiments()
        .await?
        .into_iter()
        .find(|r| r.experiment.id == e.id)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the started experiment was not found again",
            )
        })?;
    Ok((StatusCode::CREATED, Json(stored)))
}

pub(crate) async fn delete_experiment(
    Operator(caller): Operator,
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<ExperimentList>, ApiError> {
    let Path(id) = id.map_err(path_error)?;
    if !state.store.end_experiment(&id, now()).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no active experiment has this id",
        ));
    }
    log::info!("experiment {id} stopped by {}", caller.name);
    Ok(Json(ExperimentList {
        experiments: state.store.list_experiments().await?,
    }))
}

fn experiment_error(e: ExperimentError) -> ApiError {
    match e {
        ExperimentError::Invalid(v) => ApiError::bad_request("invalid_body", "invalid experiment")
            .with_violations(v.violations),
        ExperimentError::Random(r) => {
            log::error!("{r}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "no random salt could be drawn; see the collector log",
            )
        }
    }
}
