//! Collector configuration: the TOML file format, its defaults, and validation that reports every
//! problem at once as `file:line:column: message`. One file per concern: `sections` (the validated
//! `[server]`, `[fleet]`, `[ingest]`, `[experience]`, `[outage]`, `[web]` tables), `storage`
//! (`[storage]` and its URL), `file` (the TOML shape with spans), `parse` (validation) and
//! `error` (located problems).

mod error;
mod file;
mod parse;
mod reason;
mod sections;
mod storage;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use error::{ConfigError, ConfigProblem};
pub use reason::ReasonRule;
pub use sections::{
    CxConfig, DEFAULT_OUTAGE_CATEGORIES, FleetConfig, IngestConfig, OutageConfig, ServerConfig,
    WebConfig, default_reason_rules,
};
pub use storage::{StorageConfig, StorageUrl};

use std::net::SocketAddr;
use std::path::Path;

/// Where the collector reads its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/netmedic/collector.toml";
/// Default `[server] listen_addr`.
pub const DEFAULT_LISTEN_ADDR: &str = "127.0.0.1:8440";
/// Default `[server] max_body_bytes` (1 MiB).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
/// Default `[storage] url`.
pub const DEFAULT_STORAGE_URL: &str = "sqlite:///var/lib/netmedic/collector.sqlite";
/// Default `[storage] busy_timeout_ms`.
pub const DEFAULT_BUSY_TIMEOUT_MS: u32 = 5000;
/// Default `[fleet] heartbeat_interval_secs`.
pub const DEFAULT_HEARTBEAT_INTERVAL_SECS: u32 = 300;
/// Default `[storage] max_connections` (PostgreSQL pool size).
pub const DEFAULT_MAX_CONNECTIONS: u32 = 8;
/// Default `[ingest] queue_capacity`.
pub const DEFAULT_QUEUE_CAPACITY: u32 = 4096;
/// Default `[ingest] max_group_requests`.
pub const DEFAULT_MAX_GROUP_REQUESTS: u32 = 512;
/// Default `[ingest] writers`.
pub const DEFAULT_WRITERS: u32 = 2;
/// Default `[ingest] retry_after_secs`.
pub const DEFAULT_RETRY_AFTER_SECS: u32 = 2;

/// The validated configuration the collector runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectorConfig {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub fleet: FleetConfig,
    pub ingest: IngestConfig,
    pub experience: CxConfig,
    pub outage: OutageConfig,
    pub web: WebConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen_addr: SocketAddr::from(([127, 0, 0, 1], 8440)),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
                metrics_requires_token: false,
                max_connections: 0,
                header_read_timeout_secs: 10,
                idle_timeout_secs: 60,
            },
            storage: StorageConfig {
                url: StorageUrl::Sqlite {
                    path: "/var/lib/netmedic/collector.sqlite".into(),
                },
                busy_timeout_ms: DEFAULT_BUSY_TIMEOUT_MS,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            },
            fleet: FleetConfig {
                heartbeat_interval_secs: DEFAULT_HEARTBEAT_INTERVAL_SECS,
            },
            ingest: IngestConfig {
                queue_capacity: DEFAULT_QUEUE_CAPACITY,
                max_group_requests: DEFAULT_MAX_GROUP_REQUESTS,
                writers: DEFAULT_WRITERS,
                retry_after_secs: DEFAULT_RETRY_AFTER_SECS,
            },
            experience: CxConfig {
                contact_window_hours: 72,
                survey_window_days: 30,
                cost_per_contact_cents: 1500,
                currency: "EUR".into(),
                reason_rules: default_reason_rules(),
                churn_top: 50,
                min_group_n: 10,
            },
            outage: OutageConfig {
                min_devices: 3,
                window_mins: 10,
                interval_secs: 30,
                advisory_secs: 900,
                categories: DEFAULT_OUTAGE_CATEGORIES.to_vec(),
            },
            web: WebConfig {
                session_idle_mins: 60,
                session_max_hours: 12,
                secure_cookies: false,
                max_failed_logins: 5,
                max_concurrent_logins: 2,
                max_logins_per_min: 120,
                max_logins_per_source_per_min: 30,
            },
        }
    }
}

impl CollectorConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(path, &text)
    }
}
