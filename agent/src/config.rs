//! `agent.toml`: the agent's configuration, loaded and validated up front.
//!
//! Every struct refuses unknown fields, durations carry their unit in the name, and a bad file is
//! reported as `FILE:LINE:COLUMN: problem` naming the field. Semantic checks run after parsing and
//! report every problem at once, so an engineer fixes a config in one round.

use crate::checks;
use serde::Deserialize;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Default location on a CPE.
pub const DEFAULT_PATH: &str = "/etc/netmedic/agent.toml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub agent: AgentSection,
    pub collector: CollectorSection,
    pub wan: WanSection,
    #[serde(default)]
    pub checks: ChecksSection,
    #[serde(default)]
    pub spool: SpoolSection,
    #[serde(default)]
    pub heartbeat: HeartbeatSection,
    /// `[healing]`: safety settings and action options of the healer (see `crate::heal`).
    #[serde(default)]
    pub healing: crate::heal::HealingConfig,
    /// `[[playbook]]` tables: ladders per check and causes, overriding the built-in ones.
    #[serde(default, rename = "playbook")]
    pub playbooks: Vec<crate::heal::PlaybookConfig>,
}

/// How the healer may act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Detect, heal and report.
    Enforce,
    /// Detect, plan and report the actions it would take; change nothing.
    DryRun,
    /// Detect and report only; no remediation is planned.
    Off,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry_run",
            Mode::Off => "off",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Device id as enrolled at the collector (`netmedic-collector device add ID`).
    pub id: String,
    /// Where the spool and persisted state live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Firmware version reported in heartbeats (free text).
    #[serde(default)]
    pub firmware_version: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorSection {
    /// Base URL, e.g. `https://collector.isp.example:8440`.
    pub url: String,
    /// File holding this device's bearer token (mode 0600). Empty: send no token.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default = "default_request_timeout_secs")]
    pub request_timeout_secs: u64,
    /// Most events sent in one report batch.
    #[serde(default = "default_batch_max_events")]
    pub batch_max_events: usize,
    /// Ceiling of the exponential retry backoff.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
    /// The first delivery and heartbeat wait a random time in `[0, this]` after start, so a
    /// fleet coming back after an outage does not arrive all at once. 0 disables it.
    #[serde(default = "default_start_delay_max_secs")]
    pub start_delay_max_secs: u64,
    /// PEM file of the CA that signed the collector's certificate. When set, only this CA is
    /// trusted (pinned); otherwise the system's roots are.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key_file`.
    #[serde(default)]
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file` (mode 0600, like the token).
    #[serde(default)]
    pub client_key_file: Option<PathBuf>,
}

/// `[heartbeat]`: the small periodic "I am alive" report; its reply carries the advisories.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatSection {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Mean period between heartbeats.
    #[serde(default = "default_heartbeat_interval_secs")]
    pub interval_secs: u64,
    /// Each period is `interval_secs` ± a uniform random amount up to this.
    #[serde(default = "default_heartbeat_jitter_secs")]
    pub jitter_secs: u64,
}

impl Default for HeartbeatSection {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: default_heartbeat_interval_secs(),
            jitter_secs: default_heartbeat_jitter_secs(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WanSection {
    /// The WAN interface name, e.g. `wan`, `eth0.2`, `pppoe-wan`.
    pub interface: String,
    /// Lease file written by the DHCP client hook (`KEY=VALUE` lines; `router=` gives the gateway).
    #[serde(default)]
    pub lease_file: Option<PathBuf>,
    /// Provisioned gateway, used when no lease names one (static WAN).
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Pidfile of the WAN's DHCP client (udhcpc `-p`), which `renew_dhcp` signals. Unset: the
    /// client is found by `healing.renew_dhcp.process` in the agent's network namespace.
    #[serde(default)]
    pub dhcp_pidfile: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSection {
    /// Most events kept on disk awaiting delivery.
    #[serde(default = "default_spool_max_events")]
    pub max_events: usize,
    /// Most bytes kept on disk awaiting delivery.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

impl Default for SpoolSection {
    fn default() -> Self {
        Self {
            max_events: default_spool_max_events(),
            max_bytes: default_spool_max_bytes(),
        }
    }
}

/// `[checks.*]`: one table per check of the catalogue (see `crate::checks`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChecksSection {
    pub link: checks::link::LinkConfig,
    pub wan_address: checks::wan_address::WanAddressConfig,
    pub default_route: checks::default_route::DefaultRouteConfig,
    pub icmp: checks::icmp::IcmpConfig,
    pub dns: checks::dns::DnsConfig,
    pub mtu: checks::mtu::MtuConfig,
    pub http: checks::http::HttpConfig,
    pub conntrack: checks::conntrack::ConntrackConfig,
    pub resources: checks::resources::ResourcesConfig,
    pub service: checks::service::ServiceConfig,
    pub clock: checks::clock::ClockConfig,
    pub modem_snmp: checks::modem_snmp::ModemSnmpConfig,
    pub lan_dhcp: checks::lan_dhcp::LanDhcpConfig,
    pub lan_arp: checks::lan_arp::LanArpConfig,
    pub wan6: checks::wan6::Wan6Config,
    pub icmp6: checks::icmp6::Icmp6Config,
    pub dns6: checks::dns6::Dns6Config,
    pub mtu6: checks::mtu6::Mtu6Config,
    pub wifi_ap: checks::wifi_ap::WifiApConfig,
    pub wifi_events: checks::wifi_events::WifiEventsConfig,
}

impl ChecksSection {
    fn problems(&self, out: &mut Vec<Problem>) {
        self.link.problems(out);
        self.wan_address.problems(out);
        self.default_route.problems(out);
        self.icmp.problems(out);
        self.dns.problems(out);
        self.mtu.problems(out);
        self.http.problems(out);
        self.conntrack.problems(out);
        self.resources.problems(out);
        self.service.problems(out);
        self.clock.problems(out);
        self.modem_snmp.problems(out);
        self.lan_dhcp.problems(out);
        self.lan_arp.problems(out);
        self.wan6.problems(out);
        self.icmp6.problems(out);
        self.dns6.problems(out);
        self.mtu6.problems(out);
        if self.wan6.enabled && self.wan_address.require_ipv6 {
            out.push(Problem::new(
                "checks.wan_address.require_ipv6",
                "superseded by [checks.wan6] (require_global_address), which is enabled: set require_ipv6 = false so a missing IPv6 address is one incident, not two",
            ));
        }
        self.wifi_ap.problems(out);
        self.wifi_events.problems(out);
    }
}

/// Detection hysteresis of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive failed runs that open an incident.
    pub fail_threshold: u32,
    /// Consecutive passing runs that resolve it.
    pub ok_threshold: u32,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/netmedic")
}
fn default_mode() -> Mode {
    Mode::Enforce
}
fn default_request_timeout_secs() -> u64 {
    10
}
fn default_batch_max_events() -> usize {
    100
}
fn default_max_backoff_secs() -> u64 {
    300
}
fn default_start_delay_max_secs() -> u64 {
    30
}
fn default_true() -> bool {
    true
}
fn default_heartbeat_interval_secs() -> u64 {
    300
}
fn default_heartbeat_jitter_secs() -> u64 {
    30
}
fn default_spool_max_events() -> usize {
    1000
}
fn default_spool_max_bytes() -> u64 {
    1024 * 1024
}

/// A config that could not be loaded: where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// Syntax or type error, located.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed but wrong; every problem is listed.
    #[error("{path}: invalid configuration:\n{}", .problems.iter().map(|p| p.located(path)).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

/// One semantic problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
    /// 1-based line and column of the field in the file, when it is written there (filled in
    /// by [`AgentConfig::parse`]; a default value has no place in the file).
    pub at: Option<(usize, usize)>,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            at: None,
        }
    }

    /// One line of an error report: `FILE:LINE:COLUMN: field `F`: problem` when located,
    /// `  - F: problem` when not.
    pub fn located(&self, path: &str) -> String {
        match self.at {
            Some((line, column)) => format!(
                "{path}:{line}:{column}: field `{}`: {}",
                self.field, self.message
            ),
            None => format!("  - {self}"),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Dotted path of the key defined on `line` (1-based), from the nearest `[table]` header above.
fn field_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?;
    let key = here.split_once('=')?.0.trim().trim_matches('"');
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    let table = lines[..line - 1].iter().rev().find_map(|l| {
        let l = l.trim();
        (l.starts_with('[') && !l.starts_with("[[")).then(|| l.trim_matches(['[', ']']).trim())
    });
    Some(match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key.to_string(),
    })
}

/// Where the field `path` (as in [`Problem::field`]: `checks.dns.interval_secs`,
/// `playbook[2].causes[0]`) is written in `text`: the key for a table entry, the element for
/// an array index. `None` when the text does not parse or the field is not written at all.
fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    locate_offset(text, path).map(|offset| line_col(text, offset))
}

fn locate_offset(text: &str, path: &str) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let root = DeValue::Table(DeTable::parse(text).ok()?.into_inner());
    let mut value = &root;
    let mut at = None;
    for segment in path.split('.') {
        let mut parts = segment.split('[');
        let key = parts.next()?;
        let DeValue::Table(t) = value else {
            return at;
        };
        let Some((k, v)) = t.iter().find(|(k, _)| k.get_ref().as_ref() == key) else {
            return at;
        };
        at = Some(k.span().start);
        value = v.get_ref();
        for index in parts {
            let i: usize = index.strip_suffix(']')?.parse().ok()?;
            let DeValue::Array(a) = value else {
                return at;
            };
            let Some(item) = a.get(i) else {
                return at;
            };
            at = Some(item.span().start);
            value = item.get_ref();
        }
    }
    at
}

impl AgentConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let cfg: AgentConfig = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            let mut message = e.message().trim().to_string();
            if let Some(field) = field_at(text, line).filter(|f| !message.contains(f.as_str())) {
                message = format!("field `{field}`: {message}");
            }
            ConfigError::Parse {
                path: origin.to_string(),
                line,
                column,
                message,
            }
        })?;
        let mut problems = cfg.problems();
        for p in &mut problems {
            p.at = locate(text, &p.field);
        }
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(ConfigError::Invalid {
                path: origin.to_string(),
                problems,
            })
        }
    }

    /// Every semantic problem, not just the first.
    pub fn problems(&self) -> Vec<Problem> {
        let mut p = Vec::new();
        let mut bad = |field: &str, message: String| p.push(Problem::new(field, message));
        let id = &self.agent.id;
        if id.is_empty()
            || id.len() > 64
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            bad(
                "agent.id",
                format!("{id:?} must be 1-64 characters of A-Z a-z 0-9 . _ : -"),
            );
        }
        if self.agent.state_dir.as_os_str().is_empty() {
            bad("agent.state_dir", "must not be empty".into());
        }
        let url = &self.collector.url;
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() < 10 {
            bad(
                "collector.url",
                format!("{url:?} must be an http:// or https:// URL"),
            );
        }
        if self.collector.request_timeout_secs == 0 || self.collector.request_timeout_secs > 300 {
            bad(
                "collector.request_timeout_secs",
                "must be between 1 and 300".into(),
            );
        }
        if self.collector.batch_max_events == 0 || self.collector.batch_max_events > 500 {
            bad(
                "collector.batch_max_events",
                "must be between 1 and 500 (the collector's batch limit)".into(),
            );
        }
        if self.collector.max_backoff_secs == 0 {
            bad("collector.max_backoff_secs", "must be at least 1".into());
        }
        if self.collector.start_delay_max_secs > 3600 {
            bad(
                "collector.start_delay_max_secs",
                "must be between 0 and 3600".into(),
            );
        }
        let c = &self.collector;
        for (field, value) in [
            ("collector.token_file", &c.token_file),
            ("collector.ca_file", &c.ca_file),
            ("collector.client_cert_file", &c.client_cert_file),
            ("collector.client_key_file", &c.client_key_file),
        ] {
            if value.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
                bad(field, "must not be empty (omit the key instead)".into());
            }
        }
        if c.client_cert_file.is_some() != c.client_key_file.is_some() {
            bad(
                "collector.client_cert_file",
                "client_cert_file and client_key_file go together (mutual TLS)".into(),
            );
        }
        let tls_keys = c.ca_file.is_some() || c.client_cert_file.is_some();
        if tls_keys && !url.starts_with("https://") {
            bad(
                "collector.url",
                "ca_file / client_cert_file need an https:// URL".into(),
            );
        }
        let hb = &self.heartbeat;
        if hb.interval_secs == 0 || hb.interval_secs > 86_400 {
            bad(
                "heartbeat.interval_secs",
                "must be between 1 and 86400".into(),
            );
        }
        if hb.jitter_secs > hb.interval_secs / 2 {
            bad(
                "heartbeat.jitter_secs",
                "must be at most half of heartbeat.interval_secs".into(),
            );
        }
        let ifname = &self.wan.interface;
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ']) {
            bad(
                "wan.interface",
                format!(
                    "{ifname:?} is not a valid interface name (1-15 characters, no / or space)"
                ),
            );
        }
        if self.spool.max_events == 0 {
            bad("spool.max_events", "must be at least 1".into());
        }
        if self.spool.max_bytes < 16 * 1024 {
            bad("spool.max_bytes", "must be at least 16384".into());
        }
        self.checks.problems(&mut p);
        self.healing.problems(&mut p);
        crate::heal::playbook_problems(&self.playbooks, &mut p);
        if self
            .wan
            .dhcp_pidfile
            .as_ref()
            .is_some_and(|f| f.as_os_str().is_empty())
        {
            p.push(Problem::new(
                "wan.dhcp_pidfile",
                "must not be empty (omit the key instead)",
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[agent]
id = "cpe-1"
[collector]
url = "http://100.64.0.1:8440"
[wan]
interface = "wan"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = AgentConfig::parse(MIN, "agent.toml").unwrap();
        assert_eq!(c.agent.mode, Mode::Enforce);
        assert_eq!(c.checks.default_route.interval_secs, 10);
        assert_eq!(c.checks.default_route.fail_threshold, 2);
        assert!(c.checks.link.enabled);
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let text = MIN.replace(
            "interface = \"wan\"",
            "interface = \"wan\"\nintervall_secs = 3",
        );
        let err = AgentConfig::parse(&text, "/etc/netmedic/agent.toml").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("/etc/netmedic/agent.toml:8:1: field `wan.intervall_secs`: unknown field `intervall_secs`"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_type_is_located() {
        let text = format!("{MIN}[checks.default_route]\ninterval_secs = \"ten\"\n");
        let msg = AgentConfig::parse(&text, "a.toml").unwrap_err().to_string();
        assert!(
            msg.starts_with(
                "a.toml:9:17: field `checks.default_route.interval_secs`: invalid type"
            ),
            "{msg}"
        );
        assert!(msg.contains("invalid type"), "{msg}");
    }

    #[test]
    fn all_semantic_problems_are_reported_at_once() {
        let text = MIN
            .replace("cpe-1", "bad id")
            .replace("http://100.64.0.1:8440", "ftp://x")
            + "[checks.default_route]\ninterval_secs = 0\n";
        let err = AgentConfig::parse(&text, "a.toml").unwrap_err();
        let ConfigError::Invalid { problems, .. } = err else {
            panic!("expected Invalid, got {err}");
        };
        let fields: Vec<_> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "agent.id",
                "collector.url",
                "checks.default_route.interval_secs"
            ]
        );
    }

    #[test]
    fn semantic_problems_name_the_line_of_their_field() {
        let text = format!("{MIN}[checks.default_route]\ninterval_secs = 0\n");
        let msg = AgentConfig::parse(&text, "a.toml").unwrap_err().to_string();
        assert!(
            msg.contains(
                "\na.toml:9:1: field `checks.default_route.interval_secs`: must be between 1 and 86400"
            ),
            "{msg}"
        );
        // A default value is not in the file: the problem is listed without a location.
        assert_eq!(locate(&text, "healing.renew_dhcp.command"), None);
    }

    #[test]
    fn shipped_example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml");
        AgentConfig::load(Path::new(path)).unwrap();
    }
}
