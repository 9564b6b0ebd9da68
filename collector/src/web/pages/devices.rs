//! The device list: filtered by state and region, cursor pages, a jump to one device. Its row
//! view ([`DeviceRowView`]) is shared with the device page.

use super::common::{Opt, PAGE_ROWS, opt_text, options, store_error};
use crate::AppState;
use crate::fleet::{DeviceView, offline_before_ms};
use crate::store::{DeviceFilter, DeviceState};
use crate::web::session::{NocSession, error_page};
use crate::web::{Chrome, enc, render, visible, when_opt};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevicesQuery {
    state: Option<String>,
    region: Option<String>,
    after: Option<String>,
    /// Jump straight to one device.
    agent_id: Option<String>,
}

#[derive(Debug)]
pub(super) struct DeviceRowView {
    pub(super) href: String,
    pub(super) agent: String,
    pub(super) state: String,
    pub(super) region: String,
    pub(super) last_seen: String,
    pub(super) agent_version: String,
    pub(super) firmware: String,
    pub(super) customer: String,
}

#[derive(Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    chrome: Chrome,
    states: Vec<Opt>,
    region: String,
    rows: Vec<DeviceRowView>,
    next_href: Option<String>,
    error: Option<String>,
}

pub(super) fn device_row(d: &DeviceView) -> DeviceRowView {
    DeviceRowView {
        href: format!("/devices/{}", enc(&d.agent_id)),
        agent: visible(&d.agent_id),
        state: d.state.clone(),
        region: opt_text(&d.region),
        last_seen: when_opt(d.last_seen_at),
        agent_version: opt_text(&d.agent_version),
        firmware: opt_text(&d.firmware_version),
        customer: opt_text(&d.customer_id),
    }
}

pub async fn devices(
    session: NocSession,
    State(state): State<AppState>,
    query: Result<Query<DevicesQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_page(
                Some(&session),
                StatusCode::BAD_REQUEST,
                "Bad query",
                &e.body_text(),
            );
        }
    };
    if let Some(id) = q
        .agent_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return axum::response::Redirect::to(&format!("/devices/{}", enc(id))).into_response();
    }
    let mut error = None;
    let dstate = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => DeviceState::parse(s).or_else(|| {
            error = Some(format!(
                "state: {s:?} is not one of online, offline, never_seen, revoked"
            ));
            None
        }),
    };
    let now = crate::now();
    let offline = offline_before_ms(now, state.heartbeat_interval_secs);
    let filter = DeviceFilter {
        state: dstate,
        region: q.region.clone().filter(|r| !r.is_empty()),
        after: q.after.clone().filter(|r| !r.is_empty()),
        limit: PAGE_ROWS,
        offline_before_ms: offline,
    };
    let records = if error.is_none() {
        match state.store.list_devices(&filter).await {
            Ok(r) => r,
            Err(e) => return store_error(&session, &e),
        }
    } else {
        Vec::new()
    };
    let views: Vec<DeviceView> = records
        .into_iter()
        .map(|d| DeviceView::from_record(d, offline, false))
        .collect();
    let next_href = (views.len() == PAGE_ROWS as usize)
        .then(|| views.last())
        .flatten()
        .map(|d| {
            let mut h = format!("/devices?after={}", enc(&d.agent_id));
            if let Some(s) = q.state.as_deref().filter(|s| !s.is_empty()) {
                h.push_str(&format!("&state={}", enc(s)));
            }
            if let Some(r) = q.region.as_deref().filter(|s| !s.is_empty()) {
                h.push_str(&format!("&region={}", enc(r)));
            }
            h
        });
    let page = DevicesPage {
        chrome: Chrome::new("Devices", "devices", Some(&session)),
        states: options(
            &["online", "offline", "never_seen", "revoked"],
            q.state.as_deref(),
            "any state",
        ),
        region: visible(q.region.as_deref().unwrap_or("")),
        rows: views.iter().map(device_row).collect(),
        next_href,
        error: error.clone(),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, render(&page)).into_response()
}
