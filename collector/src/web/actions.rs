//! The console's forms that change things: acknowledge and annotate an incident, set and clear
//! kill switches, start and stop holdout experiments, queue on-demand diagnostics. Each needs the operator role and the session's
//! CSRF token, validates its input with a clear message, logs who did what, and redirects back
//! (post/redirect/get) with a fixed confirmation code.

use super::enc;
use super::session::{NocSession, error_page};
use crate::AppState;
use crate::domain::{DiagError, kill_scope, queue_diagnostics};
use crate::store::StoreError;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use netmedic_proto::CheckId;
use serde::Deserialize;
use std::collections::HashMap;

/// Longest note, in characters.
pub const MAX_NOTE_CHARS: usize = 4000;
/// Longest kill-switch reason, in bytes (as the API).
pub const MAX_REASON_BYTES: usize = 512;

fn bad(session: &NocSession, message: &str) -> Response {
    error_page(
        Some(session),
        StatusCode::BAD_REQUEST,
        "Cannot do that",
        message,
    )
}

fn store_failed(session: &NocSession, e: &StoreError) -> Response {
    match e {
        StoreError::NoSuchIncident(_) => error_page(
            Some(session),
            StatusCode::NOT_FOUND,
            "Not found",
            "No such incident.",
        ),
        StoreError::NoSuchDevice(_) => error_page(
            Some(session),
            StatusCode::NOT_FOUND,
            "Not found",
            "No enrolled, active device has this id.",
        ),
        e => {
            log::warn!("console action: {}", crate::error_chain(e));
            error_page(
                Some(session),
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "Nothing was changed: the collector cannot reach its database right now.",
            )
        }
    }
}

/// The form body or a 400 page naming what was wrong. (A `Response` error is what axum
/// handlers return; boxing it would only add an allocation to the error path.)
#[allow(clippy::result_large_err)]
fn form<T>(session: &NocSession, f: Result<Form<T>, FormRejection>) -> Result<T, Response> {
    f.map(|Form(t)| t).map_err(|e| {
        bad(
            session,
            &format!("The form was not understood: {}", e.body_text()),
        )
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AckForm {
    csrf: String,
}

pub async fn acknowledge(
    session: NocSession,
    State(state): State<AppState>,
    Path((agent_id, incident_id)): Path<(String, String)>,
    f: Result<Form<AckForm>, FormRejection>,
) -> Response {
    let f = match form(&session, f) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = session.authorize_action(&f.csrf, "acknowledge incidents") {
        return r;
    }
    match state
        .store
        .incident_ack(&agent_id, &incident_id, &session.user, crate::now())
        .await
    {
        Ok(ack) => {
            log::info!(
                "console: incident {agent_id}/{incident_id} acknowledged by {} (in force: {} at {})",
                session.user,
                ack.acked_by,
                ack.acked_at
            );
            back_to_incident(&agent_id, &incident_id, "ack")
        }
        Err(e) => store_failed(&session, &e),
    }
}

fn back_to_incident(agent_id: &str, incident_id: &str, done: &str) -> Response {
    Redirect::to(&format!(
        "/incidents/{}/{}?done={done}",
        enc(agent_id),
        enc(incident_id)
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteForm {
    csrf: String,
    body: String,
}

/// A note: 1..=MAX_NOTE_CHARS characters, no control characters but line breaks and tabs.
fn valid_note(body: &str) -> Result<String, String> {
    let body = body.replace("\r\n", "\n");
    let body = body.trim();
    let n = body.chars().count();
    if n == 0 {
        return Err("The note is empty.".into());
    }
    if n > MAX_NOTE_CHARS {
        return Err(format!(
            "The note has {n} characters; at most {MAX_NOTE_CHARS} are kept."
        ));
    }
    if body
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("The note contains control characters.".into());
    }
    Ok(body.to_owned())
}

pub async fn annotate(
    session: NocSession,
    State(state): State<AppState>,
    Path((agent_id, incident_id)): Path<(String, String)>,
    f: Result<Form<NoteForm>, FormRejection>,
) -> Response {
    let f = match form(&session, f) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = session.authorize_action(&f.csrf, "annotate incidents") {
        return r;
    }
    let body = match valid_note(&f.body) {
        Ok(b) => b,
        Err(m) => return bad(&session, &m),
    };
    match state
        .store
        .incident_note_add(&agent_id, &incident_id, &session.user, crate::now(), &body)
        .await
    {
        Ok(()) => {
            log::info!(
                "console: note on incident {agent_id}/{incident_id} by {}",
                session.user
            );
            back_to_incident(&agent_id, &incident_id, "note")
        }
        Err(e) => store_failed(&session, &e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KillForm {
    csrf: String,
    scope: String,
    #[serde(default)]
    target: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Where to go back to: `device` returns to the device's page.
    #[serde(default)]
    back: Option<String>,
}

fn kill_back(back: Option<&str>, target: Option<&str>, done: &str) -> Response {
    match (back, target) {
        (Some("device"), Some(t)) => {
            Redirect::to(&format!("/devices/{}?done={done}", enc(t))).into_response()
        }
        _ => Redirect::to(&format!("/killswitches?done={done}")).into_response(),
    }
}

/// The kill-switch form, checked: operator, CSRF, a valid scope.
#[allow(clippy::result_large_err)]
fn kill_request(
    session: &NocSession,
    f: Result<Form<KillForm>, FormRejection>,
    what: &str,
) -> Result<(KillForm, crate::store::KillScope), Response> {
    let f = form(session, f)?;
    session.authorize_action(&f.csrf, what)?;
    let scope = kill_scope(&f.scope, f.target.as_deref()).map_err(|m| bad(session, &m))?;
    Ok((f, scope))
}

pub async fn set_killswitch(
    session: NocSession,
    State(state): State<AppState>,
    f: Result<Form<KillForm>, FormRejection>,
) -> Response {
    let (f, scope) = match kill_request(&session, f, "set kill switches") {
        Ok(x) => x,
        Err(r) => return r,
    };
    let reason = f.reason.as_deref().map(str::trim).unwrap_or("");
    if reason.is_empty() || reason.len() > MAX_REASON_BYTES || reason.chars().any(char::is_control)
    {
        return bad(
            &session,
            &format!(
                "Give a reason (1..={MAX_REASON_BYTES} bytes, one line): the agents log it and the NOC sees it."
            ),
        );
    }
    if let Err(e) = state
        .store
        .set_killswitch(&scope, reason, crate::now())
        .await
    {
        return store_failed(&session, &e);
    }
    log::warn!(
        "console: kill switch {scope:?} set by {}: {reason}",
        session.user
    );
    kill_back(f.back.as_deref(), f.target.as_deref(), "kill_set")
}

pub async fn clear_killswitch(
    session: NocSession,
    State(state): State<AppState>,
    f: Result<Form<KillForm>, FormRejection>,
) -> Response {
    let (f, scope) = match kill_request(&session, f, "clear kill switches") {
        Ok(x) => x,
        Err(r) => return r,
    };
    match state.store.clear_killswitch(&scope).await {
        Ok(true) => {
            log::warn!("console: kill switch {scope:?} cleared by {}", session.user);
            kill_back(f.back.as_deref(), f.target.as_deref(), "kill_cleared")
        }
        Ok(false) => error_page(
            Some(&session),
            StatusCode::NOT_FOUND,
            "Not set",
            "No such kill switch is set.",
        ),
        Err(e) => store_failed(&session, &e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentForm {
    csrf: String,
    id: String,
    /// `playbook` or `check`.
    scope: String,
    #[serde(default)]
    playbook: Option<String>,
    #[serde(default)]
    check: Option<String>,
    #[serde(default)]
    cause: Option<String>,
    control_percent: String,
}

pub async fn start_experiment(
    session: NocSession,
    State(state): State<AppState>,
    f: Result<Form<ExperimentForm>, FormRejection>,
) -> Response {
    use crate::domain::{ExperimentError, new_experiment, permille_from_percent};
    use netmedic_proto::ExperimentScope;
    let f = match form(&session, f) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = session.authorize_action(&f.csrf, "start experiments") {
        return r;
    }
    let given = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let scope = match f.scope.as_str() {
        "playbook" => match given(&f.playbook) {
            Some(name) => ExperimentScope::Playbook { name },
            None => return bad(&session, "Name the playbook the experiment holds out."),
        },
        "check" => match given(&f.check).as_deref().and_then(CheckId::parse) {
            Some(check) => ExperimentScope::Check {
                check,
                cause: given(&f.cause),
            },
            None => return bad(&session, "Choose the check the experiment holds out."),
        },
        _ => return bad(&session, "The scope is a playbook or a check."),
    };
    let Some(permille) = permille_from_percent(&f.control_percent) else {
        return bad(
            &session,
            "The control share is a percentage in 0.1 steps, e.g. 5 or 2.5.",
        );
    };
    let e = match new_experiment(f.id.trim(), scope, permille, None) {
        Ok(e) => e,
        Err(ExperimentError::Invalid(v)) => {
            return bad(&session, &format!("Invalid experiment: {v}."));
        }
        Err(ExperimentError::Random(r)) => {
            log::error!("console: {r}");
            return error_page(
                Some(&session),
                StatusCode::INTERNAL_SERVER_ERROR,
                "No random salt",
                "Nothing was changed: the collector could not draw a random salt.",
            );
        }
    };
    match state
        .store
        .start_experiment(&e, &session.user, crate::now())
        .await
    {
        Ok(()) => {
            log::warn!(
                "console: experiment {} started by {}: {:?}, control {}‰",
                e.id,
                session.user,
                e.scope,
                e.control_permille
            );
            Redirect::to("/experiments?done=experiment_started").into_response()
        }
        Err(StoreError::Conflict(_)) => error_page(
            Some(&session),
            StatusCode::CONFLICT,
            "Id taken",
            "An experiment with this id exists (ids are never reused: incidents record them).",
        ),
        Err(e) => store_failed(&session, &e),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StopExperimentForm {
    csrf: String,
    id: String,
}

pub async fn stop_experiment(
    session: NocSession,
    State(state): State<AppState>,
    f: Result<Form<StopExperimentForm>, FormRejection>,
) -> Response {
    let f = match form(&session, f) {
        Ok(f) => f,
        Err(r) => return r,
    };
    if let Err(r) = session.authorize_action(&f.csrf, "stop experiments") {
        return r;
    }
    match state.store.end_experiment(&f.id, crate::now()).await {
        Ok(true) => {
            log::warn!("console: experiment {} stopped by {}", f.id, session.user);
            Redirect::to("/experiments?done=experiment_stopped").into_response()
        }
        Ok(false) => error_page(
            Some(&session),
            StatusCode::NOT_FOUND,
            "Not active",
            "No active experiment has this id.",
        ),
        Err(e) => store_failed(&session, &e),
    }
}

/// The diagnostics form: `csrf` and one `check_<id>=on` per ticked check.
pub async fn diagnostics(
    session: NocSession,
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    f: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let f = match form(&session, f) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let csrf = f.get("csrf").map_or("", String::as_str);
    if let Err(r) = session.authorize_action(csrf, "queue diagnostics") {
        return r;
    }
    let mut checks = Vec::new();
    for key in f.keys().filter(|k| k.as_str() != "csrf") {
        match key.strip_prefix("check_").and_then(CheckId::parse) {
            Some(c) => checks.push(c),
            None => {
                return bad(
                    &session,
                    &format!("Unknown form field {:?}.", super::visible(key)),
                );
            }
        }
    }
    match queue_diagnostics(&*state.store, &agent_id, &checks).await {
        Ok(id) => {
            log::info!(
                "console: diagnostics {id} for {agent_id} queued by {}",
                session.user
            );
            Redirect::to(&format!("/devices/{}?done=diag", enc(&agent_id))).into_response()
        }
        Err(DiagError::Invalid(m)) => bad(&session, &format!("{m}: tick at least one check.")),
        Err(DiagError::Store(e)) => store_failed(&session, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_are_validated() {
        assert_eq!(valid_note("  hi\r\nthere ").as_deref(), Ok("hi\nthere"));
        assert!(valid_note("   ").is_err());
        assert!(valid_note("a\u{7}b").is_err());
        assert!(valid_note(&"x".repeat(MAX_NOTE_CHARS + 1)).is_err());
    }
}
