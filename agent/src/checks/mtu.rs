//! `mtu`: WAN MTU vs provisioned; path-MTU blackhole with DF probes.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.mtu]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtuConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for MtuConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 300,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(MtuConfig);

impl MtuConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "mtu",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct MtuCheck {
    pub config: MtuConfig,
}

impl MtuCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.mtu.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Mtu,
            CheckStatus::Unknown,
            "not_implemented",
            "mtu is not implemented yet",
        )
    }
}
