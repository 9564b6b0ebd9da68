//! `restart_hostapd`: restarts the access point daemon with the command of
//! `[healing.restart_hostapd]` (argv, no shell; e.g. `["/etc/init.d/hostapd", "restart"]`).
//! Nothing from the incident becomes part of the command line. Without a configured command
//! the action is not applicable. The healer verifies it by re-running `wifi_ap` until hostapd
//! answers again with its BSS enabled.
//!
//! Not disruptive in the healer's sense: the built-in playbook runs it only when the Wi-Fi is
//! already down (`hostapd_down`, `hostapd_frozen`, `ap_disabled`), so there is no working
//! service to interrupt and no reason to wait for a quiet radio or a maintenance window. A
//! hostapd that is stopped (SIGSTOP) ignores SIGTERM until it is continued; the restart
//! command must end it with SIGKILL after a grace period (the lab's init script does).

use super::Settings;
use super::{ActionError, ActionInput, Limit, run_command};
use crate::site::Problem;
use serde::Deserialize;
use std::time::Duration;

/// Not disruptive: it runs only when the Wi-Fi is already down (see the module doc).
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 4,
    window_secs: 3600,
};

/// `[healing.restart_hostapd]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RestartHostapdConfig {
    /// argv, no shell; empty: the action is not applicable.
    pub command: Vec<String>,
    pub timeout_secs: u64,
}

impl Default for RestartHostapdConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            timeout_secs: 30,
        }
    }
}

impl RestartHostapdConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if self.command.first().is_some_and(|p| !p.starts_with('/')) {
            out.push(Problem::new(
                "healing.restart_hostapd.command",
                "must start with an absolute program path (argv array, no shell)",
            ));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            out.push(Problem::new(
                "healing.restart_hostapd.timeout_secs",
                "must be between 1 and 600",
            ));
        }
    }
}

pub async fn run(s: &Settings, input: &ActionInput) -> Result<String, ActionError> {
    let cfg = &s.restart_hostapd;
    if cfg.command.is_empty() {
        return Err(ActionError::NotApplicable(
            "healing.restart_hostapd.command is not configured".into(),
        ));
    }
    let out = run_command(&cfg.command, Duration::from_secs(cfg.timeout_secs))
        .await
        .map_err(|e| ActionError::Failed(format!("restarting hostapd: {e}")))?;
    let why = if input.cause.is_empty() {
        String::new()
    } else {
        format!(" ({})", input.cause)
    };
    Ok(format!("restarted hostapd{why}: {out}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems() {
        let mut out = Vec::new();
        RestartHostapdConfig::default().problems(&mut out);
        assert!(out.is_empty(), "{out:?}");
        RestartHostapdConfig {
            command: vec!["hostapd".into()],
            timeout_secs: 0,
        }
        .problems(&mut out);
        assert_eq!(out.len(), 2, "{out:?}");
    }
}
