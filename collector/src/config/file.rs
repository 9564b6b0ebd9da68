//! The TOML file format as serde reads it: every value keeps its span for error messages, and a
//! missing value takes the default with an empty (0..0) span.

use super::{
    CollectorConfig, DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_HEARTBEAT_INTERVAL_SECS, DEFAULT_LISTEN_ADDR,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_GROUP_REQUESTS,
    DEFAULT_QUEUE_CAPACITY, DEFAULT_RETRY_AFTER_SECS, DEFAULT_STORAGE_URL, DEFAULT_WRITERS,
};
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileConfig {
    pub(super) server: FileServer,
    pub(super) storage: FileStorage,
    pub(super) fleet: FileFleet,
    pub(super) ingest: FileIngest,
    pub(super) experience: FileCx,
    pub(super) outage: FileOutage,
    pub(super) web: FileWeb,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileWeb {
    pub(super) session_idle_mins: Spanned<u32>,
    pub(super) session_max_hours: Spanned<u32>,
    pub(super) secure_cookies: bool,
    pub(super) max_failed_logins: Spanned<u32>,
    pub(super) max_concurrent_logins: Spanned<u32>,
    pub(super) max_logins_per_min: Spanned<u32>,
    pub(super) max_logins_per_source_per_min: Spanned<u32>,
}

impl Default for FileWeb {
    fn default() -> Self {
        let d = CollectorConfig::default().web;
        Self {
            session_idle_mins: Spanned::new(0..0, d.session_idle_mins),
            session_max_hours: Spanned::new(0..0, d.session_max_hours),
            secure_cookies: d.secure_cookies,
            max_failed_logins: Spanned::new(0..0, d.max_failed_logins),
            max_concurrent_logins: Spanned::new(0..0, d.max_concurrent_logins),
            max_logins_per_min: Spanned::new(0..0, d.max_logins_per_min),
            max_logins_per_source_per_min: Spanned::new(0..0, d.max_logins_per_source_per_min),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileCx {
    pub(super) contact_window_hours: Spanned<u32>,
    pub(super) survey_window_days: Spanned<u32>,
    pub(super) cost_per_contact_cents: Spanned<u64>,
    pub(super) currency: Spanned<String>,
    pub(super) reason_rules: Spanned<BTreeMap<String, Vec<String>>>,
    pub(super) churn_top: Spanned<u32>,
    pub(super) min_group_n: Spanned<u32>,
}

impl Default for FileCx {
    fn default() -> Self {
        let d = CollectorConfig::default().experience;
        Self {
            contact_window_hours: Spanned::new(0..0, d.contact_window_hours),
            survey_window_days: Spanned::new(0..0, d.survey_window_days),
            cost_per_contact_cents: Spanned::new(0..0, d.cost_per_contact_cents),
            currency: Spanned::new(0..0, d.currency),
            reason_rules: Spanned::new(
                0..0,
                d.reason_rules
                    .into_iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v))
                    .collect(),
            ),
            churn_top: Spanned::new(0..0, d.churn_top),
            min_group_n: Spanned::new(0..0, d.min_group_n),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileOutage {
    pub(super) min_devices: Spanned<u32>,
    pub(super) window_mins: Spanned<u32>,
    pub(super) interval_secs: Spanned<u32>,
    pub(super) advisory_secs: Spanned<u32>,
    pub(super) categories: Spanned<Vec<String>>,
}

impl Default for FileOutage {
    fn default() -> Self {
        let d = CollectorConfig::default().outage;
        Self {
            min_devices: Spanned::new(0..0, d.min_devices),
            window_mins: Spanned::new(0..0, d.window_mins),
            interval_secs: Spanned::new(0..0, d.interval_secs),
            advisory_secs: Spanned::new(0..0, d.advisory_secs),
            categories: Spanned::new(
                0..0,
                d.categories.iter().map(|c| c.as_str().to_owned()).collect(),
            ),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileServer {
    pub(super) listen_addr: Spanned<String>,
    pub(super) max_body_bytes: Spanned<u64>,
    pub(super) metrics_requires_token: bool,
    pub(super) max_connections: Spanned<u32>,
    pub(super) header_read_timeout_secs: Spanned<u32>,
    pub(super) idle_timeout_secs: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileStorage {
    pub(super) url: Spanned<String>,
    pub(super) busy_timeout_ms: Spanned<u32>,
    pub(super) max_connections: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileIngest {
    pub(super) queue_capacity: Spanned<u32>,
    pub(super) max_group_requests: Spanned<u32>,
    pub(super) writers: Spanned<u32>,
    pub(super) retry_after_secs: Spanned<u32>,
}

impl Default for FileIngest {
    fn default() -> Self {
        Self {
            queue_capacity: Spanned::new(0..0, DEFAULT_QUEUE_CAPACITY),
            max_group_requests: Spanned::new(0..0, DEFAULT_MAX_GROUP_REQUESTS),
            writers: Spanned::new(0..0, DEFAULT_WRITERS),
            retry_after_secs: Spanned::new(0..0, DEFAULT_RETRY_AFTER_SECS),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct FileFleet {
    pub(super) heartbeat_interval_secs: Spanned<u32>,
}

impl Default for FileServer {
    fn default() -> Self {
        let d = CollectorConfig::default().server;
        Self {
            listen_addr: Spanned::new(0..0, DEFAULT_LISTEN_ADDR.into()),
            max_body_bytes: Spanned::new(0..0, DEFAULT_MAX_BODY_BYTES),
            metrics_requires_token: false,
            max_connections: Spanned::new(0..0, d.max_connections),
            header_read_timeout_secs: Spanned::new(0..0, d.header_read_timeout_secs),
            idle_timeout_secs: Spanned::new(0..0, d.idle_timeout_secs),
        }
    }
}

impl Default for FileStorage {
    fn default() -> Self {
        Self {
            url: Spanned::new(0..0, DEFAULT_STORAGE_URL.into()),
            busy_timeout_ms: Spanned::new(0..0, DEFAULT_BUSY_TIMEOUT_MS),
            max_connections: Spanned::new(0..0, DEFAULT_MAX_CONNECTIONS),
        }
    }
}

impl Default for FileFleet {
    fn default() -> Self {
        Self {
            heartbeat_interval_secs: Spanned::new(0..0, DEFAULT_HEARTBEAT_INTERVAL_SECS),
        }
    }
}
