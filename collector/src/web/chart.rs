//! Server-side SVG charts (no JavaScript, no CDN): for the overview, incidents per hour stacked
//! by category and a bar chart of counts; for the Experience page, estimates with their 95 %
//! intervals per group (NPS, CSAT) and per holdout-experiment arm. Every text in the SVG
//! is escaped here (the templates insert the markup as is); colours come from classes in
//! `console.css`, or are set here where no class exists.

use crate::analytics::{ArmReport, Satisfaction, SatisfactionReport};
use netmedic_proto::Category;
use std::fmt::Write;

const W: f64 = 720.0;
const H: f64 = 220.0;
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 36.0;
const TOP: f64 = 12.0;

/// Escapes text for SVG/XML content and attributes.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A "nice" axis maximum ≥ `max` (1, 2, 5 × 10^k).
fn nice_max(max: u64) -> u64 {
    let mut step = 1u64;
    loop {
        for m in [1, 2, 5] {
            if m * step >= max.max(1) {
                return m * step;
            }
        }
        step = step.saturating_mul(10);
    }
}

fn axis(out: &mut String, max: u64, label: &str) {
    let plot_h = H - TOP - BOTTOM;
    for i in 0..=4u64 {
        let v = max * i / 4;
        let y = TOP + plot_h - plot_h * i as f64 / 4.0;
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" y1="{y:.1}" x2="{W}" y2="{y:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{v}</text>"#,
            LEFT - 4.0,
            y + 4.0
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis-label" x="{LEFT}" y="{}">{}</text>"#,
        H - 4.0,
        esc(label)
    );
}

/// Incidents started per hour over the last `hours` hours, stacked by category.
/// `per_hour` holds (hour index from the window start, category, count).
pub fn stacked_hours(per_hour: &[(i64, Category, u64)], hours: usize) -> String {
    let mut totals = vec![0u64; hours];
    for (h, _, n) in per_hour {
        if let Some(t) = usize::try_from(*h).ok().and_then(|h| totals.get_mut(h)) {
            *t += n;
        }
    }
    let max = nice_max(totals.iter().copied().max().unwrap_or(0));
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT) / hours.max(1) as f64;
    let mut out = format!(
        r#"<svg class="chart" id="chart-hourly" viewBox="0 0 {W} {H}" role="img" aria-label="Incidents per hour by category"><title>Incidents per hour by category</title>"#
    );
    axis(&mut out, max, "hours ago →  now");
    let mut stack = vec![0u64; hours];
    for cat in Category::ALL {
        for (h, c, n) in per_hour.iter().filter(|(_, c, _)| c == cat) {
            let Some(i) = usize::try_from(*h).ok().filter(|i| *i < hours) else {
                continue;
            };
            let below = stack[i];
            stack[i] += n;
            let y0 = TOP + plot_h - plot_h * below as f64 / max as f64;
            let y1 = TOP + plot_h - plot_h * stack[i] as f64 / max as f64;
            let _ = write!(
                out,
                r#"<rect class="c-{}" x="{:.1}" y="{y1:.1}" width="{:.1}" height="{:.1}"><title>{} h: {n} {}</title></rect>"#,
                c.as_str(),
                LEFT + slot * i as f64 + 1.0,
                (slot - 2.0).max(1.0),
                (y0 - y1).max(0.0),
                hours - i,
                esc(c.as_str())
            );
        }
    }
    for i in (0..hours).step_by(6) {
        let _ = write!(
            out,
            r#"<text class="tick" x="{:.1}" y="{:.1}">-{}h</text>"#,
            LEFT + slot * i as f64,
            H - BOTTOM + 14.0,
            hours - i
        );
    }
    out.push_str("</svg>");
    out
}

/// A bar per label.
pub fn bars(labels: &[String], values: &[u64]) -> String {
    let n = labels.len().max(1);
    let max = nice_max(values.iter().copied().max().unwrap_or(0));
    let plot_h = H - TOP - BOTTOM;
    let slot = (W - LEFT) / n as f64;
    let mut out = format!(
        r#"<svg class="chart" id="chart-heal" viewBox="0 0 {W} {H}" role="img" aria-label="Auto-healed incidents by time to heal"><title>Auto-healed incidents by time to heal</title>"#
    );
    axis(&mut out, max, "time to heal");
    for (i, (label, v)) in labels.iter().zip(values).enumerate() {
        let h = plot_h * *v as f64 / max as f64;
        let x = LEFT + slot * i as f64;
        let _ = write!(
            out,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{}: {v}</title></rect><text class="tick" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            x + 4.0,
            TOP + plot_h - h,
            (slot - 8.0).max(1.0),
            esc(label),
            x + slot / 2.0,
            H - BOTTOM + 14.0,
            esc(label)
        );
    }
    out.push_str("</svg>");
    out
}

/// One row of an interval chart: an estimate, its 95 % interval and how many answers it rests on.
#[derive(Debug, Clone, PartialEq)]
pub struct IntervalRow {
    pub label: String,
    pub value: f64,
    pub low: f64,
    pub high: f64,
    pub n: u64,
}

const LABEL_W: f64 = 230.0;
const ROW_H: f64 = 24.0;
const WHISKER: &str = "#374151";

/// `v` on a scale `min..max` as an x coordinate between `x0` and `x1` (clamped).
fn scale(v: f64, min: f64, max: f64, x0: f64, x1: f64) -> f64 {
    let span = if max > min { max - min } else { 1.0 };
    x0 + (x1 - x0) * ((v - min) / span).clamp(0.0, 1.0)
}

/// A horizontal interval chart ("forest plot"): per row a whisker from `low` to `high` and a dot
/// at `value`, on the scale `min..max` (`unit` after each tick). Rows with a value that is not
/// a number are left out; no rows gives a chart that says so.
pub fn intervals(
    id: &str,
    title: &str,
    rows: &[IntervalRow],
    min: f64,
    max: f64,
    unit: &str,
) -> String {
    let rows: Vec<&IntervalRow> = rows
        .iter()
        .filter(|r| r.value.is_finite() && r.low.is_finite() && r.high.is_finite())
        .collect();
    let h = TOP + 20.0 + ROW_H * rows.len().max(1) as f64 + BOTTOM;
    let (x0, x1) = (LABEL_W, W - 16.0);
    let mut out = format!(
        r#"<svg class="chart" id="{}" viewBox="0 0 {W} {h}" role="img" aria-label="{t}"><title>{t}</title>"#,
        esc(id),
        t = esc(title)
    );
    let bottom = h - BOTTOM;
    for i in 0..=4 {
        let v = min + (max - min) * f64::from(i) / 4.0;
        let x = scale(v, min, max, x0, x1);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom:.1}"/><text class="tick" x="{x:.1}" y="{:.1}" text-anchor="middle">{v:.0}{}</text>"#,
            bottom + 14.0,
            esc(unit)
        );
    }
    if rows.is_empty() {
        let _ = write!(
            out,
            r#"<text class="axis-label" x="{x0}" y="{:.1}">not enough answers to draw</text>"#,
            TOP + 20.0
        );
    }
    for (i, r) in rows.iter().enumerate() {
        let y = TOP + 20.0 + ROW_H * i as f64;
        let (lo, hi) = (r.low.min(r.high), r.low.max(r.high));
        let (xl, xh, xv) = (
            scale(lo, min, max, x0, x1),
            scale(hi, min, max, x0, x1),
            scale(r.value, min, max, x0, x1),
        );
        let _ = write!(
            out,
            r#"<g class="interval"><title>{label}: {v:.1}{u} [{lo:.1}, {hi:.1}], n = {n}</title><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{label} (n={n})</text><line x1="{xl:.1}" y1="{y:.1}" x2="{xh:.1}" y2="{y:.1}" stroke="{WHISKER}" stroke-width="1.5"/><line x1="{xl:.1}" y1="{:.1}" x2="{xl:.1}" y2="{:.1}" stroke="{WHISKER}"/><line x1="{xh:.1}" y1="{:.1}" x2="{xh:.1}" y2="{:.1}" stroke="{WHISKER}"/><circle class="bar" cx="{xv:.1}" cy="{y:.1}" r="4"/></g>"#,
            x0 - 8.0,
            y + 4.0,
            y - 5.0,
            y + 5.0,
            y - 5.0,
            y + 5.0,
            label = esc(&r.label),
            v = r.value,
            u = esc(unit),
            n = r.n,
        );
    }
    out.push_str("</svg>");
    out
}

/// The Experience page's charts: NPS and CSAT with their 95 % intervals for the baseline, all
/// incidents, auto-healed and escalated ones and each category; groups under the report's
/// minimum size are left out (the table says "too few").
pub fn satisfaction(s: &SatisfactionReport, min_n: u64) -> String {
    let groups = std::iter::once((
        "without incident (baseline)".to_string(),
        &s.without_incident,
    ))
    .chain(
        std::iter::once(&s.with_incident)
            .chain([&s.auto_healed, &s.escalated])
            .chain(s.by_category.iter())
            .map(|g| (g.group.replace('_', " "), &g.satisfaction)),
    )
    .collect::<Vec<(String, &Satisfaction)>>();
    let nps: Vec<IntervalRow> = groups
        .iter()
        .filter_map(|(g, s)| s.nps.filter(|x| x.n >= min_n).map(|x| (g, x)))
        .map(|(g, x)| IntervalRow {
            label: g.clone(),
            value: x.nps,
            low: x.ci_low,
            high: x.ci_high,
            n: x.n,
        })
        .collect();
    let csat: Vec<IntervalRow> = groups
        .iter()
        .filter_map(|(g, s)| s.csat.filter(|x| x.n >= min_n).map(|x| (g, x)))
        .map(|(g, x)| IntervalRow {
            label: g.clone(),
            value: 100.0 * x.rate,
            low: 100.0 * x.ci_low,
            high: 100.0 * x.ci_high,
            n: x.n,
        })
        .collect();
    let mut out = intervals(
        "chart-nps",
        "NPS per group, 95 % interval",
        &nps,
        -100.0,
        100.0,
        "",
    );
    out.push_str(&intervals(
        "chart-csat",
        "CSAT (satisfied share) per group, 95 % interval",
        &csat,
        0.0,
        100.0,
        " %",
    ));
    out
}

/// The causal section's chart of experiment `id`: per arm, the share of incidents followed by a
/// contact and CSAT (0-100 %), then NPS (−100..100), each with its 95 % interval; satisfaction
/// rows under `min_n` answers are left out, as the table says "too few".
pub fn arms(id: &str, treated: &ArmReport, control: &ArmReport, min_n: u64) -> String {
    let arms: [(&str, &ArmReport); 2] = [("treated", treated), ("control", control)];
    let mut pct = Vec::new();
    let mut nps = Vec::new();
    for (arm, a) in arms {
        if let Some(p) = a.contact_rate {
            pct.push(IntervalRow {
                label: format!("{arm}: followed by a contact"),
                value: 100.0 * p.rate,
                low: 100.0 * p.ci_low,
                high: 100.0 * p.ci_high,
                n: p.n,
            });
        }
    }
    for (arm, a) in arms {
        if let Some(p) = a.satisfaction.csat.filter(|p| p.n >= min_n) {
            pct.push(IntervalRow {
                label: format!("{arm}: CSAT"),
                value: 100.0 * p.rate,
                low: 100.0 * p.ci_low,
                high: 100.0 * p.ci_high,
                n: p.n,
            });
        }
        if let Some(s) = a.satisfaction.nps.filter(|s| s.n >= min_n) {
            nps.push(IntervalRow {
                label: format!("{arm}: NPS"),
                value: s.nps,
                low: s.ci_low,
                high: s.ci_high,
                n: s.n,
            });
        }
    }
    let mut out = intervals(
        &format!("chart-arms-{id}"),
        &format!("{id}: contact rate and CSAT per arm, 95 % interval"),
        &pct,
        0.0,
        100.0,
        " %",
    );
    if !nps.is_empty() {
        out.push_str(&intervals(
            &format!("chart-arms-nps-{id}"),
            &format!("{id}: NPS per arm, 95 % interval"),
            &nps,
            -100.0,
            100.0,
            "",
        ));
    }
    out.push_str(&weekly_arms(id, treated, control));
    out
}

/// Contact rate per week and arm (by incident start week, Monday UTC), each with its 95 %
/// interval: an effect that holds week after week, or one week that made it. Empty when the
/// arms have no incidents.
fn weekly_arms(id: &str, treated: &ArmReport, control: &ArmReport) -> String {
    let mut rows: Vec<(i64, u8, IntervalRow)> = Vec::new();
    for (order, arm, a) in [(0u8, "treated", treated), (1, "control", control)] {
        for w in &a.weekly {
            if let Some(p) = w.contact_rate {
                let date: String = w.week_start.to_string().chars().take(10).collect();
                rows.push((
                    w.week_start.unix_millis(),
                    order,
                    IntervalRow {
                        label: format!("week of {date}, {arm}"),
                        value: 100.0 * p.rate,
                        low: 100.0 * p.ci_low,
                        high: 100.0 * p.ci_high,
                        n: p.n,
                    },
                ));
            }
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    rows.sort_by_key(|(week, order, _)| (*week, *order));
    let rows: Vec<IntervalRow> = rows.into_iter().map(|(_, _, r)| r).collect();
    intervals(
        &format!("chart-arms-weekly-{id}"),
        &format!("{id}: contact rate per week and arm, 95 % interval"),
        &rows,
        0.0,
        100.0,
        " %",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_escape_text_and_scale() {
        assert_eq!(nice_max(0), 1);
        assert_eq!(nice_max(7), 10);
        assert_eq!(nice_max(101), 200);
        let svg = bars(&["<b>&".into()], &[3]);
        assert!(svg.contains("&lt;b&gt;&amp;"), "{svg}");
        assert!(!svg.contains("<b>"));
        let svg = stacked_hours(
            &[
                (23, Category::DnsFailure, 4),
                (30, Category::Intermittent, 9),
            ],
            24,
        );
        assert_eq!(
            svg.matches("<rect").count(),
            1,
            "out-of-window hours are dropped"
        );
        assert!(svg.contains("c-dns_failure"));
    }

    /// Start and end tags balance (every `<x ...>` closed by `</x>` or self-closed).
    fn balanced(svg: &str) -> bool {
        let mut open: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(i) = rest.find('<') {
            let end = rest[i..].find('>').map(|j| i + j);
            let Some(end) = end else { return false };
            let tag = &rest[i + 1..end];
            if let Some(name) = tag.strip_prefix('/') {
                if open.pop().as_deref() != Some(name) {
                    return false;
                }
            } else if !tag.ends_with('/') {
                open.push(tag.split_whitespace().next().unwrap_or("").to_string());
            }
            rest = &rest[end + 1..];
        }
        open.is_empty()
    }

    fn row(label: &str, v: f64) -> IntervalRow {
        IntervalRow {
            label: label.into(),
            value: v,
            low: v - 10.0,
            high: v + 10.0,
            n: 42,
        }
    }

    #[test]
    fn interval_charts_are_well_formed_escaped_and_scaled() {
        let svg = intervals(
            "chart-x",
            "NPS <per> group",
            &[row("a & <b>", -20.0), row("c", 150.0), row("nan", f64::NAN)],
            -100.0,
            100.0,
            "",
        );
        assert!(balanced(&svg), "{svg}");
        assert!(svg.contains("a &amp; &lt;b&gt; (n=42)"), "{svg}");
        assert!(svg.contains("NPS &lt;per&gt; group"));
        assert!(!svg.contains("<b>"));
        assert_eq!(svg.matches("<circle").count(), 2, "the NaN row is left out");
        // -20 on -100..100 over x 230..704 is at 419.6; 150 is clamped to the right edge.
        assert!(svg.contains(r#"cx="419.6""#), "{svg}");
        assert!(svg.contains(r#"cx="704.0""#), "{svg}");
        let empty = intervals("chart-e", "t", &[], 0.0, 100.0, " %");
        assert!(balanced(&empty), "{empty}");
        assert!(empty.contains("not enough answers"));
        assert!(!empty.contains("<circle"));
    }

    #[test]
    fn the_satisfaction_charts_leave_out_small_groups() {
        use crate::analytics::{NpsAcc, SatGroup, wilson};
        let group = |name: &str, p: u64, d: u64| SatGroup {
            group: name.into(),
            satisfaction: Satisfaction {
                nps: NpsAcc {
                    promoters: p,
                    passives: 0,
                    detractors: d,
                }
                .stat(),
                csat: wilson(p, p + d),
            },
            nps_effect: None,
            csat_effect: None,
        };
        let s = SatisfactionReport {
            without_incident: group("", 60, 40).satisfaction,
            with_incident: group("with_incident", 20, 20),
            by_category: vec![group("dns_failure", 2, 1)],
            by_category_outcome: Vec::new(),
            auto_healed: group("auto_healed", 15, 15),
            escalated: group("escalated", 5, 5),
        };
        let svg = satisfaction(&s, 30);
        assert!(balanced(&svg), "{svg}");
        assert!(svg.contains(r#"id="chart-nps""#) && svg.contains(r#"id="chart-csat""#));
        assert!(svg.contains("without incident (baseline) (n=100)"), "{svg}");
        assert!(svg.contains("with incident (n=40)"), "{svg}");
        assert!(svg.contains("auto healed (n=30)"), "{svg}");
        assert!(!svg.contains("escalated (n="), "under min_group_n: {svg}");
        assert!(!svg.contains("dns failure (n="), "under min_group_n: {svg}");
        // Baseline NPS +20 on -100..100: x = 230 + 474 × 0.6.
        assert!(svg.contains(r#"cx="514.4""#), "{svg}");
    }

    #[test]
    fn the_arms_chart_shows_each_arms_contact_rate() {
        let arm = |k: u64, n: u64| ArmReport {
            incidents: n,
            devices: n,
            contact_rate: wilson_pub(k, n),
            satisfaction: Satisfaction {
                nps: None,
                csat: None,
            },
            weekly: vec![crate::analytics::WeekRate {
                week_start: netmedic_proto::Timestamp::from_unix_millis(1_795_996_800_000).unwrap(),
                incidents: n,
                contact_rate: wilson_pub(k, n),
            }],
        };
        let svg = arms("dns<x>", &arm(12, 100), &arm(30, 100), 30);
        assert!(
            svg.contains("week of 2026-11-30, treated (n=100)")
                && svg.contains("week of 2026-11-30, control (n=100)"),
            "{svg}"
        );
        assert!(
            svg.contains(r#"id="chart-arms-weekly-dns&lt;x&gt;""#),
            "{svg}"
        );
        assert!(balanced(&svg), "{svg}");
        assert!(svg.contains(r#"id="chart-arms-dns&lt;x&gt;""#), "{svg}");
        assert!(
            svg.contains("treated: followed by a contact (n=100)"),
            "{svg}"
        );
        assert!(
            svg.contains("control: followed by a contact (n=100)"),
            "{svg}"
        );
        assert!(!svg.contains("NPS per arm"), "no NPS answers: {svg}");
        // 30 % on 0..100 over x 230..704.
        assert!(svg.contains(r#"cx="372.2""#), "{svg}");
    }

    fn wilson_pub(k: u64, n: u64) -> Option<crate::analytics::Proportion> {
        crate::analytics::wilson(k, n)
    }
}
