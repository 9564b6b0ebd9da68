//! Healer: maps an incident's cause to its playbook — an ordered ladder of actions, least
//! disruptive first — and decides, under the safety rules of DESIGN.md §2, what happens next:
//! act, wait (and say why), pass over a rung, or escalate. Execution, verification and
//! recording live in the daemon loop so that every step reaches the spool in order.
//!
//! The decision itself ([`decide`]) is pure: the daemon gathers the facts (kill switch,
//! advisories, detector state, budget, clock) into [`Facts`] and records what comes back.
//!
//! Safety, rule by rule:
//! 1. *Local before acting*: a collector "upstream outage" advisory stops every action; a
//!    fault proven beyond the gateway (the `upstream_unreachable` incident: the gateway answers,
//!    the ISP's probe targets do not — or the same seen live right before the action) passes
//!    over every disruptive rung (bounce_iface, reboot, restart_service, flush_conntrack).
//! 2. *Budgets*: [`crate::budget`] (persisted, boot-time clock); exponential backoff with
//!    jitter between the rungs of one incident; a check+cause that comes back within
//!    `healing.ladder_memory_secs` of its resolution resumes its ladder where it was
//!    ([`HealState::on_opened`]) instead of starting over.
//! 3. *Verify, undo, escalate*: in the daemon's heal step; an exhausted ladder escalates.
//! 4. *Respect the subscriber*: a disruptive rung for a check that is only degraded (service
//!    still up) waits for a maintenance window and a quiet LAN; when the service is already
//!    down (status failed) neither applies.
//! 5. *Visible and stoppable*: modes per agent and per playbook; kill switch (local file and
//!    advisory) here and again right before the action; every wait is recorded (once per
//!    reason) on the incident. A playbook's causes must be listed: an empty list is refused.

use crate::budget::Limit;
use crate::config::{AgentConfig, Mode, Problem};
use crate::incident::Incident;
use netmedic_proto::{ActionId, CheckId};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The cause the agent gives a fault proven to lie beyond the gateway (icmp: the gateway
/// answers, every ISP probe target is silent).
pub const UPSTREAM_CAUSE: &str = "upstream_unreachable";

// ---------------------------------------------------------------------------------------------
// Configuration: `[healing]` and `[[playbook]]`.

/// `[healing]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealingConfig {
    /// While this file exists, no action runs (checked right before each one).
    pub kill_switch_file: PathBuf,
    /// Wait before the second rung of a ladder; doubles per rung up to `backoff_max_secs`.
    pub backoff_initial_secs: u64,
    pub backoff_max_secs: u64,
    /// Each wait is randomly shortened or lengthened by up to this share.
    pub backoff_jitter_percent: u32,
    /// A check+cause that fails again within this time after its incident resolved resumes
    /// the ladder where it stopped (flapping). 0: every incident starts at the first rung.
    pub ladder_memory_secs: u64,
    /// How long an action's verification re-runs the check (about once a second). A pass
    /// within it credits the action; regular runs meanwhile do not resolve the incident.
    pub verify_timeout_secs: u64,
    /// All actions together, within a sliding window.
    pub global_budget: Limit,
    /// Per action (`reboot = { max = 3, window_secs = 86400 }`); unlisted actions keep their
    /// built-in limits.
    pub budgets: BTreeMap<ActionId, Limit>,
    /// The LAN interface whose traffic the busy guard measures.
    pub busy_interface: String,
    /// LAN traffic (rx + tx) above this means the line is in use.
    pub busy_bytes_per_sec: u64,
    /// How long the busy guard measures.
    pub busy_sample_ms: u64,
    /// Local-time windows `"HH:MM-HH:MM"` (may wrap midnight) for disruptive actions on a
    /// service that still works. Empty: never (only when the service is down).
    pub maintenance_windows: Vec<String>,
    /// Local time = UTC + this (the firmware templates it from the device's time zone).
    pub utc_offset_minutes: i32,
    pub renew_dhcp: RenewDhcpConfig,
    pub set_mtu: SetMtuConfig,
    pub bounce_iface: BounceIfaceConfig,
    /// The allow-list of `restart_service`.
    pub restart_service: Vec<RestartServiceEntry>,
    pub reboot: RebootConfig,
}

impl Default for HealingConfig {
    fn default() -> Self {
        Self {
            kill_switch_file: PathBuf::from("/etc/netmedic/healing.disabled"),
            backoff_initial_secs: 10,
            backoff_max_secs: 600,
            backoff_jitter_percent: 25,
            ladder_memory_secs: 1800,
            verify_timeout_secs: 10,
            global_budget: Limit {
                max: 12,
                window_secs: 3600,
            },
            budgets: BTreeMap::new(),
            busy_interface: "br-lan".into(),
            busy_bytes_per_sec: 125_000,
            busy_sample_ms: 1000,
            maintenance_windows: vec!["02:00-05:00".into()],
            utc_offset_minutes: 0,
            renew_dhcp: RenewDhcpConfig::default(),
            set_mtu: SetMtuConfig::default(),
            bounce_iface: BounceIfaceConfig::default(),
            restart_service: Vec::new(),
            reboot: RebootConfig::default(),
        }
    }
}

/// `[healing.renew_dhcp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenewDhcpConfig {
    /// The DHCP client's process name, looked up in the agent's network namespace when
    /// `wan.dhcp_pidfile` is not set.
    pub process: String,
    /// Run this instead of signalling the client (argv, no shell). Empty: signal.
    pub command: Vec<String>,
    pub timeout_secs: u64,
}

impl Default for RenewDhcpConfig {
    fn default() -> Self {
        Self {
            process: "udhcpc".into(),
            command: Vec::new(),
            timeout_secs: 30,
        }
    }
}

/// `[healing.set_mtu]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SetMtuConfig {
    /// Never set a smaller MTU than this.
    pub min_mtu: u32,
}

impl Default for SetMtuConfig {
    fn default() -> Self {
        Self { min_mtu: 1280 }
    }
}

/// `[healing.bounce_iface]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BounceIfaceConfig {
    /// How long the WAN stays down.
    pub down_ms: u64,
    /// How long to wait for the link to come back before giving up on the route.
    pub carrier_wait_secs: u64,
}

impl Default for BounceIfaceConfig {
    fn default() -> Self {
        Self {
            down_ms: 2000,
            carrier_wait_secs: 10,
        }
    }
}

/// One `[[healing.restart_service]]` entry: a service the agent may restart, and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartServiceEntry {
    /// As named in `[[checks.service.services]]`.
    pub name: String,
    /// argv, no shell, e.g. `["/etc/init.d/dnsmasq", "restart"]`.
    pub command: Vec<String>,
    #[serde(default = "default_command_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_command_timeout_secs() -> u64 {
    30
}

/// `[healing.reboot]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RebootConfig {
    /// Off by default: the last resort must be chosen.
    pub enabled: bool,
    pub command: Vec<String>,
}

impl Default for RebootConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            command: vec!["/sbin/reboot".into()],
        }
    }
}

/// One `[[playbook]]`: the ladder for some causes of one check. Overrides the built-in one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookConfig {
    pub check: CheckId,
    /// Causes it applies to: exact names, or a prefix pattern `"resolver_*"`. Required and
    /// non-empty: an empty selector never means "all".
    pub causes: Vec<String>,
    /// The ladder, least disruptive first. Empty: no action (the incident is only reported).
    pub actions: Vec<ActionId>,
    /// Required: `enforce`, `dry_run` (plan and report only — how new playbooks ship) or `off`.
    pub mode: Mode,
}

impl PlaybookConfig {
    pub fn matches(&self, check: CheckId, cause: &str) -> bool {
        self.check == check
            && self.causes.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => !prefix.is_empty() && cause.starts_with(prefix),
                None => p == cause,
            })
    }
}

fn valid_cause_pattern(p: &str) -> bool {
    let body = p.strip_suffix('*').unwrap_or(p);
    !body.is_empty()
        && body.len() <= 64
        && body
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl HealingConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        let mut bad = |f: &str, m: String| out.push(Problem::new(format!("healing.{f}"), m));
        if self.kill_switch_file.as_os_str().is_empty() || !self.kill_switch_file.is_absolute() {
            bad("kill_switch_file", "must be an absolute path".into());
        }
        if self.backoff_initial_secs == 0 || self.backoff_initial_secs > 86_400 {
            bad("backoff_initial_secs", "must be between 1 and 86400".into());
        }
        if self.backoff_max_secs < self.backoff_initial_secs || self.backoff_max_secs > 86_400 {
            bad(
                "backoff_max_secs",
                "must be between backoff_initial_secs and 86400".into(),
            );
        }
        if self.backoff_jitter_percent > 50 {
            bad("backoff_jitter_percent", "must be between 0 and 50".into());
        }
        if self.ladder_memory_secs > 7 * 86_400 {
            bad(
                "ladder_memory_secs",
                "must be at most 604800 (7 days)".into(),
            );
        }
        if self.verify_timeout_secs == 0 || self.verify_timeout_secs > 600 {
            bad("verify_timeout_secs", "must be between 1 and 600".into());
        }
        let limit_problem = |l: &Limit| {
            (l.window_secs == 0 || l.window_secs > 30 * 86_400)
                .then_some("window_secs must be between 1 and 2592000 (30 days)")
                .or((l.max > 1000).then_some("max must be at most 1000"))
        };
        if let Some(m) = limit_problem(&self.global_budget) {
            bad("global_budget", m.into());
        }
        for (a, l) in &self.budgets {
            if let Some(m) = limit_problem(l) {
                bad(&format!("budgets.{a}"), m.into());
            }
        }
        let ifname = &self.busy_interface;
        if ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ']) {
            bad(
                "busy_interface",
                format!(
                    "{ifname:?} is not a valid interface name (1-15 characters, no / or space)"
                ),
            );
        }
        if self.busy_sample_ms < 100 || self.busy_sample_ms > 10_000 {
            bad("busy_sample_ms", "must be between 100 and 10000".into());
        }
        for (i, w) in self.maintenance_windows.iter().enumerate() {
            if parse_window(w).is_none() {
                bad(
                    &format!("maintenance_windows[{i}]"),
                    format!("{w:?} is not HH:MM-HH:MM (two different times)"),
                );
            }
        }
        if self.utc_offset_minutes.abs() > 14 * 60 {
            bad("utc_offset_minutes", "must be between -840 and 840".into());
        }
        if !self.renew_dhcp.command.is_empty() && self.renew_dhcp.command[0].is_empty() {
            bad("renew_dhcp.command", "the program must not be empty".into());
        }
        if self.renew_dhcp.process.len() > 15 {
            bad(
                "renew_dhcp.process",
                "a process name has at most 15 characters".into(),
            );
        }
        if self.renew_dhcp.timeout_secs == 0 || self.renew_dhcp.timeout_secs > 600 {
            bad(
                "renew_dhcp.timeout_secs",
                "must be between 1 and 600".into(),
            );
        }
        if !(576..=9000).contains(&self.set_mtu.min_mtu) {
            bad("set_mtu.min_mtu", "must be between 576 and 9000".into());
        }
        if self.bounce_iface.down_ms > 60_000 {
            bad("bounce_iface.down_ms", "must be at most 60000".into());
        }
        if self.bounce_iface.carrier_wait_secs > 120 {
            bad(
                "bounce_iface.carrier_wait_secs",
                "must be at most 120".into(),
            );
        }
        for (i, s) in self.restart_service.iter().enumerate() {
            if s.name.is_empty() || s.name.len() > 64 {
                bad(
                    &format!("restart_service[{i}].name"),
                    "must be 1-64 characters".into(),
                );
            } else if self.restart_service[..i].iter().any(|o| o.name == s.name) {
                bad(
                    &format!("restart_service[{i}].name"),
                    format!("{:?} is listed twice", s.name),
                );
            }
            if s.command.first().is_none_or(|p| p.is_empty()) {
                bad(
                    &format!("restart_service[{i}].command"),
                    "must name a program (argv array, no shell)".into(),
                );
            }
            if s.timeout_secs == 0 || s.timeout_secs > 600 {
                bad(
                    &format!("restart_service[{i}].timeout_secs"),
                    "must be between 1 and 600".into(),
                );
            }
        }
        if self.reboot.enabled && self.reboot.command.first().is_none_or(|p| p.is_empty()) {
            bad(
                "reboot.command",
                "must name a program when reboot is enabled".into(),
            );
        }
    }
}

/// Problems of the `[[playbook]]` tables.
pub fn playbook_problems(playbooks: &[PlaybookConfig], out: &mut Vec<Problem>) {
    crate::checks::causes::playbook_cause_problems(playbooks, out);
    for (i, p) in playbooks.iter().enumerate() {
        let field = |f: &str| format!("playbook[{i}].{f}");
        if p.causes.is_empty() {
            out.push(Problem::new(
                field("causes"),
                "must list at least one cause: an empty selector never means \"all\"",
            ));
        }
        for (j, c) in p.causes.iter().enumerate() {
            if !valid_cause_pattern(c) {
                out.push(Problem::new(
                    format!("playbook[{i}].causes[{j}]"),
                    format!("{c:?} is not a cause name or a \"prefix_*\" pattern (a bare \"*\" is refused)"),
                ));
            } else if playbooks[..i]
                .iter()
                .any(|o| o.check == p.check && o.causes.contains(c))
            {
                out.push(Problem::new(
                    format!("playbook[{i}].causes[{j}]"),
                    format!("{}/{c} already has a playbook above", p.check),
                ));
            }
        }
        for (j, a) in p.actions.iter().enumerate() {
            if p.actions[..j].contains(a) {
                out.push(Problem::new(
                    format!("playbook[{i}].actions[{j}]"),
                    format!("{a} is listed twice"),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Playbooks.

/// The built-in ladder for a check's cause; `None`: nothing local can fix it (report only).
/// Every check of the catalogue is covered; `config/agent.toml` ships the same set.
pub fn builtin(check: CheckId, cause: &str) -> Option<&'static [ActionId]> {
    use ActionId::*;
    Some(match (check, cause) {
        (CheckId::Link, "wan_admin_down") => &[BounceIface],
        (CheckId::Link, "wan_carrier_lost") => &[BounceIface, Reboot],
        (CheckId::WanAddress, "wan_no_address" | "dhcp_lease_expired" | "dhcp_lease_missing") => {
            &[RenewDhcp, BounceIface, Reboot]
        }
        (CheckId::WanAddress, "dhcp_lease_mismatch") => &[RenewDhcp],
        (CheckId::DefaultRoute, "default_route_missing" | "default_route_wrong_interface") => {
            &[RestoreRoute, RenewDhcp, BounceIface]
        }
        (CheckId::DefaultRoute, "gateway_arp_failed" | "gateway_icmp_silent") => {
            &[RenewDhcp, BounceIface]
        }
        (CheckId::Icmp, "gateway_unreachable") => &[RenewDhcp, BounceIface],
        (CheckId::Dns, c)
            if c.starts_with("resolver_")
                || c == "resolv_conf_not_provisioned"
                || c == "no_resolvers_configured" =>
        {
            &[ResetDns]
        }
        (CheckId::Mtu, "mtu_mismatch" | "pmtu_blackhole") => &[SetMtu],
        (CheckId::Conntrack, "conntrack_table_full" | "conntrack_table_filling") => {
            &[FlushConntrack]
        }
        (CheckId::Service, "service_down") => &[RestartService],
        (CheckId::Resources, "low_memory") => &[Reboot],
        // link flapping/LAN, icmp loss/latency/upstream, http, clock, resources (disk, load),
        // modem_snmp: nothing on the router fixes them; the NOC gets the incident.
        _ => return None,
    })
}

/// The ladder that applies to an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    pub actions: Vec<ActionId>,
    pub mode: Mode,
    /// `"config"` or `"built-in"`.
    pub origin: &'static str,
}

/// The configured playbook for check+cause, else the built-in one.
pub fn ladder(config: &AgentConfig, check: CheckId, cause: &str) -> Option<Ladder> {
    if let Some(p) = config.playbooks.iter().find(|p| p.matches(check, cause)) {
        return Some(Ladder {
            actions: p.actions.clone(),
            mode: p.mode,
            origin: "config",
        });
    }
    builtin(check, cause).map(|a| Ladder {
        actions: a.to_vec(),
        mode: Mode::Enforce,
        origin: "built-in",
    })
}

// ---------------------------------------------------------------------------------------------
// Decisions.

/// What the daemon knows when it plans the next step of an incident.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Why the kill switch is on (local file or collector), if it is.
    pub kill_switch: Option<String>,
    /// The collector's upstream-outage advisory, if any.
    pub upstream_advisory: Option<String>,
    /// The fault is proven beyond the gateway.
    pub upstream_proven: bool,
    /// The incident's check is failed (service down), not merely degraded.
    pub service_down: bool,
    /// Now is inside a maintenance window.
    pub in_window: bool,
    /// The backoff after the previous rung has not elapsed.
    pub backing_off: bool,
    pub reboot_enabled: bool,
}

/// What the healer decides for an open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: healing is off, no playbook, or waiting out a backoff.
    Nothing,
    /// Take this action; `dry_run` when it is only to be reported.
    Act { action: ActionId, dry_run: bool },
    /// The next rung must wait; record why (once per reason).
    Wait { action: ActionId, reason: String },
    /// This rung cannot help or must never run here: record why and climb past it.
    PassOver { action: ActionId, reason: String },
    /// Every rung was tried and none helped: tell the NOC (once).
    Escalate,
}

/// The next step for `incident` under `ladder`; `budget` says why an action is over budget.
pub fn decide(
    mode: Mode,
    ladder: Option<&Ladder>,
    incident: &Incident,
    facts: &Facts,
    budget: impl Fn(ActionId) -> Option<String>,
) -> Decision {
    if mode == Mode::Off || incident.escalated || incident.healed_by.is_some() {
        return Decision::Nothing;
    }
    let Some(ladder) = ladder else {
        return Decision::Nothing;
    };
    if ladder.mode == Mode::Off || ladder.actions.is_empty() {
        return Decision::Nothing;
    }
    let Some(&action) = ladder.actions.iter().find(|a| !incident.tried.contains(a)) else {
        return Decision::Escalate;
    };
    if facts.backing_off {
        return Decision::Nothing;
    }
    let dry_run = mode == Mode::DryRun || ladder.mode == Mode::DryRun;
    let disruptive = crate::actions::is_disruptive(action);
    if let Some(why) = &facts.kill_switch {
        return Decision::Wait {
            action,
            reason: format!("kill switch: {why}"),
        };
    }
    if let Some(why) = &facts.upstream_advisory {
        return Decision::Wait {
            action,
            reason: format!("upstream outage advisory from the collector: {why}"),
        };
    }
    if disruptive && facts.upstream_proven {
        return Decision::PassOver {
            action,
            reason: "the gateway answers but nothing beyond it does: an upstream fault that a disruptive action cannot fix".into(),
        };
    }
    if action == ActionId::Reboot && !facts.reboot_enabled {
        return Decision::PassOver {
            action,
            reason: "reboot is disabled (healing.reboot.enabled = false)".into(),
        };
    }
    if disruptive && !facts.service_down && !facts.in_window {
        return Decision::Wait {
            action,
            reason: "outside the maintenance windows, and the service still works".into(),
        };
    }
    if !dry_run && let Some(why) = budget(action) {
        return Decision::Wait {
            action,
            reason: why,
        };
    }
    Decision::Act { action, dry_run }
}

/// Why the kill switch is on, if it is: the local file exists, or the collector said so.
pub fn kill_switch(cfg: &HealingConfig, advisories: &crate::checks::Advisories) -> Option<String> {
    if cfg.kill_switch_file.exists() {
        return Some(format!(
            "local file {} exists",
            cfg.kill_switch_file.display()
        ));
    }
    advisories
        .kill_switch
        .as_ref()
        .map(|why| format!("collector advisory: {why}"))
}

/// The collector's upstream-outage advisory, if one is in force.
pub fn upstream_advisory(advisories: &crate::checks::Advisories) -> Option<String> {
    advisories
        .upstream_outage
        .as_ref()
        .map(|(event, until)| format!("network event {event} until {until}"))
}

/// Delay before the next rung after `attempts` rungs ran: `initial × 2^(attempts-1)`, capped,
/// scaled by `1 + jitter` where `jitter ∈ [-j, +j]` (`unit` ∈ [0, 1] is the random draw).
pub fn backoff(cfg: &HealingConfig, attempts: u32, unit: f64) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let base = cfg
        .backoff_initial_secs
        .saturating_mul(1u64 << (attempts - 1).min(20))
        .min(cfg.backoff_max_secs) as f64;
    let j = f64::from(cfg.backoff_jitter_percent) / 100.0;
    let factor = 1.0 + j * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
    Duration::from_secs_f64((base * factor).max(0.0))
}

/// `"HH:MM-HH:MM"` as minutes of the day.
pub fn parse_window(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let hm = |t: &str| -> Option<u32> {
        let (h, m) = t.trim().split_once(':')?;
        if h.len() != 2 || m.len() != 2 {
            return None;
        }
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let (a, b) = (hm(a)?, hm(b)?);
    (a != b).then_some((a, b))
}

/// Whether `unix_secs` (UTC) shifted by `offset_minutes` falls in one of the windows.
pub fn in_window(windows: &[String], unix_secs: i64, offset_minutes: i32) -> bool {
    let local = unix_secs + i64::from(offset_minutes) * 60;
    let minute = (local.rem_euclid(86_400) / 60) as u32;
    windows
        .iter()
        .filter_map(|w| parse_window(w))
        .any(|(a, b)| {
            if a < b {
                (a..b).contains(&minute)
            } else {
                minute >= a || minute < b
            }
        })
}

/// LAN traffic in bytes per second over `sample` (rx + tx of `/sys/class/net/IF/statistics`).
pub async fn lan_bytes_per_sec(ifname: &str, sample: Duration) -> Result<u64, String> {
    let read = || -> Result<u64, String> {
        let mut total = 0u64;
        for f in ["rx_bytes", "tx_bytes"] {
            let p = format!("/sys/class/net/{ifname}/statistics/{f}");
            let v = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
            total += v.trim().parse::<u64>().map_err(|e| format!("{p}: {e}"))?;
        }
        Ok(total)
    };
    let a = read()?;
    let t = Instant::now();
    tokio::time::sleep(sample).await;
    let b = read()?;
    let secs = t.elapsed().as_secs_f64().max(0.001);
    Ok((b.saturating_sub(a) as f64 / secs) as u64)
}

// ---------------------------------------------------------------------------------------------
// Ladder progress across incidents (flapping) and budgets.

#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    next_at: Option<Instant>,
    last_note: Option<String>,
}

#[derive(Debug)]
struct Memory {
    tried: Vec<ActionId>,
    attempts: u32,
    resolved_at: Instant,
}

/// The healer's state owned by the daemon loop.
#[derive(Debug)]
pub struct HealState {
    pub budget: crate::budget::Budget,
    progress: BTreeMap<CheckId, Progress>,
    memory: BTreeMap<(CheckId, String), Memory>,
}

impl HealState {
    pub fn open(config: &AgentConfig) -> Self {
        let h = &config.healing;
        Self::with_budget(crate::budget::Budget::open(
            config.agent.state_dir.join("heal-budget.json"),
            h.budgets.clone(),
            h.global_budget,
        ))
    }

    pub fn with_budget(budget: crate::budget::Budget) -> Self {
        Self {
            budget,
            progress: BTreeMap::new(),
            memory: BTreeMap::new(),
        }
    }

    /// A new incident: resume the ladder of the same check+cause if it resolved within the
    /// memory window. Returns how many rungs were resumed.
    pub fn on_opened(&mut self, inc: &mut Incident, cfg: &HealingConfig, now: Instant) -> usize {
        let key = (inc.check, inc.cause.clone());
        let mut p = Progress::default();
        let mut resumed = 0;
        if let Some(m) = self.memory.remove(&key)
            && now.duration_since(m.resolved_at) < Duration::from_secs(cfg.ladder_memory_secs)
        {
            inc.tried = m.tried;
            resumed = inc.tried.len();
            p.attempts = m.attempts;
            p.next_at = Some(m.resolved_at + backoff(cfg, m.attempts, random_unit()));
        }
        self.progress.insert(inc.check, p);
        resumed
    }

    /// The incident resolved (healed or by itself): remember its ladder position.
    pub fn on_resolved(&mut self, inc: &Incident, now: Instant) {
        let attempts = self.progress.remove(&inc.check).map_or(0, |p| p.attempts);
        if !inc.tried.is_empty() {
            self.memory.insert(
                (inc.check, inc.cause.clone()),
                Memory {
                    tried: inc.tried.clone(),
                    attempts,
                    resolved_at: now,
                },
            );
        }
        // Forget what no window can still need.
        self.memory
            .retain(|_, m| now.duration_since(m.resolved_at) < Duration::from_secs(7 * 86_400));
    }

    /// Whether the backoff after the last rung of `check` still runs.
    pub fn backing_off(&self, check: CheckId, now: Instant) -> bool {
        self.progress
            .get(&check)
            .and_then(|p| p.next_at)
            .is_some_and(|t| now < t)
    }

    /// A rung ran (or was reported in dry run): the next one waits the backoff.
    pub fn attempted(&mut self, check: CheckId, cfg: &HealingConfig, now: Instant) {
        let p = self.progress.entry(check).or_default();
        p.attempts = p.attempts.saturating_add(1);
        p.next_at = Some(now + backoff(cfg, p.attempts, random_unit()));
        p.last_note = None;
    }

    /// Whether `note` differs from the last one recorded for `check` (records it).
    pub fn is_new_note(&mut self, check: CheckId, note: &str) -> bool {
        let p = self.progress.entry(check).or_default();
        if p.last_note.as_deref() == Some(note) {
            false
        } else {
            p.last_note = Some(note.to_string());
            true
        }
    }
}

/// A uniform draw in [0, 1] for jitter.
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_ne_bytes(b)) / f64::from(u32::MAX)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::checks::Observation;
    use netmedic_proto::{Category, CheckStatus, Severity, Timestamp};

    fn incident(check: CheckId, cause: &str) -> Incident {
        Incident::open(&Observation {
            check,
            status: CheckStatus::Failed,
            cause: cause.into(),
            summary: "s".into(),
            value: String::new(),
            threshold: String::new(),
            hint: String::new(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            evidence: Default::default(),
            at: Timestamp::EPOCH,
        })
    }

    fn facts() -> Facts {
        Facts {
            service_down: true,
            reboot_enabled: true,
            ..Facts::default()
        }
    }

    fn lad(actions: &[ActionId]) -> Ladder {
        Ladder {
            actions: actions.to_vec(),
            mode: Mode::Enforce,
            origin: "test",
        }
    }

    #[test]
    fn climbs_the_ladder_then_escalates_once() {
        let l = builtin(CheckId::DefaultRoute, "default_route_missing").map(lad);
        let mut i = incident(CheckId::DefaultRoute, "default_route_missing");
        let d = |i: &Incident| decide(Mode::Enforce, l.as_ref(), i, &facts(), |_| None);
        assert_eq!(
            d(&i),
            Decision::Act {
                action: ActionId::RestoreRoute,
                dry_run: false
            }
        );
        i.tried = vec![
            ActionId::RestoreRoute,
            ActionId::RenewDhcp,
            ActionId::BounceIface,
        ];
        assert_eq!(d(&i), Decision::Escalate);
        i.escalated = true;
        assert_eq!(d(&i), Decision::Nothing);
    }

    #[test]
    fn off_mode_unknown_causes_and_backoff_do_nothing() {
        let i = incident(CheckId::DefaultRoute, "default_route_missing");
        let l = lad(&[ActionId::RestoreRoute]);
        assert_eq!(
            decide(Mode::Off, Some(&l), &i, &facts(), |_| None),
            Decision::Nothing
        );
        assert_eq!(
            decide(Mode::Enforce, None, &i, &facts(), |_| None),
            Decision::Nothing
        );
        let f = Facts {
            backing_off: true,
            ..facts()
        };
        assert_eq!(
            decide(Mode::Enforce, Some(&l), &i, &f, |_| None),
            Decision::Nothing
        );
    }

    #[test]
    fn guards_in_order() {
        let i = incident(CheckId::WanAddress, "wan_no_address");
        let l = lad(&[ActionId::BounceIface, ActionId::Reboot]);
        let run = |f: &Facts| decide(Mode::Enforce, Some(&l), &i, f, |_| None);
        let is_wait = |d: Decision, what: &str| match d {
            Decision::Wait { reason, .. } => assert!(reason.contains(what), "{reason}"),
            other => panic!("expected wait ({what}), got {other:?}"),
        };
        is_wait(
            run(&Facts {
                kill_switch: Some("file /x".into()),
                ..facts()
            }),
            "kill switch",
        );
        is_wait(
            run(&Facts {
                upstream_advisory: Some("ne-1".into()),
                ..facts()
            }),
            "upstream outage",
        );
        assert!(matches!(
            run(&Facts {
                upstream_proven: true,
                ..facts()
            }),
            Decision::PassOver {
                action: ActionId::BounceIface,
                ..
            }
        ));
        // Degraded service: disruptive rungs wait for a window.
        is_wait(
            run(&Facts {
                service_down: false,
                ..facts()
            }),
            "maintenance",
        );
        assert!(matches!(
            run(&Facts {
                service_down: false,
                in_window: true,
                ..facts()
            }),
            Decision::Act { .. }
        ));
        is_wait(
            decide(Mode::Enforce, Some(&l), &i, &facts(), |_| {
                Some("budget: x".into())
            }),
            "budget",
        );
        // Dry run reports the rung (no budget needed).
        assert_eq!(
            decide(Mode::DryRun, Some(&l), &i, &facts(), |_| Some(
                "budget".into()
            )),
            Decision::Act {
                action: ActionId::BounceIface,
                dry_run: true
            }
        );
        let mut i2 = i.clone();
        i2.tried.push(ActionId::BounceIface);
        assert!(matches!(
            decide(
                Mode::Enforce,
                Some(&l),
                &i2,
                &Facts {
                    reboot_enabled: false,
                    ..facts()
                },
                |_| None
            ),
            Decision::PassOver {
                action: ActionId::Reboot,
                ..
            }
        ));
    }

    #[test]
    fn upstream_advisory_stops_even_non_disruptive_actions() {
        let i = incident(CheckId::Dns, "resolver_timeout");
        let l = lad(&[ActionId::ResetDns]);
        let f = Facts {
            upstream_advisory: Some("ne-7 until 12:00".into()),
            ..facts()
        };
        assert!(matches!(
            decide(Mode::Enforce, Some(&l), &i, &f, |_| None),
            Decision::Wait { .. }
        ));
    }

    #[test]
    fn every_check_of_the_catalogue_has_a_decision_and_config_overrides() {
        // The built-in table covers the catalogue: each check has at least one cause with a
        // ladder or is explicitly report-only (the default arm); the shipped config lists one
        // playbook per check.
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
                .unwrap();
        let cfg = AgentConfig::parse(&text, "agent.toml").unwrap();
        for c in CheckId::ALL {
            assert!(
                cfg.playbooks.iter().any(|p| p.check == *c),
                "config/agent.toml has no playbook for {c}"
            );
        }
        let l = ladder(&cfg, CheckId::DefaultRoute, "default_route_missing").unwrap();
        assert_eq!(l.origin, "config");
    }

    #[test]
    fn playbook_selectors_must_be_explicit() {
        let p = |causes: &[&str]| PlaybookConfig {
            check: CheckId::Dns,
            causes: causes.iter().map(|s| s.to_string()).collect(),
            actions: vec![ActionId::ResetDns],
            mode: Mode::Enforce,
        };
        let mut out = Vec::new();
        playbook_problems(&[p(&[]), p(&["*"]), p(&["resolver_*"])], &mut out);
        let fields: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["playbook[0].causes", "playbook[1].causes[0]"]);
        assert!(p(&["resolver_*"]).matches(CheckId::Dns, "resolver_timeout"));
        assert!(!p(&["resolver_*"]).matches(CheckId::Dns, "dns_slow"));
        assert!(!p(&["resolver_*"]).matches(CheckId::Http, "resolver_timeout"));
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        let cfg = HealingConfig {
            backoff_initial_secs: 10,
            backoff_max_secs: 60,
            backoff_jitter_percent: 20,
            ..HealingConfig::default()
        };
        assert_eq!(backoff(&cfg, 0, 0.5), Duration::ZERO);
        assert_eq!(backoff(&cfg, 1, 0.5), Duration::from_secs(10));
        assert_eq!(backoff(&cfg, 2, 0.5), Duration::from_secs(20));
        assert_eq!(backoff(&cfg, 9, 0.5), Duration::from_secs(60));
        assert_eq!(backoff(&cfg, 1, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(&cfg, 1, 1.0), Duration::from_secs(12));
    }

    #[test]
    fn maintenance_windows_wrap_midnight() {
        let w = vec!["23:30-01:00".to_string()];
        let at = |h: i64, m: i64| h * 3600 + m * 60;
        assert!(in_window(&w, at(23, 45), 0));
        assert!(in_window(&w, at(0, 59), 0));
        assert!(!in_window(&w, at(1, 0), 0));
        // 22:45 UTC is 23:45 at UTC+1.
        assert!(in_window(&w, at(22, 45), 60));
        assert!(!in_window(&[], at(0, 0), 0));
        assert_eq!(parse_window("02:00-02:00"), None);
        assert_eq!(parse_window("2:00-03:00"), None);
    }

    #[test]
    fn a_flapping_incident_resumes_its_ladder() {
        let cfg = HealingConfig {
            ladder_memory_secs: 600,
            ..HealingConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let budget = crate::budget::Budget::open_at(
            dir.path().join("b"),
            BTreeMap::new(),
            cfg.global_budget,
            "x",
            0,
        );
        let mut st = HealState::with_budget(budget);
        let t0 = Instant::now();
        let mut first = incident(CheckId::DefaultRoute, "default_route_missing");
        st.on_opened(&mut first, &cfg, t0);
        first.tried.push(ActionId::RestoreRoute);
        st.attempted(CheckId::DefaultRoute, &cfg, t0);
        st.on_resolved(&first, t0);
        // Back after 60 s: the ladder continues at the second rung, after a backoff.
        let mut again = incident(CheckId::DefaultRoute, "default_route_missing");
        assert_eq!(
            st.on_opened(&mut again, &cfg, t0 + Duration::from_secs(60)),
            1
        );
        assert_eq!(again.tried, [ActionId::RestoreRoute]);
        let l = builtin(CheckId::DefaultRoute, "default_route_missing").map(lad);
        assert_eq!(
            decide(Mode::Enforce, l.as_ref(), &again, &facts(), |_| None),
            Decision::Act {
                action: ActionId::RenewDhcp,
                dry_run: false
            }
        );
        // After the memory window it starts over.
        st.on_resolved(&again, t0 + Duration::from_secs(61));
        let mut later = incident(CheckId::DefaultRoute, "default_route_missing");
        assert_eq!(
            st.on_opened(&mut later, &cfg, t0 + Duration::from_secs(61 + 601)),
            0
        );
        assert!(later.tried.is_empty());
    }
}
