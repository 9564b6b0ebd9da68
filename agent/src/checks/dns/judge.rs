//! Evaluation: each resolver's health from its outcomes, and the check's verdict over all of
//! them. Pure, so it is unit-tested without a network.

use crate::checks::Observation;
use hickory_proto::op::ResponseCode;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{DnsConfig, Outcome};

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
    /// when every must-exist name has an address and the must-not-exist name has none. With
    /// `any_answer_ok` (the name is the collector's, not one the ISP vouches for) NXDOMAIN and
    /// no-data are answers too: the resolver works.
    pub fn health(&self, any_answer_ok: bool) -> Health {
        let mut worst = Health::Ok;
        for (_, o) in &self.names {
            let h = match o {
                Outcome::Answer { .. } => Health::Ok,
                Outcome::NoData { .. } if any_answer_ok => Health::Ok,
                Outcome::NoData { .. } => Health::NoData,
                Outcome::Rcode { code, .. } => match code {
                    ResponseCode::NXDomain if any_answer_ok => Health::Ok,
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

/// The verdict over all resolvers' results; pure so it is unit-tested without a network.
/// `resolv_error` is set when resolv.conf could not be read.
pub fn judge(c: &DnsConfig, resolv_error: Option<&str>, results: &[ResolverResult]) -> Observation {
    let lenient = c.names_from_collector_url;
    let health = |r: &ResolverResult| r.health(lenient);
    let in_use: Vec<&ResolverResult> = results.iter().filter(|r| r.in_use).collect();
    let threshold = if c.test_names.is_empty() {
        "resolv.conf names a resolver (none queried: no test name)".to_string()
    } else if lenient {
        format!(
            "every resolver in use answers {} (the collector's name; NXDOMAIN counts as an answer) \
             within {} ms ({} retries); resolv.conf = provisioned",
            c.test_names.join(", "),
            c.timeout_ms,
            c.retries
        )
    } else {
        format!(
            "every resolver in use answers {} within {} ms ({} retries); resolv.conf = provisioned",
            c.test_names.join(", "),
            c.timeout_ms,
            c.retries
        )
    };
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
        in_use.iter().filter(|r| health(r) == Health::Ok).collect();
    let provisioned_working = results
        .iter()
        .filter(|r| r.provisioned && health(r) == Health::Ok)
        .count();
    let value = format!("{}/{} resolvers in use answer", working.len(), in_use.len());

    // The worst problem among the resolvers in use that do not work.
    let worst = in_use
        .iter()
        .map(|r| health(r))
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
            .filter(|r| health(r) == w)
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
    if c.test_names.is_empty() {
        return finish(
            Observation::ok(
                CheckId::Dns,
                format!(
                    "resolv.conf names {} resolver(s); none queried: set checks.dns.test_names \
                     (collector.url is an IP address)",
                    in_use.len()
                ),
            )
            .value(format!("{} resolvers, not queried", in_use.len())),
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
