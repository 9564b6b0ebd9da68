//! Server-side SVG charts for the overview (no JavaScript, no CDN): incidents per hour stacked
//! by category, and a bar chart of counts. Every text in the SVG is escaped here (the templates
//! insert the markup as is); colours come from classes in `console.css`.

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
}
