//! One incident: evidence, timeline, acknowledgement and notes, and the subscriber it affected
//! with their contacts and surveys. Its timeline, key-value and subscriber views are shared with
//! the device and customer pages.

use super::common::{DoneQuery, not_found, opt_text, store_error};
use super::findings::{Finding, findings};
use super::incidents::{IncidentRowView, incident_href, row_view};
use crate::AppState;
use crate::analytics::ReportParams;
use crate::web::session::NocSession;
use crate::web::{Chrome, enc, render, visible, visible_multiline, when, when_opt};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use netmedic_proto::ActionOutcome;

#[derive(Debug)]
pub(super) struct TimelineRow {
    pub(super) at: String,
    pub(super) what: String,
    pub(super) outcome: &'static str,
    pub(super) class: &'static str,
    pub(super) detail: String,
}

#[derive(Debug)]
pub(super) struct KeyValue {
    pub(super) key: String,
    pub(super) value: String,
}

#[derive(Debug)]
struct NoteView {
    author: String,
    at: String,
    body: String,
}

#[derive(Debug)]
struct ContactView {
    id: String,
    at: String,
    channel: String,
    reason: String,
    resolved: String,
    matches: bool,
}

#[derive(Debug)]
pub(super) struct SurveyView {
    pub(super) id: String,
    pub(super) at: String,
    pub(super) nps: String,
    pub(super) csat: String,
    pub(super) channel: String,
    pub(super) verbatim: String,
}

#[derive(Debug)]
pub(super) struct SubscriberView {
    pub(super) customer: String,
    pub(super) customer_href: String,
    pub(super) region: String,
    pub(super) access_node: String,
    pub(super) plan: String,
    pub(super) cpe_model: String,
    pub(super) firmware: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    chrome: Chrome,
    row: IncidentRowView,
    incident_id: String,
    resolved: String,
    evidence: Vec<KeyValue>,
    findings: Vec<Finding>,
    security_risk: Option<String>,
    timeline: Vec<TimelineRow>,
    acked: Option<String>,
    notes: Vec<NoteView>,
    ack_action: String,
    note_action: String,
    subscriber: Option<SubscriberView>,
    contacts: Vec<ContactView>,
    surveys: Vec<SurveyView>,
    contact_window: String,
    survey_window: String,
}

pub(super) fn subscriber_view(s: &crate::store::noc_types::SubscriberRecord) -> SubscriberView {
    SubscriberView {
        customer: visible(&s.customer_id),
        customer_href: format!("/customers/{}", enc(&s.customer_id)),
        region: opt_text(&s.region),
        access_node: opt_text(&s.access_node),
        plan: opt_text(&s.plan),
        cpe_model: opt_text(&s.cpe_model),
        firmware: opt_text(&s.firmware),
    }
}

fn outcome_class(o: ActionOutcome) -> &'static str {
    match o {
        ActionOutcome::Verified => "ok",
        ActionOutcome::Failed | ActionOutcome::NotEffective => "bad",
        ActionOutcome::RolledBack | ActionOutcome::Skipped => "warn",
        _ => "muted",
    }
}

pub async fn incident(
    session: NocSession,
    State(state): State<AppState>,
    Path((agent_id, incident_id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let detail = match state.store.get_incident(&agent_id, &incident_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(&session, "No such incident."),
        Err(e) => return store_error(&session, &e),
    };
    let (ack, notes) = match state.store.incident_notes(&agent_id, &incident_id).await {
        Ok(x) => x,
        Err(e) => return store_error(&session, &e),
    };
    let subscriber = match state.store.subscriber_of_device(&agent_id).await {
        Ok(s) => s,
        Err(e) => return store_error(&session, &e),
    };
    let v = &detail.incident;
    let start = v.started_at.unix_millis();
    let contact_ms = i64::from(state.experience.contact_window_hours) * 3_600_000;
    let survey_ms = i64::from(state.experience.survey_window_days) * 86_400_000;
    let (contacts, surveys) = match &subscriber {
        Some(s) => {
            let c = state
                .store
                .customer_records(&s.customer_id, start, start + contact_ms, 50)
                .await;
            let sv = state
                .store
                .customer_records(&s.customer_id, start, start + survey_ms, 50)
                .await;
            match (c, sv) {
                (Ok((c, _)), Ok((_, s))) => (c, s),
                (Err(e), _) | (_, Err(e)) => return store_error(&session, &e),
            }
        }
        None => (Vec::new(), Vec::new()),
    };
    let mut timeline: Vec<(i64, u8, TimelineRow)> = Vec::new();
    for e in &detail.events {
        timeline.push((
            e.at.unix_millis(),
            0,
            TimelineRow {
                at: when(e.at),
                what: format!("incident {}", e.kind.as_str()),
                outcome: "",
                class: "event",
                detail: format!("event #{} received {}", e.seq, when(e.received_at)),
            },
        ));
    }
    for a in &v.actions {
        timeline.push((
            a.at.unix_millis(),
            1,
            TimelineRow {
                at: when(a.at),
                what: a.action.as_str().to_owned(),
                outcome: a.outcome.as_str(),
                class: outcome_class(a.outcome),
                detail: visible(&a.detail),
            },
        ));
    }
    // Stable: events and actions at the same instant keep the agent's order.
    timeline.sort_by_key(|(at, kind, _)| (*at, *kind));
    let params = ReportParams::from_config(&state.experience, None, None);
    let found = findings(v.check, &v.evidence);
    let page = IncidentPage {
        chrome: Chrome::new("Incident", "incidents", Some(&session)).with_done(q.done.as_deref()),
        row: row_view(v, None),
        incident_id: visible(&v.incident_id),
        resolved: when_opt(v.resolved_at),
        evidence: v
            .evidence
            .iter()
            .map(|(k, val)| KeyValue {
                key: visible(k),
                value: visible(val),
            })
            .collect(),
        findings: found.rows,
        security_risk: found.security_risk,
        timeline: timeline.into_iter().map(|(_, _, r)| r).collect(),
        acked: ack.map(|a| format!("{} at {}", visible(&a.acked_by), when(a.acked_at))),
        notes: notes
            .iter()
            .map(|n| NoteView {
                author: visible(&n.author),
                at: when(n.written_at),
                body: visible_multiline(&n.body),
            })
            .collect(),
        ack_action: format!("{}/ack", incident_href(&agent_id, &incident_id)),
        note_action: format!("{}/notes", incident_href(&agent_id, &incident_id)),
        subscriber: subscriber.as_ref().map(subscriber_view),
        contacts: contacts
            .iter()
            .map(|c| ContactView {
                id: visible(&c.contact_id),
                at: when(c.created_at),
                channel: opt_text(&c.channel),
                reason: opt_text(&c.reason),
                resolved: when_opt(c.resolved_at),
                matches: c
                    .reason
                    .as_deref()
                    .is_some_and(|r| params.reason_matches(r, v.category)),
            })
            .collect(),
        surveys: surveys.iter().map(survey_view).collect(),
        contact_window: format!("{} h", state.experience.contact_window_hours),
        survey_window: format!("{} days", state.experience.survey_window_days),
    };
    render(&page)
}

pub(super) fn survey_view(s: &crate::store::noc_types::SurveyRecord) -> SurveyView {
    SurveyView {
        id: visible(&s.survey_id),
        at: when(s.answered_at),
        nps: s.nps.map_or_else(|| "—".into(), |n| n.to_string()),
        csat: s.csat.map_or_else(|| "—".into(), |n| n.to_string()),
        channel: opt_text(&s.channel),
        verbatim: s.verbatim.as_deref().map(visible).unwrap_or_default(),
    }
}
