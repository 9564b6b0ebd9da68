//! `resources`: available memory, load, free space of the state directory.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.resources]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(ResourcesConfig);

impl ResourcesConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "resources",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct ResourcesCheck {
    pub config: ResourcesConfig,
}

impl ResourcesCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.resources.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Resources,
            CheckStatus::Unknown,
            "not_implemented",
            "resources is not implemented yet",
        )
    }
}
