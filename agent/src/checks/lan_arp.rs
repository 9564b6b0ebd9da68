//! `lan_arp`: an IPv4 address conflict on the home network. Two kinds:
//!
//! - another device uses the router's own LAN address (the conflict that breaks every client:
//!   their ARP for the gateway gets two answers and traffic goes to whichever won);
//! - two clients use one address (a static address inside the DHCP range, a cloned VM): both
//!   lose their connections by turns.
//!
//! Each run sends an RFC 5227 ARP probe (sender IP 0.0.0.0, so no host's ARP cache is
//! changed) from the bridge's MAC for each of the bridge's IPv4 addresses and for each client
//! address in the kernel's neighbour table on the bridge (bounded), all back to back, and
//! listens for `listen_ms`. Any ARP packet (reply to a probe, gratuitous announcement, or a
//! request) whose sender IP is one of the router's addresses and whose sender MAC is not the
//! bridge's is a router conflict; a client address that two MACs claim in the same window is
//! a client conflict, unless the same MACs also claim another address together (one host with
//! two interfaces on the LAN answering for both of its addresses, Linux's default). Evidence:
//! the address and the MACs.
//!
//! Nothing on the router fixes it (the other device must change its address): reported only.

use super::lan_dhcp::{lan_probe_problems, unreadable};
use super::{Context, Observation, check_settings};
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
    "lan_client_ip_conflict",
    "lan_bridge_missing",
    "lan_address_missing",
    "raw_socket_failed",
];

/// Most conflicting (address, MAC) pairs kept from one run.
pub const MAX_CONFLICTS: usize = 8;
/// Most of the bridge's addresses probed per run.
const MAX_PROBED: usize = 4;
/// Most client addresses (from the neighbour table) probed per run.
pub const MAX_CLIENTS: usize = 32;
/// Most client addresses whose claims are tracked in one run.
const MAX_CLAIMED: usize = 64;
/// Most MACs kept per claimed address.
const MAX_MACS_PER_IP: usize = 4;
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
        lan_probe_problems(
            "lan_arp",
            (self.interval_secs, self.fail_threshold, self.ok_threshold),
            &self.lan_bridge,
            self.listen_ms,
            out,
        );
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

/// Who claimed which client address in one run: `(address, MACs)`, bounded.
#[derive(Debug, Default, PartialEq)]
pub struct Claims {
    pub by_ip: Vec<(Ipv4Addr, Vec<[u8; 6]>)>,
}

impl Claims {
    /// Sorts one ARP sender in: a claim of a client address (not a probe, not ours).
    pub fn add(&mut self, sender: (Ipv4Addr, [u8; 6]), own_mac: [u8; 6], router: &[Ipv4Addr]) {
        let (ip, mac) = sender;
        if mac == own_mac || ip.is_unspecified() || ip.is_broadcast() || router.contains(&ip) {
            return;
        }
        if let Some((_, macs)) = self.by_ip.iter_mut().find(|(a, _)| *a == ip) {
            if !macs.contains(&mac) && macs.len() < MAX_MACS_PER_IP {
                macs.push(mac);
            }
        } else if self.by_ip.len() < MAX_CLAIMED {
            self.by_ip.push((ip, vec![mac]));
        }
    }

    /// The addresses two or more MACs claim, but not those whose MACs also claim another
    /// address together (one multi-homed host answering for all its addresses).
    pub fn clashes(&self) -> Vec<(Ipv4Addr, Vec<[u8; 6]>)> {
        let sorted = |m: &[[u8; 6]]| {
            let mut m = m.to_vec();
            m.sort_unstable();
            m
        };
        self.by_ip
            .iter()
            .filter(|(_, macs)| macs.len() >= 2)
            .filter(|(ip, macs)| {
                let mine = sorted(macs);
                !self
                    .by_ip
                    .iter()
                    .any(|(other, m)| other != ip && sorted(m) == mine)
            })
            .cloned()
            .collect()
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
            Ok(Ok(run)) => self.judge(&run),
            Ok(Err(ProbeError::Raw(e))) => {
                let (cause, summary, hint) =
                    unreadable("lan_arp", &self.config.lan_bridge, "the LAN addresses", &e);
                self.obs(CheckStatus::Unknown, cause, summary).hint(hint)
            }
            Ok(Err(ProbeError::NoAddress)) => self.obs(
                CheckStatus::Unknown,
                "lan_address_missing",
                format!("{} has no IPv4 address to probe", self.config.lan_bridge),
            ),
            Err(e) => self.obs(
                CheckStatus::Unknown,
                "raw_socket_failed",
                format!("the ARP probe task failed: {e}"),
            ),
        }
    }

    /// The verdict on one run: a router conflict first (it breaks every client), then a
    /// client conflict.
    pub fn judge(&self, run: &ProbeRun) -> Observation {
        let ProbeRun {
            own,
            probed,
            conflicts: c,
            claims,
            clients_probed,
        } = run;
        let addrs = probed
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let Some(&(ip, mac)) = c.pairs.first() else {
            if let Some((ip, macs)) = claims.clashes().into_iter().next() {
                return self.client_clash(own, ip, &macs, *clients_probed);
            }
            return Observation::ok(
                CheckId::LanArp,
                format!(
                    "no other device claims {addrs} on {}, no client address claimed twice",
                    own.name
                ),
            )
            .category(Category::LanDegraded)
            .value(format!("0 conflicts on {addrs}"))
            .evidence("lan_bridge", &own.name)
            .evidence("probed", addrs)
            .evidence("clients_probed", clients_probed);
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
        .evidence("conflict", "router_address")
    }

    /// Two (or more) clients answer for one address.
    fn client_clash(
        &self,
        own: &LanIface,
        ip: Ipv4Addr,
        macs: &[[u8; 6]],
        clients_probed: usize,
    ) -> Observation {
        let list: Vec<String> = macs.iter().map(|m| mac_text(*m)).collect();
        self.obs(
            CheckStatus::Degraded,
            "lan_client_ip_conflict",
            format!(
                "{} devices on the LAN use the address {ip} ({}): they lose their connections by turns",
                macs.len(),
                list.join(", ")
            ),
        )
        .threshold("one device per LAN address")
        .severity(Severity::Minor)
        .value(format!("{} MACs claim {ip}", macs.len()))
        .hint(
            "one of these devices has a static address (or is a cloned VM): make it use DHCP or an address outside the DHCP range; nothing on this router fixes it",
        )
        .evidence("ip", ip)
        .evidence("conflict", "client_address")
        .evidence("offender_mac", list.first().cloned().unwrap_or_default())
        .evidence("offender_macs", list.join(","))
        .evidence("router_mac", mac_text(own.mac))
        .evidence("clients_probed", clients_probed)
    }
}

/// One run's harvest.
#[derive(Debug)]
pub struct ProbeRun {
    pub own: LanIface,
    /// The router's addresses probed.
    pub probed: Vec<Ipv4Addr>,
    pub conflicts: Conflicts,
    pub claims: Claims,
    /// Client addresses from the neighbour table probed.
    pub clients_probed: usize,
}

#[derive(Debug)]
enum ProbeError {
    Raw(RawError),
    NoAddress,
}

/// Probes every (bounded) address of the bridge and the known clients in one exchange.
/// Blocking.
fn probe(c: &LanArpConfig) -> Result<ProbeRun, ProbeError> {
    let own = rawnet::lan_iface(&c.lan_bridge).map_err(ProbeError::Raw)?;
    let probed: Vec<Ipv4Addr> = own.ipv4.iter().copied().take(MAX_PROBED).collect();
    if probed.is_empty() {
        return Err(ProbeError::NoAddress);
    }
    let clients: Vec<Ipv4Addr> = rawnet::ipv4_neighbours(&c.lan_bridge, MAX_CLIENTS + MAX_PROBED)
        .into_iter()
        .filter(|a| !own.ipv4.contains(a))
        .take(MAX_CLIENTS)
        .collect();
    let frames: Vec<Vec<u8>> = probed
        .iter()
        .chain(&clients)
        .map(|t| probe_frame(own.mac, *t))
        .collect();
    let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    let mut conflicts = Conflicts::default();
    let mut claims = Claims::default();
    rawnet::exchange_all(&own, &frames, Duration::from_millis(c.listen_ms), |f| {
        if let Some(s) = arp_sender(f) {
            conflicts.add(s, own.mac, &probed);
            claims.add(s, own.mac, &own.ipv4);
        }
    })
    .map_err(ProbeError::Raw)?;
    Ok(ProbeRun {
        clients_probed: clients.len(),
        own,
        probed,
        conflicts,
        claims,
    })
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
        let run = |conflicts, claims| ProbeRun {
            own: LanIface::fake("br-lan", ROUTER_MAC, &[LAN_IP]),
            probed: vec![LAN_IP],
            conflicts,
            claims,
            clients_probed: 0,
        };
        let o = check.judge(&run(c, Claims::default()));
        assert_eq!(o.status, CheckStatus::Failed);
        assert_eq!(o.cause, "lan_ip_conflict");
        assert_eq!(o.severity, Severity::Major);
        assert_eq!(o.evidence["ip"], "100.100.0.1");
        assert_eq!(o.evidence["offender_mac"], "02:44:55:50:00:01");
        assert_eq!(o.value, "11 conflicting device(s)");
        assert_declared(&o);
        let ok = check.judge(&run(Conflicts::default(), Claims::default()));
        assert_eq!(ok.status, CheckStatus::Ok);
        assert_declared(&ok);
    }

    #[test]
    fn two_macs_on_one_client_address_are_a_client_conflict() {
        const CLIENT: Ipv4Addr = Ipv4Addr::new(100, 100, 0, 77);
        const OTHER_MAC: [u8; 6] = [0x02, 0x43, 0x4c, 0, 0, 2];
        let mut claims = Claims::default();
        // Our probe (sender 0.0.0.0), our own announcement, the router's address: no claims.
        if let Some(s) = arp_sender(&probe_frame(ROUTER_MAC, CLIENT)) {
            claims.add(s, ROUTER_MAC, &[LAN_IP]);
        }
        claims.add((LAN_IP, HOST_MAC), ROUTER_MAC, &[LAN_IP]);
        assert!(claims.by_ip.is_empty());
        for _ in 0..3 {
            claims.add(
                arp_sender(&reply(HOST_MAC, CLIENT)).unwrap(),
                ROUTER_MAC,
                &[LAN_IP],
            );
        }
        assert!(claims.clashes().is_empty(), "one MAC is no conflict");
        claims.add(
            arp_sender(&reply(OTHER_MAC, CLIENT)).unwrap(),
            ROUTER_MAC,
            &[LAN_IP],
        );
        assert_eq!(claims.clashes(), vec![(CLIENT, vec![HOST_MAC, OTHER_MAC])]);

        let check = LanArpCheck {
            config: LanArpConfig::default(),
        };
        let o = check.judge(&ProbeRun {
            own: LanIface::fake("br-lan", ROUTER_MAC, &[LAN_IP]),
            probed: vec![LAN_IP],
            conflicts: Conflicts::default(),
            claims,
            clients_probed: 1,
        });
        assert_eq!(o.status, CheckStatus::Degraded);
        assert_eq!(o.cause, "lan_client_ip_conflict");
        assert_eq!(o.evidence["ip"], "100.100.0.77");
        assert_eq!(o.evidence["conflict"], "client_address");
        assert_eq!(
            o.evidence["offender_macs"],
            "02:44:55:50:00:01,02:43:4c:00:00:02"
        );
        assert_declared(&o);
    }

    #[test]
    fn a_host_with_two_interfaces_is_no_conflict() {
        // Linux answers ARP for all its addresses on every interface: a laptop on cable and
        // Wi-Fi claims both of its addresses from both MACs.
        let (a, b) = (Ipv4Addr::new(100, 100, 0, 5), Ipv4Addr::new(100, 100, 0, 6));
        let (wired, wifi) = ([2, 0, 0, 0, 0, 5], [2, 0, 0, 0, 0, 6]);
        let mut claims = Claims::default();
        for (ip, mac) in [(a, wired), (a, wifi), (b, wifi), (b, wired)] {
            claims.add((ip, mac), ROUTER_MAC, &[LAN_IP]);
        }
        assert!(claims.clashes().is_empty(), "{claims:?}");
        // Bounded however many devices answer.
        for i in 0..10u8 {
            claims.add((a, [2, 1, 0, 0, 0, i]), ROUTER_MAC, &[LAN_IP]);
        }
        for i in 0..100u8 {
            claims.add(
                (Ipv4Addr::new(100, 100, 1, i), wired),
                ROUTER_MAC,
                &[LAN_IP],
            );
        }
        assert_eq!(claims.by_ip[0].1.len(), MAX_MACS_PER_IP);
        assert_eq!(claims.by_ip.len(), MAX_CLAIMED);
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
