//! The console's read-only pages: overview, incident list and detail, devices, a customer's
//! timeline, the experience report, network events and kill switches. Handlers turn store
//! records into small view structs of display strings (made [`visible`]); the templates escape
//! them.

use super::session::{NocSession, error_page};
use super::{
    Chrome, chart, duration_ms, enc, pct, render, visible, visible_multiline, when, when_opt,
};
use crate::AppState;
use crate::analytics::{Effect, NpsStat, Proportion, Report, ReportParams, Satisfaction};
use crate::domain::{IncidentQuery, parse_query};
use crate::fleet::{DeviceView, offline_before_ms};
use crate::store::noc_types::HEAL_BUCKET_SECS;
use crate::store::{
    DeviceFilter, DeviceState, IncidentFilter, ListOrder, NetworkEventFilter, StoreError,
};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use netmedic_proto::{ActionOutcome, Category, CheckId, IncidentStatus, IncidentView, Timestamp};
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the cached experience report of the overview and the experience page is reused.
const REPORT_MAX_AGE: Duration = Duration::from_secs(300);
/// The default window of the experience report (days back from now).
const REPORT_DAYS: i64 = 30;
/// Rows per page of the incident list.
const PAGE_ROWS: u32 = 50;

/// 503/500 page for a storage error.
fn store_error(session: &NocSession, e: &StoreError) -> Response {
    log::warn!("console: {}", crate::error_chain(e));
    match e {
        StoreError::InvalidCursor => error_page(
            Some(session),
            StatusCode::BAD_REQUEST,
            "Bad page link",
            "This page link is not one the collector issued.",
        ),
        StoreError::Corrupt(_) => error_page(
            Some(session),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Stored data unreadable",
            "Some stored data could not be read; see the collector log.",
        ),
        _ => error_page(
            Some(session),
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable",
            "The collector cannot reach its database right now. Try again shortly.",
        ),
    }
}

fn not_found(session: &NocSession, what: &str) -> Response {
    error_page(Some(session), StatusCode::NOT_FOUND, "Not found", what)
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    done: Option<String>,
}

// ---- overview -------------------------------------------------------------------------------

/// The default report, recomputed in the background when older than [`REPORT_MAX_AGE`]; `None`
/// until the first computation finished (the page says so instead of waiting).
fn cached_report(state: &AppState) -> Option<(u64, Arc<Report>)> {
    let cached = state
        .console
        .report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let stale = cached
        .as_ref()
        .is_none_or(|(at, _)| at.elapsed() > REPORT_MAX_AGE);
    if stale {
        let mut running = state
            .console
            .report_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*running {
            *running = true;
            let state = state.clone();
            tokio::spawn(async move {
                let now = crate::now();
                let from =
                    Timestamp::from_unix_millis(now.unix_millis() - REPORT_DAYS * 86_400_000);
                let params = ReportParams::from_config(&state.experience, from, None);
                match state.store.report(&params).await {
                    Ok(r) => {
                        *state
                            .console
                            .report
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some((Instant::now(), Arc::new(r)));
                    }
                    Err(e) => log::warn!("console report: {}", crate::error_chain(&e)),
                }
                *state
                    .console
                    .report_running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
            });
        }
    }
    cached.map(|(at, r)| (at.elapsed().as_secs(), r))
}

#[derive(Debug)]
struct Tile {
    label: &'static str,
    value: String,
    class: &'static str,
    href: String,
}

#[derive(Debug)]
struct CountRow {
    label: String,
    count: u64,
    href: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
struct OverviewPage {
    chrome: Chrome,
    device_tiles: Vec<Tile>,
    open_by_category: Vec<CountRow>,
    open_total: u64,
    started: u64,
    resolved: u64,
    auto_healed: u64,
    healed_share: String,
    open_network_events: u64,
    contacts_avoided: String,
    contacts_avoided_value: String,
    report_note: String,
    hourly_svg: String,
    heal_svg: String,
    since: String,
}

pub async fn overview(
    session: NocSession,
    State(state): State<AppState>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let now = crate::now();
    let offline = offline_before_ms(now, state.heartbeat_interval_secs);
    let since = now.unix_millis() - 24 * 3_600_000;
    let o = match state.store.overview(now, offline, since).await {
        Ok(o) => o,
        Err(e) => return store_error(&session, &e),
    };
    let tile = |label, value: u64, class, href: &str| Tile {
        label,
        value: value.to_string(),
        class,
        href: href.to_owned(),
    };
    let device_tiles = vec![
        tile("Online", o.devices_online, "ok", "/devices?state=online"),
        tile(
            "Degraded (open incident)",
            o.devices_degraded,
            "warn",
            "/incidents?status=open",
        ),
        tile(
            "Offline",
            o.devices_offline,
            "bad",
            "/devices?state=offline",
        ),
        tile(
            "Never seen",
            o.devices_never_seen,
            "muted",
            "/devices?state=never_seen",
        ),
        tile(
            "Revoked",
            o.devices_revoked,
            "muted",
            "/devices?state=revoked",
        ),
    ];
    let open_total = o.open_by_category.iter().map(|(_, n)| n).sum();
    let open_by_category = o
        .open_by_category
        .iter()
        .map(|(c, n)| CountRow {
            label: c.as_str().to_owned(),
            count: *n,
            href: format!("/incidents?status=open&category={}", c.as_str()),
        })
        .collect();
    let (contacts_avoided, contacts_avoided_value, report_note) = match cached_report(&state) {
        Some((age, r)) => (
            effect_text(r.contacts.avoided.as_ref(), ""),
            effect_text(
                r.contacts.avoided_value.as_ref(),
                &format!(" {}", r.contacts.currency),
            ),
            format!("last {REPORT_DAYS} days, computed {age} s ago"),
        ),
        None => (
            "…".into(),
            "…".into(),
            "the experience report is being computed; reload in a moment".into(),
        ),
    };
    let hourly_svg = chart::stacked_hours(&o.per_hour, 24);
    let mut labels: Vec<String> = HEAL_BUCKET_SECS
        .iter()
        .map(|s| format!("< {}", duration_ms(s * 1000)))
        .collect();
    labels.push(format!(
        "≥ {}",
        duration_ms(HEAL_BUCKET_SECS.last().copied().unwrap_or(0) * 1000)
    ));
    let heal_svg = chart::bars(&labels, &o.heal_buckets);
    let page = OverviewPage {
        chrome: Chrome::new("Overview", "overview", Some(&session)).with_done(q.done.as_deref()),
        device_tiles,
        open_by_category,
        open_total,
        started: o.started,
        resolved: o.resolved,
        auto_healed: o.auto_healed,
        healed_share: pct(o.auto_healed, o.resolved),
        open_network_events: o.open_network_events,
        contacts_avoided,
        contacts_avoided_value,
        report_note,
        hourly_svg,
        heal_svg,
        since: when(o.since),
    };
    render(&page)
}

fn effect_text(e: Option<&Effect>, unit: &str) -> String {
    match e {
        None => "—".into(),
        Some(e) => format!(
            "{:.1}{unit} [{:.1}, {:.1}]",
            e.estimate, e.ci_low, e.ci_high
        ),
    }
}

// ---- incidents ------------------------------------------------------------------------------

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

#[derive(Debug)]
struct Opt {
    value: String,
    label: String,
    selected: bool,
}

fn options(values: &[&str], current: Option<&str>, any: &str) -> Vec<Opt> {
    let mut out = vec![Opt {
        value: String::new(),
        label: any.to_owned(),
        selected: current.is_none_or(str::is_empty),
    }];
    out.extend(values.iter().map(|v| Opt {
        value: (*v).to_owned(),
        label: v.replace('_', " "),
        selected: current == Some(*v),
    }));
    out
}

/// One incident as a list row.
#[derive(Debug)]
struct IncidentRowView {
    href: String,
    agent: String,
    agent_href: String,
    started: String,
    healed: &'static str,
    category: &'static str,
    check: &'static str,
    severity: &'static str,
    cause: String,
    summary: String,
    duration: String,
    actions: usize,
    acked: String,
}

fn incident_href(agent: &str, incident: &str) -> String {
    format!("/incidents/{}/{}", enc(agent), enc(incident))
}

fn healed_text(v: &IncidentView) -> &'static str {
    match (v.status, v.auto_healed) {
        (IncidentStatus::Open, _) => "open",
        (_, Some(true)) => "auto-healed",
        _ => "resolved",
    }
}

fn row_view(v: &IncidentView, acked: Option<String>) -> IncidentRowView {
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

// ---- incident detail ------------------------------------------------------------------------

#[derive(Debug)]
struct TimelineRow {
    at: String,
    what: String,
    outcome: &'static str,
    class: &'static str,
    detail: String,
}

#[derive(Debug)]
struct KeyValue {
    key: String,
    value: String,
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
struct SurveyView {
    id: String,
    at: String,
    nps: String,
    csat: String,
    channel: String,
    verbatim: String,
}

#[derive(Debug)]
struct SubscriberView {
    customer: String,
    customer_href: String,
    region: String,
    access_node: String,
    plan: String,
    cpe_model: String,
    firmware: String,
}

#[derive(Template)]
#[template(path = "incident.html")]
struct IncidentPage {
    chrome: Chrome,
    row: IncidentRowView,
    incident_id: String,
    resolved: String,
    evidence: Vec<KeyValue>,
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

fn opt_text(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "—".to_owned(), visible)
}

fn subscriber_view(s: &crate::store::noc_types::SubscriberRecord) -> SubscriberView {
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
                    .and_then(|r| params.category_of_reason(r))
                    == Some(v.category),
            })
            .collect(),
        surveys: surveys.iter().map(survey_view).collect(),
        contact_window: format!("{} h", state.experience.contact_window_hours),
        survey_window: format!("{} days", state.experience.survey_window_days),
    };
    render(&page)
}

fn survey_view(s: &crate::store::noc_types::SurveyRecord) -> SurveyView {
    SurveyView {
        id: visible(&s.survey_id),
        at: when(s.answered_at),
        nps: s.nps.map_or_else(|| "—".into(), |n| n.to_string()),
        csat: s.csat.map_or_else(|| "—".into(), |n| n.to_string()),
        channel: opt_text(&s.channel),
        verbatim: s.verbatim.as_deref().map(visible).unwrap_or_default(),
    }
}

// ---- devices --------------------------------------------------------------------------------

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
struct DeviceRowView {
    href: String,
    agent: String,
    state: String,
    region: String,
    last_seen: String,
    agent_version: String,
    firmware: String,
    customer: String,
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

fn device_row(d: &DeviceView) -> DeviceRowView {
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
    incidents: Vec<IncidentRowView>,
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
        incidents: recent.incidents.iter().map(|v| row_view(v, None)).collect(),
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

// ---- customer -------------------------------------------------------------------------------

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

// ---- experience -----------------------------------------------------------------------------

#[derive(Debug)]
struct SatRow {
    group: String,
    n: u64,
    nps: String,
    nps_effect: String,
    csat: String,
    csat_effect: String,
    significant: bool,
}

#[derive(Debug)]
struct ContactRow {
    category: &'static str,
    incidents: u64,
    rate: String,
    strong: u64,
}

#[derive(Debug)]
struct ChurnRow {
    customer: String,
    href: String,
    incidents: u64,
    contacts: u64,
    lowest_nps: String,
    score: u64,
}

#[derive(Debug)]
struct BreakdownTable {
    dimension: String,
    rows: Vec<BreakdownRow>,
}

#[derive(Debug)]
struct BreakdownRow {
    value: String,
    subscribers: u64,
    incidents: u64,
    per_100: String,
    healed: String,
    contact_rate: String,
    nps: String,
}

#[derive(Template)]
#[template(path = "experience.html")]
struct ExperiencePage {
    chrome: Chrome,
    ready: bool,
    note: String,
    incidents: u64,
    customers: u64,
    surveys: u64,
    sat: Vec<SatRow>,
    contacts: Vec<ContactRow>,
    auto_rate: String,
    escalated_rate: String,
    avoided: String,
    avoided_value: String,
    churn_candidates: u64,
    churn: Vec<ChurnRow>,
    breakdowns: Vec<BreakdownTable>,
}

fn nps_text(s: &Option<NpsStat>) -> String {
    match s {
        None => "—".into(),
        Some(s) => format!("{:+.1} [{:+.1}, {:+.1}]", s.nps, s.ci_low, s.ci_high),
    }
}

fn prop_text(p: &Option<Proportion>) -> String {
    match p {
        None => "—".into(),
        Some(p) => format!(
            "{:.1} % [{:.1}, {:.1}] of {}",
            100.0 * p.rate,
            100.0 * p.ci_low,
            100.0 * p.ci_high,
            p.n
        ),
    }
}

fn sat_row(
    group: &str,
    s: &Satisfaction,
    nps_e: Option<&Effect>,
    csat_e: Option<&Effect>,
) -> SatRow {
    SatRow {
        group: group.replace('_', " "),
        n: s.nps.map_or(0, |x| x.n).max(s.csat.map_or(0, |x| x.n)),
        nps: nps_text(&s.nps),
        nps_effect: effect_text(nps_e, ""),
        csat: prop_text(&s.csat),
        csat_effect: effect_text(csat_e, ""),
        significant: nps_e.is_some_and(Effect::significant),
    }
}

pub async fn experience(session: NocSession, State(state): State<AppState>) -> Response {
    let chrome = Chrome::new("Experience", "experience", Some(&session));
    let Some((age, r)) = cached_report(&state) else {
        let page = ExperiencePage {
            chrome,
            ready: false,
            note: "The experience report is being computed; reload in a moment.".into(),
            incidents: 0,
            customers: 0,
            surveys: 0,
            sat: Vec::new(),
            contacts: Vec::new(),
            auto_rate: String::new(),
            escalated_rate: String::new(),
            avoided: String::new(),
            avoided_value: String::new(),
            churn_candidates: 0,
            churn: Vec::new(),
            breakdowns: Vec::new(),
        };
        return render(&page);
    };
    let s = &r.satisfaction;
    let mut sat = vec![sat_row(
        "without incident (baseline)",
        &s.without_incident,
        None,
        None,
    )];
    for g in std::iter::once(&s.with_incident)
        .chain(s.by_category.iter())
        .chain([&s.auto_healed, &s.escalated])
    {
        sat.push(sat_row(
            &g.group,
            &g.satisfaction,
            g.nps_effect.as_ref(),
            g.csat_effect.as_ref(),
        ));
    }
    let page = ExperiencePage {
        chrome,
        ready: true,
        note: format!(
            "Last {REPORT_DAYS} days (from {}), computed {age} s ago. Intervals are 95 %.",
            when_opt(r.from)
        ),
        incidents: r.incidents,
        customers: r.customers_with_incidents,
        surveys: r.surveys,
        sat,
        contacts: r
            .contacts
            .by_category
            .iter()
            .map(|c| ContactRow {
                category: c.category.as_str(),
                incidents: c.incidents,
                rate: prop_text(&c.contact_rate),
                strong: c.strong_links,
            })
            .collect(),
        auto_rate: prop_text(&r.contacts.auto_healed),
        escalated_rate: prop_text(&r.contacts.escalated),
        avoided: effect_text(r.contacts.avoided.as_ref(), ""),
        avoided_value: effect_text(
            r.contacts.avoided_value.as_ref(),
            &format!(" {}", r.contacts.currency),
        ),
        churn_candidates: r.churn_candidates,
        churn: r
            .churn_risk
            .iter()
            .map(|c| ChurnRow {
                customer: visible(&c.customer_id),
                href: format!("/customers/{}", enc(&c.customer_id)),
                incidents: c.incidents,
                contacts: c.contacts,
                lowest_nps: c.lowest_nps.map_or_else(|| "—".into(), |n| n.to_string()),
                score: c.score,
            })
            .collect(),
        breakdowns: r
            .breakdowns
            .iter()
            .map(|(dim, rows)| BreakdownTable {
                dimension: dim.replace('_', " "),
                rows: rows
                    .iter()
                    .take(20)
                    .map(|b| BreakdownRow {
                        value: visible(&b.value),
                        subscribers: b.subscribers,
                        incidents: b.incidents,
                        per_100: b
                            .incidents_per_100_subscribers
                            .map_or_else(|| "—".into(), |x| format!("{x:.1}")),
                        healed: prop_text(&b.auto_healed),
                        contact_rate: prop_text(&b.contact_rate),
                        nps: nps_text(&b.satisfaction.nps),
                    })
                    .collect(),
            })
            .collect(),
    };
    render(&page)
}

// ---- network events and kill switches -------------------------------------------------------

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

#[derive(Debug)]
struct KillView {
    scope: &'static str,
    target: String,
    target_raw: String,
    reason: String,
    set_at: String,
}

#[derive(Template)]
#[template(path = "killswitches.html")]
struct KillPage {
    chrome: Chrome,
    switches: Vec<KillView>,
}

pub async fn killswitches(
    session: NocSession,
    State(state): State<AppState>,
    Query(q): Query<DoneQuery>,
) -> Response {
    let switches = match state.store.list_killswitches().await {
        Ok(s) => s,
        Err(e) => return store_error(&session, &e),
    };
    let page = KillPage {
        chrome: Chrome::new("Kill switches", "killswitches", Some(&session))
            .with_done(q.done.as_deref()),
        switches: switches
            .iter()
            .map(|k| KillView {
                scope: k.scope,
                target: if k.target.is_empty() {
                    "whole fleet".into()
                } else {
                    visible(&k.target)
                },
                target_raw: k.target.clone(),
                reason: visible(&k.reason),
                set_at: when(k.set_at),
            })
            .collect(),
    };
    render(&page)
}
