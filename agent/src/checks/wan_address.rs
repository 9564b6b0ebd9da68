//! `wan_address`: a usable IPv4 address on the WAN; DHCP lease present and not expired; IPv6 when configured.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.wan_address]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WanAddressConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for WanAddressConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 10,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(WanAddressConfig);

impl WanAddressConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "wan_address",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct WanAddressCheck {
    pub config: WanAddressConfig,
}

impl WanAddressCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.wan_address.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::WanAddress,
            CheckStatus::Unknown,
            "not_implemented",
            "wan_address is not implemented yet",
        )
    }
}
