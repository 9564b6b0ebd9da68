//! One customer: their subscriptions and a timeline of incidents, contacts and surveys.

use super::common::{not_found, opt_text, store_error};
use super::incident::{SubscriberView, subscriber_view, survey_view};
use super::incidents::{healed_text, incident_href};
use crate::AppState;
use crate::store::IncidentFilter;
use crate::web::session::NocSession;
use crate::web::{Chrome, enc, render, visible, when, when_opt};
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use netmedic_proto::IncidentStatus;

#[derive(Debug)]
struct CustomerEvent {
    at: String,
    kind: &'static str,
    class: &'static str,
    title: String,
    detail: String,
    href: String,
}

#[derive(Template)]
#[template(path = "customer.html")]
struct CustomerPage {
    chrome: Chrome,
    customer: String,
    subscriptions: Vec<(String, String, SubscriberView)>,
    events: Vec<CustomerEvent>,
    incidents: usize,
    contacts: usize,
    surveys: usize,
}

pub async fn customer(
    session: NocSession,
    State(state): State<AppState>,
    Path(customer_id): Path<String>,
) -> Response {
    let subs = match state.store.subscribers_of_customer(&customer_id).await {
        Ok(s) => s,
        Err(e) => return store_error(&session, &e),
    };
    let filter = IncidentFilter {
        customer_id: Some(customer_id.clone()),
        ..IncidentFilter::default()
    };
    let incidents = match state.store.list_incidents(&filter, 100, None).await {
        Ok(p) => p.incidents,
        Err(e) => return store_error(&session, &e),
    };
    let (contacts, surveys) = match state
        .store
        .customer_records(&customer_id, i64::MIN / 2, i64::MAX / 2, 100)
        .await
    {
        Ok(x) => x,
        Err(e) => return store_error(&session, &e),
    };
    if subs.is_empty() && incidents.is_empty() && contacts.is_empty() && surveys.is_empty() {
        return not_found(
            &session,
            "No subscriber, incident, contact or survey has this customer id.",
        );
    }
    let mut events: Vec<(i64, CustomerEvent)> = Vec::new();
    for v in &incidents {
        events.push((
            v.started_at.unix_millis(),
            CustomerEvent {
                at: when(v.started_at),
                kind: "incident",
                class: if v.auto_healed == Some(true) {
                    "ok"
                } else if v.status == IncidentStatus::Open {
                    "bad"
                } else {
                    "warn"
                },
                title: format!(
                    "{} · {} ({})",
                    v.category.as_str(),
                    v.check.as_str(),
                    healed_text(v)
                ),
                detail: visible(&v.summary),
                href: incident_href(&v.agent_id, &v.incident_id),
            },
        ));
    }
    for c in &contacts {
        events.push((
            c.created_at.unix_millis(),
            CustomerEvent {
                at: when(c.created_at),
                kind: "contact",
                class: "warn",
                title: format!("{} contact", opt_text(&c.channel)),
                detail: format!(
                    "reason {} · resolved {}",
                    opt_text(&c.reason),
                    when_opt(c.resolved_at)
                ),
                href: String::new(),
            },
        ));
    }
    for s in &surveys {
        let v = survey_view(s);
        events.push((
            s.answered_at.unix_millis(),
            CustomerEvent {
                at: v.at,
                kind: "survey",
                class: match s.nps {
                    Some(0..=6) => "bad",
                    Some(9..=10) => "ok",
                    _ => "muted",
                },
                title: format!("survey: NPS {} · CSAT {}", v.nps, v.csat),
                detail: v.verbatim,
                href: String::new(),
            },
        ));
    }
    events.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    let page = CustomerPage {
        chrome: Chrome::new("Customer", "", Some(&session)),
        customer: visible(&customer_id),
        subscriptions: subs
            .iter()
            .map(|s| {
                (
                    visible(&s.agent_id),
                    format!("/devices/{}", enc(&s.agent_id)),
                    subscriber_view(s),
                )
            })
            .collect(),
        incidents: incidents.len(),
        contacts: contacts.len(),
        surveys: surveys.len(),
        events: events.into_iter().map(|(_, e)| e).collect(),
    };
    render(&page)
}
