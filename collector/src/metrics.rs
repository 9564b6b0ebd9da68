//! The collector's Prometheus metrics, served at `/metrics` in the text format (version 0.0.4).
//! Built on `prometheus-client`, whose [`Registry`] is a value each server owns: several
//! servers in one process (the tests) keep their own counts. Every family is registered up front
//! from [`FAMILIES`] (a name that is counted but not registered there is a bug the tests catch);
//! the encoder leaves out a family that has no sample yet, so families without labels start at 0. Labels are only route
//! templates, status codes and reasons — never a device or customer id (bounded cardinality).
//!
//! The call shape `metrics.inc(name, labels, by)` with labels pre-formatted as `k="v",k2="v2"` is
//! kept from the hand-written registry this replaced; the labels are parsed here, in one place.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{PoisonError, RwLock};

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds, in seconds, of the latency buckets.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Upper bounds of the write-group size buckets (requests per transaction).
const GROUP_BUCKETS: [f64; 10] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn group_histogram() -> Histogram {
    Histogram::new(GROUP_BUCKETS)
}

/// A label set: (name, value) pairs in the order the call site wrote them.
type Labels = Vec<(String, String)>;
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// The type of a metric family.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Counter,
    /// A histogram with the buckets its constructor sets.
    Histogram(fn() -> Histogram),
}

/// One metric family: the name as exported (counters end in `_total`), its type, its help text
/// (the registry appends the final period) and the label sets exported at 0 from the start
/// (`""` for a family without labels), so that a rate over them has a series before the first
/// event; a family whose label values are only known when counted appears with its first sample.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    pub initial: &'static [&'static str],
}

/// Every metric family except the queue-depth gauge, in output order.
pub const FAMILIES: &[Spec] = &[
    Spec {
        name: "netmedic_collector_http_requests_total",
        kind: Kind::Counter,
        help: "HTTP requests by route template and status code",
        initial: &[],
    },
    Spec {
        name: "netmedic_collector_http_request_duration_seconds",
        kind: Kind::Histogram(latency_histogram),
        help: "HTTP request latency by route template",
        initial: &[],
    },
    Spec {
        name: "netmedic_collector_events_total",
        kind: Kind::Counter,
        help: "Incident events received, by result (accepted, duplicate)",
        initial: &["result=\"accepted\"", "result=\"duplicate\""],
    },
    Spec {
        name: "netmedic_collector_heartbeats_total",
        kind: Kind::Counter,
        help: "Heartbeats recorded",
        initial: &[""],
    },
    Spec {
        name: "netmedic_collector_auth_denied_total",
        kind: Kind::Counter,
        help: "Requests refused by device authentication, by reason",
        initial: &[],
    },
    Spec {
        name: "netmedic_collector_api_auth_denied_total",
        kind: Kind::Counter,
        help: "Requests refused by API token authentication or role, by reason",
        initial: &[],
    },
    Spec {
        name: "netmedic_collector_write_queue_rejected_total",
        kind: Kind::Counter,
        help: "Requests refused with 429 because the write queue was full",
        initial: &[""],
    },
    Spec {
        name: "netmedic_collector_write_group_requests",
        kind: Kind::Histogram(group_histogram),
        help: "Requests committed per write transaction",
        initial: &[""],
    },
    Spec {
        name: "netmedic_collector_write_group_duration_seconds",
        kind: Kind::Histogram(latency_histogram),
        help: "Duration of one group-commit transaction",
        initial: &[""],
    },
    Spec {
        name: "netmedic_collector_write_errors_total",
        kind: Kind::Counter,
        help: "Write transactions that failed",
        initial: &[""],
    },
];

/// The queue-depth gauge (registered after [`FAMILIES`]).
pub const QUEUE_DEPTH: &str = "netmedic_collector_write_queue_depth";

/// The collector's metrics. Cheap to update from any task.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    counters: HashMap<&'static str, Family<Labels, Counter>>,
    histograms: HashMap<&'static str, HistogramFamily>,
    queue_depth: Gauge<u64, AtomicU64>,
    /// The request metrics' handles per route template, resolved on a route's first request
    /// (see [`Metrics::request`]).
    routes: RwLock<HashMap<String, RouteMetrics>>,
}

/// One route's request metrics: its latency histogram and its counter per status code, handles
/// into the families (clones share the count).
#[derive(Debug)]
struct RouteMetrics {
    duration: Histogram,
    by_status: RwLock<Vec<(u16, Counter)>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let mut counters = HashMap::new();
        let mut histograms = HashMap::new();
        for spec in FAMILIES {
            let Spec {
                name, kind, help, ..
            } = *spec;
            match kind {
                Kind::Counter => {
                    let family = Family::<Labels, Counter>::default();
                    for labels in spec.initial {
                        drop(family.get_or_create(&labels_of(name, labels)));
                    }
                    // The encoder appends `_total` to a counter's registered name.
                    let base = name.strip_suffix("_total").unwrap_or(name);
                    registry.register(base, help, family.clone());
                    counters.insert(name, family);
                }
                Kind::Histogram(new) => {
                    let family = HistogramFamily::new_with_constructor(new);
                    for labels in spec.initial {
                        drop(family.get_or_create(&labels_of(name, labels)));
                    }
                    registry.register(name, help, family.clone());
                    histograms.insert(name, family);
                }
            }
        }
        let queue_depth = Gauge::<u64, AtomicU64>::default();
        registry.register(
            QUEUE_DEPTH,
            "Requests waiting for a writer",
            queue_depth.clone(),
        );
        Metrics {
            registry,
            counters,
            histograms,
            queue_depth,
            routes: RwLock::default(),
        }
    }
}

impl Metrics {
    /// Adds `by` to the counter `name` (a name from [`FAMILIES`]) with these labels.
    pub fn inc(&self, name: &str, labels: &str, by: u64) {
        match self.counters.get(name) {
            Some(family) => {
                family.get_or_create(&labels_of(name, labels)).inc_by(by);
            }
            None => unregistered(name),
        }
    }

    /// Records one observation of the histogram `name` (a name from [`FAMILIES`]).
    pub fn observe(&self, name: &str, labels: &str, value: f64) {
        match self.histograms.get(name) {
            Some(family) => family
                .get_or_create(&labels_of(name, labels))
                .observe(value),
            None => unregistered(name),
        }
    }

    /// A handle on the counter `name` with these labels, for a hot path that counts the same
    /// series again and again: counting through it skips the label parsing and the family's
    /// lookup of [`Metrics::inc`]. An unregistered name gives a detached counter (and fails in
    /// debug builds, as `inc` does).
    pub fn counter(&self, name: &str, labels: &str) -> Counter {
        match self.counters.get(name) {
            Some(family) => family.get_or_create(&labels_of(name, labels)).clone(),
            None => {
                unregistered(name);
                Counter::default()
            }
        }
    }

    /// Counts one routed request (`netmedic_collector_http_requests_total` by route template and
    /// status) and its latency (`netmedic_collector_http_request_duration_seconds` by route).
    /// The same as an `inc` and an `observe` with those labels, without formatting and parsing
    /// them per request: each route's handles are resolved on its first request.
    pub fn request(&self, route: &str, status: u16, secs: f64) {
        let routes = self.routes.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(r) = routes.get(route) {
            r.observe(self, route, status, secs);
            return;
        }
        drop(routes);
        let mut routes = self.routes.write().unwrap_or_else(PoisonError::into_inner);
        let r = routes
            .entry(route.to_owned())
            .or_insert_with(|| RouteMetrics {
                duration: self.histogram_handle(
                    "netmedic_collector_http_request_duration_seconds",
                    &route_labels(route),
                ),
                by_status: RwLock::default(),
            });
        r.observe(self, route, status, secs);
    }

    /// A handle on the histogram `name` with these labels (see [`Metrics::counter`]).
    pub fn histogram_handle(&self, name: &str, labels: &str) -> Histogram {
        match self.histograms.get(name) {
            Some(family) => family.get_or_create(&labels_of(name, labels)).clone(),
            None => {
                unregistered(name);
                latency_histogram()
            }
        }
    }

    pub fn set_queue_depth(&self, depth: u64) {
        self.queue_depth.set(depth);
    }

    /// The Prometheus text exposition format (version 0.0.4), see [`CONTENT_TYPE`].
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String with string label sets cannot fail; if it ever did, the scrape
        // gets what was written so far and the log says why.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            log::error!("encoding /metrics failed: {e}");
        }
        out
    }
}

impl RouteMetrics {
    fn observe(&self, metrics: &Metrics, route: &str, status: u16, secs: f64) {
        self.duration.observe(secs);
        let by_status = self
            .by_status
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some((_, c)) = by_status.iter().find(|(s, _)| *s == status) {
            c.inc();
            return;
        }
        drop(by_status);
        // A status code this route has not answered before (or another task's insert raced).
        let mut by_status = self
            .by_status
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let at = match by_status.iter().position(|(s, _)| *s == status) {
            Some(at) => at,
            None => {
                let labels = format!("{},status=\"{status}\"", route_labels(route));
                let c = metrics.counter("netmedic_collector_http_requests_total", &labels);
                by_status.push((status, c));
                by_status.len() - 1
            }
        };
        by_status[at].1.inc();
    }
}

/// `route="..."` with the route template escaped as a label value.
fn route_labels(route: &str) -> String {
    let mut out = String::with_capacity(route.len() + 8);
    out.push_str("route=\"");
    for c in route.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A counted name that no family exports: a programming error. Debug builds (the tests) stop
/// here; a release build logs it rather than failing the request that counted.
fn unregistered(name: &str) {
    let msg = format!("metric {name:?} is counted but not registered in metrics::FAMILIES");
    if cfg!(debug_assertions) {
        panic!("{msg}");
    }
    log::error!("{msg}");
}

/// The label set of a pre-formatted `k="v",...` string. A malformed string (a programming
/// error) is logged, and its sample counted without labels so that nothing is lost.
fn labels_of(name: &str, labels: &str) -> Labels {
    match parse_labels(labels) {
        Some(l) => l,
        None => {
            debug_assert!(false, "malformed labels {labels:?} for {name}");
            log::error!("malformed labels {labels:?} for metric {name}");
            Vec::new()
        }
    }
}

/// Parses `k="v",k2="v2"` (values may escape `\\`, `\"` and `\n`); `None` if malformed.
fn parse_labels(s: &str) -> Option<Labels> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"")?;
        let mut key_chars = key.chars();
        let first_ok = key_chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || !key_chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return None;
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()? {
                    (_, 'n') => value.push('\n'),
                    (_, c) => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        out.push((key.to_owned(), value));
        rest = &after[end + 1..];
        if !rest.is_empty() {
            rest = rest.strip_prefix(',')?;
            if rest.is_empty() {
                return None;
            }
        }
    }
    Some(out)
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
        m.set_queue_depth(3);
        let text = m.render();
        for want in [
            "# HELP netmedic_collector_heartbeats_total Heartbeats recorded.\n",
            "# TYPE netmedic_collector_heartbeats_total counter\n",
            "netmedic_collector_heartbeats_total 2\n",
            "netmedic_collector_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.0025\"} 0\n",
            "netmedic_collector_http_request_duration_seconds_bucket{route=\"/x\",le=\"0.005\"} 1\n",
            "netmedic_collector_http_request_duration_seconds_bucket{route=\"/x\",le=\"10\"} 1\n",
            "netmedic_collector_http_request_duration_seconds_bucket{route=\"/x\",le=\"+Inf\"} 1\n",
            "netmedic_collector_http_request_duration_seconds_count{route=\"/x\"} 1\n",
            "# TYPE netmedic_collector_write_queue_depth gauge\nnetmedic_collector_write_queue_depth 3\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
    }

    #[test]
    fn families_with_initial_label_sets_are_exported_at_zero() {
        let text = Metrics::default().render();
        let mut initial = 0;
        for spec in FAMILIES {
            let name = spec.name;
            let present = text.contains(&format!("# TYPE {name} "));
            assert_eq!(present, !spec.initial.is_empty(), "{name} in\n{text}");
            for labels in spec.initial {
                initial += 1;
                let sample = match (spec.kind, labels.is_empty()) {
                    (Kind::Counter, true) => format!("{name} 0\n"),
                    (Kind::Counter, false) => format!("{name}{{{labels}}} 0\n"),
                    (Kind::Histogram(_), true) => format!("{name}_count 0\n"),
                    (Kind::Histogram(_), false) => format!("{name}_count{{{labels}}} 0\n"),
                };
                assert!(text.contains(&sample), "{sample:?} missing from\n{text}");
            }
        }
        assert!(initial >= 6);
        assert!(text.contains(&format!("# TYPE {QUEUE_DEPTH} gauge\n")));
    }

    #[test]
    fn labels_keep_their_order_and_values_are_escaped() {
        let m = Metrics::default();
        m.inc(
            "netmedic_collector_http_requests_total",
            "route=\"/a/{id}\",status=\"200\"",
            1,
        );
        m.inc(
            "netmedic_collector_auth_denied_total",
            r#"reason="a\"b\\c""#,
            4,
        );
        let text = m.render();
        assert!(text.contains(
            "netmedic_collector_http_requests_total{route=\"/a/{id}\",status=\"200\"} 1\n"
        ));
        assert!(
            text.contains("netmedic_collector_auth_denied_total{reason=\"a\\\"b\\\\c\"} 4\n"),
            "{text}"
        );
    }

    #[test]
    fn request_handles_count_the_same_series_as_formatted_labels() {
        let by_handle = Metrics::default();
        let by_labels = Metrics::default();
        for (route, status) in [
            ("/a/{id}", 200),
            ("/a/{id}", 200),
            ("/a/{id}", 401),
            ("/b\"", 200),
        ] {
            by_handle.request(route, status, 0.003);
            let labels = format!("{},status=\"{status}\"", route_labels(route));
            by_labels.inc("netmedic_collector_http_requests_total", &labels, 1);
            by_labels.observe(
                "netmedic_collector_http_request_duration_seconds",
                &route_labels(route),
                0.003,
            );
        }
        // The same samples (a family's series come in hash order: compared sorted).
        let sorted = |t: String| {
            let mut lines: Vec<String> = t.lines().map(str::to_owned).collect();
            lines.sort();
            lines
        };
        let text = by_handle.render();
        assert_eq!(sorted(text.clone()), sorted(by_labels.render()));
        assert!(
            text.contains(
                "netmedic_collector_http_requests_total{route=\"/a/{id}\",status=\"200\"} 2\n"
            ),
            "{text}"
        );
        let hb = by_handle.counter("netmedic_collector_heartbeats_total", "");
        hb.inc();
        hb.inc();
        assert!(
            by_handle
                .render()
                .contains("netmedic_collector_heartbeats_total 2\n")
        );
    }

    #[test]
    fn malformed_label_strings_are_recognised() {
        for bad in [
            "route",
            "route=\"x",
            "route=\"x\"status=\"1\"",
            "route=\"x\",",
            "=\"x\"",
            "1a=\"x\"",
            "a b=\"x\"",
        ] {
            assert_eq!(parse_labels(bad), None, "{bad}");
        }
        assert_eq!(parse_labels(""), Some(vec![]));
        assert_eq!(
            parse_labels("a=\"\",b_2=\"x\\ny\""),
            Some(vec![
                ("a".into(), String::new()),
                ("b_2".into(), "x\ny".into())
            ])
        );
    }

    #[test]
    #[should_panic(expected = "counted but not registered")]
    fn counting_an_unregistered_name_fails_in_tests() {
        Metrics::default().inc("netmedic_collector_no_such_total", "", 1);
    }

    /// Every metric name the collector's code counts or observes is a registered family: a
    /// counter counted under a name `/metrics` does not export would be invisible. Reads the
    /// source so that paths no test exercises are covered too.
    #[test]
    fn every_name_counted_in_the_source_is_registered() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let this_file = src.join("metrics.rs");
        let mut files = vec![src];
        let mut seen = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                for entry in std::fs::read_dir(&path).unwrap() {
                    files.push(entry.unwrap().path());
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path == this_file {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (at, _) in text.match_indices("\"netmedic_collector_") {
                let name: String = text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                seen += 1;
                assert!(
                    FAMILIES.iter().any(|s| s.name == name) || name == QUEUE_DEPTH,
                    "{} counts {name}, which /metrics does not export",
                    path.display()
                );
            }
        }
        // The scan found the call sites (a scan that finds nothing proves nothing).
        assert!(seen >= 10, "only {seen} metric names found in the source");
    }
}
