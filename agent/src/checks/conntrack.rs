//! `conntrack`: nf_conntrack_count / nf_conntrack_max.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.conntrack]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConntrackConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 30,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(ConntrackConfig);

impl ConntrackConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "conntrack",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct ConntrackCheck {
    pub config: ConntrackConfig,
}

impl ConntrackCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.conntrack.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Conntrack,
            CheckStatus::Unknown,
            "not_implemented",
            "conntrack is not implemented yet",
        )
    }
}
