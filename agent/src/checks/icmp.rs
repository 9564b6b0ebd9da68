//! `icmp`: loss, RTT and jitter to the gateway and the ISP's probe targets.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.icmp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IcmpConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for IcmpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 10,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(IcmpConfig);

impl IcmpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "icmp",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct IcmpCheck {
    pub config: IcmpConfig,
}

impl IcmpCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.icmp.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Icmp,
            CheckStatus::Unknown,
            "not_implemented",
            "icmp is not implemented yet",
        )
    }
}
