//! `link`: carrier and operational state of the WAN (and configured LAN) interfaces, kept
//! current by rtnetlink events rather than polling, with carrier-flap counting.

use super::{Context, Observation, check_settings, common_problems};
use crate::context::{LinkState, LinkTable};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "wan_admin_down",
    "wan_carrier_lost",
    "wan_link_flapping",
    "lan_link_down",
    "wan_interface_missing",
    "netlink_error",
];

/// `[checks.link]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkConfig {
    pub enabled: bool,
    /// Safety-net re-check; changes are seen at once through netlink events.
    pub interval_secs: u64,
    /// A carrier loss is definitive: one observation opens the incident.
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// LAN interfaces whose carrier also matters (e.g. `["lan"]`, `["br-lan"]`).
    pub lan_interfaces: Vec<String>,
    /// Carrier changes within `flap_window_secs` that make the link `degraded` (flapping).
    pub flap_threshold: u32,
    pub flap_window_secs: u64,
    /// A carrier that has stayed up this long is stable again, however many changes the
    /// window still holds: the flapping incident resolves once the link has settled rather
    /// than `flap_window_secs` after the last change.
    pub flap_clear_secs: u64,
}

impl Default for LinkConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 30,
            fail_threshold: 1,
            ok_threshold: 1,
            lan_interfaces: Vec::new(),
            flap_threshold: 4,
            flap_window_secs: 600,
            flap_clear_secs: 120,
        }
    }
}

check_settings!(LinkConfig);

impl LinkConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "link",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        for (i, n) in self.lan_interfaces.iter().enumerate() {
            if n.is_empty() || n.len() > 15 || n.contains(['/', ' ']) {
                out.push(Problem::new(
                    format!("checks.link.lan_interfaces[{i}]"),
                    format!("{n:?} is not a valid interface name"),
                ));
            }
        }
        if self.flap_threshold < 2 {
            out.push(Problem::new(
                "checks.link.flap_threshold",
                "must be at least 2 (one change is not a flap)",
            ));
        }
        if self.flap_window_secs == 0 || self.flap_window_secs > 86_400 {
            out.push(Problem::new(
                "checks.link.flap_window_secs",
                "must be between 1 and 86400",
            ));
        }
        if self.flap_clear_secs == 0 || self.flap_clear_secs > self.flap_window_secs {
            out.push(Problem::new(
                "checks.link.flap_clear_secs",
                "must be between 1 and checks.link.flap_window_secs",
            ));
        }
    }
}

#[derive(Debug, Clone)]
pub struct LinkCheck {
    pub config: LinkConfig,
    pub wan_interface: String,
}

impl LinkCheck {
    pub fn new(site: &Site, config: &LinkConfig) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
        }
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        if !ctx.shared.links.lock().map(|t| t.loaded).unwrap_or(false)
            && let Err(e) = crate::events::load_links(&ctx.netlink, &ctx.shared).await
        {
            return Observation::new(
                CheckId::Link,
                CheckStatus::Unknown,
                "netlink_error",
                format!("cannot read interfaces: {e}"),
            )
            .hint("the agent needs CAP_NET_ADMIN");
        }
        let table = ctx
            .shared
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.judge(&table, Instant::now())
    }

    /// The verdict on a link table; pure so it is unit-tested without a kernel.
    pub fn judge(&self, table: &LinkTable, now: Instant) -> Observation {
        let window = Duration::from_secs(self.config.flap_window_secs);
        let threshold = format!(
            "carrier up; < {} carrier changes in {} s, or up for {} s",
            self.config.flap_threshold, self.config.flap_window_secs, self.config.flap_clear_secs
        );
        let wan = &self.wan_interface;
        let Some(w) = table.by_name(wan) else {
            return Observation::new(
                CheckId::Link,
                CheckStatus::Failed,
                "wan_interface_missing",
                format!("WAN interface {wan} does not exist"),
            )
            .severity(Severity::Critical)
            .value("missing")
            .threshold(threshold)
            .hint("check wan.interface in agent.toml and the firmware's network config");
        };
        let flaps = table.flaps(wan, window, now);
        // Still settling: the carrier changed less than flap_clear_secs ago.
        let settling = w.carrier_changed_at.is_some_and(|t| {
            now.saturating_duration_since(t) < Duration::from_secs(self.config.flap_clear_secs)
        });
        let since = |l: &LinkState| {
            l.carrier_changed_at.map_or_else(
                || "since the agent started".to_string(),
                |t| {
                    format!(
                        "for {:.1} s",
                        now.saturating_duration_since(t).as_secs_f64()
                    )
                },
            )
        };
        let mut obs = if !w.admin_up {
            Observation::new(
                CheckId::Link,
                CheckStatus::Failed,
                "wan_admin_down",
                format!("WAN interface {wan} is administratively down"),
            )
            .severity(Severity::Critical)
            .value("admin down")
            .hint("bounce_iface brings it up; something on the router set it down")
        } else if !w.carrier {
            Observation::new(
                CheckId::Link,
                CheckStatus::Failed,
                "wan_carrier_lost",
                format!("WAN {wan} has no carrier {}", since(w)),
            )
            .severity(Severity::Critical)
            .value(format!("no carrier, operstate {}", w.operstate))
            .hint("the cable, ONT or modem side of the WAN is down; nothing beyond it can work")
        } else if flaps >= self.config.flap_threshold && settling {
            Observation::new(
                CheckId::Link,
                CheckStatus::Degraded,
                "wan_link_flapping",
                format!(
                    "WAN {wan} carrier changed {flaps} times in {} s; up {} (stable after {} s)",
                    self.config.flap_window_secs,
                    since(w),
                    self.config.flap_clear_secs
                ),
            )
            .category(Category::Intermittent)
            .value(format!("{flaps} changes"))
            .hint("a loose cable or a failing line: check the modem_snmp line figures")
        } else {
            Observation::ok(CheckId::Link, format!("WAN {wan} carrier up {}", since(w)))
                .value(format!("carrier up, mtu {}", w.mtu))
        };
        obs = obs
            .threshold(threshold)
            .evidence("wan_interface", wan)
            .evidence("wan_operstate", &w.operstate)
            .evidence("wan_carrier_changes_total", w.transitions_total)
            .evidence("wan_flaps_in_window", flaps);
        if obs.status == CheckStatus::Ok {
            let down: Vec<&str> = self
                .config
                .lan_interfaces
                .iter()
                .filter(|n| table.by_name(n).is_none_or(|l| !l.carrier || !l.admin_up))
                .map(String::as_str)
                .collect();
            if !down.is_empty() {
                obs = Observation::new(
                    CheckId::Link,
                    CheckStatus::Failed,
                    "lan_link_down",
                    format!("LAN interface(s) down: {}", down.join(", ")),
                )
                .category(Category::LocalMisconfig)
                .value(format!("{} LAN down", down.len()))
                .threshold(obs.threshold.clone())
                .hint("the subscriber's devices behind these ports are cut off")
                .evidence("lan_down", down.join(" "));
            }
        }
        obs
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::causes::assert_declared;
    use crate::context::{LinkChange, LinkInfo};

    /// [`LinkCheck::judge`], asserting that the cause it reports is declared in `CAUSES`.
    fn judged(c: &LinkCheck, table: &LinkTable, now: Instant) -> Observation {
        let o = c.judge(table, now);
        assert_declared(&o);
        o
    }

    fn info(index: u32, name: &str, admin_up: bool, carrier: bool, op: &str, mtu: u32) -> LinkInfo {
        LinkInfo {
            index,
            name: name.into(),
            admin_up,
            carrier,
            operstate: op.into(),
            mtu,
        }
    }

    fn check() -> LinkCheck {
        LinkCheck {
            config: LinkConfig {
                lan_interfaces: vec!["lan".into()],
                ..LinkConfig::default()
            },
            wan_interface: "wan".into(),
        }
    }

    #[test]
    fn carrier_loss_fails_and_flapping_degrades() {
        let t0 = Instant::now();
        let mut t = LinkTable::default();
        assert_eq!(
            t.update(info(2, "wan", true, true, "up", 1500), t0),
            LinkChange::New
        );
        t.update(info(3, "lan", true, true, "up", 1500), t0);
        assert_eq!(judged(&check(), &t, t0).status, CheckStatus::Ok);
        assert_eq!(
            t.update(info(2, "wan", true, false, "lowerlayerdown", 1500), t0),
            LinkChange::Carrier { up: false }
        );
        let o = judged(&check(), &t, t0);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Failed, "wan_carrier_lost")
        );
        for i in 0..3 {
            t.update(info(2, "wan", true, i % 2 == 0, "up", 1500), t0);
        }
        let o = judged(&check(), &t, t0);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "wan_link_flapping")
        );
        // Outside the window the flaps no longer count.
        let later = t0 + Duration::from_secs(601);
        assert_eq!(judged(&check(), &t, later).status, CheckStatus::Ok);
    }

    #[test]
    fn a_flapping_link_is_stable_again_once_the_carrier_stayed_up_flap_clear_secs() {
        let t0 = Instant::now();
        let mut t = LinkTable::default();
        t.update(info(2, "wan", true, true, "up", 1500), t0);
        t.update(info(3, "lan", true, true, "up", 1500), t0);
        // Down and up every 5 s for a minute: 24 changes, the last one (up) at t0 + 120 s.
        for i in 1..=24u64 {
            t.update(
                info(2, "wan", true, i % 2 == 0, "up", 1500),
                t0 + Duration::from_secs(5 * i),
            );
        }
        let last = t0 + Duration::from_secs(120);
        let at = |s: u64| judged(&check(), &t, last + Duration::from_secs(s));
        let o = at(1);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "wan_link_flapping")
        );
        assert_eq!(at(119).status, CheckStatus::Degraded);
        // The window still holds every change, but the carrier stayed up flap_clear_secs.
        let o = at(120);
        assert_eq!((o.status, o.cause.as_str()), (CheckStatus::Ok, "ok"));
        assert_eq!(o.evidence["wan_flaps_in_window"], "24");
        let mut bad = LinkConfig {
            flap_clear_secs: 601,
            ..LinkConfig::default()
        };
        let mut out = Vec::new();
        bad.problems(&mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        bad.flap_clear_secs = 0;
        out.clear();
        bad.problems(&mut out);
        assert_eq!(out[0].field, "checks.link.flap_clear_secs");
    }

    #[test]
    fn missing_wan_and_lan_down_are_named() {
        let t0 = Instant::now();
        let mut t = LinkTable::default();
        assert_eq!(judged(&check(), &t, t0).cause, "wan_interface_missing");
        t.update(info(2, "wan", true, true, "up", 1500), t0);
        let o = judged(&check(), &t, t0);
        assert_eq!(o.cause, "lan_link_down");
        assert_eq!(o.evidence["lan_down"], "lan");
    }
}
