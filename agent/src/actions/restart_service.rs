//! `restart_service`: restarts the daemons the `service` check found down — only those with an
//! entry in the explicit allow-list `[[healing.restart_service]]` (name + argv). The service
//! name comes from the check's evidence but only selects an entry of the list: nothing from
//! the system or the collector ever becomes part of a command line, and no shell is involved.

use super::Limit;
use super::Settings;
use super::{ActionError, ActionInput};
use crate::site::Problem;
use serde::Deserialize;
use std::time::Duration;

/// Disruptive: the service is unavailable while it restarts.
pub const DISRUPTIVE: bool = true;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 4,
    window_secs: 3600,
};

/// One `[[healing.restart_service]]` entry: a service the agent may restart, and how.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartServiceEntry {
    /// As named in `[[checks.service.services]]`.
    pub name: String,
    /// argv, no shell, e.g. `["/etc/init.d/dnsmasq", "restart"]`.
    pub command: Vec<String>,
    #[serde(default = "default_command_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_command_timeout_secs() -> u64 {
    30
}

/// Problems of the `[[healing.restart_service]]` allow-list.
pub fn problems(entries: &[RestartServiceEntry], out: &mut Vec<Problem>) {
    let mut bad =
        |f: String, m: String| out.push(Problem::new(format!("healing.restart_service{f}"), m));
    for (i, s) in entries.iter().enumerate() {
        if s.name.is_empty() || s.name.len() > 64 {
            bad(format!("[{i}].name"), "must be 1-64 characters".into());
        } else if entries[..i].iter().any(|o| o.name == s.name) {
            bad(
                format!("[{i}].name"),
                format!("{:?} is listed twice", s.name),
            );
        }
        if s.command.first().is_none_or(|p| p.is_empty()) {
            bad(
                format!("[{i}].command"),
                "must name a program (argv array, no shell)".into(),
            );
        }
        if s.timeout_secs == 0 || s.timeout_secs > 600 {
            bad(
                format!("[{i}].timeout_secs"),
                "must be between 1 and 600".into(),
            );
        }
    }
}

pub async fn run(s: &Settings, input: &ActionInput) -> Result<String, ActionError> {
    let allow = &s.restart_service;
    let down: Vec<&str> = input
        .evidence
        .get("down")
        .map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if down.is_empty() {
        return Err(ActionError::NotApplicable(
            "the incident names no service that is down".into(),
        ));
    }
    let mut done = Vec::new();
    let mut refused = Vec::new();
    for name in &down {
        match allow.iter().find(|s| s.name == *name) {
            Some(s) => {
                let out = super::run_command(&s.command, Duration::from_secs(s.timeout_secs))
                    .await
                    .map_err(|e| ActionError::Failed(format!("restarting {name}: {e}")))?;
                done.push(format!("{name} ({out})"));
            }
            None => refused.push(*name),
        }
    }
    if done.is_empty() {
        return Err(ActionError::NotApplicable(format!(
            "not in healing.restart_service allow-list: {}",
            refused.join(", ")
        )));
    }
    let mut detail = format!("restarted {}", done.join(", "));
    if !refused.is_empty() {
        detail.push_str(&format!("; not allow-listed: {}", refused.join(", ")));
    }
    Ok(detail)
}
