//! Raw Ethernet on the LAN bridge for the `lan_dhcp` and `lan_arp` checks: find the bridge's
//! MAC and IPv4 addresses, send one frame from an `AF_PACKET` socket and read the frames that
//! come back for a bounded window.
//!
//! The socket is nix's (no unsafe here): `getifaddrs` yields the interface's link address
//! (`sockaddr_ll` with its ifindex), the socket is bound to it, so `send` needs no address.
//! Everything is bounded: frames are read into a fixed buffer (longer ones are cut, never
//! parsed past their end), the window is capped by the caller's config, and at most
//! [`MAX_FRAMES`] frames are looked at per exchange, however busy the LAN.
//!
//! The socket is not promiscuous: the bridge device receives broadcasts and frames for its own
//! MAC, which is all these checks need (offers are requested broadcast; ARP replies to a probe
//! go to the bridge's MAC).

use nix::ifaddrs::getifaddrs;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockProtocol, SockType, bind, recv, send,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::time::{Duration, Instant};

/// Largest frame read (an Ethernet frame without jumbo payload); longer ones are truncated.
pub const FRAME_BUF_BYTES: usize = 1536;
/// Most frames looked at in one exchange (a busy LAN cannot keep a check reading forever).
pub const MAX_FRAMES: usize = 20_000;
/// One receive wait; the window's deadline is checked between waits.
const READ_SLICE: Duration = Duration::from_millis(100);

/// Why a raw exchange could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("interface {0} does not exist")]
    NoInterface(String),
    #[error("interface {0} has no MAC address")]
    NoMac(String),
    #[error("listing interfaces: {0}")]
    List(nix::Error),
    #[error("opening a raw socket on {iface}: {source}")]
    Open { iface: String, source: nix::Error },
    #[error("sending on {iface}: {source}")]
    Send { iface: String, source: nix::Error },
    #[error("receiving on {iface}: {source}")]
    Recv { iface: String, source: nix::Error },
}

impl RawError {
    /// True when the interface is simply absent (a device without a LAN bridge).
    pub fn is_missing_interface(&self) -> bool {
        matches!(self, RawError::NoInterface(_))
    }
}

/// The LAN interface as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LanIface {
    pub name: String,
    pub mac: [u8; 6],
    /// IPv4 addresses, in the kernel's order.
    pub ipv4: Vec<Ipv4Addr>,
    link: Option<LinkAddr>,
}

impl LanIface {
    /// An interface that is never opened (the checks' pure tests).
    #[cfg(test)]
    pub fn fake(name: &str, mac: [u8; 6], ipv4: &[Ipv4Addr]) -> Self {
        Self {
            name: name.to_owned(),
            mac,
            ipv4: ipv4.to_vec(),
            link: None,
        }
    }
}

/// Looks `name` up among the interfaces of the agent's network namespace.
pub fn lan_iface(name: &str) -> Result<LanIface, RawError> {
    let mut link = None;
    let mut ipv4 = Vec::new();
    for a in getifaddrs().map_err(RawError::List)? {
        if a.interface_name != name {
            continue;
        }
        let Some(addr) = a.address else { continue };
        if let Some(l) = addr.as_link_addr() {
            link = Some(*l);
        } else if let Some(v4) = addr.as_sockaddr_in() {
            ipv4.push(v4.ip());
        }
    }
    let link = link.ok_or_else(|| RawError::NoInterface(name.to_owned()))?;
    let mac = link
        .addr()
        .filter(|m| *m != [0; 6] && link.halen() == 6)
        .ok_or_else(|| RawError::NoMac(name.to_owned()))?;
    Ok(LanIface {
        name: name.to_owned(),
        mac,
        ipv4,
        link: Some(link),
    })
}

/// Sends `frame` on `iface`, then hands every frame received within `window` to `on_frame`
/// (at most [`MAX_FRAMES`]). Blocking: run it on a blocking thread.
pub fn exchange(
    iface: &LanIface,
    frame: &[u8],
    window: Duration,
    on_frame: impl FnMut(&[u8]),
) -> Result<(), RawError> {
    exchange_all(iface, &[frame], window, on_frame)
}

/// [`exchange`] for several frames: all are sent back to back from one socket, then one
/// window collects the answers to all of them.
pub fn exchange_all(
    iface: &LanIface,
    frames: &[&[u8]],
    window: Duration,
    mut on_frame: impl FnMut(&[u8]),
) -> Result<(), RawError> {
    let open_err = |source| RawError::Open {
        iface: iface.name.clone(),
        source,
    };
    let link = iface
        .link
        .as_ref()
        .ok_or_else(|| RawError::NoInterface(iface.name.clone()))?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map_err(open_err)?;
    // The link address from getifaddrs carries protocol 0: the socket keeps ETH_P_ALL.
    bind(fd.as_raw_fd(), link).map_err(open_err)?;
    setsockopt(
        &fd,
        sockopt::ReceiveTimeout,
        &TimeVal::new(0, READ_SLICE.as_micros() as i64),
    )
    .map_err(open_err)?;
    // The socket is bound before the frames leave, so no answer can be missed.
    for frame in frames {
        send(fd.as_raw_fd(), frame, MsgFlags::empty()).map_err(|source| RawError::Send {
            iface: iface.name.clone(),
            source,
        })?;
    }
    let deadline = Instant::now() + window;
    let mut buf = [0u8; FRAME_BUF_BYTES];
    let mut seen = 0usize;
    while Instant::now() < deadline && seen < MAX_FRAMES {
        match recv(fd.as_raw_fd(), &mut buf, MsgFlags::MSG_TRUNC) {
            Ok(n) => {
                seen += 1;
                // MSG_TRUNC returns the frame's real length: never read past the buffer.
                on_frame(&buf[..n.min(buf.len())]);
            }
            Err(nix::Error::EAGAIN | nix::Error::EINTR) => {}
            Err(source) => {
                return Err(RawError::Recv {
                    iface: iface.name.clone(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// The IPv4 neighbours the kernel knows on `iface` (`/proc/net/arp` of the agent's namespace):
/// the LAN's clients that talked to the router lately. Entries still being resolved (flags 0)
/// are left out; at most `max` addresses, in the table's order.
pub fn ipv4_neighbours(iface: &str, max: usize) -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/proc/net/arp")
        .map(|t| parse_proc_arp(&t, iface, max))
        .unwrap_or_default()
}

/// Parses `/proc/net/arp` text (a header line, then `IP type flags MAC mask device`).
pub fn parse_proc_arp(text: &str, iface: &str, max: usize) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [ip, _, flags, _, _, dev] = f[..] else {
            continue;
        };
        let complete =
            u32::from_str_radix(flags.trim_start_matches("0x"), 16).is_ok_and(|x| x != 0);
        if dev != iface || !complete {
            continue;
        }
        if let Ok(ip) = ip.parse::<Ipv4Addr>()
            && !out.contains(&ip)
        {
            out.push(ip);
            if out.len() >= max {
                break;
            }
        }
    }
    out
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac_text(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// A random locally administered unicast MAC (bit 1 of the first octet set, bit 0 clear).
pub fn random_local_mac() -> [u8; 6] {
    let mut mac = [0u8; 6];
    if getrandom::fill(&mut mac).is_err() {
        // No entropy source: a fixed LA address still works, only less anonymous.
        mac = [0x02, 0x6e, 0x6d, 0x4c, 0x41, 0x4e];
    }
    mac[0] = (mac[0] & 0xfc) | 0x02;
    mac
}

/// A random 32-bit transaction id.
pub fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A constant xid on failure still matches only replies to this request's chaddr.
    let _ = getrandom::fill(&mut b);
    u32::from_be_bytes(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_mac_is_local_unicast() {
        for _ in 0..32 {
            let m = random_local_mac();
            assert_eq!(m[0] & 0x03, 0x02, "{}", mac_text(m));
        }
        assert_eq!(mac_text([0x02, 0, 0xab, 1, 2, 0xff]), "02:00:ab:01:02:ff");
    }

    #[test]
    fn the_neighbour_table_is_read_per_interface() {
        let t = "IP address       HW type     Flags       HW address            Mask     Device\n\
                 100.100.0.77     0x1         0x2         02:43:4c:00:00:01     *        br-lan\n\
                 100.100.0.78     0x1         0x0         00:00:00:00:00:00     *        br-lan\n\
                 100.64.0.1       0x1         0x2         02:00:00:00:00:09     *        wan\n\
                 100.100.0.77     0x1         0x2         02:43:4c:00:00:01     *        br-lan\n\
                 garbage\n\
                 100.100.0.79     0x1         0x6         02:43:4c:00:00:03     *        br-lan\n";
        assert_eq!(
            parse_proc_arp(t, "br-lan", 8),
            [
                Ipv4Addr::new(100, 100, 0, 77),
                Ipv4Addr::new(100, 100, 0, 79)
            ]
        );
        assert_eq!(parse_proc_arp(t, "br-lan", 1).len(), 1);
    }

    #[test]
    fn a_missing_interface_is_named() {
        let e = lan_iface("nm-no-such-if0").unwrap_err();
        assert!(e.is_missing_interface());
        assert!(e.to_string().contains("nm-no-such-if0"));
    }
}
