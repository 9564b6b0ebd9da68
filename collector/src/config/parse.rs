//! Validation of the parsed file into a [`CollectorConfig`]: every problem is collected, each with
//! its location, before anything is refused.

use super::error::{field_at, line_col};
use super::file::FileConfig;
use super::{
    CollectorConfig, ConfigError, ConfigProblem, CxConfig, FleetConfig, IngestConfig, OutageConfig,
    ServerConfig, StorageConfig, StorageUrl, WebConfig,
};
use netmedic_proto::Category;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::Path;
use toml::Spanned;

fn category_list() -> String {
    let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    all.join(", ")
}
impl CollectorConfig {
    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let invalid = |problems| ConfigError::Invalid {
            path: path.to_owned(),
            problems,
        };
        let file: FileConfig = toml::from_str(text).map_err(|e| {
            let span = e.span();
            invalid(vec![ConfigProblem {
                line_col: span.as_ref().map(|s| line_col(text, s.start)),
                field: span.as_ref().and_then(|s| field_at(text, s.start)),
                message: e.message().trim_end().to_owned(),
            }])
        })?;

        let mut problems = Vec::new();
        let mut problem = |span: Range<usize>, field: &str, message: String| {
            problems.push(ConfigProblem {
                // A 0..0 span is a default value, which has no place in the file.
                line_col: (span != (0..0)).then(|| line_col(text, span.start)),
                field: Some(field.to_owned()),
                message,
            });
        };

        let listen_addr = match file.server.listen_addr.get_ref().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                problem(
                    file.server.listen_addr.span(),
                    "server.listen_addr",
                    format!(
                        "{:?} is not an IP address and port, e.g. \"127.0.0.1:8440\" or \"[::]:8440\"",
                        file.server.listen_addr.get_ref()
                    ),
                );
                None
            }
        };
        let body = *file.server.max_body_bytes.get_ref();
        let max_body_bytes = match usize::try_from(body) {
            Ok(b) if (1024..=64 * 1024 * 1024).contains(&b) => Some(b),
            _ => {
                problem(
                    file.server.max_body_bytes.span(),
                    "server.max_body_bytes",
                    format!("{body} is out of range (1024..=67108864)"),
                );
                None
            }
        };
        let url = match StorageUrl::parse(file.storage.url.get_ref()) {
            Ok(u) => Some(u),
            Err(msg) => {
                problem(file.storage.url.span(), "storage.url", msg);
                None
            }
        };
        // The value as written; one out of range is a problem, and any problem refuses the
        // file before a value is used.
        let mut ranged = |v: &Spanned<u32>, field: &str, range: std::ops::RangeInclusive<u32>| {
            let x = *v.get_ref();
            if !range.contains(&x) {
                problem(
                    v.span(),
                    field,
                    format!("{x} is out of range ({}..={})", range.start(), range.end()),
                );
            }
            x
        };
        let busy_timeout_ms = ranged(
            &file.storage.busy_timeout_ms,
            "storage.busy_timeout_ms",
            1..=600_000,
        );
        let heartbeat_interval_secs = ranged(
            &file.fleet.heartbeat_interval_secs,
            "fleet.heartbeat_interval_secs",
            10..=86_400,
        );

        let max_connections = ranged(
            &file.storage.max_connections,
            "storage.max_connections",
            1..=1000,
        );
        let queue_capacity = ranged(
            &file.ingest.queue_capacity,
            "ingest.queue_capacity",
            1..=1_000_000,
        );
        let max_group_requests = ranged(
            &file.ingest.max_group_requests,
            "ingest.max_group_requests",
            1..=10_000,
        );
        let writers = ranged(&file.ingest.writers, "ingest.writers", 1..=64);
        let retry_after_secs = ranged(
            &file.ingest.retry_after_secs,
            "ingest.retry_after_secs",
            1..=3600,
        );

        let cx = &file.experience;
        let contact_window_hours = ranged(
            &cx.contact_window_hours,
            "experience.contact_window_hours",
            1..=24 * 90,
        );
        let survey_window_days = ranged(
            &cx.survey_window_days,
            "experience.survey_window_days",
            1..=365,
        );
        let churn_top = ranged(&cx.churn_top, "experience.churn_top", 1..=10_000);
        let ot = &file.outage;
        let min_devices = ranged(&ot.min_devices, "outage.min_devices", 2..=100_000);
        let window_mins = ranged(&ot.window_mins, "outage.window_mins", 1..=1440);
        let interval_secs = ranged(&ot.interval_secs, "outage.interval_secs", 1..=3600);
        let advisory_secs = ranged(&ot.advisory_secs, "outage.advisory_secs", 10..=86_400);
        let session_idle_mins = ranged(
            &file.web.session_idle_mins,
            "web.session_idle_mins",
            1..=7 * 24 * 60,
        );
        let session_max_hours = ranged(
            &file.web.session_max_hours,
            "web.session_max_hours",
            1..=30 * 24,
        );
        let max_failed_logins = ranged(
            &file.web.max_failed_logins,
            "web.max_failed_logins",
            1..=1000,
        );
        let max_concurrent_logins = ranged(
            &file.web.max_concurrent_logins,
            "web.max_concurrent_logins",
            1..=64,
        );
        let max_logins_per_min = ranged(
            &file.web.max_logins_per_min,
            "web.max_logins_per_min",
            1..=100_000,
        );
        let max_logins_per_source_per_min = ranged(
            &file.web.max_logins_per_source_per_min,
            "web.max_logins_per_source_per_min",
            1..=100_000,
        );
        let srv = &file.server;
        let server_max_connections = ranged(
            &srv.max_connections,
            "server.max_connections",
            0..=1_000_000,
        );
        let header_read_timeout_secs = ranged(
            &srv.header_read_timeout_secs,
            "server.header_read_timeout_secs",
            1..=300,
        );
        let idle_timeout_secs =
            ranged(&srv.idle_timeout_secs, "server.idle_timeout_secs", 1..=3600);
        let min_group_n = ranged(&cx.min_group_n, "experience.min_group_n", 1..=100_000);
        let mut reason_rules = BTreeMap::new();
        for (cat, rules) in cx.reason_rules.get_ref() {
            let Some(c) = Category::parse(cat) else {
                problem(
                    cx.reason_rules.span(),
                    "experience.reason_rules",
                    format!("{cat:?} is not a category ({})", category_list()),
                );
                continue;
            };
            for rule in rules {
                if let Err(e) = super::ReasonRule::parse(rule) {
                    problem(
                        cx.reason_rules.span(),
                        "experience.reason_rules",
                        format!("{cat}: {rule:?}: {e}"),
                    );
                }
            }
            reason_rules.insert(c, rules.clone());
        }
        let mut categories = Vec::new();
        for cat in ot.categories.get_ref() {
            match Category::parse(cat) {
                Some(c) if !categories.contains(&c) => categories.push(c),
                Some(_) => {}
                None => problem(
                    ot.categories.span(),
                    "outage.categories",
                    format!("{cat:?} is not a category ({})", category_list()),
                ),
            }
        }
        if categories.is_empty() && ot.categories.get_ref().is_empty() {
            problem(
                ot.categories.span(),
                "outage.categories",
                "an empty list never means \"all\": name the categories".into(),
            );
        }
        let currency = cx.currency.get_ref().trim().to_owned();
        if currency.is_empty()
            || currency.len() > 8
            || !currency.chars().all(|c| c.is_ascii_alphabetic())
        {
            problem(
                cx.currency.span(),
                "experience.currency",
                format!("{currency:?} is not a currency code such as \"EUR\""),
            );
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }

        let (Some(listen_addr), Some(max_body_bytes), Some(url)) =
            (listen_addr, max_body_bytes, url)
        else {
            return Err(invalid(problems));
        };
        Ok(CollectorConfig {
            server: ServerConfig {
                listen_addr,
                max_body_bytes,
                metrics_requires_token: file.server.metrics_requires_token,
                max_connections: server_max_connections,
                header_read_timeout_secs,
                idle_timeout_secs,
            },
            storage: StorageConfig {
                url,
                busy_timeout_ms,
                max_connections,
            },
            fleet: FleetConfig {
                heartbeat_interval_secs,
            },
            ingest: IngestConfig {
                queue_capacity,
                max_group_requests,
                writers,
                retry_after_secs,
            },
            experience: CxConfig {
                contact_window_hours,
                survey_window_days,
                cost_per_contact_cents: *cx.cost_per_contact_cents.get_ref(),
                currency,
                reason_rules,
                churn_top,
                min_group_n,
            },
            outage: OutageConfig {
                min_devices,
                window_mins,
                interval_secs,
                advisory_secs,
                categories,
            },
            web: WebConfig {
                session_idle_mins,
                session_max_hours,
                secure_cookies: file.web.secure_cookies,
                max_failed_logins,
                max_concurrent_logins,
                max_logins_per_min,
                max_logins_per_source_per_min,
            },
        })
    }
}
