//! `clock`: skew against the collector's Date header.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.clock]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 300,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(ClockConfig);

impl ClockConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "clock",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct ClockCheck {
    pub config: ClockConfig,
}

impl ClockCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.clock.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Clock,
            CheckStatus::Unknown,
            "not_implemented",
            "clock is not implemented yet",
        )
    }
}
