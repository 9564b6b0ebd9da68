//! `modem_snmp`: DSL/DOCSIS/ONT line health over SNMP.
//!
//! PLACEHOLDER: being implemented under issue 3; disabled by default until then.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{CheckId, CheckStatus};
use serde::Deserialize;

/// `[checks.modem_snmp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModemSnmpConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
}

impl Default for ModemSnmpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            fail_threshold: 2,
            ok_threshold: 2,
        }
    }
}

check_settings!(ModemSnmpConfig);

impl ModemSnmpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "modem_snmp",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct ModemSnmpCheck {
    pub config: ModemSnmpConfig,
}

impl ModemSnmpCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.modem_snmp.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        Observation::new(
            CheckId::ModemSnmp,
            CheckStatus::Unknown,
            "not_implemented",
            "modem_snmp is not implemented yet",
        )
    }
}
