//! `agent.toml`: the agent's configuration, loaded and validated up front.
//!
//! Every struct refuses unknown fields, durations carry their unit in the name, and a bad file is
//! reported as `FILE:LINE:COLUMN: problem` naming the field. Semantic checks run after parsing and
//! report every problem at once, so an engineer fixes a config in one round.

use crate::{actions, checks, heal};
use serde::Deserialize;
use std::path::{Path, PathBuf};

pub use crate::checks::ChecksSection;
pub use crate::site::{CollectorSection, Hysteresis, Mode, Problem, Site, WanSection};

/// Default location on a CPE.
pub const DEFAULT_PATH: &str = "/etc/netmedic/agent.toml";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub agent: AgentSection,
    pub collector: CollectorSection,
    pub wan: WanSection,
    #[serde(default)]
    pub checks: checks::ChecksSection,
    #[serde(default)]
    pub spool: SpoolSection,
    #[serde(default)]
    pub heartbeat: HeartbeatSection,
    /// `[healing]`: safety settings and action options of the healer (see `crate::heal`).
    #[serde(default)]
    pub healing: heal::HealingConfig,
    /// `[[playbook]]` tables: ladders per check and causes, overriding the built-in ones.
    #[serde(default, rename = "playbook")]
    pub playbooks: Vec<heal::PlaybookConfig>,
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

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/netmedic")
}
fn default_mode() -> Mode {
    Mode::Enforce
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
    /// The cross-cutting facts checks and actions read.
    pub fn site(&self) -> Site {
        Site {
            agent_id: self.agent.id.clone(),
            state_dir: self.agent.state_dir.clone(),
            mode: self.agent.mode,
            collector_url: self.collector.url.clone(),
            wan: self.wan.clone(),
        }
    }

    /// The enabled checks, in catalogue order, each built from the site and its own table.
    pub fn enabled_checks(&self) -> Vec<checks::Check> {
        checks::enabled(&self.site(), &self.checks)
    }

    /// What the actions read: their tables from `[healing]` and the facts of the check tables
    /// they act on.
    pub fn action_settings(&self) -> actions::Settings {
        let (h, c) = (&self.healing, &self.checks);
        let wifi = &c.wifi_ap;
        actions::Settings {
            renew_dhcp: h.renew_dhcp.clone(),
            set_mtu: h.set_mtu.clone(),
            bounce_iface: h.bounce_iface.clone(),
            restart_service: h.restart_service.clone(),
            reboot: h.reboot.clone(),
            renew_dhcp6: h.renew_dhcp6.clone(),
            restart_hostapd: h.restart_hostapd.clone(),
            reapply_wifi_config: h.reapply_wifi_config.clone(),
            dns: actions::Resolvers {
                resolv_conf: c.dns.resolv_conf.clone(),
                provisioned_resolvers: c.dns.provisioned_resolvers.clone(),
            },
            expected_mtu: c.mtu.expected_mtu,
            wifi: actions::WifiAp {
                interface: wifi.interface.clone(),
                ctrl_dir: wifi.ctrl_dir.clone(),
                client_socket_dir: wifi.client_socket_dir.clone(),
                request_timeout_ms: wifi.request_timeout_ms,
                config_file: wifi.config_file.clone(),
                ssid: wifi.ssid.clone(),
                security: wifi.security.clone(),
                channel: wifi.channel,
                chan_switch_channels: wifi.chan_switch_channels.clone(),
                chan_switch_cs_count: wifi.chan_switch_cs_count,
            },
            lan_prefix: actions::LanPrefix {
                lan_interface: c.wan6.lan_interface.clone(),
                lease6_file: c.wan6.lease6_file.clone(),
                lan_subnet_id: c.wan6.lan_subnet_id,
            },
            conntrack_proc_dir: c.conntrack.proc_dir.clone(),
        }
    }

    /// What the healer reads.
    pub fn heal_settings(&self) -> heal::Settings {
        heal::Settings {
            site: self.site(),
            healing: self.healing.clone(),
            playbooks: self.playbooks.clone(),
            icmp_targets: self.checks.icmp.targets.clone(),
            actions: self.action_settings(),
        }
    }

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
        heal::playbook_problems(&self.playbooks, &mut p);
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
