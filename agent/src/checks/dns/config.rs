//! `[checks.dns]`: the resolvers, names and thresholds of the dns check, and their validation.

use crate::checks::{check_settings, common_problems};
use crate::site::Problem;
use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// `[checks.dns]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// On by default: without `test_names` the collector's host name is asked for.
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The resolver configuration the CPE's own processes use.
    pub resolv_conf: PathBuf,
    /// Resolvers the ISP provisioned (e.g. handed out by DHCP/PPP). Each is queried too, and a
    /// resolv.conf naming other resolvers is a misconfiguration. Empty: no comparison.
    pub provisioned_resolvers: Vec<IpAddr>,
    /// Names that must exist (the ISP's own, e.g. `probe.isp.example`). Empty: the host name of
    /// `collector.url` (see [`DnsConfig::effective`]); none when that URL names an IP address.
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
    /// Not a config key: set by [`DnsConfig::effective`] when `test_names` was empty and holds
    /// the collector's host name instead. Such a name is only known to exist where the
    /// collector is reached (split-horizon DNS may hide it elsewhere), so any answer from a
    /// resolver — NXDOMAIN and no-data included — shows that the resolver works; only a
    /// timeout, an unreachable resolver, SERVFAIL, REFUSED or another error code is a fault.
    #[serde(skip)]
    pub names_from_collector_url: bool,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
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
            names_from_collector_url: false,
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

impl DnsConfig {
    /// The config the check runs with: explicit `test_names` as they are; none configured →
    /// the host name of `collector_url` (a name that must resolve wherever the agent reports),
    /// judged leniently (see [`DnsConfig::names_from_collector_url`]); an IP-literal URL → no
    /// name at all, and the check judges resolv.conf only (returned as the `Err` note).
    pub fn effective(&self, collector_url: &str) -> (DnsConfig, Option<String>) {
        let mut c = self.clone();
        if !c.test_names.is_empty() {
            return (c, None);
        }
        match collector_host_name(collector_url) {
            Some(host) => {
                c.test_names = vec![host];
                c.names_from_collector_url = true;
                (c, None)
            }
            None => (
                c,
                Some(format!(
                    "no test name: checks.dns.test_names is empty and collector.url ({collector_url}) \
                     names no host; resolvers are not queried (only resolv.conf is judged) until \
                     checks.dns.test_names is set"
                )),
            ),
        }
    }
}

/// The DNS host name of an http(s) URL; `None` for an IP address or an unparsable URL.
pub fn collector_host_name(url: &str) -> Option<String> {
    let u = crate::httpc::Url::parse(url).ok()?;
    // `domain()` is `None` for an IP address.
    let d = u.domain()?.trim_end_matches('.');
    // A name the resolvers can answer: not a bare label like `localhost`.
    (d.contains('.') && Name::from_ascii(d).is_ok()).then(|| d.to_ascii_lowercase())
}

pub(super) fn parse_record_type(s: &str) -> Option<RecordType> {
    match s.to_ascii_uppercase().as_str() {
        "A" => Some(RecordType::A),
        "AAAA" => Some(RecordType::AAAA),
        _ => None,
    }
}
