//! Holdout experiments, active and ended, with the forms to start and stop them (operators).

use super::common::{DoneQuery, store_error};
use crate::AppState;
use crate::analytics::scope_label;
use crate::web::session::NocSession;
use crate::web::{Chrome, render, visible, when};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use netmedic_proto::CheckId;

#[derive(Debug)]
struct ExperimentView {
    id: String,
    active: bool,
    scope: String,
    control: String,
    started_at: String,
    ended_at: String,
    created_by: String,
}

#[derive(Template)]
#[template(path = "experiments.html")]
struct ExperimentsPage {
    chrome: Chrome,
    experiments: Vec<ExperimentView>,
    checks: Vec<&'static str>,
}

pub async fn experiments(
    session: NocSession,
    State(state): State<AppState>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let list = match state.store.list_experiments().await {
        Ok(l) => l,
        Err(e) => return store_error(&session, &e),
    };
    let page = ExperimentsPage {
        chrome: Chrome::new("Experiments", "experiments", Some(&session))
            .with_done(q.done.as_deref()),
        experiments: list
            .iter()
            .map(|r| ExperimentView {
                id: visible(&r.experiment.id),
                active: r.is_active(),
                scope: visible(&scope_label(&r.experiment.scope)),
                control: format!("{:.1} %", f64::from(r.experiment.control_permille) / 10.0),
                started_at: when(r.started_at),
                ended_at: r.ended_at.map_or_else(String::new, when),
                created_by: visible(&r.created_by),
            })
            .collect(),
        checks: CheckId::ALL.iter().map(|c| c.as_str()).collect(),
    };
    render(&page)
}
