//! The neutral layer below checks, actions, the healer and the config: what they all name —
//! a config [`Problem`], a check's [`Hysteresis`], the healer's [`Mode`], the `[wan]` and
//! `[collector]` tables —
//! and the [`Site`], the few cross-cutting facts of this CPE that checks and actions read.
//!
//! It imports no other module of the agent, so `config` can assemble `agent.toml` from the
//! tables that `checks`, `actions` and `heal` own while they depend only on this module.

use serde::Deserialize;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// What checks and actions may know about the CPE beyond their own table: who it is, where
/// its state lives, how the healer may act, where the collector is and what its WAN is.
#[derive(Debug, Clone, PartialEq)]
pub struct Site {
    /// `agent.id`.
    pub agent_id: String,
    /// `agent.state_dir`.
    pub state_dir: PathBuf,
    /// `agent.mode`.
    pub mode: Mode,
    /// `collector.url`.
    pub collector_url: String,
    /// `[wan]`.
    pub wan: WanSection,
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

/// `[collector]`: where the agent reports to and how (the reporter, the heartbeat and the
/// `clock` check's reference all use it).
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

/// Detection hysteresis of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hysteresis {
    /// Consecutive failed runs that open an incident.
    pub fail_threshold: u32,
    /// Consecutive passing runs that resolve it.
    pub ok_threshold: u32,
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
