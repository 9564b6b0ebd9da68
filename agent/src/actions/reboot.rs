//! `reboot`: the last resort, off by default (`healing.reboot.enabled`). Runs the configured
//! command (argv, default `["/sbin/reboot"]`); a test config points it at a command that records
//! the call instead. Its budget charge is on disk before the command runs, so the reboot counts
//! against the next boot's budget.

use super::ActionError;
use super::Limit;
use super::Settings;
use crate::site::Problem;
use serde::Deserialize;
use std::time::Duration;

/// Disruptive: the whole router goes away.
pub const DISRUPTIVE: bool = true;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 3,
    window_secs: 86400,
};

/// `[healing.reboot]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RebootConfig {
    /// Off by default: the last resort must be chosen.
    pub enabled: bool,
    pub command: Vec<String>,
}

impl Default for RebootConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            command: vec!["/sbin/reboot".into()],
        }
    }
}

impl RebootConfig {
    /// Problems of `[healing.reboot]`.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if self.enabled && self.command.first().is_none_or(|p| p.is_empty()) {
            out.push(Problem::new(
                "healing.reboot.command",
                "must name a program when reboot is enabled",
            ));
        }
    }
}

pub async fn run(s: &Settings) -> Result<String, ActionError> {
    let cfg = &s.reboot;
    if !cfg.enabled {
        return Err(ActionError::NotApplicable(
            "reboot is disabled (healing.reboot.enabled = false)".into(),
        ));
    }
    let out = super::run_command(&cfg.command, Duration::from_secs(30)).await?;
    Ok(format!("ran {}: {out}", cfg.command.join(" ")))
}
