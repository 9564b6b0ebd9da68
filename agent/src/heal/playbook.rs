//! Playbooks: the built-in ladder per check and cause, and the configured override.

use super::Settings;
use crate::site::Mode;
use netmedic_proto::{ActionId, CheckId};

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
        (CheckId::Wan6, "ipv6_default_route_missing") => &[RestoreRoute6, RenewDhcp6],
        (CheckId::Wan6, "no_global_ipv6" | "prefix_delegation_missing") => &[RenewDhcp6],
        (CheckId::Wan6, "lan_prefix_missing") => &[ReapplyLanPrefix, RenewDhcp6],
        (CheckId::WifiAp, "hostapd_down" | "hostapd_frozen" | "ap_disabled") => &[RestartHostapd],
        (CheckId::WifiAp, "security_open" | "security_mismatch" | "ssid_mismatch") => {
            &[ReapplyWifiConfig]
        }
        (CheckId::WifiAp, "sticky_client") => &[SteerClient, DisassociateClient],
        (CheckId::WifiAp, "channel_busy") => &[ChanSwitch],
        // link flapping/LAN, icmp loss/latency/upstream, http, clock, resources (disk, load),
        // modem_snmp: nothing on the router fixes them; the NOC gets the incident.
        _ => return None,
    })
}

/// The ladder that applies to an incident.
#[derive(Debug, Clone, PartialEq)]
pub struct Ladder {
    /// The playbook's name, which holdout experiments scope to (a built-in one: the check's).
    pub name: String,
    pub actions: Vec<ActionId>,
    pub mode: Mode,
    /// `"config"` or `"built-in"`.
    pub origin: &'static str,
}

/// The configured playbook for check+cause, else the built-in one.
pub fn ladder(config: &Settings, check: CheckId, cause: &str) -> Option<Ladder> {
    if let Some(p) = config.playbooks.iter().find(|p| p.matches(check, cause)) {
        return Some(Ladder {
            name: p.name(),
            actions: p.actions.clone(),
            mode: p.mode,
            origin: "config",
        });
    }
    builtin(check, cause).map(|a| Ladder {
        name: check.as_str().to_string(),
        actions: a.to_vec(),
        mode: Mode::Enforce,
        origin: "built-in",
    })
}
