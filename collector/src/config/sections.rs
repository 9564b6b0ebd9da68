//! The validated sections of `collector.toml` other than `[storage]`, and their defaults.

use netmedic_proto::Category;
use std::collections::BTreeMap;
use std::net::SocketAddr;

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
    /// Password checks (Argon2id, ≈ 19 MiB each) running at once; more wait briefly, then get
    /// 503 with `Retry-After`.
    pub max_concurrent_logins: u32,
    /// Login attempts per minute for the whole process (excess: 429 with `Retry-After`).
    pub max_logins_per_min: u32,
    /// Login attempts per minute from one peer address.
    pub max_logins_per_source_per_min: u32,
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
    /// Incident category → reason rules: a contact whose reason matches one of its incident's
    /// category's rules is a strong link (see [`ReasonRule`](super::ReasonRule)).
    pub reason_rules: BTreeMap<Category, Vec<String>>,
    /// Longest churn-risk list in a report.
    pub churn_top: u32,
    /// Groups with fewer answers show "too few" instead of a score.
    pub min_group_n: u32,
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

/// Default `[experience] reason_rules`: common phrasings of each problem. A rule is words that
/// must all occur in a contact's reason (any order, case-insensitive); a trailing `*` makes a
/// word a prefix (`load*` matches "load", "loads", "loading").
pub fn default_reason_rules() -> BTreeMap<Category, Vec<String>> {
    let rules: [(Category, &[&str]); 10] = [
        (
            Category::NoInternet,
            &[
                "no internet",
                "internet down",
                "internet not working",
                "no connection",
                "no connectivity",
                "cannot connect",
                "can't connect",
                "offline",
                "outage",
                "no service",
            ],
        ),
        (
            Category::DnsFailure,
            &[
                "dns",
                "website* load*",
                "website* open*",
                "website* reach*",
                "site* load*",
                "page* load*",
                "web page*",
                "name resolution",
                "resolv*",
                "browser*",
            ],
        ),
        (
            Category::SlowOrLossy,
            &[
                "slow*",
                "speed*",
                "lag*",
                "buffer*",
                "latency",
                "packet loss",
                "bandwidth",
            ],
        ),
        (
            Category::Intermittent,
            &[
                "intermittent*",
                "disconnect*",
                "drop*",
                "unstable",
                "on and off",
                "comes and goes",
                "reconnect*",
                "flapping",
            ],
        ),
        (
            Category::LocalMisconfig,
            &[
                "misconfig*",
                "config*",
                "setting*",
                "setup",
                "set up",
                "password",
            ],
        ),
        (
            Category::LineDegraded,
            &[
                "line*", "noise", "crackl*", "copper", "fiber", "fibre", "sync*",
            ],
        ),
        (
            Category::DeviceHealth,
            &[
                "router*",
                "modem*",
                "cpe",
                "reboot*",
                "restart*",
                "overheat*",
                "hardware",
            ],
        ),
        (
            Category::LanDegraded,
            &[
                "ip conflict",
                "address conflict",
                "duplicate ip",
                "lan",
                "ethernet",
                "home network",
                "local network",
                "wired",
            ],
        ),
        (
            Category::Ipv6Degraded,
            &["ipv6", "ip6", "dual stack", "dual-stack"],
        ),
        (
            Category::WifiDegraded,
            &[
                "wifi", "wi-fi", "wireless", "wlan", "ssid", "hotspot", "signal",
            ],
        ),
    ];
    rules
        .into_iter()
        .map(|(c, r)| (c, r.iter().map(|s| (*s).to_owned()).collect()))
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
    /// Most connections open at once; 0 means min(open-file limit − 64, 10,000). Further
    /// clients wait in the listen backlog while idle keep-alive connections are closed.
    pub max_connections: u32,
    /// A client must send a request's complete header within this time.
    pub header_read_timeout_secs: u32,
    /// A connection with no traffic this long is closed (after any request in flight).
    pub idle_timeout_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetConfig {
    /// Interval the collector asks agents to send heartbeats at.
    pub heartbeat_interval_secs: u32,
}
