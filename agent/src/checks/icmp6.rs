//! `icmp6`: loss, RTT (average, p95) and jitter over IPv6 — to the IPv6 default gateway (the
//! router's link-local address, from the default route via the WAN) and the ISP's IPv6 probe
//! targets — judged with the same statistics and thresholds as `icmp`. A check of its own (not
//! IPv6 targets inside `icmp`): one incident per check, so an IPv6 path fault never masks an
//! IPv4 one or the reverse. Category `ipv6_degraded`, evidence `family = ipv6`.

use super::icmp::{IcmpConfig, PathStats};
use super::{Context, Observation, check_settings, common_problems};
use crate::ping::Pinger;
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

/// Every cause this check reports besides `ok`.
pub const CAUSES: &[&str] = &[
    "gateway_unreachable",
    "target_unreachable",
    "packet_loss",
    "high_latency",
    "high_jitter",
    "no_target",
    "no_icmp_socket",
];

/// `[checks.icmp6]`: the fields of `[checks.icmp]` with IPv6 targets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Icmp6Config {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Measure the IPv6 default gateway via the WAN.
    pub include_gateway: bool,
    /// The ISP's IPv6 probe targets.
    pub targets: Vec<Ipv6Addr>,
    pub count: u32,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub degraded_loss_percent: f64,
    pub failed_loss_percent: f64,
    pub degraded_rtt_ms: f64,
    pub failed_rtt_ms: f64,
    pub degraded_jitter_ms: f64,
    pub failed_jitter_ms: f64,
}

impl Default for Icmp6Config {
    fn default() -> Self {
        let v4 = IcmpConfig::default();
        Self {
            enabled: false,
            interval_secs: v4.interval_secs,
            fail_threshold: v4.fail_threshold,
            ok_threshold: v4.ok_threshold,
            include_gateway: true,
            targets: Vec::new(),
            count: v4.count,
            interval_ms: v4.interval_ms,
            timeout_ms: v4.timeout_ms,
            degraded_loss_percent: v4.degraded_loss_percent,
            failed_loss_percent: v4.failed_loss_percent,
            degraded_rtt_ms: v4.degraded_rtt_ms,
            failed_rtt_ms: v4.failed_rtt_ms,
            degraded_jitter_ms: v4.degraded_jitter_ms,
            failed_jitter_ms: v4.failed_jitter_ms,
        }
    }
}

check_settings!(Icmp6Config);

impl Icmp6Config {
    /// The same measurement settings as an `icmp` table (its judge and validation are reused).
    fn as_icmp(&self) -> IcmpConfig {
        IcmpConfig {
            enabled: self.enabled,
            interval_secs: self.interval_secs,
            fail_threshold: self.fail_threshold,
            ok_threshold: self.ok_threshold,
            include_gateway: self.include_gateway,
            targets: Vec::new(),
            count: self.count,
            healthy_count: 0,
            interval_ms: self.interval_ms,
            timeout_ms: self.timeout_ms,
            degraded_loss_percent: self.degraded_loss_percent,
            failed_loss_percent: self.failed_loss_percent,
            degraded_rtt_ms: self.degraded_rtt_ms,
            failed_rtt_ms: self.failed_rtt_ms,
            degraded_jitter_ms: self.degraded_jitter_ms,
            failed_jitter_ms: self.failed_jitter_ms,
        }
    }

    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "icmp6",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        let mut v4 = Vec::new();
        self.as_icmp().problems(&mut v4);
        out.extend(
            v4.into_iter()
                .filter(|p| !p.field.ends_with("_secs") && !p.field.ends_with("_threshold"))
                .map(|p| {
                    Problem::new(
                        p.field.replacen("checks.icmp.", "checks.icmp6.", 1),
                        p.message,
                    )
                }),
        );
    }
}

/// The IPv6 default gateway via `wan` (the router's link-local address), if a route has one.
pub(crate) async fn wan_gateway6(ctx: &Context, wan: &str) -> Option<Ipv6Addr> {
    let index = ctx.netlink.link_index(wan).await.ok()??;
    let routes = ctx.netlink.default_routes_v6().await.ok()?;
    routes
        .iter()
        .filter(|r| r.oif == Some(index))
        .find_map(|r| r.gateway)
}

#[derive(Debug, Clone)]
pub struct Icmp6Check {
    pub config: Icmp6Config,
    pub wan_interface: String,
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

impl Icmp6Check {
    pub fn new(site: &Site, config: &Icmp6Config) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        Observation::new(CheckId::Icmp6, status, cause, summary)
            .category(Category::Ipv6Degraded)
            .evidence("family", "ipv6")
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let c = &self.config;
        let wan = &self.wan_interface;
        let mut targets: Vec<(Ipv6Addr, &'static str)> = Vec::new();
        let mut gateway_note = "not measured".to_string();
        if c.include_gateway {
            gateway_note = "none known".into();
            if let Some(gw) = wan_gateway6(ctx, wan).await {
                gateway_note = format!("{gw} (from the IPv6 default route)");
                targets.push((gw, "gateway"));
            }
        }
        for t in &c.targets {
            if !targets.iter().any(|(a, _)| a == t) {
                targets.push((*t, "target"));
            }
        }
        if targets.is_empty() {
            return self
                .obs(
                    CheckStatus::Unknown,
                    "no_target",
                    "no IPv6 gateway known and no IPv6 probe targets configured".into(),
                )
                .evidence("gateway", gateway_note)
                .hint("wan6 explains a missing IPv6 default route");
        }
        // Bound to the WAN: the gateway is link-local, reachable only through that interface.
        let pinger = match Pinger::new_v6(wan) {
            Ok(p) => p,
            Err(e) => {
                return self
                    .obs(
                        CheckStatus::Unknown,
                        "no_icmp_socket",
                        format!("cannot open an ICMPv6 socket: {e}"),
                    )
                    .hint("grant the agent CAP_NET_RAW");
            }
        };
        let judge = c.as_icmp();
        let interval = Duration::from_millis(c.interval_ms);
        let timeout = Duration::from_millis(c.timeout_ms);
        let hosts: Vec<IpAddr> = targets.iter().map(|(ip, _)| IpAddr::V6(*ip)).collect();
        let results = pinger
            .probe_series(&hosts, c.count, interval, timeout)
            .await;
        let mut o = self.obs(CheckStatus::Ok, "ok", String::new());
        o = o.evidence("gateway", gateway_note);
        let mut worst: Option<(super::icmp::Verdict, Ipv6Addr, &str, PathStats)> = None;
        let mut values = Vec::new();
        for ((ip, role), r) in targets.iter().zip(results) {
            let stats = PathStats::compute(r.sent, &r.rtts_ms);
            let verdict = judge.judge(&stats);
            o = o
                .evidence(
                    ip.to_string(),
                    format!(
                        "{role}: {}/{} replies, loss {:.1}%, rtt avg {} ms p95 {} ms, jitter {} ms",
                        stats.received,
                        stats.sent,
                        stats.loss_percent,
                        fmt_ms(stats.rtt_avg_ms),
                        fmt_ms(stats.rtt_p95_ms),
                        fmt_ms(stats.jitter_ms)
                    ),
                )
                .evidence(
                    format!("{ip}.loss_percent"),
                    format!("{:.1}", stats.loss_percent),
                )
                .evidence(format!("{ip}.rtt_avg_ms"), fmt_ms(stats.rtt_avg_ms))
                .evidence(format!("{ip}.jitter_ms"), fmt_ms(stats.jitter_ms));
            values.push(format!("{ip} {:.0}% loss", stats.loss_percent));
            let rank = |s: CheckStatus| match s {
                CheckStatus::Ok => 0,
                CheckStatus::Unknown => 1,
                CheckStatus::Degraded => 2,
                CheckStatus::Failed => 3,
            };
            if worst
                .as_ref()
                .is_none_or(|(w, ..)| rank(verdict.status) > rank(w.status))
            {
                worst = Some((verdict, *ip, role, stats));
            }
        }
        let Some((verdict, ip, role, stats)) = worst else {
            return self.obs(CheckStatus::Unknown, "no_target", "nothing measured".into());
        };
        let (cause, summary) = match verdict.cause {
            "ok" => (
                "ok".to_string(),
                format!("{} IPv6 path(s) healthy", targets.len()),
            ),
            "unreachable" => (
                format!("{role}_unreachable"),
                format!("IPv6 {role} {ip} does not answer: {}", verdict.detail),
            ),
            "packet_loss" => (
                "packet_loss".to_string(),
                format!(
                    "{:.1}% IPv6 packet loss to {role} {ip} ({}/{} replies)",
                    stats.loss_percent, stats.received, stats.sent
                ),
            ),
            other => (
                other.to_string(),
                format!("IPv6 path to {role} {ip}: {}", verdict.detail),
            ),
        };
        o.status = verdict.status;
        o.cause = cause;
        o.summary = summary;
        o.severity = if verdict.status == CheckStatus::Failed {
            Severity::Major
        } else {
            Severity::Minor
        };
        o = o
            .evidence("worst", ip)
            .evidence("loss_percent", format!("{:.1}", stats.loss_percent))
            .value(values.join(", "))
            .threshold(format!(
                "loss < {}% / {}% (degraded / failed), as icmp",
                c.degraded_loss_percent, c.failed_loss_percent
            ));
        if verdict.status != CheckStatus::Ok {
            o = o.hint("IPv6 only: compare with icmp (IPv4); loss beyond the gateway is the ISP's IPv6 path");
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_icmp_and_problems_are_named_icmp6() {
        let c = Icmp6Config::default();
        assert!(!c.enabled);
        assert_eq!(
            c.as_icmp().judge(&PathStats::compute(20, &[1.0; 20])).cause,
            "ok"
        );
        let mut out = Vec::new();
        Icmp6Config {
            count: 0,
            interval_secs: 0,
            ..c
        }
        .problems(&mut out);
        assert!(
            out.iter().any(|p| p.field == "checks.icmp6.count"),
            "{out:?}"
        );
        assert!(out.iter().any(|p| p.field == "checks.icmp6.interval_secs"));
        assert!(out.iter().all(|p| p.field.starts_with("checks.icmp6.")));
    }
}
