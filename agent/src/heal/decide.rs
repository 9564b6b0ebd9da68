//! The decision: what happens next for an open incident, under the safety rules. Pure.

use super::budget::Refusal;
use super::playbook::Ladder;
use crate::context::Advisories;
use crate::incident::Incident;
use crate::site::Mode;
use netmedic_proto::ActionId;
use std::time::Duration;

use super::config::HealingConfig;

/// What the daemon knows when it plans the next step of an incident.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Why the kill switch is on (local file or collector), if it is.
    pub kill_switch: Option<String>,
    /// The collector's upstream-outage advisory, if any.
    pub upstream_advisory: Option<String>,
    /// The holdout experiment whose control arm this device is in for this incident: the
    /// playbook runs in dry run.
    pub holdout: Option<String>,
    /// The fault is proven beyond the gateway.
    pub upstream_proven: bool,
    /// The incident's check is failed (service down), not merely degraded.
    pub service_down: bool,
    /// Now is inside a maintenance window.
    pub in_window: bool,
    /// The backoff after the previous rung has not elapsed.
    pub backing_off: bool,
    pub reboot_enabled: bool,
    /// A rung refused by its budget waits when the budget reopens within this time, and
    /// escalates when it reopens later (`healing.budget_wait_max_secs`).
    pub budget_wait_max_secs: u64,
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
    /// The next rung is refused by a budget that will not reopen within
    /// `budget_wait_max_secs` (a reboot over its 24 h limit): tell the NOC (once) instead of
    /// waiting silently. The rung is not taken.
    EscalateRefused { action: ActionId, reason: String },
}

/// The next step for `incident` under `ladder`; `budget` says why an action is over budget
/// and when it may run again.
pub fn decide(
    mode: Mode,
    ladder: Option<&Ladder>,
    incident: &Incident,
    facts: &Facts,
    budget: impl Fn(ActionId) -> Option<Refusal>,
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
    let dry_run = mode == Mode::DryRun || ladder.mode == Mode::DryRun || facts.holdout.is_some();
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
    if !dry_run && let Some(refusal) = budget(action) {
        if refusal.reopens_in_secs > facts.budget_wait_max_secs {
            let when = if refusal.reopens_in_secs == u64::MAX {
                "never allows it".to_string()
            } else {
                format!("allows it again in {} s", refusal.reopens_in_secs)
            };
            return Decision::EscalateRefused {
                action,
                reason: format!(
                    "{}; the budget {when}, later than the {} s an incident may wait \
                     (healing.budget_wait_max_secs): the NOC must act",
                    refusal.reason, facts.budget_wait_max_secs
                ),
            };
        }
        return Decision::Wait {
            action,
            reason: refusal.reason,
        };
    }
    Decision::Act { action, dry_run }
}

/// Why the kill switch is on, if it is: the local file exists, or the collector said so.
pub fn kill_switch(cfg: &HealingConfig, advisories: &Advisories) -> Option<String> {
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

/// The collector's upstream-outage advisory, if one is in force. Named by its network event
/// only: the collector moves `until` forward on every heartbeat reply while the event lasts,
/// and a wait is recorded once per reason — with `until` in it the incident got a new
/// "waits" record on every heartbeat.
pub fn upstream_advisory(advisories: &Advisories) -> Option<String> {
    advisories
        .upstream_outage
        .as_ref()
        .map(|(event, _until)| format!("network event {event}"))
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
