//! The incident list: filters, a time window, severity or time order and cursor pages. Its row
//! view ([`IncidentRowView`]) is shared with the incident, device and customer pages.

use super::common::{Opt, PAGE_ROWS, options, store_error};
use crate::AppState;
use crate::domain::{IncidentQuery, parse_query};
use crate::store::{IncidentFilter, ListOrder};
use crate::web::session::NocSession;
use crate::web::{Chrome, duration_ms, enc, render, visible, when};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netmedic_proto::{Category, CheckId, IncidentStatus, IncidentView, Timestamp};
use serde::Deserialize;
use std::time::Instant;

/// The incident list's query: the API's filters plus a relative time window.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    category: Option<String>,
    check: Option<String>,
    agent_id: Option<String>,
    customer_id: Option<String>,
    region: Option<String>,
    access_node: Option<String>,
    cpe_model: Option<String>,
    firmware: Option<String>,
    /// `1h`, `24h`, `7d`, `30d` or empty (all time).
    window: Option<String>,
    order: Option<String>,
    cursor: Option<String>,
}

impl ListQuery {
    /// The query string of this query with `cursor`/`order` replaced.
    fn href(&self, cursor: Option<&str>, order: Option<&str>) -> String {
        let mut parts = Vec::new();
        let mut add = |k: &str, v: Option<&str>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                parts.push(format!("{k}={}", enc(v)));
            }
        };
        add("status", self.status.as_deref());
        add("category", self.category.as_deref());
        add("check", self.check.as_deref());
        add("agent_id", self.agent_id.as_deref());
        add("customer_id", self.customer_id.as_deref());
        add("region", self.region.as_deref());
        add("access_node", self.access_node.as_deref());
        add("cpe_model", self.cpe_model.as_deref());
        add("firmware", self.firmware.as_deref());
        add("window", self.window.as_deref());
        add("order", order);
        add("cursor", cursor);
        if parts.is_empty() {
            "/incidents".into()
        } else {
            format!("/incidents?{}", parts.join("&"))
        }
    }
}

/// One incident as a list row.
#[derive(Debug)]
pub(super) struct IncidentRowView {
    pub(super) href: String,
    pub(super) agent: String,
    pub(super) agent_href: String,
    pub(super) started: String,
    pub(super) healed: &'static str,
    pub(super) category: &'static str,
    pub(super) check: &'static str,
    pub(super) severity: &'static str,
    pub(super) cause: String,
    pub(super) summary: String,
    pub(super) duration: String,
    pub(super) actions: usize,
    pub(super) acked: String,
}

pub(super) fn incident_href(agent: &str, incident: &str) -> String {
    format!("/incidents/{}/{}", enc(agent), enc(incident))
}

pub(super) fn healed_text(v: &IncidentView) -> &'static str {
    match (v.status, v.auto_healed) {
        (IncidentStatus::Open, _) => "open",
        (_, Some(true)) => "auto-healed",
        _ => "resolved",
    }
}

pub(super) fn row_view(v: &IncidentView, acked: Option<String>) -> IncidentRowView {
    let end = v.resolved_at.unwrap_or_else(crate::now);
    IncidentRowView {
        href: incident_href(&v.agent_id, &v.incident_id),
        agent: visible(&v.agent_id),
        agent_href: format!("/devices/{}", enc(&v.agent_id)),
        started: when(v.started_at),
        healed: healed_text(v),
        category: v.category.as_str(),
        check: v.check.as_str(),
        severity: v.severity.as_str(),
        cause: visible(&v.cause),
        summary: visible(&v.summary),
        duration: duration_ms(end.unix_millis() - v.started_at.unix_millis()),
        actions: v.actions.len(),
        acked: acked.unwrap_or_default(),
    }
}

#[derive(Template)]
#[template(path = "incidents.html")]
struct IncidentsPage {
    chrome: Chrome,
    q: FormValues,
    statuses: Vec<Opt>,
    categories: Vec<Opt>,
    checks: Vec<Opt>,
    windows: Vec<Opt>,
    orders: Vec<Opt>,
    rows: Vec<IncidentRowView>,
    errors: Vec<String>,
    next_href: Option<String>,
    first_href: Option<String>,
    sort_href: String,
    sort_label: &'static str,
    severity_href: String,
    severity_label: &'static str,
    elapsed: String,
}

/// Text inputs of the filter form, as typed.
#[derive(Debug, Default)]
struct FormValues {
    agent_id: String,
    customer_id: String,
    region: String,
    access_node: String,
    cpe_model: String,
    firmware: String,
}

pub async fn incidents(
    session: NocSession,
    State(state): State<AppState>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let started = Instant::now();
    let mut errors = Vec::new();
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            errors.push(e.body_text());
            ListQuery::default()
        }
    };
    let now = crate::now();
    let from = match q.window.as_deref() {
        None | Some("") => None,
        Some(w) => {
            let hours = match w {
                "1h" => Some(1),
                "24h" => Some(24),
                "7d" => Some(7 * 24),
                "30d" => Some(30 * 24),
                _ => None,
            };
            match hours {
                Some(h) => Timestamp::from_unix_millis(now.unix_millis() - h * 3_600_000)
                    .map(|t| t.to_string()),
                None => {
                    errors.push(format!("window: {w:?} is not one of 1h, 24h, 7d, 30d"));
                    None
                }
            }
        }
    };
    let api_query = IncidentQuery {
        status: q.status.clone(),
        category: q.category.clone(),
        check: q.check.clone(),
        agent_id: q.agent_id.clone(),
        customer_id: q.customer_id.clone(),
        region: q.region.clone(),
        access_node: q.access_node.clone(),
        from,
        to: None,
        cpe_model: q.cpe_model.clone(),
        firmware: q.firmware.clone(),
        order: q.order.clone(),
        limit: Some(PAGE_ROWS.to_string()),
        cursor: q.cursor.clone(),
    };
    let (filter, cursor) = match parse_query(api_query) {
        Ok((f, _, c)) => (f, c),
        Err(e) => {
            errors.extend(
                e.violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.problem)),
            );
            (IncidentFilter::default(), None)
        }
    };
    let mut rows = Vec::new();
    let mut next_href = None;
    if errors.is_empty() {
        let page = match state
            .store
            .list_incidents(&filter, PAGE_ROWS, cursor.as_ref())
            .await
        {
            Ok(p) => p,
            Err(e) => return store_error(&session, &e),
        };
        let keys: Vec<(String, String)> = page
            .incidents
            .iter()
            .map(|v| (v.agent_id.clone(), v.incident_id.clone()))
            .collect();
        let acks = match state.store.incident_acks(&keys).await {
            Ok(a) => a,
            Err(e) => return store_error(&session, &e),
        };
        rows = page
            .incidents
            .iter()
            .map(|v| {
                let ack = acks
                    .get(&(v.agent_id.clone(), v.incident_id.clone()))
                    .map(|a| visible(&a.acked_by));
                row_view(v, ack)
            })
            .collect();
        next_href = page
            .next_cursor
            .as_deref()
            .map(|c| q.href(Some(c), q.order.as_deref()));
    }
    // An unknown order was reported above; the page falls back to the default.
    let order = q
        .order
        .as_deref()
        .and_then(ListOrder::parse)
        .unwrap_or_default();
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let cats: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    let checks: Vec<&str> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
    let s = |v: &Option<String>| visible(v.as_deref().unwrap_or(""));
    let page = IncidentsPage {
        chrome: Chrome::new("Incidents", "incidents", Some(&session)),
        q: FormValues {
            agent_id: s(&q.agent_id),
            customer_id: s(&q.customer_id),
            region: s(&q.region),
            access_node: s(&q.access_node),
            cpe_model: s(&q.cpe_model),
            firmware: s(&q.firmware),
        },
        statuses: options(&["open", "resolved"], q.status.as_deref(), "any status"),
        categories: options(&cats, q.category.as_deref(), "any category"),
        checks: options(&checks, q.check.as_deref(), "any check"),
        windows: options(&["1h", "24h", "7d", "30d"], q.window.as_deref(), "all time"),
        orders: ListOrder::ALL
            .iter()
            .map(|o| Opt {
                value: o.as_str().to_owned(),
                label: match o {
                    ListOrder::Newest => "newest first",
                    ListOrder::Oldest => "oldest first",
                    ListOrder::Severity => "most severe first",
                }
                .to_owned(),
                selected: *o == order,
            })
            .collect(),
        rows,
        errors,
        next_href,
        first_href: q
            .cursor
            .as_deref()
            .filter(|c| !c.is_empty())
            .map(|_| q.href(None, q.order.as_deref())),
        sort_href: q.href(
            None,
            Some(if order == ListOrder::Newest {
                "oldest"
            } else {
                "newest"
            }),
        ),
        sort_label: match order {
            ListOrder::Newest => "Started ↓",
            ListOrder::Oldest => "Started ↑",
            ListOrder::Severity => "Started",
        },
        severity_href: q.href(None, Some(ListOrder::Severity.as_str())),
        severity_label: if order == ListOrder::Severity {
            "Severity ↓"
        } else {
            "Severity"
        },
        elapsed: format!("{:.1} ms", started.elapsed().as_secs_f64() * 1000.0),
    };
    (status, render(&page)).into_response()
}
