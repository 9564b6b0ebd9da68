//! `dns`: each resolver answers the test names; hijack and misconfiguration detection.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.dns]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 30,
            fail_threshold: 2,
            ok_threshold: 2,
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
        Observation::new(
            CheckId::Dns,
            CheckStatus::Unknown,
            "not_implemented",
            "dns is not implemented yet",
        )
    }
}
