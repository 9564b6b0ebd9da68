//! `http`: probe URL status and time to first byte; captive portal.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(HttpConfig);

impl HttpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "http",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub config: HttpConfig,
}

impl HttpCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.http.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::Http,
            CheckStatus::Unknown,
            "not_implemented",
            "http is not implemented yet",
        )
    }
}
