//! Network events: mass outages found by correlation (incidents of several devices behind one
//! access node), with their member incidents.

use super::common::store_error;
use super::incidents::incident_href;
use crate::AppState;
use crate::store::NetworkEventFilter;
use crate::web::session::NocSession;
use crate::web::{Chrome, enc, render, visible, when, when_opt};
use askama::Template;
use axum::extract::State;
use axum::response::Response;

#[derive(Debug)]
struct EventView {
    id: String,
    access_node: String,
    href: String,
    started: String,
    resolved: String,
    active: bool,
    devices: u64,
    incidents: u64,
    members: Vec<(String, String)>,
}

#[derive(Template)]
#[template(path = "network_events.html")]
struct EventsPage {
    chrome: Chrome,
    events: Vec<EventView>,
}

pub async fn network_events(session: NocSession, State(state): State<AppState>) -> Response {
    let filter = NetworkEventFilter {
        active_only: false,
        from_ms: None,
        to_ms: None,
        limit: 50,
    };
    let events = match state.store.network_events(&filter, true).await {
        Ok(e) => e,
        Err(e) => return store_error(&session, &e),
    };
    let page = EventsPage {
        chrome: Chrome::new("Network events", "network-events", Some(&session)),
        events: events
            .iter()
            .map(|e| EventView {
                id: visible(&e.event_id),
                access_node: visible(&e.access_node),
                href: format!("/incidents?access_node={}", enc(&e.access_node)),
                started: when(e.started_at),
                resolved: when_opt(e.resolved_at),
                active: e.resolved_at.is_none(),
                devices: e.devices,
                incidents: e.incidents,
                members: e
                    .members
                    .iter()
                    .take(200)
                    .map(|(a, i)| (visible(a), incident_href(a, i)))
                    .collect(),
            })
            .collect(),
    };
    render(&page)
}
