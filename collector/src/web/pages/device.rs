//! One device: its state, current checks, subscriber, kill switch, diagnostics requests and
//! results, and recent incidents.

use super::common::{DoneQuery, not_found, opt_text, store_error};
use super::devices::{DeviceRowView, device_row};
use super::findings::headline;
use super::incident::{KeyValue, SubscriberView, TimelineRow, subscriber_view};
use super::incidents::{IncidentRowView, row_view};
use crate::AppState;
use crate::fleet::{DeviceView, offline_before_ms};
use crate::store::IncidentFilter;
use crate::web::session::NocSession;
use crate::web::{Chrome, enc, render, visible, when, when_opt};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use netmedic_proto::CheckId;

#[derive(Debug)]
struct CheckOpt {
    value: &'static str,
}

#[derive(Debug)]
struct DiagView {
    id: String,
    checks: String,
    requested: String,
    delivered: String,
    completed: String,
    results: Vec<TimelineRow>,
}

/// A recent incident and its most telling finding (empty for most checks).
#[derive(Debug)]
struct DeviceIncident {
    row: IncidentRowView,
    finding: String,
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage {
    chrome: Chrome,
    device: DeviceRowView,
    enrolled: String,
    access_node: String,
    checks_now: Vec<KeyValue>,
    subscriber: Option<SubscriberView>,
    kill: Option<String>,
    kill_target: String,
    diag_action: String,
    check_opts: Vec<CheckOpt>,
    diagnostics: Vec<DiagView>,
    incidents: Vec<DeviceIncident>,
    incidents_href: String,
}

pub async fn device(
    session: NocSession,
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let record = match state.store.get_device(&agent_id).await {
        Ok(Some(d)) => d,
        Ok(None) => return not_found(&session, "No such device."),
        Err(e) => return store_error(&session, &e),
    };
    let now = crate::now();
    let offline = offline_before_ms(now, state.heartbeat_interval_secs);
    let view = DeviceView::from_record(record, offline, true);
    let subscriber = match state.store.subscriber_of_device(&agent_id).await {
        Ok(s) => s,
        Err(e) => return store_error(&session, &e),
    };
    let switches = match state.store.list_killswitches().await {
        Ok(s) => s,
        Err(e) => return store_error(&session, &e),
    };
    let region = view.region.clone();
    let kill =
        crate::store::kill_advisory(&switches, &agent_id, region.as_deref()).and_then(|_| {
            switches
                .iter()
                .find(|k| {
                    (k.scope == "device" && k.target == agent_id)
                        || (k.scope == "region" && Some(k.target.as_str()) == region.as_deref())
                        || k.scope == "fleet"
                })
                .map(|k| {
                    format!(
                        "{} {} since {}: {}",
                        k.scope,
                        visible(&k.target),
                        when(k.set_at),
                        visible(&k.reason)
                    )
                })
        });
    let filter = IncidentFilter {
        agent_id: Some(agent_id.clone()),
        ..IncidentFilter::default()
    };
    let recent = match state.store.list_incidents(&filter, 20, None).await {
        Ok(p) => p,
        Err(e) => return store_error(&session, &e),
    };
    let diagnostics = match state.store.list_diagnostics(&agent_id, 10).await {
        Ok(d) => d,
        Err(e) => return store_error(&session, &e),
    };
    let checks_now = view
        .last_heartbeat
        .as_ref()
        .map(|hb| {
            hb.checks
                .iter()
                .map(|(check, status)| KeyValue {
                    key: check.as_str().to_owned(),
                    value: status.as_str().to_owned(),
                })
                .collect()
        })
        .unwrap_or_default();
    let page = DevicePage {
        chrome: Chrome::new("Device", "devices", Some(&session)).with_done(q.done.as_deref()),
        device: device_row(&view),
        enrolled: when_opt(view.enrolled_at),
        access_node: opt_text(&view.access_node),
        checks_now,
        subscriber: subscriber.as_ref().map(subscriber_view),
        kill,
        kill_target: visible(&agent_id),
        diag_action: format!("/devices/{}/diagnostics", enc(&agent_id)),
        check_opts: CheckId::ALL
            .iter()
            .map(|c| CheckOpt { value: c.as_str() })
            .collect(),
        diagnostics: diagnostics.iter().map(diag_view).collect(),
        incidents: recent
            .incidents
            .iter()
            .map(|v| DeviceIncident {
                row: row_view(v, None),
                finding: headline(v.check, &v.evidence),
            })
            .collect(),
        incidents_href: format!("/incidents?agent_id={}", enc(&agent_id)),
    };
    render(&page)
}

fn diag_view(d: &crate::store::DiagnosticsRecord) -> DiagView {
    DiagView {
        id: visible(&d.request_id),
        checks: d
            .checks
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        requested: when(d.requested_at),
        delivered: when_opt(d.delivered_at),
        completed: when_opt(d.completed_at),
        results: d
            .result
            .as_ref()
            .map(|r| {
                r.results
                    .iter()
                    .map(|c| TimelineRow {
                        at: c.check.as_str().to_owned(),
                        what: visible(&c.cause),
                        outcome: c.status.as_str(),
                        class: match c.status {
                            netmedic_proto::CheckStatus::Ok => "ok",
                            netmedic_proto::CheckStatus::Failed => "bad",
                            _ => "warn",
                        },
                        detail: {
                            let mut s = visible(&c.summary);
                            if !c.value.is_empty() {
                                s.push_str(&format!(" · value {}", visible(&c.value)));
                            }
                            if !c.hint.is_empty() {
                                s.push_str(&format!(" · hint: {}", visible(&c.hint)));
                            }
                            for (k, v) in &c.evidence {
                                s.push_str(&format!(" · {}={}", visible(k), visible(v)));
                            }
                            s
                        },
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}
