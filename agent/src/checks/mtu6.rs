//! `mtu6`: path-MTU blackholes over IPv6, found with don't-fragment ICMPv6 echo probes.
//!
//! IPv6 routers never fragment: a packet too big for the next hop is dropped and the router
//! answers ICMPv6 Packet Too Big (PTB), from which the sender's kernel learns the path MTU. A
//! hop whose PTB is filtered is a blackhole — small packets pass, full-size ones vanish, TCP
//! stalls after the handshake — and on IPv6 that is always a fault, never a fragmenting
//! middlebox. The probe socket is a raw ICMPv6 socket with `IPV6_DONTFRAG` (the source host
//! would otherwise fragment itself) and `IPV6_PMTUDISC_PROBE` (sizes go out at the interface MTU
//! even after the kernel learned a smaller path MTU, so every run probes the path anew). It sees
//! echo replies and PTBs quoting its own requests.
//!
//! Sizes: the WAN's IPv6 MTU first; lost without a PTB, then 1280 (the IPv6 minimum MTU, which
//! every path must carry) and a bisection between them for the largest size that crosses. A PTB
//! is path-MTU discovery working: not a fault. Its own check (category `ipv6_degraded`, evidence
//! `family = ipv6`) beside the IPv4 `mtu`, as `icmp6` beside `icmp`; a wrong WAN MTU stays
//! `mtu`'s (`mtu_mismatch`, healed by `set_mtu`) and an upstream blackhole is report only.

use super::mtu::{PathMtu, probe_problems, search};
use super::{Context, Observation, check_settings, common_problems};
use crate::ping::DfOutcome;
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use nix::libc;
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
use serde::Deserialize;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

/// Every cause this check reports besides `ok`.
pub const CAUSES: &[&str] = &[
    "pmtu_blackhole",
    "probe_target_unreachable",
    "path_probe_unavailable",
    "no_target",
    "wan_interface_missing",
];

/// The IPv6 minimum link MTU (RFC 8200): every IPv6 path carries packets of this size.
pub const IPV6_MIN_MTU: u32 = 1280;
/// IPv6 header plus ICMPv6 echo header.
const IP6_ICMP6_HEADERS: u32 = 48;

/// `[checks.mtu6]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mtu6Config {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Where the probes go (an ISP IPv6 probe target beyond the access network); unset = the
    /// IPv6 default gateway via the WAN (which tests the first link only).
    pub target: Option<Ipv6Addr>,
    /// How long each probe waits for its reply.
    pub probe_timeout_ms: u64,
    /// Probes per size before the size counts as lost (tolerates random loss).
    pub probe_attempts: u32,
}

impl Default for Mtu6Config {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            fail_threshold: 2,
            ok_threshold: 2,
            target: None,
            probe_timeout_ms: 1000,
            probe_attempts: 2,
        }
    }
}

check_settings!(Mtu6Config);

impl Mtu6Config {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "mtu6",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if let Some(t) = self.target
            && (t.is_unspecified() || t.is_multicast() || t.is_loopback())
        {
            out.push(Problem::new(
                "checks.mtu6.target",
                format!("{t} is not a unicast probe target"),
            ));
        }
        probe_problems("mtu6", self.probe_timeout_ms, self.probe_attempts, out);
    }
}

// IPV6_MTU_DISCOVER (Linux `<linux/in6.h>`), which nix does not wrap: nix's public
// `sockopt_impl!`, as for IPv4's IP_MTU_DISCOVER in `crate::ping`.
nix::sockopt_impl!(
    /// `IPV6_MTU_DISCOVER`: path-MTU discovery mode of a socket (`IPV6_PMTUDISC_*`).
    Ipv6MtuDiscover,
    Both,
    libc::IPPROTO_IPV6,
    libc::IPV6_MTU_DISCOVER,
    libc::c_int
);

/// Errors opening the probe socket.
#[derive(Debug, thiserror::Error)]
pub enum Df6Error {
    #[error("cannot open a raw ICMPv6 socket: {0}")]
    Socket(#[source] nix::Error),
    #[error("cannot set {0}: {1}")]
    SockOpt(&'static str, #[source] nix::Error),
    #[error("ICMPv6 socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Sends ICMPv6 echo requests of an exact IPv6 packet size that are never fragmented, and
/// reads echo replies and Packet Too Big messages about them.
struct Df6Prober {
    socket: tokio::net::UdpSocket,
    ident: u16,
    seq: u16,
}

impl Df6Prober {
    fn new() -> Result<Self, Df6Error> {
        use nix::sys::socket::{
            AddressFamily, SockFlag, SockProtocol, SockType, setsockopt, socket, sockopt,
        };
        let fd = socket(
            AddressFamily::Inet6,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::IcmpV6,
        )
        .map_err(Df6Error::Socket)?;
        setsockopt(&fd, Ipv6MtuDiscover, &libc::IPV6_PMTUDISC_PROBE)
            .map_err(|e| Df6Error::SockOpt("IPV6_MTU_DISCOVER", e))?;
        setsockopt(&fd, sockopt::Ipv6DontFrag, &true)
            .map_err(|e| Df6Error::SockOpt("IPV6_DONTFRAG", e))?;
        let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))?;
        Ok(Self {
            socket,
            ident: crate::ids::random_u16(),
            seq: 0,
        })
    }

    /// One echo request whose IPv6 packet is exactly `size` bytes to `dest`.
    async fn probe(
        &mut self,
        dest: SocketAddrV6,
        size: u32,
        timeout: Duration,
    ) -> std::io::Result<DfOutcome> {
        self.seq = self.seq.wrapping_add(1);
        let len = size.saturating_sub(40).max(8) as usize;
        let packet = echo_request6(self.ident, self.seq, len);
        match self.socket.send_to(&packet, SocketAddr::V6(dest)).await {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                return Ok(DfOutcome::LocalTooBig);
            }
            Err(e) => return Err(e),
        }
        let deadline = tokio::time::Instant::now() + timeout;
        let mut buf = vec![0u8; size as usize + 64];
        loop {
            let recv = tokio::time::timeout_at(deadline, self.socket.recv_from(&mut buf)).await;
            let (n, from) = match recv {
                Err(_) => return Ok(DfOutcome::Timeout),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                    return Ok(DfOutcome::LocalTooBig);
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(r)) => r,
            };
            let from_target = from.ip() == IpAddr::V6(*dest.ip());
            if let Some(o) = classify6(&buf[..n], from_target, *dest.ip(), self.ident, self.seq) {
                return Ok(o);
            }
        }
    }
}

/// An ICMPv6 echo request of `icmp_len` bytes (header included); the kernel fills in the
/// checksum of a raw ICMPv6 socket.
fn echo_request6(ident: u16, seq: u16, icmp_len: usize) -> Vec<u8> {
    let mut p = vec![0u8; icmp_len.max(8)];
    p[0] = 128;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(8) {
        *b = (i & 0xff) as u8;
    }
    p
}

/// Whether an ICMPv6 message (as a raw socket receives it, no IPv6 header) answers our probe
/// `seq`: an echo reply from the target, or a Packet Too Big quoting our request to it.
fn classify6(
    icmp: &[u8],
    from_target: bool,
    target: Ipv6Addr,
    ident: u16,
    seq: u16,
) -> Option<DfOutcome> {
    let id_seq = |h: &[u8]| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes([*h.get(4)?, *h.get(5)?]),
            u16::from_be_bytes([*h.get(6)?, *h.get(7)?]),
        ))
    };
    match (*icmp.first()?, *icmp.get(1)?) {
        (129, 0) if from_target => (id_seq(icmp)? == (ident, seq)).then_some(DfOutcome::Reply),
        (2, 0) => {
            let mtu = u32::from_be_bytes(icmp.get(4..8)?.try_into().ok()?);
            // The invoking packet: IPv6 header (next header ICMPv6), then our echo request.
            let inner = icmp.get(8..)?;
            let dst: [u8; 16] = inner.get(24..40)?.try_into().ok()?;
            let quoted = inner.get(40..)?;
            let ours = inner.first()? >> 4 == 6
                && *inner.get(6)? == 58
                && Ipv6Addr::from(dst) == target
                && *quoted.first()? == 128
                && id_seq(quoted)? == (ident, seq);
            ours.then(|| DfOutcome::FragNeeded(u16::try_from(mtu).unwrap_or(u16::MAX)))
        }
        _ => None,
    }
}

/// The IPv6 MTU of an interface (`/proc/sys/net/ipv6/conf/<if>/mtu`: the link MTU, or less
/// when a router advertisement's MTU option lowered it); `None` when the interface is missing
/// or has IPv6 off.
fn ipv6_mtu(interface: &str) -> Option<u32> {
    if interface.contains('/') || interface.starts_with('.') {
        return None;
    }
    std::fs::read_to_string(format!("/proc/sys/net/ipv6/conf/{interface}/mtu"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The verdict on a probed path: (status, cause, summary).
pub fn judge(top: u32, found: &PathMtu) -> (CheckStatus, &'static str, String) {
    match (found.largest_passing, found.frag_needed_mtu) {
        (Some(l), _) if l >= top => (
            CheckStatus::Ok,
            "ok",
            format!("IPv6 packets of the full WAN MTU ({top}) cross the path"),
        ),
        (_, Some(m)) => (
            CheckStatus::Ok,
            "ok",
            format!(
                "IPv6 path MTU {m} is below the WAN MTU {top} and a router signals it (Packet Too Big): path-MTU discovery works"
            ),
        ),
        (None, None) => (
            CheckStatus::Unknown,
            "probe_target_unreachable",
            format!("the probe target answers no IPv6 probe, not even of {IPV6_MIN_MTU} bytes"),
        ),
        (Some(l), None) => (
            CheckStatus::Failed,
            "pmtu_blackhole",
            format!(
                "IPv6 path-MTU blackhole: packets above {l} bytes vanish on the way (WAN MTU {top}, no Packet Too Big)"
            ),
        ),
    }
}

#[derive(Debug, Clone)]
pub struct Mtu6Check {
    pub config: Mtu6Config,
    pub wan_interface: String,
}

impl Mtu6Check {
    /// The only place this check reads the agent's config.
    pub fn new(site: &Site, config: &Mtu6Config) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        Observation::new(CheckId::Mtu6, status, cause, summary)
            .category(Category::Ipv6Degraded)
            .evidence("family", "ipv6")
            .evidence("wan_interface", &self.wan_interface)
            .threshold(format!(
                "DF probes of the WAN's IPv6 MTU cross the path or get a Packet Too Big; {IPV6_MIN_MTU} always crosses"
            ))
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let c = &self.config;
        let wan = &self.wan_interface;
        let Some(top) = ipv6_mtu(wan) else {
            return self.obs(
                CheckStatus::Unknown,
                "wan_interface_missing",
                format!("WAN interface {wan} does not exist or has IPv6 off"),
            );
        };
        let top = top.max(IPV6_MIN_MTU);
        let scope = ctx.netlink.link_index(wan).await.ok().flatten();
        let (target, source) = match c.target {
            Some(t) => (Some(t), "checks.mtu6.target"),
            None => (
                super::icmp6::wan_gateway6(ctx, wan).await,
                "the IPv6 default route",
            ),
        };
        let Some(target) = target else {
            return self
                .obs(
                    CheckStatus::Unknown,
                    "no_target",
                    "no IPv6 gateway known and no checks.mtu6.target".into(),
                )
                .hint("wan6 explains a missing IPv6 default route");
        };
        let link_local = target.is_unicast_link_local();
        let dest = SocketAddrV6::new(
            target,
            0,
            0,
            if link_local { scope.unwrap_or(0) } else { 0 },
        );
        let mut prober = match Df6Prober::new() {
            Ok(p) => p,
            Err(e) => {
                return self
                    .obs(
                        CheckStatus::Unknown,
                        "path_probe_unavailable",
                        format!("path not probed: {e}"),
                    )
                    .hint("grant the agent CAP_NET_RAW");
            }
        };
        let timeout = Duration::from_millis(c.probe_timeout_ms);
        let attempts = c.probe_attempts;
        // Once a router sent Packet Too Big, sizes above its MTU are known not to cross.
        let mut ptb: Option<u16> = None;
        let found = search(IPV6_MIN_MTU, top, async |size| {
            if ptb.is_some_and(|m| size > u32::from(m)) {
                return (false, "above_packet_too_big", None);
            }
            let mut last = "lost";
            for _ in 0..attempts {
                match prober.probe(dest, size, timeout).await {
                    Ok(DfOutcome::Reply) => return (true, "reply", None),
                    Ok(DfOutcome::Timeout) => last = "lost",
                    Ok(DfOutcome::FragNeeded(m)) => {
                        ptb = Some(m);
                        return (false, "packet_too_big", Some(m));
                    }
                    Ok(DfOutcome::LocalTooBig) => return (false, "too_big_locally", None),
                    Err(_) => return (false, "send_error", None),
                }
            }
            (false, last, None)
        })
        .await;
        let (status, cause, summary) = judge(top, &found);
        let mut o = self
            .obs(status, cause, summary)
            .evidence("wan_ipv6_mtu", top.to_string())
            .evidence("probe_target", format!("{target} (from {source})"))
            .evidence(
                "probes",
                found
                    .trail
                    .iter()
                    .map(|(s, w)| format!("{s}:{w}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .evidence(
                "largest_passing_bytes",
                found
                    .largest_passing
                    .map_or("none".to_string(), |v| v.to_string()),
            )
            .value(match found.largest_passing {
                Some(l) => format!("IPv6 MTU {top}, largest DF packet through {l}"),
                None => format!("IPv6 MTU {top}"),
            });
        if let Some(m) = found.frag_needed_mtu {
            o = o.evidence("packet_too_big_mtu", m.to_string());
        }
        match cause {
            "pmtu_blackhole" => {
                let l = found.largest_passing.unwrap_or(IPV6_MIN_MTU);
                o = o.severity(Severity::Major).hint(format!(
                    "upstream: a hop drops IPv6 packets above {l} bytes and filters ICMPv6 Packet Too Big; report it to the ISP's network team (an MSS clamp to {} works around it for TCP)",
                    l.saturating_sub(IP6_ICMP6_HEADERS + 12)
                ));
            }
            "probe_target_unreachable" => {
                o = o.hint("icmp6 and wan6 tell whether the target is reachable over IPv6 at all");
            }
            _ => {}
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(largest: Option<u32>, ptb: Option<u16>) -> PathMtu {
        PathMtu {
            largest_passing: largest,
            smallest_failing: None,
            frag_needed_mtu: ptb,
            trail: Vec::new(),
        }
    }

    #[test]
    fn judges_blackhole_pmtud_and_unreachable() {
        assert_eq!(judge(1500, &path(Some(1500), None)).1, "ok");
        assert_eq!(judge(1500, &path(Some(1400), Some(1400))).1, "ok");
        assert_eq!(
            judge(1500, &path(None, None)).0,
            CheckStatus::Unknown,
            "not even 1280 crosses: the target, not the MTU"
        );
        let (status, cause, summary) = judge(1500, &path(Some(1400), None));
        assert_eq!((status, cause), (CheckStatus::Failed, "pmtu_blackhole"));
        assert!(summary.contains("above 1400"), "{summary}");
    }

    #[test]
    fn classifies_echo_replies_and_packet_too_big() {
        let target: Ipv6Addr = "2001:db8:fffe::2".parse().unwrap();
        let mut reply = echo_request6(7, 3, 64);
        reply[0] = 129;
        assert_eq!(
            classify6(&reply, true, target, 7, 3),
            Some(DfOutcome::Reply)
        );
        assert_eq!(classify6(&reply, false, target, 7, 3), None, "other host");
        assert_eq!(classify6(&reply, true, target, 8, 3), None, "other ident");
        assert_eq!(classify6(&reply, true, target, 7, 4), None, "other seq");

        // Packet Too Big, MTU 1400, quoting our request to the target.
        let mut ptb = vec![2, 0, 0, 0, 0, 0, 0x05, 0x78];
        let mut ip6 = vec![0x60, 0, 0, 0, 0x05, 0xb4, 58, 63];
        ip6.extend_from_slice(&"2001:db8:0:1::1000".parse::<Ipv6Addr>().unwrap().octets());
        ip6.extend_from_slice(&target.octets());
        ptb.extend_from_slice(&ip6);
        ptb.extend_from_slice(&echo_request6(7, 3, 64));
        assert_eq!(
            classify6(&ptb, false, target, 7, 3),
            Some(DfOutcome::FragNeeded(1400))
        );
        assert_eq!(classify6(&ptb, false, target, 7, 4), None);
        let other: Ipv6Addr = "2001:db8::9".parse().unwrap();
        assert_eq!(classify6(&ptb, false, other, 7, 3), None, "other target");
        assert_eq!(
            classify6(&ptb[..20], false, target, 7, 3),
            None,
            "cut short"
        );
    }

    #[test]
    fn echo_request_has_the_exact_size() {
        let p = echo_request6(1, 2, 1460);
        assert_eq!(p.len(), 1460);
        assert_eq!(&p[..2], &[128, 0]);
        assert_eq!(echo_request6(1, 2, 0).len(), 8);
    }

    #[test]
    fn config_problems() {
        let mut p = Vec::new();
        Mtu6Config::default().problems(&mut p);
        assert!(p.is_empty(), "{p:?}");
        Mtu6Config {
            target: Some(Ipv6Addr::LOCALHOST),
            probe_attempts: 0,
            probe_timeout_ms: 0,
            ..Mtu6Config::default()
        }
        .problems(&mut p);
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "checks.mtu6.target",
                "checks.mtu6.probe_timeout_ms",
                "checks.mtu6.probe_attempts"
            ]
        );
    }

    #[test]
    fn ipv6_mtu_refuses_path_tricks() {
        assert_eq!(ipv6_mtu("../all"), None);
        assert_eq!(ipv6_mtu("no-such-if0"), None);
    }
}
