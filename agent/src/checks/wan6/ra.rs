//! Router discovery on the WAN (and, for the CPE's own advertisements, on the LAN): send one Router Solicitation to all-routers (ff02::2) and wait
//! for a Router Advertisement, through a raw ICMPv6 socket bound to the WAN (CAP_NET_RAW). The
//! kernel fills in the ICMPv6 checksum of a raw ICMPv6 socket and strips the IPv6 header.

use nix::sys::socket::{
    AddressFamily, SockFlag, SockProtocol, SockType, setsockopt, socket, sockopt,
};
use std::ffi::OsString;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const OPT_PREFIX_INFORMATION: u8 = 3;
const OPT_MTU: u8 = 5;
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// What one Router Advertisement said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// The router's link-local address (the RA's source).
    pub router: Ipv6Addr,
    /// Seconds the router offers itself as default router; 0: not a default router.
    pub lifetime_secs: u16,
    /// M flag: addresses via DHCPv6.
    pub managed: bool,
    /// O flag: other configuration via DHCPv6.
    pub other: bool,
    /// Prefix information options: prefix/len.
    pub prefixes: Vec<String>,
    pub mtu: Option<u32>,
}

/// Parses an ICMPv6 message as a Router Advertisement; `None` when it is not one.
pub fn parse_ra(router: Ipv6Addr, msg: &[u8]) -> Option<RouterAdvert> {
    if msg.len() < 16 || msg[0] != ND_ROUTER_ADVERT || msg[1] != 0 {
        return None;
    }
    let mut ra = RouterAdvert {
        router,
        lifetime_secs: u16::from_be_bytes([msg[6], msg[7]]),
        managed: msg[5] & 0x80 != 0,
        other: msg[5] & 0x40 != 0,
        prefixes: Vec::new(),
        mtu: None,
    };
    let mut opts = &msg[16..];
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            break;
        }
        let o = &opts[..len];
        match o[0] {
            OPT_PREFIX_INFORMATION if len == 32 => {
                let p: [u8; 16] = o[16..32].try_into().ok()?;
                ra.prefixes.push(format!("{}/{}", Ipv6Addr::from(p), o[2]));
            }
            OPT_MTU if len == 8 => {
                ra.mtu = Some(u32::from_be_bytes([o[4], o[5], o[6], o[7]]));
            }
            _ => {}
        }
        opts = &opts[len..];
    }
    Some(ra)
}

fn open(ifname: &str) -> std::io::Result<tokio::net::UdpSocket> {
    let fd = socket(
        AddressFamily::Inet6,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        SockProtocol::IcmpV6,
    )?;
    setsockopt(&fd, sockopt::BindToDevice, &OsString::from(ifname))?;
    // Neighbour discovery messages carry hop limit 255, or receivers drop them (RFC 4861).
    setsockopt(&fd, sockopt::Ipv6MulticastHops, &255)?;
    tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))
}

/// Receives until an RA arrives or `deadline` passes.
async fn next_ra(
    sock: &tokio::net::UdpSocket,
    deadline: tokio::time::Instant,
) -> std::io::Result<Option<RouterAdvert>> {
    let mut buf = [0u8; 1500];
    loop {
        let Ok(got) = tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await else {
            return Ok(None);
        };
        let (n, from) = got?;
        let SocketAddr::V6(from) = from else { continue };
        // Only a link-local source may send an RA (RFC 4861 6.1.2).
        if !from.ip().is_unicast_link_local() {
            continue;
        }
        if let Some(ra) = parse_ra(*from.ip(), &buf[..n]) {
            return Ok(Some(ra));
        }
    }
}

/// Solicits a Router Advertisement on interface `ifname` (index `ifindex`) and waits up to
/// `wait` for one (solicited or not). `Ok(None)`: no router answered.
pub async fn solicit(
    ifname: &str,
    ifindex: u32,
    wait: Duration,
) -> std::io::Result<Option<RouterAdvert>> {
    let mut heard = solicit_until(ifname, ifindex, wait, |_| true).await?;
    Ok(heard.pop())
}

/// Solicits on `ifname` and collects the advertisements heard until one satisfies `wanted`
/// (then the last one) or `wait` has passed.
pub async fn solicit_until(
    ifname: &str,
    ifindex: u32,
    wait: Duration,
    wanted: impl Fn(&RouterAdvert) -> bool,
) -> std::io::Result<Vec<RouterAdvert>> {
    let sock = open(ifname)?;
    let rs = [ND_ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    sock.send_to(&rs, SocketAddrV6::new(ALL_ROUTERS, 0, 0, ifindex))
        .await?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut heard = Vec::new();
    while let Some(ra) = next_ra(&sock, deadline).await? {
        let done = wanted(&ra);
        heard.push(ra);
        if done {
            break;
        }
    }
    Ok(heard)
}

/// The last RA heard on the WAN, kept by a listener task so the check need not solicit while
/// the router advertises on its own: a solicitation makes every client on the CPE (dhcpcd)
/// process the answer too, which would repair a deleted route behind the check's back.
#[derive(Debug, Default)]
pub struct RaMemory {
    last: Mutex<Option<(RouterAdvert, Instant)>>,
    listening: AtomicBool,
}

impl RaMemory {
    pub fn remember(&self, ra: RouterAdvert) {
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((ra, Instant::now()));
    }

    /// The last RA if heard within `max_age`.
    pub fn fresh(&self, max_age: Duration) -> Option<(RouterAdvert, Duration)> {
        let last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.as_ref()
            .map(|(ra, at)| (ra.clone(), at.elapsed()))
            .filter(|(_, age)| *age <= max_age)
    }

    /// Starts the listener on `ifname` unless it runs. It ends when the memory is dropped (a
    /// config reload builds a new check) or its socket fails (the next run starts it again).
    pub fn listen(self: &Arc<Self>, ifname: &str) {
        if self.listening.swap(true, Ordering::SeqCst) {
            return;
        }
        let sock = match open(ifname) {
            Ok(s) => s,
            Err(e) => {
                log::debug!("wan6: cannot listen for router advertisements: {e}");
                self.listening.store(false, Ordering::SeqCst);
                return;
            }
        };
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
                let got = next_ra(&sock, deadline).await;
                let Some(me) = weak.upgrade() else { return };
                match got {
                    Ok(Some(ra)) => me.remember(ra),
                    Ok(None) => {}
                    Err(e) => {
                        log::debug!("wan6: router advertisement listener: {e}");
                        me.listening.store(false, Ordering::SeqCst);
                        return;
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_lifetime_prefix_and_mtu() {
        let mut m = vec![134, 0, 0, 0, 64, 0xc0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
        // Prefix information 2001:db8:0:1::/64.
        m.extend([
            3, 4, 64, 0xc0, 0, 0, 0x02, 0x58, 0, 0, 0x01, 0x2c, 0, 0, 0, 0,
        ]);
        m.extend([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
        m.extend([5, 1, 0, 0, 0, 0, 0x05, 0xdc]);
        let r: Ipv6Addr = "fe80::1".parse().unwrap();
        let ra = parse_ra(r, &m).unwrap();
        assert_eq!(ra.lifetime_secs, 1800);
        assert!(ra.managed && ra.other);
        assert_eq!(ra.prefixes, ["2001:db8:0:1::/64"]);
        assert_eq!(ra.mtu, Some(1500));
    }

    #[test]
    fn ignores_other_messages_and_bad_options() {
        let r: Ipv6Addr = "fe80::1".parse().unwrap();
        assert!(parse_ra(r, &[133, 0, 0, 0, 0, 0, 0, 0]).is_none());
        assert!(parse_ra(r, &[134, 0, 0, 0]).is_none());
        // An option of length 0 ends parsing instead of looping.
        let mut m = vec![134, 0, 0, 0, 64, 0, 0, 30, 0, 0, 0, 0, 0, 0, 0, 0];
        m.extend([3, 0, 0, 0, 0, 0, 0, 0]);
        let ra = parse_ra(r, &m).unwrap();
        assert!(ra.prefixes.is_empty());
        assert_eq!(ra.lifetime_secs, 30);
    }
}
