//! `renew_dhcp6`: asks the WAN's DHCPv6 client to renew its addresses and delegated prefix.
//!
//! With `healing.renew_dhcp6.command` set, that command is run (argv, no shell), e.g.
//! `["/sbin/dhcpcd", "-6", "-n", "wan"]`. Otherwise the client gets SIGUSR1, which dhcpcd reads
//! as "renew" (it also solicits a router again); found by `healing.renew_dhcp6.pidfile`, else by
//! process name in the agent's network namespace (dhcpcd with privilege separation runs several
//! processes of one name: set the pidfile).

use super::Settings;
use super::{ActionError, Limit};
use crate::site::Problem;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Not disruptive: a renew keeps addresses and prefix while their lifetimes last.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

/// `[healing.renew_dhcp6]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenewDhcp6Config {
    /// The DHCPv6 client's pidfile (dhcpcd: `/run/dhcpcd/<wan>.pid`, or `<wan>-6.pid`).
    pub pidfile: Option<PathBuf>,
    /// Its process name, looked up when no pidfile is set.
    pub process: String,
    /// Run this instead of signalling the client (argv, no shell). Empty: signal.
    pub command: Vec<String>,
    pub timeout_secs: u64,
}

impl Default for RenewDhcp6Config {
    fn default() -> Self {
        Self {
            pidfile: None,
            process: "dhcpcd".into(),
            command: Vec::new(),
            timeout_secs: 30,
        }
    }
}

impl RenewDhcp6Config {
    /// Problems of `[healing.renew_dhcp6]`.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        super::renew_dhcp::client_problems(
            "renew_dhcp6",
            &self.command,
            &self.process,
            self.timeout_secs,
            out,
        );
        if self.pidfile.as_ref().is_some_and(|p| !p.is_absolute()) {
            out.push(Problem::new(
                "healing.renew_dhcp6.pidfile",
                "must be an absolute path",
            ));
        }
    }
}

pub async fn run(s: &Settings) -> Result<String, ActionError> {
    let cfg = &s.renew_dhcp6;
    if !cfg.command.is_empty() {
        let out = super::run_command(&cfg.command, Duration::from_secs(cfg.timeout_secs)).await?;
        return Ok(format!("ran {}: {out}", cfg.command.join(" ")));
    }
    let (pid, how) = super::renew_dhcp::find_client(cfg.pidfile.as_deref(), &cfg.process)?;
    kill(Pid::from_raw(pid), Signal::SIGUSR1)
        .map_err(|e| ActionError::Failed(format!("signalling pid {pid}: {e}")))?;
    Ok(format!(
        "sent SIGUSR1 (renew) to DHCPv6 client pid {pid} ({how})"
    ))
}
