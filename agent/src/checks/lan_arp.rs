//! `lan_arp`: another device on the home network uses the router's own LAN address (an IP
//! conflict with the gateway, the one that breaks every client: their ARP for the gateway
//! gets two answers and traffic goes to whichever won).
//!
//! Each run sends an RFC 5227 ARP probe (sender IP 0.0.0.0, so no host's ARP cache is
//! changed) for each of the bridge's IPv4 addresses from the bridge's MAC, and listens for
//! `listen_ms`: any ARP packet (reply to the probe, gratuitous announcement, or a request)
//! whose sender IP is one of the router's addresses and whose sender MAC is not the bridge's
//! is a conflict. Evidence: the address and the offending MAC(s).
//!
//! Nothing on the router fixes it (the other device must change its address): reported only.

use super::lan_dhcp::lan_bridge_problems;
use super::{Context, Observation, check_settings, common_problems};
use crate::rawnet::{self, LanIface, RawError, mac_text};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use pnet_base::MacAddr;
use pnet_packet::Packet;
use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "lan_ip_conflict",
    "lan_bridge_missing",
    "lan_address_missing",
    "raw_socket_failed",
];

/// Most conflicting (address, MAC) pairs kept from one run.
pub const MAX_CONFLICTS: usize = 8;
/// Most of the bridge's addresses probed per run.
const MAX_PROBED: usize = 4;
const ETH_LEN: usize = 14;
/// ARP for IPv4 over Ethernet.
const ARP_LEN: usize = 28;

/// `[checks.lan_arp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanArpConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The LAN bridge (or LAN interface) whose addresses are probed.
    pub lan_bridge: String,
    /// How long replies are collected after the probes.
    pub listen_ms: u64,
}

impl Default for LanArpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            fail_threshold: 1,
            ok_threshold: 2,
            lan_bridge: "br-lan".into(),
            listen_ms: 1000,
        }
    }
}

check_settings!(LanArpConfig);

impl LanArpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "lan_arp",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        lan_bridge_problems("lan_arp", &self.lan_bridge, out);
        if !(100..=10_000).contains(&self.listen_ms) {
            out.push(Problem::new(
                "checks.lan_arp.listen_ms",
                "must be between 100 and 10000",
            ));
        } else if self.listen_ms / 1000 >= self.interval_secs {
            out.push(Problem::new(
                "checks.lan_arp.listen_ms",
                "must be shorter than interval_secs",
            ));
        }
    }
}

/// An ARP probe (RFC 5227 section 2.1.1) for `target` from `mac`: broadcast, sender IP zero.
pub fn probe_frame(mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0u8; ETH_LEN + ARP_LEN];
    let me = MacAddr::new(mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
    if let Some(mut eth) = MutableEthernetPacket::new(&mut f) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(me);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut f[ETH_LEN..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(me);
        arp.set_sender_proto_addr(Ipv4Addr::UNSPECIFIED);
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(target);
    }
    f
}

/// `(sender IP, sender MAC)` of an IPv4-over-Ethernet ARP packet in `frame`.
pub fn arp_sender(frame: &[u8]) -> Option<(Ipv4Addr, [u8; 6])> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return None;
    }
    Some((
        arp.get_sender_proto_addr(),
        arp.get_sender_hw_addr().octets(),
    ))
}

/// The conflicts seen in one run: `(router address, offending MAC)`, distinct and bounded.
#[derive(Debug, Default, PartialEq)]
pub struct Conflicts {
    pub pairs: Vec<(Ipv4Addr, [u8; 6])>,
    pub dropped: u32,
}

impl Conflicts {
    /// Sorts one ARP sender in: a conflict when it claims one of `probed` from another MAC.
    pub fn add(&mut self, sender: (Ipv4Addr, [u8; 6]), own_mac: [u8; 6], probed: &[Ipv4Addr]) {
        let (ip, mac) = sender;
        if mac == own_mac || !probed.contains(&ip) || self.pairs.contains(&(ip, mac)) {
            return;
        }
        if self.pairs.len() < MAX_CONFLICTS {
            self.pairs.push((ip, mac));
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

#[derive(Debug, Clone)]
pub struct LanArpCheck {
    pub config: LanArpConfig,
}

impl LanArpCheck {
    pub fn new(_site: &Site, config: &LanArpConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        Observation::new(CheckId::LanArp, status, cause, summary)
            .category(Category::LanDegraded)
            .threshold("no other device answers for the router's LAN address")
            .evidence("lan_bridge", &self.config.lan_bridge)
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = self.config.clone();
        match tokio::task::spawn_blocking(move || probe(&c)).await {
            Ok(Ok((own, probed, conflicts))) => self.judge(&own, &probed, &conflicts),
            Ok(Err(ProbeError::Raw(e))) if e.is_missing_interface() => self
                .obs(
                    CheckStatus::Unknown,
                    "lan_bridge_missing",
                    format!("no LAN bridge {}: nothing probed", self.config.lan_bridge),
                )
                .hint("set checks.lan_arp.lan_bridge to the LAN interface, or disable the check"),
            Ok(Err(ProbeError::NoAddress)) => self.obs(
                CheckStatus::Unknown,
                "lan_address_missing",
                format!("{} has no IPv4 address to probe", self.config.lan_bridge),
            ),
            Ok(Err(ProbeError::Raw(e))) => self
                .obs(
                    CheckStatus::Unknown,
                    "raw_socket_failed",
                    format!("cannot probe the LAN address: {e}"),
                )
                .hint("the agent needs CAP_NET_RAW for the LAN checks"),
            Err(e) => self.obs(
                CheckStatus::Unknown,
                "raw_socket_failed",
                format!("the ARP probe task failed: {e}"),
            ),
        }
    }

    /// The verdict on one run.
    pub fn judge(&self, own: &LanIface, probed: &[Ipv4Addr], c: &Conflicts) -> Observation {
        let addrs = probed
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let Some(&(ip, mac)) = c.pairs.first() else {
            return Observation::ok(
                CheckId::LanArp,
                format!("no other device claims {addrs} on {}", own.name),
            )
            .category(Category::LanDegraded)
            .value(format!("0 conflicts on {addrs}"))
            .evidence("lan_bridge", &own.name)
            .evidence("probed", addrs);
        };
        let macs: Vec<String> = c.pairs.iter().map(|(_, m)| mac_text(*m)).collect();
        let n = c.pairs.len() + c.dropped as usize;
        self.obs(
            CheckStatus::Failed,
            "lan_ip_conflict",
            format!(
                "device {} on the LAN uses the router's address {ip}: clients may lose their gateway",
                mac_text(mac)
            ),
        )
        .severity(Severity::Major)
        .value(format!("{n} conflicting device(s)"))
        .hint(format!(
            "the device with MAC {} has a static address equal to the router's: change it or make it use DHCP; nothing on this router fixes it",
            mac_text(mac)
        ))
        .evidence("ip", ip)
        .evidence("offender_mac", mac_text(mac))
        .evidence("offender_macs", macs.join(","))
        .evidence("router_mac", mac_text(own.mac))
        .evidence("probed", addrs)
    }
}

#[derive(Debug)]
enum ProbeError {
    Raw(RawError),
    NoAddress,
}

/// Probes every (bounded) address of the bridge in one exchange. Blocking.
fn probe(c: &LanArpConfig) -> Result<(LanIface, Vec<Ipv4Addr>, Conflicts), ProbeError> {
    let own = rawnet::lan_iface(&c.lan_bridge).map_err(ProbeError::Raw)?;
    let probed: Vec<Ipv4Addr> = own.ipv4.iter().copied().take(MAX_PROBED).collect();
    if probed.is_empty() {
        return Err(ProbeError::NoAddress);
    }
    let mut conflicts = Conflicts::default();
    // The first address gets the whole window; further ones (rare) a quarter each, so a run
    // stays short however many addresses the bridge has.
    let window = Duration::from_millis(c.listen_ms);
    for (i, target) in probed.iter().enumerate() {
        let w = if i == 0 { window } else { window / 4 };
        rawnet::exchange(&own, &probe_frame(own.mac, *target), w, |f| {
            if let Some(s) = arp_sender(f) {
                conflicts.add(s, own.mac, &probed);
            }
        })
        .map_err(ProbeError::Raw)?;
    }
    Ok((own, probed, conflicts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::causes::assert_declared;

    const ROUTER_MAC: [u8; 6] = [0x02, 0x6e, 0x6d, 0, 0, 1];
    const HOST_MAC: [u8; 6] = [0x02, 0x44, 0x55, 0x50, 0x00, 0x01];
    const LAN_IP: Ipv4Addr = Ipv4Addr::new(100, 100, 0, 1);

    /// The reply a Linux host holding `ip` sends to a probe (RFC 5227: to the prober's MAC).
    fn reply(from: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
        let mut f = probe_frame(from, ip);
        let mut arp = MutableArpPacket::new(&mut f[ETH_LEN..]).unwrap();
        arp.set_operation(ArpOperations::Reply);
        arp.set_sender_proto_addr(ip);
        f
    }

    #[test]
    fn the_probe_follows_rfc_5227() {
        let f = probe_frame(ROUTER_MAC, LAN_IP);
        let eth = EthernetPacket::new(&f).unwrap();
        assert_eq!(eth.get_destination(), MacAddr::broadcast());
        let arp = ArpPacket::new(eth.payload()).unwrap();
        assert_eq!(arp.get_operation(), ArpOperations::Request);
        assert_eq!(arp.get_sender_proto_addr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(arp.get_target_proto_addr(), LAN_IP);
        assert_eq!(arp.get_sender_hw_addr().octets(), ROUTER_MAC);
        assert_eq!(arp.get_target_hw_addr(), MacAddr::zero());
    }

    #[test]
    fn a_reply_from_another_mac_is_a_conflict_ours_are_not() {
        let mut c = Conflicts::default();
        // Our own probe, seen on the socket as it leaves: sender IP 0.0.0.0.
        if let Some(s) = arp_sender(&probe_frame(ROUTER_MAC, LAN_IP)) {
            c.add(s, ROUTER_MAC, &[LAN_IP]);
        }
        // Our own announcement, and another host's address: not conflicts.
        c.add((LAN_IP, ROUTER_MAC), ROUTER_MAC, &[LAN_IP]);
        c.add(
            arp_sender(&reply(HOST_MAC, Ipv4Addr::new(100, 100, 0, 2))).unwrap(),
            ROUTER_MAC,
            &[LAN_IP],
        );
        assert!(c.pairs.is_empty());
        for _ in 0..3 {
            c.add(
                arp_sender(&reply(HOST_MAC, LAN_IP)).unwrap(),
                ROUTER_MAC,
                &[LAN_IP],
            );
        }
        assert_eq!(c.pairs, vec![(LAN_IP, HOST_MAC)]);
        for i in 0..10u8 {
            c.add((LAN_IP, [2, 0, 0, 0, 0, i]), ROUTER_MAC, &[LAN_IP]);
        }
        assert_eq!(c.pairs.len(), MAX_CONFLICTS);
        assert_eq!(c.dropped, 3);

        let check = LanArpCheck {
            config: LanArpConfig::default(),
        };
        let own = LanIface::fake("br-lan", ROUTER_MAC, &[LAN_IP]);
        let o = check.judge(&own, &[LAN_IP], &c);
        assert_eq!(o.status, CheckStatus::Failed);
        assert_eq!(o.cause, "lan_ip_conflict");
        assert_eq!(o.severity, Severity::Major);
        assert_eq!(o.evidence["ip"], "100.100.0.1");
        assert_eq!(o.evidence["offender_mac"], "02:44:55:50:00:01");
        assert_eq!(o.value, "11 conflicting device(s)");
        assert_declared(&o);
        let ok = check.judge(&own, &[LAN_IP], &Conflicts::default());
        assert_eq!(ok.status, CheckStatus::Ok);
        assert_declared(&ok);
    }

    #[test]
    fn non_arp_and_truncated_frames_are_ignored() {
        let f = reply(HOST_MAC, LAN_IP);
        for n in 0..f.len() {
            assert_eq!(arp_sender(&f[..n]), None, "{n} bytes");
        }
        let mut ip = f.clone();
        ip[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(arp_sender(&ip), None);
    }

    #[test]
    fn config_problems_are_located() {
        let c = LanArpConfig {
            lan_bridge: String::new(),
            listen_ms: 20_000,
            ..LanArpConfig::default()
        };
        let mut out = Vec::new();
        c.problems(&mut out);
        let fields: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            ["checks.lan_arp.lan_bridge", "checks.lan_arp.listen_ms"]
        );
    }
}
