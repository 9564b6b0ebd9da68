//! `lan_dhcp`: a rogue DHCP server on the home network (typically a second router plugged in
//! LAN-to-LAN): clients that take its lease get the wrong gateway and DNS and lose the internet.
//!
//! Each run sends one DHCPDISCOVER on the LAN bridge from a raw socket (random xid, random
//! locally administered client MAC, broadcast flag so every server answers broadcast), reads
//! the DHCPOFFERs for that xid during `listen_ms`, and reports offers from any server that is
//! not this router: its server identifier, the offender's Ethernet MAC and what it offered.
//! An offer is the router's own when its server id is one of the bridge's addresses (or in
//! `allowed_servers`) or it comes from the bridge's MAC. The router's own DHCP server usually
//! does not see the probe at all (the frame leaves from the router's own stack), so on a clean
//! LAN no offer arrives; that is "ok".
//!
//! Nothing on the router fixes a rogue server: the incident is reported, never healed.

use super::{Context, Observation, check_settings, common_problems};
use crate::rawnet::{self, LanIface, RawError, mac_text};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use pnet_base::MacAddr;
use pnet_packet::Packet;
use pnet_packet::dhcp::{DhcpHardwareTypes, DhcpOperations, DhcpPacket, MutableDhcpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv4::{self, Ipv4Packet, MutableIpv4Packet};
use pnet_packet::udp::{self, MutableUdpPacket, UdpPacket};
use serde::Deserialize;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "rogue_dhcp_server",
    "lan_bridge_missing",
    "raw_socket_failed",
];

/// Most distinct foreign servers kept from one run (a flood of forged offers stays bounded).
pub const MAX_SERVERS: usize = 8;
/// Most `allowed_servers` entries.
const MAX_ALLOWED: usize = 16;
/// Most addresses listed per option in evidence (routers, DNS servers).
const MAX_LISTED: usize = 4;

const ETH_LEN: usize = 14;
const IP_LEN: usize = 20;
const UDP_LEN: usize = 8;
/// BOOTP fixed part (op .. file), before the magic cookie.
const BOOTP_LEN: usize = 236;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
const DHCPDISCOVER: u8 = 1;
const DHCPOFFER: u8 = 2;

/// `[checks.lan_dhcp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LanDhcpConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The LAN bridge (or LAN interface) the probe is sent on.
    pub lan_bridge: String,
    /// How long offers are collected after the DISCOVER. Servers that ping an address before
    /// offering it (dnsmasq does by default) answer about 3 s late.
    pub listen_ms: u64,
    /// Other legitimate DHCP servers on the LAN (server identifiers), besides the router.
    pub allowed_servers: Vec<Ipv4Addr>,
}

impl Default for LanDhcpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            fail_threshold: 1,
            ok_threshold: 2,
            lan_bridge: "br-lan".into(),
            listen_ms: 4000,
            allowed_servers: Vec::new(),
        }
    }
}

check_settings!(LanDhcpConfig);

impl LanDhcpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        lan_probe_problems(
            "lan_dhcp",
            (self.interval_secs, self.fail_threshold, self.ok_threshold),
            &self.lan_bridge,
            self.listen_ms,
            out,
        );
        if self.allowed_servers.len() > MAX_ALLOWED {
            out.push(Problem::new(
                "checks.lan_dhcp.allowed_servers",
                format!("at most {MAX_ALLOWED} entries"),
            ));
        }
        for (i, a) in self.allowed_servers.iter().enumerate() {
            if a.is_unspecified() || a.is_broadcast() || a.is_multicast() {
                out.push(Problem::new(
                    format!("checks.lan_dhcp.allowed_servers[{i}]"),
                    "must be a unicast address",
                ));
            }
        }
    }
}

/// The settings every LAN probe check shares: its schedule `(interval_secs, fail_threshold,
/// ok_threshold)`, the bridge's name, and a listen window shorter than the interval.
pub(crate) fn lan_probe_problems(
    check: &str,
    (interval_secs, fail_threshold, ok_threshold): (u64, u32, u32),
    lan_bridge: &str,
    listen_ms: u64,
    out: &mut Vec<Problem>,
) {
    common_problems(check, interval_secs, fail_threshold, ok_threshold, out);
    lan_bridge_problems(check, lan_bridge, out);
    let field = format!("checks.{check}.listen_ms");
    if !(100..=10_000).contains(&listen_ms) {
        out.push(Problem::new(field, "must be between 100 and 10000"));
    } else if listen_ms / 1000 >= interval_secs {
        out.push(Problem::new(field, "must be shorter than interval_secs"));
    }
}

/// What a LAN probe check reports when its raw exchange could not run: `(cause, summary,
/// hint)`; `what` names what was to be probed.
pub(crate) fn unreadable(
    check: &str,
    lan_bridge: &str,
    what: &str,
    e: &RawError,
) -> (&'static str, String, String) {
    if e.is_missing_interface() {
        (
            "lan_bridge_missing",
            format!("no LAN bridge {lan_bridge}: nothing probed"),
            format!("set checks.{check}.lan_bridge to the LAN interface, or disable the check"),
        )
    } else {
        (
            "raw_socket_failed",
            format!("cannot probe {what}: {e}"),
            "the agent needs CAP_NET_RAW for the LAN checks".to_owned(),
        )
    }
}

/// Validates a `lan_bridge` field: a Linux interface name.
fn lan_bridge_problems(check: &str, name: &str, out: &mut Vec<Problem>) {
    let valid = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '/' && c != ':');
    if !valid {
        out.push(Problem::new(
            format!("checks.{check}.lan_bridge"),
            "must be an interface name (1 to 15 printable characters, no '/' or ':')",
        ));
    }
}

/// One DHCPOFFER as seen on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Option 54, else the IPv4 source.
    pub server_id: Ipv4Addr,
    /// Ethernet source of the offer: the device that sent it.
    pub mac: [u8; 6],
    pub offered: Ipv4Addr,
    pub subnet_mask: Option<Ipv4Addr>,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
}

/// Builds the Ethernet frame of a broadcast DHCPDISCOVER from `client_mac` with `xid`.
pub fn discover_frame(client_mac: [u8; 6], xid: u32) -> Vec<u8> {
    let mut options = Vec::with_capacity(64);
    options.extend_from_slice(&MAGIC_COOKIE);
    options.extend_from_slice(&[53, 1, DHCPDISCOVER]);
    // Parameter request list: subnet mask, router, DNS, lease time, server id.
    options.extend_from_slice(&[55, 5, 1, 3, 6, 51, 54]);
    options.push(255);
    // BOOTP messages are at least 300 bytes; some servers drop shorter ones.
    let dhcp_len = (BOOTP_LEN + options.len()).max(300);
    let udp_len = UDP_LEN + dhcp_len;
    let ip_len = IP_LEN + udp_len;
    let mut frame = vec![0u8; ETH_LEN + ip_len];
    let client = mac(client_mac);
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(client);
        eth.set_ethertype(EtherTypes::Ipv4);
    }
    let (src, dst) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST);
    if let Some(mut dhcp) = MutableDhcpPacket::new(&mut frame[ETH_LEN + IP_LEN + UDP_LEN..]) {
        dhcp.set_op(DhcpOperations::Request);
        dhcp.set_htype(DhcpHardwareTypes::Ethernet);
        dhcp.set_hlen(6);
        dhcp.set_xid(xid);
        dhcp.set_flags(0x8000);
        dhcp.set_chaddr(client);
        dhcp.set_options(&options);
    }
    if let Some(mut u) = MutableUdpPacket::new(&mut frame[ETH_LEN + IP_LEN..]) {
        u.set_source(68);
        u.set_destination(67);
        u.set_length(udp_len as u16);
        let sum = udp::ipv4_checksum(&u.to_immutable(), &src, &dst);
        u.set_checksum(sum);
    }
    if let Some(mut ip) = MutableIpv4Packet::new(&mut frame[ETH_LEN..]) {
        ip.set_version(4);
        ip.set_header_length(5);
        ip.set_total_length(ip_len as u16);
        ip.set_ttl(64);
        ip.set_next_level_protocol(IpNextHeaderProtocols::Udp);
        ip.set_source(src);
        ip.set_destination(dst);
        let sum = ipv4::checksum(&ip.to_immutable());
        ip.set_checksum(sum);
    }
    frame
}

/// The DHCPOFFER for `xid` carried by `frame`, if it is one. Never reads past the frame.
pub fn parse_offer(frame: &[u8], xid: u32) -> Option<Offer> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new(eth.payload())?;
    if ip.get_version() != 4 || ip.get_next_level_protocol() != IpNextHeaderProtocols::Udp {
        return None;
    }
    let hl = usize::from(ip.get_header_length()) * 4;
    let total = usize::from(ip.get_total_length()).min(ip.packet().len());
    if hl < IP_LEN || total < hl {
        return None;
    }
    let u = UdpPacket::new(&ip.packet()[hl..total])?;
    if u.get_source() != 67 || u.get_destination() != 68 {
        return None;
    }
    let d = DhcpPacket::new(u.payload())?;
    if d.get_op() != DhcpOperations::Reply || d.get_xid() != xid {
        return None;
    }
    let opts = parse_options(d.payload())?;
    if opts.msg_type != Some(DHCPOFFER) {
        return None;
    }
    Some(Offer {
        server_id: opts.server_id.unwrap_or_else(|| ip.get_source()),
        mac: eth.get_source().octets(),
        offered: d.get_yiaddr(),
        subnet_mask: opts.subnet_mask,
        routers: opts.routers,
        dns: opts.dns,
    })
}

#[derive(Debug, Default)]
struct Options {
    msg_type: Option<u8>,
    server_id: Option<Ipv4Addr>,
    subnet_mask: Option<Ipv4Addr>,
    routers: Vec<Ipv4Addr>,
    dns: Vec<Ipv4Addr>,
}

/// Walks the options after the magic cookie; `None` without the cookie. Truncated options end
/// the walk (what was read so far is kept).
fn parse_options(raw: &[u8]) -> Option<Options> {
    let rest = raw.strip_prefix(&MAGIC_COOKIE)?;
    let mut o = Options::default();
    let mut i = 0;
    while i < rest.len() {
        let code = rest[i];
        if code == 0 {
            i += 1;
            continue;
        }
        if code == 255 {
            break;
        }
        let Some(&len) = rest.get(i + 1) else { break };
        let Some(val) = rest.get(i + 2..i + 2 + usize::from(len)) else {
            break;
        };
        match code {
            53 if val.len() == 1 => o.msg_type = Some(val[0]),
            54 => o.server_id = addrs(val).first().copied(),
            1 => o.subnet_mask = addrs(val).first().copied(),
            3 => o.routers = addrs(val),
            6 => o.dns = addrs(val),
            _ => {}
        }
        i += 2 + usize::from(len);
    }
    Some(o)
}

fn addrs(val: &[u8]) -> Vec<Ipv4Addr> {
    val.chunks_exact(4)
        .take(MAX_LISTED)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

fn mac(m: [u8; 6]) -> MacAddr {
    MacAddr::new(m[0], m[1], m[2], m[3], m[4], m[5])
}

/// What one run saw: the router's own offers and the foreign servers (distinct, bounded).
#[derive(Debug, Default, PartialEq)]
pub struct Seen {
    pub own_offers: u32,
    pub foreign: Vec<Offer>,
    /// Offers from foreign servers beyond [`MAX_SERVERS`] (not kept).
    pub dropped: u32,
}

impl Seen {
    /// Sorts `offer` in: the router's own (its addresses, its MAC, or allowed) or foreign.
    pub fn add(&mut self, offer: Offer, own: &LanIface, allowed: &[Ipv4Addr]) {
        let is_own = offer.mac == own.mac
            || own.ipv4.contains(&offer.server_id)
            || allowed.contains(&offer.server_id);
        if is_own {
            self.own_offers = self.own_offers.saturating_add(1);
        } else if self
            .foreign
            .iter()
            .any(|o| o.server_id == offer.server_id && o.mac == offer.mac)
        {
            // The same server answering twice (retransmission) is one server.
        } else if self.foreign.len() < MAX_SERVERS {
            self.foreign.push(offer);
        } else {
            self.dropped = self.dropped.saturating_add(1);
        }
    }
}

fn list(a: &[Ipv4Addr]) -> String {
    if a.is_empty() {
        return "-".into();
    }
    a.iter()
        .map(Ipv4Addr::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(Debug, Clone)]
pub struct LanDhcpCheck {
    pub config: LanDhcpConfig,
}

impl LanDhcpCheck {
    pub fn new(_site: &Site, config: &LanDhcpConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        Observation::new(CheckId::LanDhcp, status, cause, summary)
            .category(Category::LanDegraded)
            .threshold("no DHCP server on the LAN but this router")
            .evidence("lan_bridge", &self.config.lan_bridge)
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = self.config.clone();
        let probe = tokio::task::spawn_blocking(move || probe(&c)).await;
        match probe {
            Ok(Ok((own, seen))) => self.judge(&own, &seen),
            Ok(Err(e)) => self.unreadable(&e),
            Err(e) => self.obs(
                CheckStatus::Unknown,
                "raw_socket_failed",
                format!("the DHCP probe task failed: {e}"),
            ),
        }
    }

    fn unreadable(&self, e: &RawError) -> Observation {
        let (cause, summary, hint) =
            unreadable("lan_dhcp", &self.config.lan_bridge, "for DHCP servers", e);
        self.obs(CheckStatus::Unknown, cause, summary).hint(hint)
    }

    /// The verdict on one run's offers.
    pub fn judge(&self, own: &LanIface, seen: &Seen) -> Observation {
        let Some(first) = seen.foreign.first() else {
            return Observation::ok(
                CheckId::LanDhcp,
                format!(
                    "no other DHCP server on {} ({} offer(s) from this router)",
                    own.name, seen.own_offers
                ),
            )
            .category(Category::LanDegraded)
            .value(format!(
                "0 foreign servers, {} own offer(s)",
                seen.own_offers
            ))
            .evidence("lan_bridge", &own.name)
            .evidence("own_offers", seen.own_offers);
        };
        let n = seen.foreign.len() + seen.dropped as usize;
        let mut o = self
            .obs(
                CheckStatus::Failed,
                "rogue_dhcp_server",
                format!(
                    "rogue DHCP server {} ({}) on the LAN offers {}: its clients get the wrong gateway and DNS",
                    first.server_id,
                    mac_text(first.mac),
                    first.offered
                ),
            )
            .severity(Severity::Major)
            .value(format!("{n} foreign DHCP server(s)"))
            .hint(format!(
                "a second router or access point is serving DHCP on the LAN: find the device with MAC {} and turn its DHCP server off (or use it as an access point); nothing on this router fixes it",
                mac_text(first.mac)
            ))
            .evidence("server_id", first.server_id)
            .evidence("offender_mac", mac_text(first.mac))
            .evidence("offered_address", first.offered)
            .evidence(
                "offered_subnet_mask",
                first.subnet_mask.map_or("-".into(), |m| m.to_string()),
            )
            .evidence("offered_router", list(&first.routers))
            .evidence("offered_dns", list(&first.dns))
            .evidence("foreign_servers", n)
            .evidence("own_offers", seen.own_offers);
        if seen.foreign.len() > 1 {
            let others: Vec<String> = seen.foreign[1..]
                .iter()
                .map(|f| format!("{} ({})", f.server_id, mac_text(f.mac)))
                .collect();
            o = o.evidence("other_servers", others.join(", "));
        }
        o
    }
}

/// One probe: DISCOVER out, offers in. Blocking.
fn probe(c: &LanDhcpConfig) -> Result<(LanIface, Seen), RawError> {
    let own = rawnet::lan_iface(&c.lan_bridge)?;
    let xid = rawnet::random_u32();
    let frame = discover_frame(rawnet::random_local_mac(), xid);
    let mut seen = Seen::default();
    rawnet::exchange(&own, &frame, Duration::from_millis(c.listen_ms), |f| {
        if let Some(offer) = parse_offer(f, xid) {
            seen.add(offer, &own, &c.allowed_servers);
        }
    })?;
    Ok((own, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::causes::assert_declared;

    const ROUTER_MAC: [u8; 6] = [0x02, 0x6e, 0x6d, 0, 0, 1];
    const ROGUE_MAC: [u8; 6] = [0x02, 0x52, 0x4f, 0x47, 0x55, 0x45];

    fn own() -> LanIface {
        LanIface::fake("br-lan", ROUTER_MAC, &[Ipv4Addr::new(100, 100, 0, 1)])
    }

    /// An offer as a server would send it: the DISCOVER turned into a reply.
    fn offer_frame(server_mac: [u8; 6], server_id: Ipv4Addr, xid: u32, msg: u8) -> Vec<u8> {
        let mut f = discover_frame([2, 0, 0, 0, 0, 9], xid);
        let mut options = MAGIC_COOKIE.to_vec();
        options.extend_from_slice(&[53, 1, msg, 54, 4]);
        options.extend_from_slice(&server_id.octets());
        options.extend_from_slice(&[1, 4, 255, 255, 255, 0, 3, 4]);
        options.extend_from_slice(&server_id.octets());
        options.extend_from_slice(&[6, 8, 203, 0, 113, 53, 203, 0, 113, 54, 255]);
        MutableEthernetPacket::new(&mut f)
            .unwrap()
            .set_source(mac(server_mac));
        let mut d = MutableDhcpPacket::new(&mut f[ETH_LEN + IP_LEN + UDP_LEN..]).unwrap();
        d.set_op(DhcpOperations::Reply);
        d.set_yiaddr(Ipv4Addr::new(198, 51, 100, 77));
        d.set_options(&options);
        let mut u = MutableUdpPacket::new(&mut f[ETH_LEN + IP_LEN..]).unwrap();
        u.set_source(67);
        u.set_destination(68);
        f
    }

    #[test]
    fn the_discover_is_a_well_formed_broadcast_request() {
        let f = discover_frame(ROGUE_MAC, 0xdead_beef);
        let eth = EthernetPacket::new(&f).unwrap();
        assert_eq!(eth.get_destination(), MacAddr::broadcast());
        let ip = Ipv4Packet::new(eth.payload()).unwrap();
        assert_eq!(ipv4::checksum(&ip), ip.get_checksum());
        assert_eq!(usize::from(ip.get_total_length()), f.len() - ETH_LEN);
        let u = UdpPacket::new(ip.payload()).unwrap();
        assert_eq!((u.get_source(), u.get_destination()), (68, 67));
        let d = DhcpPacket::new(u.payload()).unwrap();
        assert_eq!(d.get_xid(), 0xdead_beef);
        assert_eq!(d.get_flags(), 0x8000);
        assert_eq!(d.get_chaddr().octets(), ROGUE_MAC);
        assert_eq!(
            parse_options(d.payload()).unwrap().msg_type,
            Some(DHCPDISCOVER)
        );
        assert!(u.payload().len() >= 300);
        // Our own DISCOVER seen on the socket is no offer.
        assert_eq!(parse_offer(&f, 0xdead_beef), None);
    }

    #[test]
    fn offers_are_parsed_with_the_senders_mac_and_matched_by_xid() {
        let sid = Ipv4Addr::new(198, 51, 100, 1);
        let f = offer_frame(ROGUE_MAC, sid, 7, DHCPOFFER);
        let o = parse_offer(&f, 7).unwrap();
        assert_eq!(o.server_id, sid);
        assert_eq!(o.mac, ROGUE_MAC);
        assert_eq!(o.offered, Ipv4Addr::new(198, 51, 100, 77));
        assert_eq!(o.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(o.routers, vec![sid]);
        assert_eq!(o.dns.len(), 2);
        assert_eq!(parse_offer(&f, 8), None, "another xid");
        assert_eq!(
            parse_offer(&offer_frame(ROGUE_MAC, sid, 7, 5), 7),
            None,
            "an ACK"
        );
        // Every truncation is refused or parsed within bounds, never a panic.
        for n in 0..f.len() {
            let _ = parse_offer(&f[..n], 7);
        }
    }

    #[test]
    fn options_that_run_past_the_end_stop_the_walk() {
        let mut raw = MAGIC_COOKIE.to_vec();
        raw.extend_from_slice(&[53, 1, 2, 54, 200, 1, 2]);
        let o = parse_options(&raw).unwrap();
        assert_eq!(o.msg_type, Some(2));
        assert_eq!(o.server_id, None);
        assert!(parse_options(&[1, 2, 3]).is_none());
    }

    #[test]
    fn the_routers_own_offers_are_not_rogue() {
        let cfg = LanDhcpConfig::default();
        let check = LanDhcpCheck { config: cfg };
        let own = own();
        let mut seen = Seen::default();
        let router_id = Ipv4Addr::new(100, 100, 0, 1);
        seen.add(
            parse_offer(&offer_frame(ROUTER_MAC, router_id, 1, DHCPOFFER), 1).unwrap(),
            &own,
            &[],
        );
        // A server that names the router's address as its id from another MAC is still own
        // (the router's DHCP server behind a VLAN device), and an allowed one is too.
        seen.add(
            parse_offer(&offer_frame(ROGUE_MAC, router_id, 1, DHCPOFFER), 1).unwrap(),
            &own,
            &[],
        );
        let allowed = Ipv4Addr::new(100, 100, 0, 3);
        seen.add(
            parse_offer(&offer_frame(ROGUE_MAC, allowed, 1, DHCPOFFER), 1).unwrap(),
            &own,
            &[allowed],
        );
        assert_eq!(seen.own_offers, 3);
        let o = check.judge(&own, &seen);
        assert_eq!(o.status, CheckStatus::Ok);
        assert_eq!(o.category, Category::LanDegraded);
    }

    #[test]
    fn a_foreign_server_fails_with_its_mac_in_evidence() {
        let check = LanDhcpCheck {
            config: LanDhcpConfig::default(),
        };
        let own = own();
        let mut seen = Seen::default();
        let sid = Ipv4Addr::new(198, 51, 100, 1);
        for _ in 0..3 {
            seen.add(
                parse_offer(&offer_frame(ROGUE_MAC, sid, 1, DHCPOFFER), 1).unwrap(),
                &own,
                &[],
            );
        }
        assert_eq!(seen.foreign.len(), 1, "retransmissions are one server");
        for i in 0..20u8 {
            let m = [2, 0, 0, 0, 1, i];
            seen.add(
                parse_offer(
                    &offer_frame(m, Ipv4Addr::new(192, 0, 2, i), 1, DHCPOFFER),
                    1,
                )
                .unwrap(),
                &own,
                &[],
            );
        }
        assert_eq!(seen.foreign.len(), MAX_SERVERS);
        assert_eq!(seen.dropped, 21 - MAX_SERVERS as u32);
        let o = check.judge(&own, &seen);
        assert_eq!(o.status, CheckStatus::Failed);
        assert_eq!(o.severity, Severity::Major);
        assert_eq!(o.cause, "rogue_dhcp_server");
        assert_eq!(o.evidence["offender_mac"], "02:52:4f:47:55:45");
        assert_eq!(o.evidence["server_id"], "198.51.100.1");
        assert_eq!(o.evidence["offered_router"], "198.51.100.1");
        assert_eq!(o.evidence["foreign_servers"], "21");
        assert!(o.evidence["other_servers"].contains("192.0.2.0 (02:00:00:00:01:00)"));
        assert_declared(&o);
    }

    #[test]
    fn config_problems_are_located() {
        let mut c = LanDhcpConfig {
            lan_bridge: "a/b".into(),
            listen_ms: 50,
            allowed_servers: vec![Ipv4Addr::BROADCAST],
            ..LanDhcpConfig::default()
        };
        let mut out = Vec::new();
        c.problems(&mut out);
        let fields: Vec<_> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "checks.lan_dhcp.lan_bridge",
                "checks.lan_dhcp.listen_ms",
                "checks.lan_dhcp.allowed_servers[0]"
            ]
        );
        c = LanDhcpConfig {
            interval_secs: 2,
            listen_ms: 3000,
            ..LanDhcpConfig::default()
        };
        out.clear();
        c.problems(&mut out);
        assert_eq!(out.len(), 1);
        out.clear();
        LanDhcpConfig::default().problems(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
