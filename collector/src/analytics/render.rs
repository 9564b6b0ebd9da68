//! The report as text tables (`netmedic-collector report`).

use super::report::*;
use super::statistics::{Effect, NpsStat, Proportion};
use netmedic_proto::Timestamp;

fn fmt_nps(s: &Option<NpsStat>, min_n: u64) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.n < min_n => format!("too few (n={})", s.n),
        Some(s) => format!(
            "{:+.1} [{:+.1}, {:+.1}] n={}",
            s.nps, s.ci_low, s.ci_high, s.n
        ),
    }
}

fn fmt_prop(p: &Option<Proportion>) -> String {
    fmt_prop_min(p, 0)
}

fn fmt_prop_min(p: &Option<Proportion>, min_n: u64) -> String {
    match p {
        None => "-".into(),
        Some(p) if p.n < min_n => format!("too few (n={})", p.n),
        Some(p) => format!(
            "{:.1}% [{:.1}, {:.1}] n={}",
            100.0 * p.rate,
            100.0 * p.ci_low,
            100.0 * p.ci_high,
            p.n
        ),
    }
}

fn fmt_effect(e: &Option<Effect>, unit: &str) -> String {
    match e {
        None => "-".into(),
        Some(e) => format!(
            "{:+.1}{unit} [{:+.1}, {:+.1}]{}",
            e.estimate,
            e.ci_low,
            e.ci_high,
            if e.significant() { " *" } else { "" }
        ),
    }
}

/// Aligned columns; cells are sanitised (ids come from imported files).
fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = width.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r);
    }
}

/// The report as readable text (tables).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let t = |t: &Option<Timestamp>| t.map_or("-".to_owned(), |t| t.to_string());
    out.push_str(&format!(
        "Customer-experience report  from {}  to {}\n{} incidents ({} customers), {} surveys; \
         contacts linked within {} h, surveys within {} days of an incident's start.\n\
         Intervals are 95 %; * marks a difference whose interval excludes 0; groups of fewer \
         than {} answers show \"too few\".\n\n",
        t(&r.from),
        t(&r.to),
        r.incidents,
        r.customers_with_incidents,
        r.surveys,
        r.contact_window_hours,
        r.survey_window_days,
        r.min_group_n
    ));
    out.push_str("SATISFACTION (NPS points; CSAT % of 4-5 answers)\n");
    let s = &r.satisfaction;
    let mut rows = vec![vec![
        "without incident".to_owned(),
        fmt_nps(&s.without_incident.nps, r.min_group_n),
        "(baseline)".into(),
        fmt_prop_min(&s.without_incident.csat, r.min_group_n),
        "(baseline)".into(),
    ]];
    let g = |g: &SatGroup| {
        vec![
            g.group.clone(),
            fmt_nps(&g.satisfaction.nps, r.min_group_n),
            fmt_effect(&g.nps_effect, ""),
            fmt_prop_min(&g.satisfaction.csat, r.min_group_n),
            fmt_effect(&g.csat_effect, " pp"),
        ]
    };
    rows.push(g(&s.with_incident));
    rows.push(g(&s.auto_healed));
    rows.push(g(&s.escalated));
    rows.extend(s.by_category.iter().map(g));
    rows.extend(s.by_category_outcome.iter().map(g));
    table(
        &mut out,
        &["GROUP", "NPS", "VS BASELINE", "CSAT", "VS BASELINE"],
        rows,
    );
    out.push_str(&format!(
        "\nCONTACTS (share of incidents followed by a contact within {} h; STRONG: incidents with a \
         linked contact whose reason matches one of the category's reason rules)\n",
        r.contact_window_hours
    ));
    let c = &r.contacts;
    let mut rows: Vec<Vec<String>> = vec![vec![
        "(no incident: baseline)".to_owned(),
        "-".into(),
        fmt_prop(&c.baseline),
        "(baseline)".into(),
        String::new(),
        String::new(),
        String::new(),
    ]];
    rows.extend(c.by_category.iter().map(|x| {
        vec![
            x.category.as_str().to_owned(),
            x.incidents.to_string(),
            fmt_prop(&x.contact_rate),
            fmt_effect(&x.vs_baseline, " pp"),
            x.strong_links.to_string(),
            fmt_prop(&x.auto_healed),
            fmt_prop(&x.escalated),
        ]
    }));
    for (name, p) in [("auto_healed", &c.auto_healed), ("escalated", &c.escalated)] {
        rows.push(vec![
            format!("({name})"),
            p.map_or(0, |p| p.n).to_string(),
            fmt_prop(p),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
    }
    table(
        &mut out,
        &[
            "CATEGORY",
            "INCIDENTS",
            "CONTACT RATE",
            "VS BASELINE",
            "STRONG",
            "AUTO-HEALED",
            "ESCALATED",
        ],
        rows,
    );
    out.push_str(&format!(
        "contacts avoided by self-healing (observational): {}; worth {} {} at {:.2} {} per \
         contact\n  {}\n",
        fmt_effect(&c.avoided, ""),
        fmt_effect(&c.avoided_value, ""),
        c.currency,
        c.cost_per_contact,
        c.currency,
        if c.assumption.is_empty() {
            super::causal::OBSERVATIONAL_ASSUMPTION
        } else {
            c.assumption.as_str()
        }
    ));
    if let Some(ratio) = c.escalated_to_auto_ratio {
        out.push_str(&format!(
            "escalated incidents are followed by a contact {ratio:.2}x as often as auto-healed ones\n"
        ));
    }
    render_causal(&mut out, r);
    out.push_str(&format!(
        "\nCHURN RISK ({} customers: repeat incidents plus a detractor answer or repeat contacts)\n",
        r.churn_candidates
    ));
    table(
        &mut out,
        &["CUSTOMER", "INCIDENTS", "CONTACTS", "LOWEST NPS", "SCORE"],
        r.churn_risk
            .iter()
            .map(|x| {
                vec![
                    x.customer_id.clone(),
                    x.incidents.to_string(),
                    x.contacts.to_string(),
                    x.lowest_nps.map_or("-".into(), |n| n.to_string()),
                    x.score.to_string(),
                ]
            })
            .collect(),
    );
    for (dim, rows) in &r.breakdowns {
        out.push_str(&format!("\nBY {}\n", dim.to_ascii_uppercase()));
        table(
            &mut out,
            &[
                "VALUE",
                "SUBS",
                "INCIDENTS",
                "PER 100",
                "AUTO-HEALED",
                "CONTACT RATE",
                "NPS",
            ],
            rows.iter()
                .map(|b| {
                    vec![
                        b.value.clone(),
                        b.subscribers.to_string(),
                        b.incidents.to_string(),
                        b.incidents_per_100_subscribers
                            .map_or("-".into(), |x| format!("{x:.1}")),
                        fmt_prop(&b.auto_healed),
                        fmt_prop(&b.contact_rate),
                        fmt_nps(&b.satisfaction.nps, r.min_group_n),
                    ]
                })
                .collect(),
        );
    }
    out.push_str(&format!("\nNETWORK EVENTS ({})\n", r.network_events.len()));
    table(
        &mut out,
        &[
            "EVENT",
            "ACCESS NODE",
            "STARTED",
            "RESOLVED",
            "DEVICES",
            "INCIDENTS",
        ],
        r.network_events
            .iter()
            .map(|e| {
                vec![
                    e.event_id.clone(),
                    e.access_node.clone(),
                    e.started_at.to_string(),
                    e.resolved_at.map_or("(ongoing)".into(), |t| t.to_string()),
                    e.devices.to_string(),
                    e.incidents.to_string(),
                ]
            })
            .collect(),
    );
    out
}

/// The causal section: one block per holdout experiment.
fn render_causal(out: &mut String, r: &Report) {
    let c = &r.contacts;
    out.push_str(&format!(
        "\nCAUSAL EFFECT OF SELF-HEALING, {} ({} experiment(s): devices in the control arm, \
         chosen by a salted hash of their id, ran the playbook in dry_run)\n",
        super::causal::DESIGN,
        r.causal.len()
    ));
    for x in &r.causal {
        out.push_str(&causal_text(
            x,
            r.min_group_n,
            c.cost_per_contact,
            &c.currency,
        ));
    }
}

/// One experiment's block of the causal section.
pub fn causal_text(x: &CausalExperiment, min_n: u64, cost: f64, currency: &str) -> String {
    let mut out = String::new();
    let scope = x.scope.as_ref().map_or(
        "(unknown to this collector)".to_owned(),
        super::causal::scope_label,
    );
    let share = x
        .control_permille
        .map_or("-".to_owned(), |m| format!("{:.1}%", f64::from(m) / 10.0));
    let life = match (x.started_at, x.ended_at) {
        (Some(s), None) => format!("active since {s}"),
        (Some(s), Some(e)) => format!("{s} to {e}"),
        _ => "-".to_owned(),
    };
    out.push_str(&format!(
        "\nexperiment {}  {scope}  control {share}  {life}\n",
        x.experiment_id
    ));
    let arm = |name: &str, a: &ArmReport| {
        vec![
            name.to_owned(),
            a.incidents.to_string(),
            a.devices.to_string(),
            fmt_prop(&a.contact_rate),
            fmt_nps(&a.satisfaction.nps, min_n),
            fmt_prop_min(&a.satisfaction.csat, min_n),
        ]
    };
    table(
        &mut out,
        &["ARM", "INCIDENTS", "DEVICES", "CONTACT RATE", "NPS", "CSAT"],
        vec![arm("treated", &x.treated), arm("control", &x.control)],
    );
    out.push_str(&format!(
        "contact rate, control − treated ({}): {}\n",
        x.design,
        fmt_effect(&x.contact_rate_reduction, " pp")
    ));
    out.push_str(&format!(
        "contacts avoided per 1,000 incidents ({}): {}; worth {} {currency} at {cost:.2} \
         {currency} per contact\n",
        x.design,
        fmt_effect(&x.avoided_per_1000, ""),
        fmt_effect(&x.avoided_value_per_1000, ""),
    ));
    out.push_str(&format!(
        "over the period's {} treated incidents: {} contacts avoided, worth {} {currency}\n",
        x.treated.incidents,
        fmt_effect(&x.avoided_in_period, ""),
        fmt_effect(&x.avoided_value_in_period, ""),
    ));
    out.push_str(&format!(
        "NPS treated − control: {}; CSAT treated − control: {}\n",
        fmt_effect(&x.nps_difference, ""),
        fmt_effect(&x.csat_difference, " pp")
    ));
    if let Some(m) = x.minimal_detectable_difference {
        out.push_str(&format!(
            "smallest contact-rate difference these arms detect (80 % power, α = 0.05): {m:.1} pp\n"
        ));
    }
    for w in &x.warnings {
        out.push_str(&format!("WARNING: {w}\n"));
    }
    out.push_str(&format!(
        "(arms are assigned per device: intervals treat the {} + {} incidents as independent, \
         which devices with many incidents make optimistic)\n",
        x.treated.incidents, x.control.incidents
    ));
    out
}
