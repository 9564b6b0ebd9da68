//! `dns`: every resolver the CPE uses (resolv.conf) and every provisioned resolver answers the
//! test names; detects dead resolvers (timeouts), SERVFAIL/REFUSED, NXDOMAIN for names that must
//! exist (a hijacking or broken resolver), answers for a name that must not exist (NXDOMAIN
//! redirection), and a resolv.conf that differs from the provisioned resolvers.
//!
//! Queries are built and parsed with `hickory-proto` and sent over our own UDP socket, one
//! resolver at a time, so each answer is exactly that resolver's: no stub resolver, no cache.
//!
//! `config` holds `[checks.dns]`, `probe` resolv.conf and the queries, `judge` the verdict.

use super::{Context, Observation};
use crate::config::AgentConfig;
use hickory_proto::rr::RecordType;
use std::net::IpAddr;
use std::time::Duration;

mod config;
mod judge;
mod probe;
#[cfg(test)]
mod tests;

pub use config::DnsConfig;
use config::parse_record_type;
pub use judge::{Health, ResolverResult, judge};
use probe::query_with_retries;
pub use probe::{Outcome, interpret, parse_resolv_conf, query};

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
