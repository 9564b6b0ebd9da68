//! `default_route`: an IPv4 default route exists via the WAN interface and its gateway answers.

use super::{Context, Observation, check_settings, common_problems, now};
use crate::net::DefaultRoute;
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "default_route_missing",
    "default_route_wrong_interface",
    "gateway_arp_failed",
    "gateway_icmp_silent",
    "wan_interface_missing",
    "netlink_error",
    "no_icmp_socket",
];

/// `[checks.default_route]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefaultRouteConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    /// Consecutive failed runs that open an incident.
    pub fail_threshold: u32,
    /// Consecutive passing runs that resolve it.
    pub ok_threshold: u32,
    /// How long to wait for the gateway's echo reply.
    pub ping_timeout_ms: u64,
    /// Echo requests sent to the gateway per run; one reply is enough.
    pub ping_count: u32,
}

impl Default for DefaultRouteConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            fail_threshold: 2,
            ok_threshold: 2,
            ping_timeout_ms: 1000,
            ping_count: 3,
        }
    }
}

check_settings!(DefaultRouteConfig);

impl DefaultRouteConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "default_route",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.ping_timeout_ms == 0 || self.ping_timeout_ms > 10_000 {
            out.push(Problem::new(
                "checks.default_route.ping_timeout_ms",
                "must be between 1 and 10000",
            ));
        }
        if self.ping_count == 0 || self.ping_count > 10 {
            out.push(Problem::new(
                "checks.default_route.ping_count",
                "must be between 1 and 10",
            ));
        }
    }
}

#[derive(Debug, Clone)]
pub struct DefaultRouteCheck {
    pub config: DefaultRouteConfig,
    pub wan_interface: String,
}

impl DefaultRouteCheck {
    pub fn new(site: &Site, config: &DefaultRouteConfig) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
        }
    }

    fn observation(
        &self,
        status: CheckStatus,
        cause: &str,
        summary: String,
        value: String,
        hint: &str,
        evidence: BTreeMap<String, String>,
    ) -> Observation {
        Observation {
            check: CheckId::DefaultRoute,
            status,
            cause: cause.to_string(),
            summary,
            value,
            threshold: format!(
                "route via {}; gateway answers 1 of {} echoes within {} ms",
                self.wan_interface, self.config.ping_count, self.config.ping_timeout_ms
            ),
            hint: hint.to_string(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            evidence,
            at: now(),
        }
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let mut ev = BTreeMap::new();
        ev.insert("wan_interface".to_string(), self.wan_interface.clone());
        let wan_index = match ctx.netlink.link_index(&self.wan_interface).await {
            Ok(Some(i)) => i,
            Ok(None) => {
                return self.observation(
                    CheckStatus::Failed,
                    "wan_interface_missing",
                    format!("WAN interface {} does not exist", self.wan_interface),
                    "no interface".into(),
                    "check wan.interface in agent.toml and the firmware's network config",
                    ev,
                );
            }
            Err(e) => {
                return self.observation(
                    CheckStatus::Unknown,
                    "netlink_error",
                    format!("cannot read interfaces: {e}"),
                    "unknown".into(),
                    "the agent needs CAP_NET_ADMIN",
                    ev,
                );
            }
        };
        let routes = match ctx.netlink.default_routes_v4().await {
            Ok(r) => r,
            Err(e) => {
                return self.observation(
                    CheckStatus::Unknown,
                    "netlink_error",
                    format!("cannot read routes: {e}"),
                    "unknown".into(),
                    "the agent needs CAP_NET_ADMIN",
                    ev,
                );
            }
        };
        ev.insert("default_routes".to_string(), describe(&routes));
        let Some(route) = routes.iter().find(|r| r.oif == Some(wan_index)) else {
            let (cause, summary) = if routes.is_empty() {
                ("default_route_missing", "no IPv4 default route".to_string())
            } else {
                (
                    "default_route_wrong_interface",
                    format!("IPv4 default route does not go via {}", self.wan_interface),
                )
            };
            return self.observation(
                CheckStatus::Failed,
                cause,
                summary,
                "none via WAN".into(),
                "restore_route reinstates it from the DHCP lease or the provisioned gateway",
                ev,
            );
        };
        let Some(gateway) = route.gateway else {
            // A device route (PPP, point-to-point): nothing to ping at layer 3 here.
            return self.observation(
                CheckStatus::Ok,
                "ok",
                format!("default route via {} (no gateway)", self.wan_interface),
                format!("dev {}", self.wan_interface),
                "",
                ev,
            );
        };
        ev.insert("gateway".to_string(), gateway.to_string());
        let Some(pinger) = &ctx.pinger else {
            return self.observation(
                CheckStatus::Unknown,
                "no_icmp_socket",
                format!("default route via {gateway}; cannot ping it without CAP_NET_RAW"),
                format!("via {gateway}"),
                "grant the agent CAP_NET_RAW",
                ev,
            );
        };
        let result = pinger
            .probe(
                IpAddr::V4(gateway),
                self.config.ping_count,
                Duration::from_millis(self.config.ping_timeout_ms),
                true,
            )
            .await;
        ev.insert(
            "gateway_echo".to_string(),
            format!("{}/{} answered", result.received, result.sent),
        );
        if let Some(rtt) = result.rtts_ms.first() {
            ev.insert("gateway_rtt_ms".to_string(), format!("{rtt:.2}"));
            self.observation(
                CheckStatus::Ok,
                "ok",
                format!("default route via {gateway} answers"),
                format!("via {gateway}, {rtt:.1} ms"),
                "",
                ev,
            )
        } else {
            // Did the gateway at least answer ARP? The echo requests made the kernel resolve
            // it; its neighbour entry says whether layer 2 works.
            let arp = ctx
                .netlink
                .neighbour_v4(wan_index, gateway)
                .await
                .ok()
                .flatten();
            let arp_ok = arp.as_ref().is_some_and(|n| {
                n.lladdr.is_some() && !matches!(n.state.as_str(), "failed" | "incomplete" | "none")
            });
            ev.insert(
                "gateway_arp".to_string(),
                arp.map_or("no entry".to_string(), |n| {
                    format!("{} {}", n.state, n.lladdr.unwrap_or_default())
                }),
            );
            let (cause, summary, hint) = if arp_ok {
                (
                    "gateway_icmp_silent",
                    format!("gateway {gateway} answers ARP but not ICMP echo"),
                    "the gateway is up at layer 2; the ISP's router is not answering or filters echo",
                )
            } else {
                (
                    "gateway_arp_failed",
                    format!("gateway {gateway} does not answer ARP or ICMP"),
                    "nothing answers on the access link: line, modem or the ISP's gateway is down",
                )
            };
            self.observation(
                CheckStatus::Failed,
                cause,
                summary,
                format!("via {gateway}, no reply"),
                hint,
                ev,
            )
        }
    }
}

fn describe(routes: &[DefaultRoute]) -> String {
    if routes.is_empty() {
        return "none".to_string();
    }
    routes
        .iter()
        .map(|r| {
            format!(
                "via {} oif {} metric {}",
                r.gateway.map_or("-".to_string(), |g| g.to_string()),
                r.oif.map_or("-".to_string(), |i| i.to_string()),
                r.metric
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}
