//! The experience report: satisfaction, contacts and churn candidates of customers whose
//! incidents were healed or escalated, and breakdowns. The last 30 days come from a cache
//! recomputed in the background; a date range (`?from=YYYY-MM-DD&to=YYYY-MM-DD`, `to` inclusive)
//! is computed on request.

use super::common::{REPORT_DAYS, cached_report, effect_text, store_error};
use crate::AppState;
use crate::analytics::{Effect, NpsStat, Proportion, Report, ReportParams, Satisfaction};
use crate::web::session::{NocSession, error_page};
use crate::web::{Chrome, enc, render, visible, when_opt};
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use netmedic_proto::Timestamp;
use serde::Deserialize;
use std::sync::Arc;

/// The page's date range: days (UTC), `to` included; either may be empty.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

const DAY_MS: i64 = 86_400_000;

/// Start of a `YYYY-MM-DD` day (UTC), or a message saying what is wrong.
fn day_start(field: &str, day: &str) -> Result<Timestamp, String> {
    let ok_shape = day.len() == 10
        && day.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    let parsed = ok_shape
        .then(|| format!("{day}T00:00:00Z").parse::<Timestamp>().ok())
        .flatten();
    parsed.ok_or_else(|| {
        format!(
            "{field} {:?} is not a date such as 2026-01-31",
            day.chars().take(40).collect::<String>()
        )
    })
}

/// The range asked for: `None` for the default (cached last 30 days).
/// A report period: from (included), to (excluded); `None` is open.
type Period = (Option<Timestamp>, Option<Timestamp>);

fn range(q: &RangeQuery) -> Result<Option<Period>, String> {
    fn pick(v: &Option<String>) -> Option<&str> {
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }
    let (from, to) = (pick(&q.from), pick(&q.to));
    if from.is_none() && to.is_none() {
        return Ok(None);
    }
    let from = from.map(|d| day_start("from", d)).transpose()?;
    let to = to
        .map(|d| day_start("to", d))
        .transpose()?
        .map(|t| t.add_millis(DAY_MS));
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err("the range ends before it starts".into());
    }
    Ok(Some((from, to)))
}

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
    vs_baseline: String,
    strong: u64,
    auto_rate: String,
    escalated_rate: String,
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
    /// The picker's values (`YYYY-MM-DD` or empty).
    from: String,
    to: String,
    incidents: u64,
    customers: u64,
    surveys: u64,
    surveys_without: u64,
    surveys_with: u64,
    baseline_rate: String,
    sat: Vec<SatRow>,
    /// NPS and CSAT per group with their intervals, as inline SVG (`web::chart`).
    sat_svg: String,
    contacts: Vec<ContactRow>,
    auto_rate: String,
    escalated_rate: String,
    avoided: String,
    avoided_value: String,
    /// What the observational figure above rests on.
    assumption: &'static str,
    causal: Vec<super::causal::CausalView>,
    churn_candidates: u64,
    churn: Vec<ChurnRow>,
    breakdowns: Vec<BreakdownTable>,
}

fn nps_text(s: &Option<NpsStat>, min_n: u64) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n < min_n => "too few".into(),
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
    min_n: u64,
) -> SatRow {
    SatRow {
        group: group.replace('_', " "),
        n: s.nps.map_or(0, |x| x.n).max(s.csat.map_or(0, |x| x.n)),
        nps: nps_text(&s.nps, min_n),
        nps_effect: effect_text(nps_e, ""),
        csat: match &s.csat {
            Some(c) if c.n < min_n => "too few".into(),
            c => prop_text(c),
        },
        csat_effect: effect_text(csat_e, ""),
        significant: nps_e.is_some_and(Effect::significant),
    }
}

fn not_ready(chrome: Chrome, note: String, from: String, to: String) -> Response {
    render(&ExperiencePage {
        chrome,
        ready: false,
        note,
        from,
        to,
        incidents: 0,
        customers: 0,
        surveys: 0,
        surveys_without: 0,
        surveys_with: 0,
        baseline_rate: String::new(),
        sat: Vec::new(),
        sat_svg: String::new(),
        contacts: Vec::new(),
        auto_rate: String::new(),
        escalated_rate: String::new(),
        avoided: String::new(),
        avoided_value: String::new(),
        assumption: crate::analytics::OBSERVATIONAL_ASSUMPTION,
        causal: Vec::new(),
        churn_candidates: 0,
        churn: Vec::new(),
        breakdowns: Vec::new(),
    })
}

pub async fn experience(
    session: NocSession,
    State(state): State<AppState>,
    query: Result<Query<RangeQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let chrome = Chrome::new("Experience", "experience", Some(&session));
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
    let asked = match range(&q) {
        Ok(r) => r,
        Err(m) => {
            return error_page(
                Some(&session),
                StatusCode::BAD_REQUEST,
                "Bad date range",
                &m,
            );
        }
    };
    let day = |t: Option<Timestamp>| {
        t.map_or_else(String::new, |t| {
            t.to_string().get(..10).unwrap_or_default().to_owned()
        })
    };
    let (r, note, from, to): (Arc<Report>, String, String, String) = match asked {
        None => {
            let Some((age, r)) = cached_report(&state) else {
                return not_ready(
                    chrome,
                    "The experience report is being computed; reload in a moment.".into(),
                    String::new(),
                    String::new(),
                );
            };
            let note = format!(
                "Last {REPORT_DAYS} days (from {}), computed {age} s ago. Intervals are 95 %.",
                when_opt(r.from)
            );
            let from = day(r.from);
            (r, note, from, String::new())
        }
        Some((from, to)) => {
            let params = ReportParams::from_config(&state.experience, from, to);
            let r = match state.store.report(&params).await {
                Ok(r) => r,
                Err(e) => return store_error(&session, &e),
            };
            let note = format!(
                "From {} to {} (UTC days, both included). Intervals are 95 %.",
                from.map_or_else(|| "the first record".into(), |t| when_opt(Some(t))),
                to.map_or_else(|| "now".into(), |t| day(Some(t.add_millis(-DAY_MS)))),
            );
            (
                Arc::new(r),
                note,
                day(from),
                day(to.map(|t| t.add_millis(-DAY_MS))),
            )
        }
    };
    let min_n = r.min_group_n;
    let s = &r.satisfaction;
    let mut sat = vec![sat_row(
        "without incident (baseline)",
        &s.without_incident,
        None,
        None,
        min_n,
    )];
    for g in std::iter::once(&s.with_incident)
        .chain(s.by_category.iter())
        .chain([&s.auto_healed, &s.escalated])
        .chain(s.by_category_outcome.iter())
    {
        sat.push(sat_row(
            &g.group,
            &g.satisfaction,
            g.nps_effect.as_ref(),
            g.csat_effect.as_ref(),
            min_n,
        ));
    }
    // The counts at the top are the table's first two rows: the same answers.
    let answers = |s: &Satisfaction| s.nps.map_or(0, |x| x.n).max(s.csat.map_or(0, |x| x.n));
    let page = ExperiencePage {
        chrome,
        ready: true,
        note,
        from,
        to,
        incidents: r.incidents,
        customers: r.customers_with_incidents,
        surveys: r.surveys,
        surveys_without: answers(&s.without_incident),
        surveys_with: answers(&s.with_incident.satisfaction),
        baseline_rate: prop_text(&r.contacts.baseline),
        sat,
        sat_svg: crate::web::chart::satisfaction(&r.satisfaction, min_n),
        contacts: r
            .contacts
            .by_category
            .iter()
            .map(|c| ContactRow {
                category: c.category.as_str(),
                incidents: c.incidents,
                rate: prop_text(&c.contact_rate),
                vs_baseline: effect_text(c.vs_baseline.as_ref(), " pp"),
                strong: c.strong_links,
                auto_rate: prop_text(&c.auto_healed),
                escalated_rate: prop_text(&c.escalated),
            })
            .collect(),
        auto_rate: prop_text(&r.contacts.auto_healed),
        escalated_rate: prop_text(&r.contacts.escalated),
        avoided: effect_text(r.contacts.avoided.as_ref(), ""),
        avoided_value: effect_text(
            r.contacts.avoided_value.as_ref(),
            &format!(" {}", r.contacts.currency),
        ),
        assumption: crate::analytics::OBSERVATIONAL_ASSUMPTION,
        causal: super::causal::causal_views(&r),
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
                        nps: nps_text(&b.satisfaction.nps, min_n),
                    })
                    .collect(),
            })
            .collect(),
    };
    render(&page)
}
