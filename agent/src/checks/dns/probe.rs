//! Asking resolvers: the nameservers of resolv.conf, one DNS query over our own UDP socket
//! (built and parsed with `hickory-proto`) and what its response means.

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Nameservers of a resolv.conf, in order, without duplicates (IPv6 zone ids dropped).
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else { continue };
        let addr = addr.split('%').next().unwrap_or(addr);
        if let Ok(ip) = IpAddr::from_str(addr)
            && !out.contains(&ip)
        {
            out.push(ip);
        }
    }
    out
}

/// What one query to one resolver got.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// NOERROR with at least one address.
    Answer { addrs: Vec<IpAddr>, latency_ms: f64 },
    /// NOERROR without an address of the asked type.
    NoData { latency_ms: f64 },
    /// Any other response code (NXDOMAIN, SERVFAIL, REFUSED, ...).
    Rcode { code: ResponseCode, latency_ms: f64 },
    /// No answer within the timeout, after every retry.
    Timeout,
    /// The network said no (ICMP port/host unreachable, no route) or the socket failed.
    Unreachable(String),
}

impl Outcome {
    pub(super) fn latency_ms(&self) -> Option<f64> {
        match self {
            Outcome::Answer { latency_ms, .. }
            | Outcome::NoData { latency_ms }
            | Outcome::Rcode { latency_ms, .. } => Some(*latency_ms),
            _ => None,
        }
    }

    pub(super) fn describe(&self) -> String {
        match self {
            Outcome::Answer { addrs, latency_ms } => {
                let a: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
                format!("{} in {latency_ms:.1} ms", a.join(","))
            }
            Outcome::NoData { latency_ms } => format!("NOERROR/no data in {latency_ms:.1} ms"),
            Outcome::Rcode { code, latency_ms } => {
                format!("{} in {latency_ms:.1} ms", rcode_name(*code))
            }
            Outcome::Timeout => "timeout".into(),
            Outcome::Unreachable(e) => format!("unreachable ({e})"),
        }
    }
}

pub(super) fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// One name through one resolver with retries after timeouts.
pub(super) async fn query_with_retries(
    resolver: IpAddr,
    port: u16,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
    retries: u32,
) -> Outcome {
    let mut last = Outcome::Timeout;
    for _ in 0..=retries {
        last = query(SocketAddr::new(resolver, port), name, rtype, timeout).await;
        if last != Outcome::Timeout {
            break;
        }
    }
    last
}

/// One query over a fresh UDP socket; replies with another id or question are ignored.
pub async fn query(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
    timeout: Duration,
) -> Outcome {
    let qname = match Name::from_ascii(name) {
        Ok(mut n) => {
            n.set_fqdn(true);
            n
        }
        Err(e) => return Outcome::Unreachable(format!("bad name {name:?}: {e}")),
    };
    let mut msg = Message::query();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(qname.clone(), rtype));
    let id = msg.metadata.id;
    let bytes = match msg.to_vec() {
        Ok(b) => b,
        Err(e) => return Outcome::Unreachable(format!("cannot encode query: {e}")),
    };
    let bind: SocketAddr = match server {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = match tokio::net::UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => return Outcome::Unreachable(format!("socket: {e}")),
    };
    if let Err(e) = sock.connect(server).await {
        return Outcome::Unreachable(e.to_string());
    }
    let start = Instant::now();
    if let Err(e) = sock.send(&bytes).await {
        return Outcome::Unreachable(e.to_string());
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
            Err(_) => return Outcome::Timeout,
            Ok(Err(e)) => return Outcome::Unreachable(e.to_string()),
            Ok(Ok(n)) => n,
        };
        let latency_ms = start.elapsed().as_secs_f64() * 1000.0;
        let Ok(resp) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        if let Some(o) = interpret(&resp, id, &qname, rtype, latency_ms) {
            return o;
        }
    }
}

/// The outcome a response means, `None` if it does not answer our query.
pub fn interpret(
    resp: &Message,
    id: u16,
    qname: &Name,
    rtype: RecordType,
    latency_ms: f64,
) -> Option<Outcome> {
    if resp.metadata.id != id || resp.metadata.message_type != MessageType::Response {
        return None;
    }
    if let Some(q) = resp.queries.first()
        && (q.name() != qname || q.query_type() != rtype)
    {
        return None;
    }
    let code = resp.metadata.response_code;
    if code != ResponseCode::NoError {
        return Some(Outcome::Rcode { code, latency_ms });
    }
    let addrs: Vec<IpAddr> = resp
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    Some(if addrs.is_empty() {
        Outcome::NoData { latency_ms }
    } else {
        Outcome::Answer { addrs, latency_ms }
    })
}
