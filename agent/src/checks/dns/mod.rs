//! `dns`: every resolver the CPE uses (resolv.conf) and every provisioned resolver answers the
//! test names; detects dead resolvers (timeouts), SERVFAIL/REFUSED, NXDOMAIN for names that must
//! exist (a hijacking or broken resolver), answers for a name that must not exist (NXDOMAIN
//! redirection), and a resolv.conf that differs from the provisioned resolvers.
//!
//! Without configured test names the collector's host name is asked for (any answer, NXDOMAIN
//! included, shows a working resolver), so the check works out of the box; the resolvers of the
//! WAN's DHCP lease (`dns=`) are queried beside those of resolv.conf.
//!
//! Queries are built and parsed with `hickory-proto` and sent over our own UDP socket, one
//! resolver at a time, so each answer is exactly that resolver's: no stub resolver, no cache.
//!
//! `config` holds `[checks.dns]`, `probe` resolv.conf and the queries, `judge` the verdict.

use super::{Context, Observation};
use crate::site::Site;
use hickory_proto::rr::RecordType;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

mod config;
mod judge;
mod probe;
#[cfg(test)]
mod tests;

use config::parse_record_type;
pub use config::{DnsConfig, collector_host_name};
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
    /// `[checks.dns]` with the effective test names ([`DnsConfig::effective`]).
    pub config: DnsConfig,
    /// The WAN lease file, whose `dns=` resolvers are queried too.
    lease_file: Option<PathBuf>,
}

/// Whether the "no test name" warning was logged (once per process, not per heartbeat).
static NO_NAME_WARNED: AtomicBool = AtomicBool::new(false);

impl DnsCheck {
    pub fn new(site: &Site, config: &DnsConfig) -> Self {
        let (effective, note) = config.effective(&site.collector_url);
        if let Some(note) = note
            && !NO_NAME_WARNED.swap(true, Ordering::Relaxed)
        {
            log::warn!("check dns: {note}");
        }
        Self {
            config: effective,
            lease_file: site.wan.lease_file.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = &self.config;
        let resolv = match std::fs::read_to_string(&c.resolv_conf) {
            Ok(t) => Ok(parse_resolv_conf(&t)),
            Err(e) => Err(format!("cannot read {}: {e}", c.resolv_conf.display())),
        };
        let in_use = resolv.clone().unwrap_or_default();
        // The lease's resolvers are the DHCP-provisioned ones when none are configured.
        let leased: Vec<IpAddr> = if c.provisioned_resolvers.is_empty() {
            self.lease_file
                .as_deref()
                .and_then(|p| crate::lease::Lease::read(p).ok().flatten())
                .map(|l| l.dns.into_iter().map(IpAddr::V4).collect())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut all: Vec<IpAddr> = in_use.clone();
        for p in c.provisioned_resolvers.iter().chain(&leased) {
            if !all.contains(p) {
                all.push(*p);
            }
        }
        let rtype = parse_record_type(&c.record_type).unwrap_or(RecordType::A);
        let timeout = Duration::from_millis(c.timeout_ms);
        let results = futures::future::join_all(all.iter().map(|&r| {
            let in_use = in_use.contains(&r);
            let provisioned = c.provisioned_resolvers.contains(&r) || leased.contains(&r);
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
