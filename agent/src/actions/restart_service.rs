//! `restart_service`: restarts the daemons the `service` check found down — only those with an
//! entry in the explicit allow-list `[[healing.restart_service]]` (name + argv). The service
//! name comes from the check's evidence but only selects an entry of the list: nothing from
//! the system or the collector ever becomes part of a command line, and no shell is involved.

use super::{ActionError, ActionInput};
use crate::checks::Context;
use std::time::Duration;

pub async fn run(ctx: &Context, input: &ActionInput) -> Result<String, ActionError> {
    let allow = &ctx.config.healing.restart_service;
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
