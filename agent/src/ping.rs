//! ICMP echo probes (IPv4 our own, IPv6 through surge-ping): used by checks to see whether a host answers and to measure
//! loss, RTT and jitter; and don't-fragment probes of exact sizes for path-MTU checks.

use nix::libc;
use nix::{getsockopt_impl, setsockopt_impl, sockopt_impl};
use std::net::IpAddr;
use std::time::Duration;
use surge_ping::{Client, Config, PingIdentifier, PingSequence};

mod echo;

/// Result of a burst of echo requests.
#[derive(Debug, Clone, PartialEq)]
pub struct PingResult {
    pub sent: u32,
    pub received: u32,
    /// Round-trip times of the replies, in milliseconds.
    pub rtts_ms: Vec<f64>,
}

/// The first part of a series after which the caller decides whether the rest is needed
/// ([`Pinger::probe_series_sampled`]).
pub struct Sample<F> {
    /// Requests per host in the sample.
    pub probes: u32,
    /// How long after the sample's last request its missing replies are awaited.
    pub late: Duration,
    /// Given the sample's results (one per host), whether to send the remaining requests.
    pub go_on: F,
}

impl<F> std::fmt::Debug for Sample<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sample")
            .field("probes", &self.probes)
            .field("late", &self.late)
            .finish_non_exhaustive()
    }
}

/// What [`Pinger::probe_series_sampled`] sent and measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampled {
    /// Per host in the order given.
    pub results: Vec<PingResult>,
    /// The sample asked for the rest: the results cover every request.
    pub escalated: bool,
}

impl PingResult {
    pub fn answered(&self) -> bool {
        self.received > 0
    }
}

/// An ICMP prober. IPv4 opens a socket per probe call and keeps none between them (no
/// resident receiver to wake for every ICMP message); IPv6 keeps one surge-ping client bound to
/// an interface for the lifetime of the `Pinger`.
pub struct Pinger {
    v6: Option<Client>,
}

impl std::fmt::Debug for Pinger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.v6.is_some() {
            "Pinger(v6)"
        } else {
            "Pinger(v4)"
        })
    }
}

impl Pinger {
    /// Checks that an ICMPv4 socket can be opened (needs CAP_NET_RAW, or a ping_group_range
    /// that admits us).
    pub fn new() -> std::io::Result<Self> {
        drop(echo::open()?);
        Ok(Self { v6: None })
    }

    /// Opens an ICMPv6 socket bound to `interface` (link-local targets such as the IPv6
    /// gateway are reachable only through it).
    pub fn new_v6(interface: &str) -> std::io::Result<Self> {
        let config = Config::builder()
            .kind(surge_ping::ICMP::V6)
            .interface(interface)
            .build();
        Ok(Self {
            v6: Some(Client::new(&config)?),
        })
    }

    /// Sends up to `count` echo requests, each waiting `timeout`; stops at the first reply
    /// when `stop_on_reply` (a liveness test needs one answer, not a loss measurement).
    pub async fn probe(
        &self,
        host: IpAddr,
        count: u32,
        timeout: Duration,
        stop_on_reply: bool,
    ) -> PingResult {
        let lost = PingResult {
            sent: count,
            received: 0,
            rtts_ms: Vec::new(),
        };
        let client = match (host, &self.v6) {
            (IpAddr::V4(h), None) => {
                return echo::one_by_one(h, count, timeout, stop_on_reply)
                    .await
                    .unwrap_or(lost);
            }
            (IpAddr::V6(_), Some(client)) => client,
            _ => return lost,
        };
        let ident = PingIdentifier(crate::ids::random_u16());
        let mut pinger = client.pinger(host, ident).await;
        pinger.timeout(timeout);
        let payload = [0u8; 32];
        let mut result = PingResult {
            sent: 0,
            received: 0,
            rtts_ms: Vec::new(),
        };
        for seq in 0..count {
            result.sent += 1;
            if let Ok((_, rtt)) = pinger.ping(PingSequence(seq as u16), &payload).await {
                result.received += 1;
                result.rtts_ms.push(rtt.as_secs_f64() * 1000.0);
                if stop_on_reply {
                    break;
                }
            }
        }
        result
    }

    /// Sends `count` echo requests to each of `hosts`, spaced `interval` apart, without
    /// waiting for replies in between (a lost probe does not delay the next), each waiting up
    /// to `timeout`: a loss, RTT and jitter measurement per host, in the order of `hosts`,
    /// `rtts_ms` in sequence order. Hosts of the other family than the `Pinger`'s count as
    /// lost.
    pub async fn probe_series(
        &self,
        hosts: &[IpAddr],
        count: u32,
        interval: Duration,
        timeout: Duration,
    ) -> Vec<PingResult> {
        match &self.v6 {
            Some(client) => series_v6_all(client, hosts, count, interval, timeout).await,
            None => {
                let no_sample = None::<Sample<NoSample>>;
                self.probe_series_sampled(hosts, count, interval, timeout, no_sample)
                    .await
                    .results
            }
        }
    }

    /// [`probe_series`](Self::probe_series) that first sends a `sample` and sends the rest
    /// only when the sample's `go_on` asks for it (IPv4; an IPv6 `Pinger` always sends the
    /// whole series). `sent` in the results is the sample's size when it sufficed.
    pub async fn probe_series_sampled<F: FnOnce(&[PingResult]) -> bool>(
        &self,
        hosts: &[IpAddr],
        count: u32,
        interval: Duration,
        timeout: Duration,
        sample: Option<Sample<F>>,
    ) -> Sampled {
        let lost = |sent| PingResult {
            sent,
            received: 0,
            rtts_ms: Vec::new(),
        };
        if let Some(client) = &self.v6 {
            return Sampled {
                results: series_v6_all(client, hosts, count, interval, timeout).await,
                escalated: false,
            };
        }
        let v4: Vec<_> = hosts
            .iter()
            .filter_map(|h| match h {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            })
            .collect();
        let measured = echo::series(&v4, count, interval, timeout, sample)
            .await
            .unwrap_or(echo::Measured {
                results: Vec::new(),
                escalated: false,
            });
        let sent = measured.results.first().map_or(count, |r| r.sent);
        let mut results = measured.results.into_iter();
        Sampled {
            results: hosts
                .iter()
                .map(|h| match h {
                    IpAddr::V4(_) => results.next().unwrap_or_else(|| lost(sent)),
                    IpAddr::V6(_) => lost(sent),
                })
                .collect(),
            escalated: measured.escalated,
        }
    }
}

/// The `go_on` of a series without a sample (never called).
type NoSample = fn(&[PingResult]) -> bool;

/// IPv6 series to each of `hosts` at once.
async fn series_v6_all(
    client: &Client,
    hosts: &[IpAddr],
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> Vec<PingResult> {
    let per_host = hosts
        .iter()
        .map(|host| series_v6(client, *host, count, interval, timeout));
    futures::future::join_all(per_host).await
}

/// One IPv6 series through surge-ping: a task per probe, each waiting for its own reply.
async fn series_v6(
    client: &Client,
    host: IpAddr,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> PingResult {
    let ident = PingIdentifier(crate::ids::random_u16());
    let payload = [0u8; 32];
    let probes = (0..count).map(|seq| async move {
        tokio::time::sleep(interval * seq).await;
        let mut pinger = client.pinger(host, ident).await;
        pinger.timeout(timeout);
        pinger
            .ping(PingSequence(seq as u16), &payload)
            .await
            .ok()
            .map(|(_, rtt)| rtt.as_secs_f64() * 1000.0)
    });
    let replies = futures::future::join_all(probes).await;
    let rtts_ms: Vec<f64> = replies.into_iter().flatten().collect();
    PingResult {
        sent: count,
        received: rtts_ms.len() as u32,
        rtts_ms,
    }
}

// IP_MTU_DISCOVER (Linux `<linux/in.h>`), an option nix does not wrap. Defined with nix's
// public `sockopt_impl!` (its documented way to add a socket option): the FFI call and its
// `unsafe` stay inside nix's macro; the value type `c_int` is the kernel's.
nix::sockopt_impl!(
    /// `IP_MTU_DISCOVER`: path-MTU discovery mode of a socket (`IP_PMTUDISC_*`).
    IpMtuDiscover,
    Both,
    libc::IPPROTO_IP,
    libc::IP_MTU_DISCOVER,
    libc::c_int
);

/// What one don't-fragment probe of a given size saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DfOutcome {
    /// The echo reply came back: a packet of this size crosses the path whole.
    Reply,
    /// Nothing came back within the timeout (lost, filtered, or silently dropped as too big).
    Timeout,
    /// A router answered "fragmentation needed" with this next-hop MTU (0 if it gave none):
    /// path-MTU discovery works on this path.
    FragNeeded(u16),
    /// The kernel refused to send it (EMSGSIZE): larger than the interface MTU or than a path
    /// MTU it already learned from an ICMP "fragmentation needed".
    LocalTooBig,
}

/// Errors opening or using the DF probe socket.
#[derive(Debug, thiserror::Error)]
pub enum DfError {
    #[error("cannot open an ICMP socket: {0}")]
    Socket(#[source] nix::Error),
    #[error("cannot set IP_MTU_DISCOVER: {0}")]
    SockOpt(#[source] nix::Error),
    #[error("ICMP socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("probe size {0} is outside 28..=65535 bytes")]
    Size(u32),
}

/// Sends ICMP echo requests of an exact IP packet size with the DF bit set
/// (`IP_PMTUDISC_DO`: the kernel never fragments them and reports EMSGSIZE instead).
pub struct DfProber {
    socket: tokio::net::UdpSocket,
    /// A raw socket sees the IP header; an ICMP datagram ("ping") socket does not, and the
    /// kernel rewrites its identifier.
    raw: bool,
    ident: u16,
    seq: u16,
}

impl std::fmt::Debug for DfProber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DfProber").field("raw", &self.raw).finish()
    }
}

/// A non-blocking ICMPv4 socket: raw (CAP_NET_RAW) when permitted, else an ICMP datagram
/// ("ping") socket (`ping_group_range`); `true` when raw.
fn open_icmp_v4() -> nix::Result<(std::os::fd::OwnedFd, bool)> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let open = |ty| socket(AddressFamily::Inet, ty, flags, SockProtocol::Icmp);
    match open(SockType::Raw) {
        Ok(fd) => Ok((fd, true)),
        Err(_) => Ok((open(SockType::Datagram)?, false)),
    }
}

/// IPv4 header (no options) plus ICMP echo header.
pub const IP_ICMP_HEADERS: u32 = 28;

impl DfProber {
    /// Opens a raw ICMP socket (CAP_NET_RAW), or an ICMP datagram socket when raw sockets are
    /// not permitted, with path-MTU discovery set to "do" (DF on every packet).
    pub fn new() -> Result<Self, DfError> {
        let (fd, raw) = open_icmp_v4().map_err(DfError::Socket)?;
        nix::sys::socket::setsockopt(&fd, IpMtuDiscover, &libc::IP_PMTUDISC_DO)
            .map_err(DfError::SockOpt)?;
        let socket = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(fd))?;
        Ok(Self {
            socket,
            raw,
            ident: crate::ids::random_u16(),
            seq: 0,
        })
    }

    /// One echo request whose IP packet is exactly `size` bytes, DF set, to `host`.
    pub async fn probe(
        &mut self,
        host: std::net::Ipv4Addr,
        size: u32,
        timeout: Duration,
    ) -> Result<DfOutcome, DfError> {
        if !(IP_ICMP_HEADERS..=65_535).contains(&size) {
            return Err(DfError::Size(size));
        }
        self.seq = self.seq.wrapping_add(1);
        let packet = echo_request(self.ident, self.seq, (size - 20) as usize);
        let dest = std::net::SocketAddr::new(IpAddr::V4(host), 0);
        match self.socket.send_to(&packet, dest).await {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EMSGSIZE) => {
                return Ok(DfOutcome::LocalTooBig);
            }
            Err(e) => return Err(e.into()),
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
                Ok(Err(e)) => return Err(e.into()),
                Ok(Ok(r)) => r,
            };
            let icmp = if self.raw {
                strip_ip_header(&buf[..n])
            } else {
                Some(&buf[..n])
            };
            let Some(icmp) = icmp else { continue };
            if let Some(outcome) = classify(
                icmp,
                from.ip() == IpAddr::V4(host),
                host,
                self.raw.then_some(self.ident),
                self.seq,
            ) {
                return Ok(outcome);
            }
        }
    }
}

/// An ICMP echo request with `icmp_len` bytes (header included) and a valid checksum.
fn echo_request(ident: u16, seq: u16, icmp_len: usize) -> Vec<u8> {
    let mut p = vec![0u8; icmp_len.max(8)];
    p[0] = 8; // echo request
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(8) {
        *b = (i & 0xff) as u8;
    }
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The payload of an IPv4 packet (what a raw socket receives).
fn strip_ip_header(p: &[u8]) -> Option<&[u8]> {
    let ihl = usize::from(p.first()? & 0x0f) * 4;
    (p.first()? >> 4 == 4 && ihl >= 20)
        .then(|| p.get(ihl..))
        .flatten()
}

/// Whether an ICMP message answers our probe `seq`: an echo reply from the host (matching
/// `ident` when we know it), or a "fragmentation needed" quoting our request to the host.
fn classify(
    icmp: &[u8],
    from_host: bool,
    host: std::net::Ipv4Addr,
    ident: Option<u16>,
    seq: u16,
) -> Option<DfOutcome> {
    let (ty, code) = (*icmp.first()?, *icmp.get(1)?);
    let id_seq = |h: &[u8]| -> Option<(u16, u16)> {
        Some((
            u16::from_be_bytes([*h.get(4)?, *h.get(5)?]),
            u16::from_be_bytes([*h.get(6)?, *h.get(7)?]),
        ))
    };
    match (ty, code) {
        (0, 0) if from_host => {
            let (id, s) = id_seq(icmp)?;
            (s == seq && ident.is_none_or(|i| i == id)).then_some(DfOutcome::Reply)
        }
        (3, 4) => {
            // Quoted original: IP header then the first 8 bytes of our echo request.
            let inner = icmp.get(8..)?;
            let dst = std::net::Ipv4Addr::new(
                *inner.get(16)?,
                *inner.get(17)?,
                *inner.get(18)?,
                *inner.get(19)?,
            );
            let quoted = strip_ip_header(inner)?;
            let (id, s) = id_seq(quoted)?;
            let ours = dst == host
                && quoted.first() == Some(&8)
                && s == seq
                && ident.is_none_or(|i| i == id);
            ours.then(|| DfOutcome::FragNeeded(u16::from_be_bytes([icmp[6], icmp[7]])))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_request_has_size_and_valid_checksum() {
        let p = echo_request(0x1234, 7, 1472);
        assert_eq!(p.len(), 1472);
        assert_eq!(&p[..2], &[8, 0]);
        assert_eq!(checksum(&p), 0, "a packet with its checksum sums to zero");
        assert_eq!(checksum(&echo_request(1, 1, 9)), 0, "odd length");
    }

    #[test]
    fn classifies_replies_and_frag_needed() {
        let host = std::net::Ipv4Addr::new(192, 0, 2, 1);
        let mut reply = echo_request(5, 9, 40);
        reply[0] = 0;
        assert_eq!(
            classify(&reply, true, host, Some(5), 9),
            Some(DfOutcome::Reply)
        );
        assert_eq!(
            classify(&reply, true, host, Some(6), 9),
            None,
            "other identifier"
        );
        assert_eq!(
            classify(&reply, true, host, None, 8),
            None,
            "other sequence"
        );
        assert_eq!(
            classify(&reply, false, host, Some(5), 9),
            None,
            "other source"
        );
        // Frag needed (type 3 code 4, next-hop MTU 1400) quoting our request to the host.
        let mut err = vec![3, 4, 0, 0, 0, 0, 0x05, 0x78];
        let mut ip = vec![
            0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 1, 0, 0, 100, 64, 1, 10,
        ];
        ip.extend_from_slice(&host.octets());
        err.extend_from_slice(&ip);
        err.extend_from_slice(&echo_request(5, 9, 8));
        assert_eq!(
            classify(&err, false, host, Some(5), 9),
            Some(DfOutcome::FragNeeded(1400))
        );
        assert_eq!(classify(&err, false, host, Some(5), 10), None);
        assert_eq!(strip_ip_header(&ip).map(<[u8]>::len), Some(0));
        assert_eq!(strip_ip_header(&[0x60]), None, "not IPv4");
    }
}
