//! Collector configuration: the TOML file format, its defaults, and validation that reports every
//! problem at once as `file:line:column: message`.

use netmedic_proto::Category;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use toml::Spanned;

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

/// `[web]`: the NOC console's sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebConfig {
    /// A session unused this long ends (minutes).
    pub session_idle_mins: u32,
    /// A session ends this long after login, used or not (hours).
    pub session_max_hours: u32,
    /// Mark the session cookie `Secure` (set when the console is served over HTTPS, e.g.
    /// behind a TLS-terminating proxy).
    pub secure_cookies: bool,
    /// Failed logins for one user name before further attempts are refused for a minute.
    pub max_failed_logins: u32,
}

/// `[experience]`: linking incidents to contacts and surveys, and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CxConfig {
    /// A contact created this long after an incident's start is linked to it.
    pub contact_window_hours: u32,
    /// A survey answered this long after an incident's start is linked to it.
    pub survey_window_days: u32,
    /// Cost of one support contact, in the currency's minor unit (cents).
    pub cost_per_contact_cents: u64,
    pub currency: String,
    /// Contact reason (lower case) → incident category: a match makes a strong link.
    pub reason_categories: BTreeMap<String, Category>,
    /// Longest churn-risk list in a report.
    pub churn_top: u32,
}

/// `[outage]`: mass-outage correlation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageConfig {
    /// K: distinct devices behind one access node ...
    pub min_devices: u32,
    /// ... whose incidents start within T minutes make a network event.
    pub window_mins: u32,
    /// Seconds between correlation passes of each collector process.
    pub interval_secs: u32,
    /// Validity of the upstream-outage advisory after each pass.
    pub advisory_secs: u32,
    /// Incident categories that count.
    pub categories: Vec<Category>,
}

/// Default `[experience] reason_categories`.
pub fn default_reason_categories() -> BTreeMap<String, Category> {
    [
        ("no_internet", Category::NoInternet),
        ("no internet", Category::NoInternet),
        ("outage", Category::NoInternet),
        ("dns", Category::DnsFailure),
        ("dns_failure", Category::DnsFailure),
        ("websites_not_loading", Category::DnsFailure),
        ("slow", Category::SlowOrLossy),
        ("slow_internet", Category::SlowOrLossy),
        ("intermittent", Category::Intermittent),
        ("disconnects", Category::Intermittent),
        ("misconfiguration", Category::LocalMisconfig),
        ("line", Category::LineDegraded),
        ("line_quality", Category::LineDegraded),
        ("router", Category::DeviceHealth),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Default `[outage] categories`.
pub const DEFAULT_OUTAGE_CATEGORIES: [Category; 5] = [
    Category::NoInternet,
    Category::DnsFailure,
    Category::SlowOrLossy,
    Category::Intermittent,
    Category::LineDegraded,
];

/// The write path: a bounded queue in front of group-committing writer tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestConfig {
    /// Requests waiting for a writer; when full, new ones get 429 with `Retry-After`.
    pub queue_capacity: u32,
    /// Most requests one writer commits in one transaction.
    pub max_group_requests: u32,
    /// Writer tasks (PostgreSQL; SQLite has one writer whatever this says).
    pub writers: u32,
    /// `Retry-After` of a 429 (queue full).
    pub retry_after_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Address the HTTP API binds to. Port 0 picks a free port (tests).
    pub listen_addr: SocketAddr,
    /// Largest accepted request body; larger ones get a 413.
    pub max_body_bytes: usize,
    /// `/metrics` needs an API token (any role) when true; open on the listen address otherwise.
    pub metrics_requires_token: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub url: StorageUrl,
    /// How long a write waits for the database lock before the request gets a 503.
    pub busy_timeout_ms: u32,
    /// Connection pool size (PostgreSQL; SQLite uses a fixed small pool).
    pub max_connections: u32,
}

impl StorageConfig {
    /// Storage at `url` with default tuning (for `--db URL`).
    pub fn with_url(url: StorageUrl) -> Self {
        Self {
            url,
            busy_timeout_ms: DEFAULT_BUSY_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// Interval the collector asks agents to send heartbeats at.
    pub heartbeat_interval_secs: u32,
}

/// Which storage backend to use, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// One SQLite database file (created when missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database (`postgres://user:password@host:port/db?options`), shared by any
    /// number of collector processes.
    Postgres { url: String },
}

impl StorageUrl {
    /// Accepts `sqlite:///abs/path`, `sqlite://rel/path`, `sqlite:path` or a plain file path.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        let path = if let Some(rest) = s.strip_prefix("sqlite:") {
            rest.strip_prefix("//").unwrap_or(rest)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            if s.split_once("://").is_none_or(|(_, rest)| rest.is_empty()) {
                return Err("the PostgreSQL URL names no server or database".into());
            }
            return Ok(StorageUrl::Postgres { url: s.to_owned() });
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "unsupported storage scheme `{scheme}` (expected sqlite or postgres)"
            ));
        } else {
            s
        };
        if path.is_empty() {
            return Err("the SQLite URL has no file path".into());
        }
        if path.contains('?') || path == ":memory:" {
            return Err(
                "SQLite URL options and in-memory databases are not supported; give a file path"
                    .into(),
            );
        }
        Ok(StorageUrl::Sqlite { path: path.into() })
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            // Never print a password (logs, `check-config`).
            StorageUrl::Postgres { url } => f.write_str(&redact_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            server: ServerConfig {
                listen_addr: SocketAddr::from(([127, 0, 0, 1], 8440)),
                max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
                metrics_requires_token: false,
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
                reason_categories: default_reason_categories(),
                churn_top: 50,
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
            },
        }
    }
}

/// One problem in a config file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// Dotted path of the offending field, when known (e.g. `server.listen_addr`).
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read config file", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", render(path, problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<ConfigProblem>,
    },
}

impl ConfigError {
    /// The individual problems (empty for a read error).
    pub fn problems(&self) -> &[ConfigProblem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

fn render(path: &Path, problems: &[ConfigProblem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&path.display().to_string());
        if let Some((l, c)) = p.line_col {
            out.push_str(&format!(":{l}:{c}"));
        }
        out.push_str(": ");
        match &p.field {
            // Name the field unless the message already does (serde's "unknown field `x`").
            Some(f) if !p.message.contains(&format!("`{}`", last_key(f))) => {
                out.push_str(&format!("{f}: {}", p.message));
            }
            _ => out.push_str(&p.message),
        }
    }
    out
}

fn last_key(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

// ---- the file format -------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileConfig {
    server: FileServer,
    storage: FileStorage,
    fleet: FileFleet,
    ingest: FileIngest,
    experience: FileCx,
    outage: FileOutage,
    web: FileWeb,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileWeb {
    session_idle_mins: Spanned<u32>,
    session_max_hours: Spanned<u32>,
    secure_cookies: bool,
    max_failed_logins: Spanned<u32>,
}

impl Default for FileWeb {
    fn default() -> Self {
        let d = CollectorConfig::default().web;
        Self {
            session_idle_mins: Spanned::new(0..0, d.session_idle_mins),
            session_max_hours: Spanned::new(0..0, d.session_max_hours),
            secure_cookies: d.secure_cookies,
            max_failed_logins: Spanned::new(0..0, d.max_failed_logins),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileCx {
    contact_window_hours: Spanned<u32>,
    survey_window_days: Spanned<u32>,
    cost_per_contact_cents: Spanned<u64>,
    currency: Spanned<String>,
    reason_categories: Spanned<BTreeMap<String, String>>,
    churn_top: Spanned<u32>,
}

impl Default for FileCx {
    fn default() -> Self {
        let d = CollectorConfig::default().experience;
        Self {
            contact_window_hours: Spanned::new(0..0, d.contact_window_hours),
            survey_window_days: Spanned::new(0..0, d.survey_window_days),
            cost_per_contact_cents: Spanned::new(0..0, d.cost_per_contact_cents),
            currency: Spanned::new(0..0, d.currency),
            reason_categories: Spanned::new(
                0..0,
                d.reason_categories
                    .into_iter()
                    .map(|(k, v)| (k, v.as_str().to_owned()))
                    .collect(),
            ),
            churn_top: Spanned::new(0..0, d.churn_top),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileOutage {
    min_devices: Spanned<u32>,
    window_mins: Spanned<u32>,
    interval_secs: Spanned<u32>,
    advisory_secs: Spanned<u32>,
    categories: Spanned<Vec<String>>,
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
struct FileServer {
    listen_addr: Spanned<String>,
    max_body_bytes: Spanned<u64>,
    metrics_requires_token: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileStorage {
    url: Spanned<String>,
    busy_timeout_ms: Spanned<u32>,
    max_connections: Spanned<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct FileIngest {
    queue_capacity: Spanned<u32>,
    max_group_requests: Spanned<u32>,
    writers: Spanned<u32>,
    retry_after_secs: Spanned<u32>,
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
struct FileFleet {
    heartbeat_interval_secs: Spanned<u32>,
}

impl Default for FileServer {
    fn default() -> Self {
        Self {
            listen_addr: Spanned::new(0..0, DEFAULT_LISTEN_ADDR.into()),
            max_body_bytes: Spanned::new(0..0, DEFAULT_MAX_BODY_BYTES),
            metrics_requires_token: false,
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

/// 1-based (line, column in characters) of a byte offset in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// Best-effort dotted field path for a parse error at `offset`: the `[table]` header above it and
/// the key on its line.
fn field_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text.get(line_start..line_end)?;
    let key = line.split_once('=').map(|(k, _)| k.trim())?;
    if key.is_empty() || key.starts_with('#') || key.starts_with('[') {
        return None;
    }
    let key = key.trim_matches('"');
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| {
            l.trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
        });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_owned(),
    })
}

fn category_list() -> String {
    let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
    all.join(", ")
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
        let busy = *file.storage.busy_timeout_ms.get_ref();
        let busy_timeout_ms = if (1..=600_000).contains(&busy) {
            Some(busy)
        } else {
            problem(
                file.storage.busy_timeout_ms.span(),
                "storage.busy_timeout_ms",
                format!("{busy} is out of range (1..=600000)"),
            );
            None
        };
        let hb = *file.fleet.heartbeat_interval_secs.get_ref();
        let heartbeat_interval_secs = if (10..=86_400).contains(&hb) {
            Some(hb)
        } else {
            problem(
                file.fleet.heartbeat_interval_secs.span(),
                "fleet.heartbeat_interval_secs",
                format!("{hb} is out of range (10..=86400)"),
            );
            None
        };

        let mut ranged = |v: &Spanned<u32>, field: &str, range: std::ops::RangeInclusive<u32>| {
            let x = *v.get_ref();
            if range.contains(&x) {
                Some(x)
            } else {
                problem(
                    v.span(),
                    field,
                    format!("{x} is out of range ({}..={})", range.start(), range.end()),
                );
                None
            }
        };
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
        let ingest = match (
            queue_capacity,
            max_group_requests,
            writers,
            retry_after_secs,
        ) {
            (
                Some(queue_capacity),
                Some(max_group_requests),
                Some(writers),
                Some(retry_after_secs),
            ) => Some(IngestConfig {
                queue_capacity,
                max_group_requests,
                writers,
                retry_after_secs,
            }),
            _ => None,
        };

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
        let mut reason_categories = BTreeMap::new();
        for (reason, cat) in cx.reason_categories.get_ref() {
            match Category::parse(cat) {
                Some(c) => {
                    reason_categories.insert(reason.trim().to_ascii_lowercase(), c);
                }
                None => problem(
                    cx.reason_categories.span(),
                    "experience.reason_categories",
                    format!("{reason:?} = {cat:?}: not a category ({})", category_list()),
                ),
            }
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
        let experience = match (contact_window_hours, survey_window_days, churn_top) {
            (Some(contact_window_hours), Some(survey_window_days), Some(churn_top)) => {
                Some(CxConfig {
                    contact_window_hours,
                    survey_window_days,
                    cost_per_contact_cents: *cx.cost_per_contact_cents.get_ref(),
                    currency,
                    reason_categories,
                    churn_top,
                })
            }
            _ => None,
        };
        let outage = match (min_devices, window_mins, interval_secs, advisory_secs) {
            (Some(min_devices), Some(window_mins), Some(interval_secs), Some(advisory_secs)) => {
                Some(OutageConfig {
                    min_devices,
                    window_mins,
                    interval_secs,
                    advisory_secs,
                    categories,
                })
            }
            _ => None,
        };
        let web = match (session_idle_mins, session_max_hours, max_failed_logins) {
            (Some(session_idle_mins), Some(session_max_hours), Some(max_failed_logins)) => {
                Some(WebConfig {
                    session_idle_mins,
                    session_max_hours,
                    secure_cookies: file.web.secure_cookies,
                    max_failed_logins,
                })
            }
            _ => None,
        };
        if !problems.is_empty() {
            return Err(invalid(problems));
        }

        match (
            listen_addr,
            max_body_bytes,
            url,
            busy_timeout_ms,
            heartbeat_interval_secs,
            max_connections,
            ingest,
            experience,
            outage,
            web,
        ) {
            (
                Some(listen_addr),
                Some(max_body_bytes),
                Some(url),
                Some(busy_timeout_ms),
                Some(heartbeat_interval_secs),
                Some(max_connections),
                Some(ingest),
                Some(experience),
                Some(outage),
                Some(web),
            ) => Ok(CollectorConfig {
                server: ServerConfig {
                    listen_addr,
                    max_body_bytes,
                    metrics_requires_token: file.server.metrics_requires_token,
                },
                storage: StorageConfig {
                    url,
                    busy_timeout_ms,
                    max_connections,
                },
                fleet: FleetConfig {
                    heartbeat_interval_secs,
                },
                ingest,
                experience,
                outage,
                web,
            }),
            _ => Err(invalid(problems)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/collector.toml");

    fn parse(text: &str) -> Result<CollectorConfig, ConfigError> {
        CollectorConfig::parse(Path::new("collector.toml"), text)
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults() {
        let cfg = CollectorConfig::load(Path::new(EXAMPLE)).unwrap();
        assert_eq!(cfg, CollectorConfig::default());
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        assert_eq!(parse("").unwrap(), CollectorConfig::default());
    }

    #[test]
    fn values_are_read() {
        let cfg = parse(
            "[server]\nlisten_addr = \"[::1]:9000\"\nmax_body_bytes = 4096\n\
             [storage]\nurl = \"/tmp/x.sqlite\"\n[fleet]\nheartbeat_interval_secs = 60\n",
        )
        .unwrap();
        assert_eq!(cfg.server.listen_addr, "[::1]:9000".parse().unwrap());
        assert_eq!(cfg.server.max_body_bytes, 4096);
        assert_eq!(
            cfg.storage.url,
            StorageUrl::Sqlite {
                path: "/tmp/x.sqlite".into()
            }
        );
        assert_eq!(cfg.fleet.heartbeat_interval_secs, 60);
    }

    #[test]
    fn storage_urls() {
        let p = |s: &str| StorageUrl::parse(s);
        let sqlite = |s: &str| {
            Ok(StorageUrl::Sqlite {
                path: PathBuf::from(s),
            })
        };
        assert_eq!(p("sqlite:///var/lib/x.db"), sqlite("/var/lib/x.db"));
        assert_eq!(p("sqlite://rel.db"), sqlite("rel.db"));
        assert_eq!(p("sqlite:rel.db"), sqlite("rel.db"));
        assert_eq!(p("/plain/path.db"), sqlite("/plain/path.db"));
        assert_eq!(
            p("postgres://u:pw@127.0.0.1:5432/db"),
            Ok(StorageUrl::Postgres {
                url: "postgres://u:pw@127.0.0.1:5432/db".into()
            })
        );
        assert_eq!(
            p("postgres://u:pw@127.0.0.1:5432/db").unwrap().to_string(),
            "postgres://u:***@127.0.0.1:5432/db"
        );
        assert!(p("postgres://").is_err());
        assert!(p("mysql://h/db").unwrap_err().contains("mysql"));
        assert!(p("sqlite://").is_err());
        assert!(p("").is_err());
    }

    #[test]
    fn unknown_field_names_file_line_column_and_field() {
        let err = parse("# comment\n[server]\nlistn_addr = \"127.0.0.1:1\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("collector.toml:3:1: unknown field `listn_addr`, expected"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_names_the_field() {
        let err = parse("[server]\nmax_body_bytes = \"big\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("collector.toml:2:18: "), "{msg}");
        assert!(msg.contains("server.max_body_bytes"), "{msg}");
    }

    #[test]
    fn syntax_error_has_a_position() {
        let err = parse("[server\n").unwrap_err();
        assert!(err.to_string().starts_with("collector.toml:1:"), "{err}");
    }

    #[test]
    fn all_value_problems_are_reported_at_once() {
        let err = parse(
            "[server]\nlisten_addr = \"localhost\"\nmax_body_bytes = 1\n\
             [storage]\nurl = \"mysql://db/x\"\n[fleet]\nheartbeat_interval_secs = 0\n",
        )
        .unwrap_err();
        let msg = err.to_string();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(lines.len(), 4, "{msg}");
        assert!(
            lines[0].starts_with("collector.toml:2:15: server.listen_addr: \"localhost\""),
            "{msg}"
        );
        assert!(
            lines[1].starts_with("collector.toml:3:18: server.max_body_bytes:"),
            "{msg}"
        );
        assert!(
            lines[2].starts_with("collector.toml:5:7: storage.url:"),
            "{msg}"
        );
        assert!(
            lines[3].starts_with("collector.toml:7:27: fleet.heartbeat_interval_secs:"),
            "{msg}"
        );
        assert_eq!(err.problems().len(), 4);
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = CollectorConfig::load(Path::new("/nonexistent/netmedic/c.toml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("/nonexistent/netmedic/c.toml: cannot read")
        );
    }
}
