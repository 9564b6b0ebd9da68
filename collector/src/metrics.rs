//! A small Prometheus registry: counters and fixed-bucket histograms rendered in the text format
//! at `/metrics`. Hand-written instead of `metrics` + `metrics-exporter-prometheus`: that recorder
//! is process-global (several servers in one test process would mix their counts), and a dozen
//! series do not need it. Labels are only route templates, status codes and reasons — never a
//! device or customer id (bounded cardinality, docs/design.md "Conventions").

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds, in seconds, of the latency buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the write-group size buckets (requests per transaction).
const GROUP_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

#[derive(Debug, Clone, Default)]
struct Histogram {
    buckets: Vec<u64>,
    count: u64,
    sum: f64,
}

#[derive(Debug, Default)]
struct Series {
    counters: BTreeMap<(&'static str, String), u64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

/// The collector's metrics. Cheap to update from any task.
#[derive(Debug, Default)]
pub struct Metrics {
    series: Mutex<Series>,
    queue_depth: AtomicU64,
}

/// Help text and type of every metric family, in output order.
const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "netmedic_collector_http_requests_total",
        "counter",
        "HTTP requests by route template and status code.",
    ),
    (
        "netmedic_collector_http_request_duration_seconds",
        "histogram",
        "HTTP request latency by route template.",
    ),
    (
        "netmedic_collector_events_total",
        "counter",
        "Incident events received, by result (accepted, duplicate).",
    ),
    (
        "netmedic_collector_heartbeats_total",
        "counter",
        "Heartbeats recorded.",
    ),
    (
        "netmedic_collector_auth_denied_total",
        "counter",
        "Requests refused by device authentication, by reason.",
    ),
    (
        "netmedic_collector_write_queue_rejected_total",
        "counter",
        "Requests refused with 429 because the write queue was full.",
    ),
    (
        "netmedic_collector_write_group_requests",
        "histogram",
        "Requests committed per write transaction.",
    ),
    (
        "netmedic_collector_write_group_duration_seconds",
        "histogram",
        "Duration of one group-commit transaction.",
    ),
    (
        "netmedic_collector_write_errors_total",
        "counter",
        "Write transactions that failed.",
    ),
];

impl Metrics {
    pub fn inc(&self, name: &'static str, labels: &str, by: u64) {
        let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        *s.counters.entry((name, labels.to_owned())).or_default() += by;
    }

    pub fn observe(&self, name: &'static str, labels: &str, value: f64) {
        let bounds: &[f64] = if name == "netmedic_collector_write_group_requests" {
            &GROUP_BUCKETS
        } else {
            &LATENCY_BUCKETS
        };
        let mut s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let h = s
            .histograms
            .entry((name, labels.to_owned()))
            .or_insert_with(|| Histogram {
                buckets: vec![0; bounds.len()],
                ..Histogram::default()
            });
        for (i, b) in bounds.iter().enumerate() {
            if value <= *b {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += value;
    }

    pub fn set_queue_depth(&self, depth: u64) {
        self.queue_depth.store(depth, Ordering::Relaxed);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let s = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        for (family, kind, help) in FAMILIES {
            let _ = writeln!(out, "# HELP {family} {help}\n# TYPE {family} {kind}");
            for ((name, labels), v) in &s.counters {
                if name == family {
                    let _ = writeln!(out, "{name}{} {v}", braces(labels));
                }
            }
            for ((name, labels), h) in &s.histograms {
                if name != family {
                    continue;
                }
                let bounds: &[f64] = if *name == "netmedic_collector_write_group_requests" {
                    &GROUP_BUCKETS
                } else {
                    &LATENCY_BUCKETS
                };
                let sep = if labels.is_empty() { "" } else { "," };
                for (b, n) in bounds.iter().zip(&h.buckets) {
                    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{b}\"}} {n}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{} {}", braces(labels), h.sum);
                let _ = writeln!(out, "{name}_count{} {}", braces(labels), h.count);
            }
        }
        let family = "netmedic_collector_write_queue_depth";
        let _ = writeln!(
            out,
            "# HELP {family} Requests waiting for a writer.\n# TYPE {family} gauge\n{family} {}",
            self.queue_depth.load(Ordering::Relaxed)
        );
        out
    }
}

fn braces(labels: &str) -> String {
    if labels.is_empty() {
        String::new()
    } else {
        format!("{{{labels}}}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_cumulative_buckets() {
        let m = Metrics::default();
        m.inc("netmedic_collector_heartbeats_total", "", 2);
        m.observe(
            "netmedic_collector_http_request_duration_seconds",
            "route=\"/x\"",
            0.003,
        );
        let text = m.render();
        assert!(
            text.contains("netmedic_collector_heartbeats_total 2\n"),
            "{text}"
        );
        assert!(text.contains(
            "netmedic_collector_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0\n"
        ));
        assert!(text.contains(
            "netmedic_collector_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n"
        ));
        assert!(
            text.contains(
                "netmedic_collector_http_request_duration_seconds_count{route=\"/x\"} 1\n"
            )
        );
    }
}
