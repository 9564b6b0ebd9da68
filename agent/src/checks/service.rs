//! `service`: configured daemons alive.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.service]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 15,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(ServiceConfig);

impl ServiceConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "service",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct ServiceCheck {
    pub config: ServiceConfig,
}

impl ServiceCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.service.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Service,
            CheckStatus::Unknown,
            "not_implemented",
            "service is not implemented yet",
        )
    }
}
