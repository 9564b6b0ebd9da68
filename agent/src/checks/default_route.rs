//! `default_route`: an IPv4 default route exists via the WAN interface and its gateway answers.

use super::{Context, Observation, now};
use crate::config::DefaultRouteConfig;
use crate::net::DefaultRoute;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct DefaultRouteCheck {
    pub config: DefaultRouteConfig,
    pub wan_interface: String,
}

impl DefaultRouteCheck {
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
            self.observation(
                CheckStatus::Failed,
                "gateway_unreachable",
                format!("gateway {gateway} does not answer"),
                format!("via {gateway}, no reply"),
                "the access link or the ISP's gateway is down; a DHCP renew may find a new one",
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
