//! `dns6`: DNS over IPv6 transport. Each of the ISP's IPv6 resolvers is asked for the AAAA
//! record of each test name over UDP/IPv6; a dead IPv6 resolver or missing AAAA answers break
//! dual-stack clients while the IPv4 `dns` check stays green. A check of its own (one incident
//! per check, so it neither masks nor is masked by `dns`), layered under `wan6`. Category
//! `ipv6_degraded`, evidence `family = ipv6`. Report only: the resolvers are the ISP's.

use super::dns::{Outcome, query};
use super::{Context, Observation, check_settings, common_problems};
use crate::site::{Problem, Site};
use hickory_proto::rr::RecordType;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Every cause this check reports besides `ok`.
pub const CAUSES: &[&str] = &[
    "resolver6_unreachable",
    "resolver6_error",
    "aaaa_missing",
    "no_resolvers_configured",
];

/// `[checks.dns6]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Dns6Config {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The ISP's IPv6 resolvers (the addresses DHCPv6/RA hand out).
    pub resolvers: Vec<Ipv6Addr>,
    /// Names that must have AAAA records.
    pub test_names: Vec<String>,
    pub timeout_ms: u64,
}

impl Default for Dns6Config {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 30,
            fail_threshold: 2,
            ok_threshold: 2,
            resolvers: Vec::new(),
            test_names: Vec::new(),
            timeout_ms: 2000,
        }
    }
}

check_settings!(Dns6Config);

impl Dns6Config {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "dns6",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.enabled && (self.resolvers.is_empty() || self.test_names.is_empty()) {
            out.push(Problem::new(
                "checks.dns6.resolvers",
                "an enabled dns6 needs resolvers and test_names",
            ));
        }
        if self.resolvers.len() > 8 || self.test_names.len() > 8 {
            out.push(Problem::new(
                "checks.dns6.resolvers",
                "at most 8 resolvers and 8 names",
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            out.push(Problem::new(
                "checks.dns6.timeout_ms",
                "must be between 1 and 10000",
            ));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Dns6Check {
    pub config: Dns6Config,
}

/// The cause one outcome stands for; `None`: a good answer.
fn bad(o: &Outcome) -> Option<&'static str> {
    match o {
        Outcome::Answer { addrs, .. } if addrs.iter().any(|a| a.is_ipv6()) => None,
        Outcome::Answer { .. } | Outcome::NoData { .. } => Some("aaaa_missing"),
        Outcome::Rcode { .. } => Some("resolver6_error"),
        Outcome::Timeout | Outcome::Unreachable(_) => Some("resolver6_unreachable"),
    }
}

impl Dns6Check {
    pub fn new(_site: &Site, config: &Dns6Config) -> Self {
        Self {
            config: config.clone(),
        }
    }

    /// Judges (resolver, name, outcome) triples: every resolver failing every name is
    /// `failed`, some is `degraded`; the cause is the first failure's.
    pub fn judge(&self, results: &[(Ipv6Addr, String, Outcome)]) -> Observation {
        let mut o = Observation::new(CheckId::Dns6, CheckStatus::Ok, "ok", "")
            .category(Category::Ipv6Degraded)
            .evidence("family", "ipv6")
            .threshold("every IPv6 resolver answers AAAA for every test name");
        if results.is_empty() {
            return Observation::new(
                CheckId::Dns6,
                CheckStatus::Unknown,
                "no_resolvers_configured",
                "no IPv6 resolvers or test names configured",
            )
            .category(Category::Ipv6Degraded)
            .evidence("family", "ipv6");
        }
        for (r, name, out) in results {
            o = o.evidence(format!("{r} {name} AAAA"), format!("{out:?}"));
        }
        let failed: Vec<_> = results
            .iter()
            .filter_map(|(r, n, out)| bad(out).map(|c| (r, n, c)))
            .collect();
        let dead_resolvers = self
            .config
            .resolvers
            .iter()
            .filter(|r| {
                results
                    .iter()
                    .filter(|(x, ..)| x == *r)
                    .all(|(_, _, out)| bad(out).is_some())
            })
            .count();
        let Some((r, n, cause)) = failed.first() else {
            o.summary = format!(
                "{} IPv6 resolver(s) answer AAAA",
                self.config.resolvers.len()
            );
            return o.value("all answer");
        };
        o.status = if dead_resolvers == self.config.resolvers.len() {
            CheckStatus::Failed
        } else {
            CheckStatus::Degraded
        };
        o.severity = if o.status == CheckStatus::Failed {
            Severity::Major
        } else {
            Severity::Minor
        };
        o.cause = (*cause).to_string();
        o.summary = match *cause {
            "aaaa_missing" => format!("IPv6 resolver {r} gives no AAAA for {n}"),
            "resolver6_error" => format!("IPv6 resolver {r} answers {n} with an error"),
            _ => format!("IPv6 resolver {r} does not answer over IPv6"),
        };
        o.value(format!("{}/{} queries failed", failed.len(), results.len()))
            .hint("IPv6-only DNS fault (compare with dns): the ISP's IPv6 resolver; clients fall back to IPv4 DNS slowly or not at all")
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = &self.config;
        let timeout = Duration::from_millis(c.timeout_ms);
        let mut asks = Vec::new();
        for r in &c.resolvers {
            for n in &c.test_names {
                asks.push((*r, n.clone()));
            }
        }
        let outcomes = futures::future::join_all(
            asks.iter()
                .map(|(r, n)| query(SocketAddr::from((*r, 53)), n, RecordType::AAAA, timeout)),
        )
        .await;
        let results: Vec<_> = asks
            .into_iter()
            .zip(outcomes)
            .map(|((r, n), o)| (r, n, o))
            .collect();
        self.judge(&results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::causes::assert_declared;

    fn check(n: usize) -> Dns6Check {
        Dns6Check {
            config: Dns6Config {
                enabled: true,
                resolvers: (1..=n as u16)
                    .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, i))
                    .collect(),
                test_names: vec!["probe6.isp.test".into()],
                ..Dns6Config::default()
            },
        }
    }

    fn answer() -> Outcome {
        Outcome::Answer {
            addrs: vec!["2001:db8:ffff::1".parse().unwrap()],
            latency_ms: 1.0,
        }
    }

    #[test]
    fn judges_dead_resolvers_and_missing_aaaa() {
        let c = check(2);
        let r = &c.config.resolvers;
        let n = "probe6.isp.test".to_string();
        let o = c.judge(&[(r[0], n.clone(), answer()), (r[1], n.clone(), answer())]);
        assert_eq!(o.status, CheckStatus::Ok);
        let o = c.judge(&[
            (r[0], n.clone(), answer()),
            (r[1], n.clone(), Outcome::Timeout),
        ]);
        assert_declared(&o);
        assert_eq!(
            (o.cause.as_str(), o.status),
            ("resolver6_unreachable", CheckStatus::Degraded)
        );
        let o = c.judge(&[
            (r[0], n.clone(), Outcome::Timeout),
            (r[1], n.clone(), Outcome::NoData { latency_ms: 1.0 }),
        ]);
        assert_declared(&o);
        assert_eq!(o.status, CheckStatus::Failed);
        assert_eq!(o.category, Category::Ipv6Degraded);
        let o = c.judge(&[(r[0], n.clone(), Outcome::NoData { latency_ms: 1.0 })]);
        assert_eq!(o.cause, "aaaa_missing");
        assert_eq!(c.judge(&[]).cause, "no_resolvers_configured");
    }
}
