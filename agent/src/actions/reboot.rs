//! `reboot`: the last resort, off by default (`healing.reboot.enabled`). Runs the configured
//! command (argv, default `["/sbin/reboot"]`); a test config points it at a command that records
//! the call instead. Its budget charge is on disk before the command runs, so the reboot counts
//! against the next boot's budget.

use super::ActionError;
use crate::checks::Context;
use std::time::Duration;

pub async fn run(ctx: &Context) -> Result<String, ActionError> {
    let cfg = &ctx.config.healing.reboot;
    if !cfg.enabled {
        return Err(ActionError::NotApplicable(
            "reboot is disabled (healing.reboot.enabled = false)".into(),
        ));
    }
    let out = super::run_command(&cfg.command, Duration::from_secs(30)).await?;
    Ok(format!("ran {}: {out}", cfg.command.join(" ")))
}
