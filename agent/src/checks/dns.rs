//! `dns`: every resolver the CPE uses (resolv.conf) and every provisioned resolver answers the
//! test names; detects dead resolvers (timeouts), SERVFAIL/REFUSED, NXDOMAIN for names that must
//! exist (a hijacking or broken resolver), answers for a name that must not exist (NXDOMAIN
//! redirection), and a resolv.conf that differs from the provisioned resolvers.
//!
//! Queries are built and parsed with `hickory-proto` and sent over our own UDP socket, one
//! resolver at a time, so each answer is exactly that resolver's: no stub resolver, no cache.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "resolver_hijack",
    "resolver_no_data",
    "resolver_nxdomain",
    "resolver_refused",
    "resolver_servfail",
    "resolver_error",
    "resolver_unreachable",
    "resolver_timeout",
    "resolv_conf_not_provisioned",
    "resolv_conf_unreadable",
    "no_resolvers_configured",
    "dns_slow",
];

/// `[checks.dns]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Off by default: the test names are the ISP's own.
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The resolver configuration the CPE's own processes use.
    pub resolv_conf: PathBuf,
    /// Resolvers the ISP provisioned (e.g. handed out by DHCP/PPP). Each is queried too, and a
    /// resolv.conf naming other resolvers is a misconfiguration. Empty: no comparison.
    pub provisioned_resolvers: Vec<IpAddr>,
    /// Names that must exist (the ISP's own, e.g. `probe.isp.example`). Required when enabled.
    pub test_names: Vec<String>,
    /// A name that must NOT exist; a resolver answering it with an address is redirecting
    /// NXDOMAIN (hijack). Empty: not tested.
    pub nonexistent_name: String,
    /// `A` or `AAAA`.
    pub record_type: String,
    /// Wait for one answer.
    pub timeout_ms: u64,
    /// Further attempts after a timeout.
    pub retries: u32,
    /// The slowest answer above this makes the check `degraded` (`dns_slow`).
    pub slow_threshold_ms: u64,
    /// UDP port of the resolvers.
    pub port: u16,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 30,
            fail_threshold: 2,
            ok_threshold: 2,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            provisioned_resolvers: Vec::new(),
            test_names: Vec::new(),
            nonexistent_name: String::new(),
            record_type: "A".into(),
            timeout_ms: 1500,
            retries: 1,
            slow_threshold_ms: 1000,
            port: 53,
        }
    }
}

check_settings!(DnsConfig);

impl DnsConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "dns",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.resolv_conf.as_os_str().is_empty() {
            out.push(Problem::new("checks.dns.resolv_conf", "must not be empty"));
        }
        if self.enabled && self.test_names.is_empty() {
            out.push(Problem::new(
                "checks.dns.test_names",
                "at least one name that must exist is required when the check is enabled",
            ));
        }
        if self.test_names.len() > 10 {
            out.push(Problem::new("checks.dns.test_names", "at most 10 names"));
        }
        for (i, n) in self.test_names.iter().enumerate() {
            if Name::from_ascii(n).is_err() || n.is_empty() {
                out.push(Problem::new(
                    format!("checks.dns.test_names[{i}]"),
                    format!("{n:?} is not a valid DNS name"),
                ));
            }
        }
        if !self.nonexistent_name.is_empty() && Name::from_ascii(&self.nonexistent_name).is_err() {
            out.push(Problem::new(
                "checks.dns.nonexistent_name",
                format!("{:?} is not a valid DNS name", self.nonexistent_name),
            ));
        }
        if self.provisioned_resolvers.len() > 8 {
            out.push(Problem::new(
                "checks.dns.provisioned_resolvers",
                "at most 8 resolvers",
            ));
        }
        if parse_record_type(&self.record_type).is_none() {
            out.push(Problem::new(
                "checks.dns.record_type",
                "must be \"A\" or \"AAAA\"",
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            out.push(Problem::new(
                "checks.dns.timeout_ms",
                "must be between 1 and 10000",
            ));
        }
        if self.retries > 5 {
            out.push(Problem::new("checks.dns.retries", "must be at most 5"));
        }
        if self.slow_threshold_ms == 0 || self.slow_threshold_ms > 60_000 {
            out.push(Problem::new(
                "checks.dns.slow_threshold_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.port == 0 {
            out.push(Problem::new("checks.dns.port", "must not be 0"));
        }
    }
}

fn parse_record_type(s: &str) -> Option<RecordType> {
    match s.to_ascii_uppercase().as_str() {
        "A" => Some(RecordType::A),
        "AAAA" => Some(RecordType::AAAA),
        _ => None,
    }
}

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
    fn latency_ms(&self) -> Option<f64> {
        match self {
            Outcome::Answer { latency_ms, .. }
            | Outcome::NoData { latency_ms }
            | Outcome::Rcode { latency_ms, .. } => Some(*latency_ms),
            _ => None,
        }
    }

    fn describe(&self) -> String {
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

fn rcode_name(code: ResponseCode) -> String {
    match code {
        ResponseCode::NXDomain => "NXDOMAIN".into(),
        ResponseCode::ServFail => "SERVFAIL".into(),
        ResponseCode::Refused => "REFUSED".into(),
        ResponseCode::FormErr => "FORMERR".into(),
        ResponseCode::NotImp => "NOTIMP".into(),
        other => format!("rcode {}", u16::from(other)),
    }
}

/// The results of one resolver.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverResult {
    pub resolver: IpAddr,
    /// Listed in resolv.conf (in use by the CPE's processes).
    pub in_use: bool,
    pub provisioned: bool,
    /// One outcome per test name, in config order.
    pub names: Vec<(String, Outcome)>,
    /// The outcome for `nonexistent_name`, when configured.
    pub nonexistent: Option<Outcome>,
}

/// How one resolver did, worst problem first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Health {
    Ok,
    /// Answers, but says a must-not-exist name exists.
    Hijack,
    NoData,
    /// A name that must exist does not.
    NxDomain,
    Refused,
    ServFail,
    OtherRcode,
    Unreachable,
    Timeout,
}

impl Health {
    fn cause(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Hijack => "resolver_hijack",
            Health::NoData => "resolver_no_data",
            Health::NxDomain => "resolver_nxdomain",
            Health::Refused => "resolver_refused",
            Health::ServFail => "resolver_servfail",
            Health::OtherRcode => "resolver_error",
            Health::Unreachable => "resolver_unreachable",
            Health::Timeout => "resolver_timeout",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Health::Ok => "answers",
            Health::Hijack => "answers names that do not exist (NXDOMAIN redirection/hijack)",
            Health::NoData => "has no address for names that must have one",
            Health::NxDomain => {
                "says names that must exist do not (NXDOMAIN: hijacked or broken resolver)"
            }
            Health::Refused => "refuses to resolve for this CPE",
            Health::ServFail => "fails to resolve (SERVFAIL)",
            Health::OtherRcode => "answers with an error code",
            Health::Unreachable => "is unreachable",
            Health::Timeout => "does not answer (timeout)",
        }
    }

    /// Answered at all (a DNS server is there).
    fn answers(self) -> bool {
        !matches!(self, Health::Unreachable | Health::Timeout)
    }
}

impl ResolverResult {
    /// The resolver's health: its worst outcome over the test names. A resolver is `Ok` only
    /// when every must-exist name has an address and the must-not-exist name has none.
    pub fn health(&self) -> Health {
        let mut worst = Health::Ok;
        for (_, o) in &self.names {
            let h = match o {
                Outcome::Answer { .. } => Health::Ok,
                Outcome::NoData { .. } => Health::NoData,
                Outcome::Rcode { code, .. } => match code {
                    ResponseCode::NXDomain => Health::NxDomain,
                    ResponseCode::ServFail => Health::ServFail,
                    ResponseCode::Refused => Health::Refused,
                    _ => Health::OtherRcode,
                },
                Outcome::Timeout => Health::Timeout,
                Outcome::Unreachable(_) => Health::Unreachable,
            };
            worst = worst.max(h);
        }
        if worst == Health::Ok && matches!(self.nonexistent, Some(Outcome::Answer { .. })) {
            worst = Health::Hijack;
        }
        worst
    }

    fn max_latency_ms(&self) -> Option<f64> {
        self.names
            .iter()
            .filter_map(|(_, o)| o.latency_ms())
            .reduce(f64::max)
    }

    fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .names
            .iter()
            .map(|(n, o)| format!("{n}: {}", o.describe()))
            .collect();
        if let Some(o) = &self.nonexistent {
            parts.push(format!("(must not exist): {}", o.describe()));
        }
        let role = match (self.in_use, self.provisioned) {
            (true, true) => "in use, provisioned",
            (true, false) => "in use, NOT provisioned",
            (false, true) => "provisioned, not in use",
            (false, false) => "",
        };
        format!("[{role}] {}", parts.join("; "))
    }
}

#[derive(Debug, Clone)]
pub struct DnsCheck {
    pub config: DnsConfig,
}

impl DnsCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.dns.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = &self.config;
        let resolv = match std::fs::read_to_string(&c.resolv_conf) {
            Ok(t) => Ok(parse_resolv_conf(&t)),
            Err(e) => Err(format!("cannot read {}: {e}", c.resolv_conf.display())),
        };
        let in_use = resolv.clone().unwrap_or_default();
        let mut all: Vec<IpAddr> = in_use.clone();
        for p in &c.provisioned_resolvers {
            if !all.contains(p) {
                all.push(*p);
            }
        }
        let rtype = parse_record_type(&c.record_type).unwrap_or(RecordType::A);
        let timeout = Duration::from_millis(c.timeout_ms);
        let results = futures::future::join_all(all.iter().map(|&r| {
            let in_use = in_use.contains(&r);
            let provisioned = c.provisioned_resolvers.contains(&r);
            async move {
                let names = futures::future::join_all(c.test_names.iter().map(|n| async move {
                    let o = query_with_retries(r, c.port, n, rtype, timeout, c.retries).await;
                    (n.clone(), o)
                }))
                .await;
                let nonexistent = if c.nonexistent_name.is_empty() {
                    None
                } else {
                    Some(
                        query_with_retries(
                            r,
                            c.port,
                            &c.nonexistent_name,
                            rtype,
                            timeout,
                            c.retries,
                        )
                        .await,
                    )
                };
                ResolverResult {
                    resolver: r,
                    in_use,
                    provisioned,
                    names,
                    nonexistent,
                }
            }
        }))
        .await;
        judge(c, resolv.as_ref().err().map(String::as_str), &results)
    }
}

/// The verdict over all resolvers' results; pure so it is unit-tested without a network.
/// `resolv_error` is set when resolv.conf could not be read.
pub fn judge(c: &DnsConfig, resolv_error: Option<&str>, results: &[ResolverResult]) -> Observation {
    let in_use: Vec<&ResolverResult> = results.iter().filter(|r| r.in_use).collect();
    let threshold = format!(
        "every resolver in use answers {} within {} ms ({} retries); resolv.conf = provisioned",
        c.test_names.join(", "),
        c.timeout_ms,
        c.retries
    );
    let mut obs = evidence_of(results);
    obs.push(("resolv_conf".into(), c.resolv_conf.display().to_string()));
    let in_use_list: Vec<String> = in_use.iter().map(|r| r.resolver.to_string()).collect();
    obs.push(("resolvers_in_use".into(), in_use_list.join(" ")));
    let prov: Vec<String> = c
        .provisioned_resolvers
        .iter()
        .map(IpAddr::to_string)
        .collect();
    obs.push(("resolvers_provisioned".into(), prov.join(" ")));

    let in_use_set: BTreeSet<IpAddr> = in_use.iter().map(|r| r.resolver).collect();
    let prov_set: BTreeSet<IpAddr> = c.provisioned_resolvers.iter().copied().collect();
    let misconfigured = !prov_set.is_empty() && in_use_set != prov_set;
    obs.push((
        "resolv_conf_matches_provisioned".into(),
        if prov_set.is_empty() {
            "not checked".into()
        } else {
            (!misconfigured).to_string()
        },
    ));
    let finish = |o: Observation| -> Observation {
        obs.iter()
            .fold(o.threshold(threshold.clone()), |o, (k, v)| o.evidence(k, v))
    };

    if let Some(e) = resolv_error {
        return finish(
            Observation::new(
                CheckId::Dns,
                CheckStatus::Failed,
                "resolv_conf_unreadable",
                e.to_string(),
            )
            .category(Category::LocalMisconfig)
            .value("no resolv.conf")
            .hint("reset_dns rewrites resolv.conf from the provisioned resolvers"),
        );
    }
    if in_use.is_empty() {
        return finish(
            Observation::new(
                CheckId::Dns,
                CheckStatus::Failed,
                "no_resolvers_configured",
                format!("{} names no nameserver", c.resolv_conf.display()),
            )
            .category(Category::LocalMisconfig)
            .value("0 resolvers")
            .hint("reset_dns rewrites resolv.conf from the provisioned resolvers"),
        );
    }

    let working: Vec<&&ResolverResult> =
        in_use.iter().filter(|r| r.health() == Health::Ok).collect();
    let provisioned_working = results
        .iter()
        .filter(|r| r.provisioned && r.health() == Health::Ok)
        .count();
    let value = format!("{}/{} resolvers in use answer", working.len(), in_use.len());

    // The worst problem among the resolvers in use that do not work.
    let worst = in_use
        .iter()
        .map(|r| r.health())
        .filter(|h| *h != Health::Ok)
        .max();

    // A misconfigured resolv.conf is the root cause when it hurts and the provisioned
    // resolvers would work: reset_dns fixes it.
    if misconfigured && (provisioned_working > 0 || working.len() == in_use.len()) {
        let status = if working.is_empty() {
            CheckStatus::Failed
        } else {
            CheckStatus::Degraded
        };
        let summary = format!(
            "resolv.conf names {} but the provisioned resolvers are {}{}",
            in_use_list.join(", "),
            prov.join(", "),
            worst.map_or(String::new(), |w| format!(
                "; a resolver in use {}",
                w.meaning()
            ))
        );
        return finish(
            Observation::new(CheckId::Dns, status, "resolv_conf_not_provisioned", summary)
                .category(Category::LocalMisconfig)
                .value(value)
                .hint("reset_dns restores the provisioned resolvers in resolv.conf"),
        );
    }

    if let Some(w) = worst {
        let bad: Vec<String> = in_use
            .iter()
            .filter(|r| r.health() == w)
            .map(|r| r.resolver.to_string())
            .collect();
        let (status, severity) = if working.is_empty() {
            (CheckStatus::Failed, Severity::Major)
        } else {
            (CheckStatus::Degraded, Severity::Minor)
        };
        let hint = match w {
            Health::Timeout | Health::Unreachable => {
                if working.is_empty() {
                    "no resolver in use answers: names do not resolve on the LAN; check the ISP's resolvers"
                } else {
                    "lookups stall until the client tries the next resolver"
                }
            }
            Health::NxDomain | Health::Hijack => {
                "the resolver lies about names: a hijacking (or broken) resolver; compare with the provisioned ones"
            }
            _ => {
                "the resolver is up but cannot resolve: the ISP's resolver or its upstream is broken"
            }
        };
        return finish(
            Observation::new(
                CheckId::Dns,
                status,
                w.cause(),
                format!("resolver {} {}", bad.join(", "), w.meaning()),
            )
            .severity(severity)
            .value(value)
            .hint(hint)
            .evidence("answering", w.answers()),
        );
    }

    let slowest = in_use
        .iter()
        .filter_map(|r| r.max_latency_ms())
        .reduce(f64::max)
        .unwrap_or(0.0);
    if slowest > c.slow_threshold_ms as f64 {
        return finish(
            Observation::new(
                CheckId::Dns,
                CheckStatus::Degraded,
                "dns_slow",
                format!(
                    "the slowest resolver took {slowest:.0} ms (threshold {} ms)",
                    c.slow_threshold_ms
                ),
            )
            .category(Category::SlowOrLossy)
            .value(format!("{slowest:.0} ms"))
            .hint("a loaded or distant resolver; check the access link's loss and latency"),
        );
    }
    finish(
        Observation::ok(
            CheckId::Dns,
            format!("{} resolver(s) in use answer every test name", in_use.len()),
        )
        .value(format!("{value}, slowest {slowest:.1} ms")),
    )
}

fn evidence_of(results: &[ResolverResult]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for r in results {
        out.push((format!("resolver {}", r.resolver), r.describe()));
        if let Some(l) = r.max_latency_ms() {
            out.push((
                format!("resolver {} latency_ms", r.resolver),
                format!("{l:.1}"),
            ));
        }
    }
    out
}

/// One name through one resolver with retries after timeouts.
async fn query_with_retries(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cfg(prov: &[&str]) -> DnsConfig {
        DnsConfig {
            enabled: true,
            test_names: vec!["probe.isp.example".into()],
            provisioned_resolvers: prov.iter().map(|s| ip(s)).collect(),
            ..DnsConfig::default()
        }
    }

    fn res(addr: &str, in_use: bool, prov: bool, o: Outcome) -> ResolverResult {
        ResolverResult {
            resolver: ip(addr),
            in_use,
            provisioned: prov,
            names: vec![("probe.isp.example".into(), o)],
            nonexistent: None,
        }
    }

    fn ans(ms: f64) -> Outcome {
        Outcome::Answer {
            addrs: vec![ip("192.0.2.1")],
            latency_ms: ms,
        }
    }

    #[test]
    fn parses_resolv_conf() {
        let t = "# generated\nsearch isp.example\nnameserver 192.0.2.53\nnameserver  198.51.100.53 # x\n\
                 nameserver fe80::1%wan\nnameserver 192.0.2.53\nnameserver bogus\noptions ndots:1\n";
        assert_eq!(
            parse_resolv_conf(t),
            vec![ip("192.0.2.53"), ip("198.51.100.53"), ip("fe80::1")]
        );
        assert!(parse_resolv_conf("").is_empty());
    }

    #[test]
    fn healthy_resolvers_are_ok_and_slow_ones_degrade() {
        let c = cfg(&["192.0.2.53"]);
        let o = judge(&c, None, &[res("192.0.2.53", true, true, ans(3.0))]);
        assert_eq!((o.status, o.cause.as_str()), (CheckStatus::Ok, "ok"));
        assert!(o.evidence["resolver 192.0.2.53"].contains("192.0.2.1"));
        assert_eq!(o.evidence["resolv_conf_matches_provisioned"], "true");
        let o = judge(&c, None, &[res("192.0.2.53", true, true, ans(2500.0))]);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "dns_slow")
        );
    }

    #[test]
    fn dead_resolvers_fail_and_partial_failure_degrades() {
        let c = cfg(&[]);
        let o = judge(
            &c,
            None,
            &[res("192.0.2.53", true, false, Outcome::Timeout)],
        );
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Failed, "resolver_timeout")
        );
        assert_eq!(o.category, Category::DnsFailure);
        let o = judge(
            &c,
            None,
            &[
                res("192.0.2.53", true, false, Outcome::Timeout),
                res("198.51.100.53", true, false, ans(1.0)),
            ],
        );
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "resolver_timeout")
        );
        assert!(o.summary.contains("192.0.2.53"), "{}", o.summary);
    }

    #[test]
    fn nxdomain_servfail_and_hijack_are_named() {
        let c = cfg(&[]);
        let nx = Outcome::Rcode {
            code: ResponseCode::NXDomain,
            latency_ms: 1.0,
        };
        let o = judge(&c, None, &[res("192.0.2.53", true, false, nx)]);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Failed, "resolver_nxdomain")
        );
        assert!(o.summary.contains("NXDOMAIN"));
        let sf = Outcome::Rcode {
            code: ResponseCode::ServFail,
            latency_ms: 1.0,
        };
        let o = judge(&c, None, &[res("192.0.2.53", true, false, sf)]);
        assert_eq!(o.cause, "resolver_servfail");
        let mut r = res("192.0.2.53", true, false, ans(1.0));
        r.nonexistent = Some(ans(1.0));
        let o = judge(&c, None, &[r]);
        assert_eq!(o.cause, "resolver_hijack");
    }

    #[test]
    fn resolv_conf_differing_from_provisioned_is_a_misconfiguration() {
        let c = cfg(&["192.0.2.53"]);
        let o = judge(
            &c,
            None,
            &[
                res("198.51.100.99", true, false, Outcome::Timeout),
                res("192.0.2.53", false, true, ans(1.0)),
            ],
        );
        assert_eq!(
            (o.status, o.cause.as_str(), o.category),
            (
                CheckStatus::Failed,
                "resolv_conf_not_provisioned",
                Category::LocalMisconfig
            )
        );
        // Working but not the provisioned one: still a misconfiguration, degraded.
        let o = judge(
            &c,
            None,
            &[
                res("198.51.100.99", true, false, ans(1.0)),
                res("192.0.2.53", false, true, ans(1.0)),
            ],
        );
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "resolv_conf_not_provisioned")
        );
        // Nothing works at all: the resolvers' failure is the cause, not the config.
        let o = judge(
            &c,
            None,
            &[
                res("198.51.100.99", true, false, Outcome::Timeout),
                res("192.0.2.53", false, true, Outcome::Timeout),
            ],
        );
        assert_eq!(o.cause, "resolver_timeout");
    }

    #[test]
    fn empty_or_unreadable_resolv_conf_fails() {
        let c = cfg(&[]);
        assert_eq!(judge(&c, None, &[]).cause, "no_resolvers_configured");
        assert_eq!(
            judge(&c, Some("cannot read"), &[]).cause,
            "resolv_conf_unreadable"
        );
    }

    #[test]
    fn interprets_responses_and_ignores_strangers() {
        let name = Name::from_ascii("probe.isp.example.").unwrap();
        let mut q = Message::query();
        q.add_query(Query::query(name.clone(), RecordType::A));
        let id = q.metadata.id;
        let mut r = Message::response(id, hickory_proto::op::OpCode::Query);
        r.add_query(Query::query(name.clone(), RecordType::A));
        r.add_answer(hickory_proto::rr::Record::from_rdata(
            name.clone(),
            60,
            RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        let bytes = r.to_vec().unwrap();
        let parsed = Message::from_vec(&bytes).unwrap();
        assert_eq!(
            interpret(&parsed, id, &name, RecordType::A, 1.0),
            Some(ans(1.0))
        );
        assert_eq!(
            interpret(&parsed, id.wrapping_add(1), &name, RecordType::A, 1.0),
            None
        );
        let mut nx = Message::response(id, hickory_proto::op::OpCode::Query);
        nx.metadata.response_code = ResponseCode::NXDomain;
        nx.add_query(Query::query(name.clone(), RecordType::A));
        assert_eq!(
            interpret(&nx, id, &name, RecordType::A, 2.0),
            Some(Outcome::Rcode {
                code: ResponseCode::NXDomain,
                latency_ms: 2.0
            })
        );
    }

    #[test]
    fn config_problems() {
        let mut out = Vec::new();
        DnsConfig {
            enabled: true,
            record_type: "MX".into(),
            timeout_ms: 0,
            test_names: vec!["bad name..x".into()],
            ..DnsConfig::default()
        }
        .problems(&mut out);
        let fields: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
        assert!(fields.contains(&"checks.dns.record_type"), "{fields:?}");
        assert!(fields.contains(&"checks.dns.timeout_ms"), "{fields:?}");
        assert!(fields.contains(&"checks.dns.test_names[0]"), "{fields:?}");
        let mut out = Vec::new();
        DnsConfig {
            enabled: true,
            ..DnsConfig::default()
        }
        .problems(&mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let mut out = Vec::new();
        DnsConfig::default().problems(&mut out);
        assert!(out.is_empty(), "{out:?}");
    }
}
