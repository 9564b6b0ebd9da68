//! `[checks.dns]`: the resolvers, names and thresholds of the dns check, and their validation.

use crate::checks::{check_settings, common_problems};
use crate::config::Problem;
use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

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

pub(super) fn parse_record_type(s: &str) -> Option<RecordType> {
    match s.to_ascii_uppercase().as_str() {
        "A" => Some(RecordType::A),
        "AAAA" => Some(RecordType::AAAA),
        _ => None,
    }
}
