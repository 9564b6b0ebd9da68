//! ICMPv4 echo without a resident receiver: a socket per probe call, replies read in a batch
//! each time the next request goes out, and the round trip timed by the kernel's receive
//! timestamp (`SO_TIMESTAMPNS`) against the clock read just before the send.
//!
//! Why: a socket kept open with a receive task wakes the agent for every ICMP message the
//! router sees (a raw socket gets a copy of all of them) and every probe cost two wake-ups
//! (its send timer and its reply) plus a timer, a channel and a map entry. Here a series of
//! `count` probes costs `count` timer wake-ups and one more for the last replies, and the RTT
//! no longer includes the agent's own scheduling delay.

use super::PingResult;
use crate::afd::owned_async_fd;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrIn, recvmsg, sendto, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use std::io::IoSliceMut;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// ICMP echo header plus 32 bytes of payload: the size the agent has always sent.
const ECHO_LEN: usize = 40;

/// How replies look on a socket: a raw socket sees every ICMP message with its IP header; an
/// ICMP datagram ("ping") socket only the replies to its own requests, without the header,
/// and the kernel sets their identifier.
#[derive(Debug, Clone, Copy)]
pub(super) struct Proto {
    raw: bool,
    ident: u16,
}

/// A reply read from the socket: which probe it answers and when the kernel received it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reply {
    from: Ipv4Addr,
    seq: u16,
    received: Option<TimeSpec>,
}

/// A raw ICMP socket (CAP_NET_RAW), else an ICMP datagram socket (`ping_group_range`), with
/// kernel receive timestamps; for the duration of one probe call.
pub(super) fn open() -> std::io::Result<(OwnedFd, Proto)> {
    let (fd, raw) = super::open_icmp_v4()?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)?;
    let ident = crate::ids::random_u16();
    Ok((fd, Proto { raw, ident }))
}

/// Sends echo request `seq` to `host`; the wall-clock time just before the send.
fn send(fd: &OwnedFd, p: Proto, host: Ipv4Addr, seq: u16) -> std::io::Result<TimeSpec> {
    let mut packet = [0u8; ECHO_LEN];
    fill_echo_request(&mut packet, p.ident, seq);
    let dest = SockaddrIn::from(SocketAddrV4::new(host, 0));
    let sent = now_realtime();
    sendto(fd.as_raw_fd(), &packet, &dest, MsgFlags::MSG_DONTWAIT)?;
    Ok(sent)
}

/// Every reply waiting in the socket (never blocks).
/// A receive error (an ICMP error the kernel queued on a datagram socket) ends this read; the
/// next read goes on.
fn drain(fd: &OwnedFd, p: Proto, mut on_reply: impl FnMut(Reply)) {
    let mut buf = [0u8; 1500];
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<SockaddrIn>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        };
        let received = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmTimestampns(ts) => Some(ts),
                _ => None,
            })
        });
        let (n, from) = (msg.bytes, msg.address.map(|a| a.ip()));
        let Some(from) = from else { continue };
        let data = &buf[..n.min(buf.len())];
        if let Some(seq) = parse_echo_reply(data, p.raw, p.raw.then_some(p.ident)) {
            on_reply(Reply {
                from,
                seq,
                received,
            });
        }
    }
}

/// Waits until the socket is readable or `deadline` passes.
async fn readable_until(afd: &AsyncFd<OwnedFd>, deadline: Instant) -> bool {
    match tokio::time::timeout_at(deadline, afd.readable()).await {
        Ok(Ok(mut guard)) => {
            guard.clear_ready();
            true
        }
        Ok(Err(_)) | Err(_) => false,
    }
}

/// Wall-clock time, the clock of the kernel's receive timestamps.
fn now_realtime() -> TimeSpec {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    TimeSpec::from_duration(d)
}

/// Milliseconds from `sent` to `received`, if within `timeout` (a reply later than its
/// timeout is a loss, as when each probe waited for its own). A clock step backwards between
/// the two reads as 0.
fn rtt_within(sent: TimeSpec, received: TimeSpec, timeout: Duration) -> Option<f64> {
    let diff = received - sent;
    let ns = diff.tv_sec() as i128 * 1_000_000_000 + diff.tv_nsec() as i128;
    let ns = ns.max(0);
    (ns <= timeout.as_nanos() as i128).then(|| ns as f64 / 1e6)
}

/// Writes an echo request (type 8) with `ident`, `seq`, a byte pattern and its checksum.
fn fill_echo_request(p: &mut [u8], ident: u16, seq: u16) {
    p.fill(0);
    p[0] = 8;
    p[4..6].copy_from_slice(&ident.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in p.iter_mut().enumerate().skip(8) {
        *b = (i & 0xff) as u8;
    }
    let sum = super::checksum(p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// The sequence number of an echo reply (type 0 code 0) carrying `ident` when one is given;
/// `raw` when the message still has its IPv4 header.
fn parse_echo_reply(data: &[u8], raw: bool, ident: Option<u16>) -> Option<u16> {
    let icmp = if raw {
        super::strip_ip_header(data)?
    } else {
        data
    };
    if icmp.len() < 8 || icmp[0] != 0 || icmp[1] != 0 {
        return None;
    }
    let id = u16::from_be_bytes([icmp[4], icmp[5]]);
    if ident.is_some_and(|i| i != id) {
        return None;
    }
    Some(u16::from_be_bytes([icmp[6], icmp[7]]))
}

/// Per host, per sequence number: when the request went out and the reply's RTT.
struct Ledger<'h> {
    hosts: &'h [Ipv4Addr],
    count: usize,
    sent: Vec<Option<TimeSpec>>,
    rtts_ms: Vec<Option<f64>>,
    timeout: Duration,
    /// Requests sent that have neither a reply nor a send error.
    pending: usize,
}

impl<'h> Ledger<'h> {
    fn new(hosts: &'h [Ipv4Addr], count: usize, timeout: Duration) -> Self {
        Self {
            hosts,
            count,
            sent: vec![None; hosts.len() * count],
            rtts_ms: vec![None; hosts.len() * count],
            timeout,
            pending: 0,
        }
    }

    fn sent(&mut self, host: usize, seq: usize, at: TimeSpec) {
        self.sent[host * self.count + seq] = Some(at);
        self.pending += 1;
    }

    fn reply(&mut self, r: Reply) {
        let Some(h) = self.hosts.iter().position(|h| *h == r.from) else {
            return;
        };
        let seq = usize::from(r.seq);
        if seq >= self.count {
            return;
        }
        let i = h * self.count + seq;
        let (Some(sent), None) = (self.sent[i], self.rtts_ms[i]) else {
            return; // not ours, or a duplicate
        };
        let received = r.received.unwrap_or_else(now_realtime);
        self.pending -= 1;
        self.rtts_ms[i] = Some(rtt_within(sent, received, self.timeout).unwrap_or(f64::NAN));
    }

    /// Per host, the first `upto` requests: `sent` is `upto`, the RTTs of those answered in
    /// time so far.
    fn results(&self, upto: usize) -> Vec<PingResult> {
        let upto = upto.min(self.count);
        self.rtts_ms
            .chunks(self.count.max(1))
            .take(self.hosts.len())
            .map(|c| {
                let rtts_ms: Vec<f64> = c[..upto]
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|v| !v.is_nan())
                    .collect();
                PingResult {
                    sent: upto as u32,
                    received: rtts_ms.len() as u32,
                    rtts_ms,
                }
            })
            .collect()
    }
}

/// Reads the replies waiting, then waits on the socket itself for the outstanding ones until
/// `deadline`; gives the descriptor back unregistered from the reactor (replies arriving
/// afterwards wake nobody).
async fn await_replies(
    fd: OwnedFd,
    p: Proto,
    ledger: &mut Ledger<'_>,
    deadline: Instant,
) -> std::io::Result<OwnedFd> {
    drain(&fd, p, |r| ledger.reply(r));
    if ledger.pending == 0 {
        return Ok(fd);
    }
    let afd = owned_async_fd(fd)?;
    while ledger.pending > 0 && readable_until(&afd, deadline).await {
        drain(afd.get_ref(), p, |r| ledger.reply(r));
    }
    Ok(afd.into_inner())
}

/// What a series sent and measured.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Measured {
    /// Per host in the order given; `sent` is the same for all.
    pub results: Vec<PingResult>,
    /// A sample was sent and `go_on` asked for the rest.
    pub escalated: bool,
}

/// `count` echo requests to each of `hosts`, `interval` apart, each waiting up to `timeout`:
/// the results in the order of `hosts`, RTTs in sequence order. Replies are read when the
/// next requests go out and after the last; a request the kernel refused counts as lost.
///
/// With a `sample` of fewer than `count` probes, the series first sends only those, awaits
/// their replies up to `sample.late` after the last one (a reply still missing then is lost
/// as far as the sample can tell), and hands the sample's results to `sample.go_on`: `false`
/// ends the series there (the results are the sample's), `true` sends the remaining probes at
/// once, on the same socket and sequence numbers, and the results cover all `count`.
pub(super) async fn series<F: FnOnce(&[PingResult]) -> bool>(
    hosts: &[Ipv4Addr],
    count: u32,
    interval: Duration,
    timeout: Duration,
    sample: Option<super::Sample<F>>,
) -> std::io::Result<Measured> {
    if hosts.is_empty() {
        return Ok(Measured {
            results: Vec::new(),
            escalated: false,
        });
    }
    let (mut fd, p) = open()?;
    let count_us = count.min(u32::from(u16::MAX)) as usize;
    let mut sample = sample.filter(|s| s.probes > 0 && (s.probes as usize) < count_us);
    let mut ledger = Ledger::new(hosts, count_us, timeout);
    // Sequence `seq` goes out at `start + interval * (seq - first)`.
    let (mut start, mut first) = (Instant::now(), 0);
    let mut escalated = false;
    // A timerfd: one wake-up per round (tokio's wheel would add one at its slot boundary).
    let mut tick = crate::timer::Deadline::new();
    for seq in 0..count_us {
        if seq > first {
            // Not registered with the reactor: replies arriving now wake nobody.
            tick.until(start + interval * (seq - first) as u32).await;
            drain(&fd, p, |r| ledger.reply(r));
        }
        let round = Instant::now();
        for (h, host) in hosts.iter().enumerate() {
            if let Ok(at) = send(&fd, p, *host, seq as u16) {
                ledger.sent(h, seq, at);
            }
        }
        if let Some(s) = sample.take_if(|s| s.probes as usize == seq + 1) {
            fd = await_replies(fd, p, &mut ledger, Instant::now() + s.late).await?;
            if !(s.go_on)(&ledger.results(seq + 1)) {
                return Ok(Measured {
                    results: ledger.results(seq + 1),
                    escalated: false,
                });
            }
            escalated = true;
            // The rest keeps the spacing: the next request one interval after this round's
            // (at once when the sample's replies took longer).
            start = (round + interval).max(Instant::now());
            first = seq + 1;
        }
    }
    // The last requests' replies: wait on the socket itself, up to their timeout.
    await_replies(fd, p, &mut ledger, Instant::now() + timeout).await?;
    Ok(Measured {
        results: ledger.results(count_us),
        escalated,
    })
}

/// Up to `count` echo requests to `host`, one at a time, each waiting up to `timeout` for its
/// reply; stops at the first reply when `stop_on_reply`.
pub(super) async fn one_by_one(
    host: Ipv4Addr,
    count: u32,
    timeout: Duration,
    stop_on_reply: bool,
) -> std::io::Result<PingResult> {
    let (fd, p) = open()?;
    let afd = owned_async_fd(fd)?;
    let fd = afd.get_ref();
    let hosts = [host];
    let count_us = count.min(u32::from(u16::MAX)) as usize;
    let mut ledger = Ledger::new(&hosts, count_us, timeout);
    let mut sent = 0;
    for seq in 0..count_us {
        sent += 1;
        let Ok(at) = send(fd, p, host, seq as u16) else {
            continue;
        };
        ledger.sent(0, seq, at);
        let deadline = Instant::now() + timeout;
        loop {
            drain(fd, p, |r| ledger.reply(r));
            if ledger.rtts_ms[seq].is_some() || !readable_until(&afd, deadline).await {
                break;
            }
        }
        if stop_on_reply && ledger.rtts_ms[seq].is_some_and(|v| !v.is_nan()) {
            break;
        }
    }
    let mut results = ledger.results(sent as usize);
    Ok(results.pop().unwrap_or(PingResult {
        sent,
        received: 0,
        rtts_ms: Vec::new(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(ms: i64) -> TimeSpec {
        TimeSpec::new(1_800_000_000 + ms / 1000, (ms % 1000) * 1_000_000)
    }

    fn reply_packet(ident: u16, seq: u16) -> [u8; ECHO_LEN] {
        let mut p = [0u8; ECHO_LEN];
        fill_echo_request(&mut p, ident, seq);
        p[0] = 0; // echo reply
        p
    }

    #[test]
    fn echo_request_is_valid_and_replies_parse() {
        let mut p = [0u8; ECHO_LEN];
        fill_echo_request(&mut p, 0xbeef, 7);
        assert_eq!((p[0], p[1]), (8, 0));
        assert_eq!(super::super::checksum(&p), 0);
        assert_eq!(parse_echo_reply(&p, false, None), None, "a request");

        let r = reply_packet(0xbeef, 7);
        assert_eq!(
            parse_echo_reply(&r, false, None),
            Some(7),
            "datagram socket"
        );
        assert_eq!(parse_echo_reply(&r, false, Some(0xbeef)), Some(7));
        assert_eq!(
            parse_echo_reply(&r, false, Some(1)),
            None,
            "other identifier"
        );
        assert_eq!(parse_echo_reply(&r[..7], false, None), None, "truncated");
        let mut with_ip = vec![0x45, 0, 0, 60, 0, 0, 0, 0, 64, 1, 0, 0];
        with_ip.extend_from_slice(&[198, 51, 100, 1, 100, 64, 0, 2]);
        with_ip.extend_from_slice(&r);
        assert_eq!(parse_echo_reply(&with_ip, true, Some(0xbeef)), Some(7));
        assert_eq!(parse_echo_reply(&with_ip, true, Some(2)), None);
        let mut unreachable = with_ip.clone();
        unreachable[20] = 3;
        assert_eq!(parse_echo_reply(&unreachable, true, Some(0xbeef)), None);
    }

    #[test]
    fn rtt_is_counted_only_within_the_timeout() {
        let t = Duration::from_millis(1000);
        assert_eq!(rtt_within(ts(0), ts(12), t), Some(12.0));
        assert_eq!(rtt_within(ts(500), ts(1500), t), Some(1000.0));
        assert_eq!(rtt_within(ts(0), ts(1001), t), None, "too late: lost");
        assert_eq!(
            rtt_within(ts(10), ts(0), t),
            Some(0.0),
            "clock stepped back"
        );
    }

    #[test]
    fn ledger_matches_replies_to_requests() {
        let (a, b) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1));
        let hosts = [a, b];
        let mut l = Ledger::new(&hosts, 4, Duration::from_millis(1000));
        for seq in 0..4 {
            l.sent(0, seq, ts(seq as i64 * 100));
            if seq != 2 {
                l.sent(1, seq, ts(seq as i64 * 100)); // seq 2 to b: the send failed
            }
        }
        assert_eq!(l.pending, 7);
        let reply = |from, seq: u16, at| Reply {
            from,
            seq,
            received: Some(ts(at)),
        };
        l.reply(reply(a, 0, 5));
        l.reply(reply(a, 0, 6)); // duplicate
        l.reply(reply(a, 1, 103));
        l.reply(reply(a, 3, 1400)); // after its timeout: lost
        l.reply(reply(b, 2, 210)); // never sent
        l.reply(reply(b, 9, 210)); // outside the series
        l.reply(reply(Ipv4Addr::new(203, 0, 113, 9), 1, 110)); // another host
        l.reply(reply(b, 1, 120));
        assert_eq!(l.pending, 3, "a's seq 2 and b's 0 and 3 are outstanding");
        let first = l.results(2);
        assert_eq!(
            (first[0].sent, first[0].rtts_ms.clone()),
            (2, vec![5.0, 3.0]),
            "the sample's view: only its own sequence numbers"
        );
        assert_eq!((first[1].sent, first[1].received), (2, 1));
        let r = l.results(4);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].sent, r[0].received, r[0].rtts_ms.clone()),
            (4, 2, vec![5.0, 3.0])
        );
        assert_eq!(
            (r[1].sent, r[1].received, r[1].rtts_ms.clone()),
            (4, 1, vec![20.0])
        );
    }
}
