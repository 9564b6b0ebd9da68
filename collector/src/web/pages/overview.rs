//! The overview: device tiles, open incidents by category, incidents started, resolved and
//! healed, contacts avoided (from the cached experience report) and the hourly and healing charts.

use super::common::{DoneQuery, REPORT_DAYS, cached_report, effect_text, store_error};
use crate::AppState;
use crate::fleet::offline_before_ms;
use crate::store::noc_types::HEAL_BUCKET_SECS;
use crate::web::session::NocSession;
use crate::web::{Chrome, chart, duration_ms, pct, render, when};
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;

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
