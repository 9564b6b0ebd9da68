//! `[healing]` and `[[playbook]]`: the healer's safety settings, the action tables (owned by
//! each action's file) and the playbooks' validation.

use super::decide::parse_window;
use crate::actions::{
    Limit, bounce_iface, reapply_wifi_config, reboot, renew_dhcp, renew_dhcp6, restart_hostapd,
    restart_service, set_mtu,
};
use crate::site::{Mode, Problem};
use netmedic_proto::{ActionId, CheckId};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// A rung refused by its budget waits (recorded once) while the budget lets it run again
    /// within this time; when the budget reopens later (a reboot over its 3-per-24 h limit)
    /// the incident is escalated to the NOC instead of waiting silently.
    pub budget_wait_max_secs: u64,
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
    pub renew_dhcp: renew_dhcp::RenewDhcpConfig,
    pub set_mtu: set_mtu::SetMtuConfig,
    pub bounce_iface: bounce_iface::BounceIfaceConfig,
    /// The allow-list of `restart_service`.
    pub restart_service: Vec<restart_service::RestartServiceEntry>,
    pub reboot: reboot::RebootConfig,
    pub renew_dhcp6: renew_dhcp6::RenewDhcp6Config,
    pub restart_hostapd: restart_hostapd::RestartHostapdConfig,
    pub reapply_wifi_config: reapply_wifi_config::ReapplyWifiConfigConfig,
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
            budget_wait_max_secs: 3600,
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
            renew_dhcp: renew_dhcp::RenewDhcpConfig::default(),
            set_mtu: set_mtu::SetMtuConfig::default(),
            bounce_iface: bounce_iface::BounceIfaceConfig::default(),
            restart_service: Vec::new(),
            reboot: reboot::RebootConfig::default(),
            renew_dhcp6: renew_dhcp6::RenewDhcp6Config::default(),
            restart_hostapd: restart_hostapd::RestartHostapdConfig::default(),
            reapply_wifi_config: reapply_wifi_config::ReapplyWifiConfigConfig::default(),
        }
    }
}

/// One `[[playbook]]`: the ladder for some causes of one check. Overrides the built-in one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookConfig {
    /// What a holdout experiment scoped to a playbook names (`[a-z0-9_-]`, at most 64).
    /// Default: the check's name, so `"dns"` covers every DNS playbook. Several playbooks may
    /// share a name: an experiment on it covers all of them.
    #[serde(default)]
    pub name: Option<String>,
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
    /// The name experiments scope to: `name`, else the check's name.
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.check.as_str().to_string())
    }

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
        if self.budget_wait_max_secs > 30 * 86_400 {
            bad(
                "budget_wait_max_secs",
                "must be at most 2592000 (30 days)".into(),
            );
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
        self.renew_dhcp.problems(out);
        self.set_mtu.problems(out);
        self.bounce_iface.problems(out);
        restart_service::problems(&self.restart_service, out);
        self.reboot.problems(out);
        self.renew_dhcp6.problems(out);
        self.restart_hostapd.problems(out);
        self.reapply_wifi_config.problems(out);
    }
}

/// Problems of the `[[playbook]]` tables.
pub fn playbook_problems(playbooks: &[PlaybookConfig], out: &mut Vec<Problem>) {
    super::causes::playbook_cause_problems(playbooks, out);
    for (i, p) in playbooks.iter().enumerate() {
        let field = |f: &str| format!("playbook[{i}].{f}");
        if p.causes.is_empty() {
            out.push(Problem::new(
                field("causes"),
                "must list at least one cause: an empty selector never means \"all\"",
            ));
        }
        if let Some(n) = &p.name
            && (n.is_empty()
                || n.len() > 64
                || !n.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                }))
        {
            out.push(Problem::new(
                field("name"),
                format!("{n:?} is not 1-64 characters of a-z 0-9 _ -"),
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
