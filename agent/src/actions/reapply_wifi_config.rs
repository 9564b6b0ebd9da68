//! `reapply_wifi_config`: puts the provisioned access point config back when it drifted (an AP
//! that fell back to open, a wrong SSID or security mode) and restarts hostapd.
//!
//! The provisioned config is the copy the `wifi_ap` check keeps of `checks.wifi_ap.config_file`
//! while that file names the provisioned SSID, security and channel (see its module doc); the
//! copy is checked again here before use. When the live file differs from it, the live bytes
//! are saved durably to `<state_dir>/rollback/hostapd.conf.drifted`, the copy is written over
//! the live file (atomically, or in place on a mount point) and hostapd is restarted with
//! `[healing.reapply_wifi_config] command`; the undo writes the drifted bytes back and restarts
//! again, so a change that does not pass the healer's verification (the `wifi_ap` check
//! passing) is rolled back. When the live file already is the provisioned one (the drift was
//! made at runtime, e.g. through the control interface), only the restart runs.
//!
//! Not disruptive in the healer's sense: it runs only while the AP does not serve the
//! provisioned network (its clients, configured for the provisioned SSID and key, cannot use
//! it), so there is no working service to wait for.

use super::Settings;
use super::reset_dns::write_config_file;
use super::{ActionError, Applied, Limit, Undo, run_command};
use crate::context::Context;
use crate::hostapd::{Provisioned, conf_is_provisioned, provisioned_copy_path, read_config_file};
use crate::site::Problem;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Not disruptive: the provisioned Wi-Fi is already unusable (see the module doc).
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 3,
    window_secs: 3600,
};

/// `[healing.reapply_wifi_config]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReapplyWifiConfigConfig {
    /// Restarts hostapd so that it reads its config file (argv, no shell); empty: the action
    /// is not applicable.
    pub command: Vec<String>,
    pub timeout_secs: u64,
}

impl Default for ReapplyWifiConfigConfig {
    fn default() -> Self {
        Self {
            command: Vec::new(),
            timeout_secs: 30,
        }
    }
}

impl ReapplyWifiConfigConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if self.command.first().is_some_and(|p| !p.starts_with('/')) {
            out.push(Problem::new(
                "healing.reapply_wifi_config.command",
                "must start with an absolute program path (argv array, no shell)",
            ));
        }
        if self.timeout_secs == 0 || self.timeout_secs > 600 {
            out.push(Problem::new(
                "healing.reapply_wifi_config.timeout_secs",
                "must be between 1 and 600",
            ));
        }
    }
}

fn restart(s: &Settings) -> Result<String, ActionError> {
    let cfg = &s.reapply_wifi_config;
    if cfg.command.is_empty() {
        return Err(ActionError::NotApplicable(
            "healing.reapply_wifi_config.command is not configured".into(),
        ));
    }
    Ok(cfg.command.join(" "))
}

async fn run_restart(s: &Settings) -> Result<String, ActionError> {
    restart(s)?;
    let cfg = &s.reapply_wifi_config;
    run_command(&cfg.command, Duration::from_secs(cfg.timeout_secs)).await
}

pub async fn run(ctx: &Context, s: &Settings) -> Result<Applied, ActionError> {
    let wifi = &s.wifi;
    if wifi.config_file.as_os_str().is_empty() {
        return Err(ActionError::NotApplicable(
            "checks.wifi_ap.config_file is not configured".into(),
        ));
    }
    restart(s)?;
    let copy_path = provisioned_copy_path(&ctx.site.state_dir);
    let copy = read_config_file(&copy_path).map_err(|e| {
        ActionError::NotApplicable(format!("no provisioned AP config saved yet: {e}"))
    })?;
    let provisioned = Provisioned {
        ssid: &wifi.ssid,
        security: &wifi.security,
        channel: wifi.channel,
    };
    conf_is_provisioned(&provisioned, &String::from_utf8_lossy(&copy)).map_err(|e| {
        ActionError::Failed(format!(
            "the saved copy {} is not the provisioned config: {e}",
            copy_path.display()
        ))
    })?;
    let target = &wifi.config_file;
    let live = match std::fs::read(target) {
        Ok(b) => Some(b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(ActionError::Failed(format!(
                "reading {}: {e}",
                target.display()
            )));
        }
    };
    if live.as_deref() == Some(copy.as_slice()) {
        let out = run_restart(s).await?;
        return Ok(Applied::new(format!(
            "{} is the provisioned config; hostapd restarted to drop the runtime change ({out})",
            target.display()
        )));
    }
    let dir = ctx.site.state_dir.join("rollback");
    std::fs::create_dir_all(&dir)
        .map_err(|e| ActionError::Failed(format!("{}: {e}", dir.display())))?;
    let saved = dir.join("hostapd.conf.drifted");
    crate::fsutil::write_durable(&saved, live.as_deref().unwrap_or_default()).map_err(|e| {
        ActionError::Failed(format!(
            "saving the drifted config to {}: {e}",
            saved.display()
        ))
    })?;
    let how = write_config_file(target, &copy)
        .map_err(|e| ActionError::Failed(format!("writing {}: {e}", target.display())))?;
    match run_restart(s).await {
        Ok(out) => Ok(Applied {
            detail: format!(
                "{} restored from the provisioned copy (written {how}; drifted one saved to {}); \
                 hostapd restarted ({out})",
                target.display(),
                saved.display()
            ),
            undo: Some(Undo::WifiConfig {
                target: target.clone(),
                saved,
            }),
        }),
        Err(e) => {
            let back = rollback(s, target, &saved).await;
            Err(ActionError::Failed(format!(
                "restarting hostapd after restoring {}: {e}; rollback: {}",
                target.display(),
                match back {
                    Ok(s) => s,
                    Err(b) => b.to_string(),
                }
            )))
        }
    }
}

/// Writes the drifted bytes back and restarts hostapd again.
pub async fn rollback(s: &Settings, target: &Path, saved: &Path) -> Result<String, ActionError> {
    let drifted = std::fs::read(saved).map_err(|e| {
        ActionError::Failed(format!("reading the saved config {}: {e}", saved.display()))
    })?;
    write_config_file(target, &drifted)
        .map_err(|e| ActionError::Failed(format!("restoring {}: {e}", target.display())))?;
    let _ = std::fs::remove_file(saved);
    let out = run_restart(s).await?;
    Ok(format!(
        "{} put back as it was ({} bytes); hostapd restarted ({out})",
        target.display(),
        drifted.len()
    ))
}

/// The restored config passed verification: the drifted bytes are no longer needed.
pub fn commit(saved: &Path) {
    let _ = std::fs::remove_file(saved);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems() {
        let mut out = Vec::new();
        ReapplyWifiConfigConfig::default().problems(&mut out);
        assert!(out.is_empty(), "{out:?}");
        ReapplyWifiConfigConfig {
            command: vec!["restart".into()],
            timeout_secs: 601,
        }
        .problems(&mut out);
        assert_eq!(out.len(), 2, "{out:?}");
    }
}
