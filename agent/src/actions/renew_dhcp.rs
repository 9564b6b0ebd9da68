//! `renew_dhcp`: asks the WAN's DHCP client for a fresh lease.
//!
//! With `healing.renew_dhcp.command` set, that command is run (argv, no shell): e.g.
//! `["/sbin/ifup", "wan"]` on OpenWrt. Otherwise the client is signalled, the busybox udhcpc
//! way: found by `wan.dhcp_pidfile`, else by process name (`healing.renew_dhcp.process`) among
//! the processes in the agent's own network namespace. With an address on the WAN it gets
//! SIGUSR1 (renew). Without one a renew cannot work (udhcpc renews by unicast from the lost
//! address), so it gets SIGUSR2 (release: back to square one) and then SIGUSR1, which starts a
//! full DISCOVER.

use super::ActionError;
use super::Limit;
use super::Settings;
use crate::context::Context;
use crate::site::Problem;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;

/// Not disruptive: a renew keeps the address when the lease is still valid.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

/// `[healing.renew_dhcp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RenewDhcpConfig {
    /// The DHCP client's process name, looked up in the agent's network namespace when
    /// `wan.dhcp_pidfile` is not set.
    pub process: String,
    /// Run this instead of signalling the client (argv, no shell). Empty: signal.
    pub command: Vec<String>,
    pub timeout_secs: u64,
}

impl Default for RenewDhcpConfig {
    fn default() -> Self {
        Self {
            process: "udhcpc".into(),
            command: Vec::new(),
            timeout_secs: 30,
        }
    }
}

impl RenewDhcpConfig {
    /// Problems of `[healing.renew_dhcp]`.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        client_problems(
            "renew_dhcp",
            &self.command,
            &self.process,
            self.timeout_secs,
            out,
        );
    }
}

/// Problems of the fields `[healing.<table>]` of renew_dhcp and renew_dhcp6 share.
pub(super) fn client_problems(
    table: &str,
    command: &[String],
    process: &str,
    timeout_secs: u64,
    out: &mut Vec<Problem>,
) {
    let mut bad = |f: &str, m: &str| out.push(Problem::new(format!("healing.{table}.{f}"), m));
    if command.first().is_some_and(|p| p.is_empty()) {
        bad("command", "the program must not be empty");
    }
    if process.len() > 15 {
        bad("process", "a process name has at most 15 characters");
    }
    if timeout_secs == 0 || timeout_secs > 600 {
        bad("timeout_secs", "must be between 1 and 600");
    }
}

/// The DHCP client's pid: from the pidfile, else by name in our network namespace.
pub fn find_client(pidfile: Option<&Path>, process: &str) -> Result<(i32, String), ActionError> {
    if let Some(p) = pidfile {
        let text = std::fs::read_to_string(p)
            .map_err(|e| ActionError::Failed(format!("{}: {e}", p.display())))?;
        let pid: i32 = text.trim().parse().map_err(|_| {
            ActionError::Failed(format!("{}: not a pid: {:?}", p.display(), text.trim()))
        })?;
        if pid <= 1 || !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(ActionError::Failed(format!(
                "{} names pid {pid}, which is not running",
                p.display()
            )));
        }
        return Ok((pid, format!("pidfile {}", p.display())));
    }
    if process.is_empty() {
        return Err(ActionError::NotApplicable(
            "no DHCP client configured: set wan.dhcp_pidfile, healing.renew_dhcp.process or .command".into(),
        ));
    }
    let own_ns = std::fs::read_link("/proc/self/ns/net").ok();
    let want: String = process.chars().take(15).collect();
    let dir = std::fs::read_dir("/proc").map_err(|e| ActionError::Failed(format!("/proc: {e}")))?;
    let mut found = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end() != want {
            continue;
        }
        if own_ns.is_some() && std::fs::read_link(format!("/proc/{pid}/ns/net")).ok() != own_ns {
            continue;
        }
        found.push(pid);
    }
    match found.as_slice() {
        [pid] => Ok((*pid, format!("process {process} in this network namespace"))),
        [] => Err(ActionError::Failed(format!(
            "no {process} process runs in this network namespace"
        ))),
        many => Err(ActionError::Failed(format!(
            "{} {process} processes in this network namespace ({many:?}): refusing to guess",
            many.len()
        ))),
    }
}

pub async fn run(ctx: &Context, s: &Settings) -> Result<String, ActionError> {
    let cfg = &s.renew_dhcp;
    if !cfg.command.is_empty() {
        let out = super::run_command(&cfg.command, Duration::from_secs(cfg.timeout_secs)).await?;
        return Ok(format!("ran {}: {out}", cfg.command.join(" ")));
    }
    let (pid, how) = find_client(ctx.site.wan.dhcp_pidfile.as_deref(), &cfg.process)?;
    let ifname = &ctx.site.wan.interface;
    let has_v4 = match ctx.netlink.link_index(ifname).await {
        Ok(Some(i)) => ctx
            .netlink
            .addresses(i)
            .await
            .map(|a| a.iter().any(|a| a.addr.is_ipv4()))
            .unwrap_or(false),
        _ => false,
    };
    let target = Pid::from_raw(pid);
    let send = |sig: Signal| {
        kill(target, sig).map_err(|e| ActionError::Failed(format!("signalling pid {pid}: {e}")))
    };
    if has_v4 {
        send(Signal::SIGUSR1)?;
        Ok(format!(
            "sent SIGUSR1 (renew) to DHCP client pid {pid} ({how})"
        ))
    } else {
        send(Signal::SIGUSR2)?;
        // Let the client handle the release before the renew, so the two are not merged.
        tokio::time::sleep(Duration::from_millis(300)).await;
        send(Signal::SIGUSR1)?;
        Ok(format!(
            "{ifname} has no IPv4 address: sent SIGUSR2 (release) then SIGUSR1 (new DISCOVER) to DHCP client pid {pid} ({how})"
        ))
    }
}
