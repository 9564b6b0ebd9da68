//! The experience report (cached, recomputed in the background): satisfaction, contacts and
//! churn candidates of customers whose incidents were healed or escalated, and breakdowns.

use super::common::{REPORT_DAYS, cached_report, effect_text};
use crate::AppState;
use crate::analytics::{Effect, NpsStat, Proportion, Satisfaction};
use crate::web::session::NocSession;
use crate::web::{Chrome, enc, render, visible, when_opt};
use askama::Template;
use axum::extract::State;
use axum::response::Response;

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
