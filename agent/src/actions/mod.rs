//! Remediation actions. One file per action; the closed [`ActionId`] enum from the protocol names
//! them. An action changes the system and says what it changed (and, for a config change, how
//! to undo it); the healer decides when to run it, verifies it and records it.

pub mod bounce_iface;
pub mod chan_switch;
pub mod disassociate_client;
pub mod flush_conntrack;
pub mod reapply_lan_prefix;
pub mod reapply_wifi_config;
pub mod reboot;
pub mod renew_dhcp;
pub mod renew_dhcp6;
pub mod reset_dns;
pub mod restart_hostapd;
pub mod restart_service;
pub mod restore_route;
pub mod restore_route6;
pub mod set_mtu;
pub mod steer_client;

use crate::context::Context;
use netmedic_proto::{ActionId, CheckId};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What actions read besides the [`Context`]: their own tables (under `[healing]`) and the few
/// facts of check tables they act on, copied there by `config` — actions never name a check's
/// table or the assembled config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub renew_dhcp: renew_dhcp::RenewDhcpConfig,
    pub set_mtu: set_mtu::SetMtuConfig,
    pub bounce_iface: bounce_iface::BounceIfaceConfig,
    /// The allow-list of `restart_service`.
    pub restart_service: Vec<restart_service::RestartServiceEntry>,
    pub reboot: reboot::RebootConfig,
    pub renew_dhcp6: renew_dhcp6::RenewDhcp6Config,
    pub restart_hostapd: restart_hostapd::RestartHostapdConfig,
    pub reapply_wifi_config: reapply_wifi_config::ReapplyWifiConfigConfig,
    /// The resolver file `reset_dns` rewrites (`[checks.dns]`).
    pub dns: Resolvers,
    /// `[checks.mtu] expected_mtu`: what `set_mtu` restores.
    pub expected_mtu: u32,
    /// The access point the Wi-Fi actions act on (`[checks.wifi_ap]`).
    pub wifi: WifiAp,
    /// The LAN prefix `reapply_lan_prefix` puts back (`[checks.wan6]`).
    pub lan_prefix: LanPrefix,
    /// `[checks.conntrack] proc_dir`.
    pub conntrack_proc_dir: PathBuf,
}

/// The resolver configuration `reset_dns` restores.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolvers {
    pub resolv_conf: PathBuf,
    /// Empty: the WAN lease's resolvers.
    pub provisioned_resolvers: Vec<IpAddr>,
}

/// The access point: its control socket and its provisioned radio settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WifiAp {
    pub interface: String,
    pub ctrl_dir: PathBuf,
    pub client_socket_dir: PathBuf,
    pub request_timeout_ms: u64,
    pub config_file: PathBuf,
    pub ssid: String,
    pub security: String,
    pub channel: u32,
    /// `chan_switch`'s candidate channels, in order of preference.
    pub chan_switch_channels: Vec<u32>,
    /// Beacons announcing a channel switch before it happens.
    pub chan_switch_cs_count: u32,
}

/// Where the delegated prefix is and which /64 of it the LAN carries.
#[derive(Debug, Clone, PartialEq)]
pub struct LanPrefix {
    pub lan_interface: String,
    pub lease6_file: Option<PathBuf>,
    pub lan_subnet_id: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The action cannot run here (missing data or configuration); not retried.
    #[error("{0}")]
    NotApplicable(String),
    #[error("{0}")]
    Failed(String),
}

/// What the action is asked to fix: the incident's check, cause and latest evidence.
#[derive(Debug, Clone, Default)]
pub struct ActionInput {
    pub check: Option<CheckId>,
    pub cause: String,
    pub evidence: BTreeMap<String, String>,
}

/// How to undo a configuration change that did not help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// Put the saved original resolv.conf back, byte for byte.
    ResolvConf {
        target: std::path::PathBuf,
        saved: std::path::PathBuf,
    },
    /// Set the interface's MTU back.
    Mtu { ifname: String, mtu: u32 },
    /// Put the drifted hostapd config file back (and restart hostapd).
    WifiConfig {
        target: std::path::PathBuf,
        saved: std::path::PathBuf,
    },
    /// Switch the access point back to the channel it left.
    Channel { freq_mhz: u32 },
}

/// A carried-out action: one line for the trail, and its undo when it changed config.
#[derive(Debug, Clone)]
pub struct Applied {
    pub detail: String,
    pub undo: Option<Undo>,
}

impl Applied {
    pub fn new(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            undo: None,
        }
    }
}

/// How many times something may run within a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    /// Most runs within the window.
    pub max: u32,
    /// The sliding window.
    pub window_secs: u64,
}

/// Actions that interrupt the subscriber's service while they run: the busy guard, the
/// maintenance windows and the "prove it is local" precheck apply to them. Each action
/// decides in its own file; the match has no wildcard so a new action must decide too.
pub fn is_disruptive(action: ActionId) -> bool {
    match action {
        ActionId::RestoreRoute => restore_route::DISRUPTIVE,
        ActionId::RenewDhcp => renew_dhcp::DISRUPTIVE,
        ActionId::ResetDns => reset_dns::DISRUPTIVE,
        ActionId::SetMtu => set_mtu::DISRUPTIVE,
        ActionId::BounceIface => bounce_iface::DISRUPTIVE,
        ActionId::FlushConntrack => flush_conntrack::DISRUPTIVE,
        ActionId::RestartService => restart_service::DISRUPTIVE,
        ActionId::Reboot => reboot::DISRUPTIVE,
        ActionId::RenewDhcp6 => renew_dhcp6::DISRUPTIVE,
        ActionId::RestoreRoute6 => restore_route6::DISRUPTIVE,
        ActionId::ReapplyLanPrefix => reapply_lan_prefix::DISRUPTIVE,
        ActionId::RestartHostapd => restart_hostapd::DISRUPTIVE,
        ActionId::ReapplyWifiConfig => reapply_wifi_config::DISRUPTIVE,
        ActionId::SteerClient => steer_client::DISRUPTIVE,
        ActionId::DisassociateClient => disassociate_client::DISRUPTIVE,
        ActionId::ChanSwitch => chan_switch::DISRUPTIVE,
    }
}

/// The built-in budget of an action that `[healing.budgets]` does not list (exhaustive, as
/// [`is_disruptive`]).
pub fn default_budget(action: ActionId) -> Limit {
    match action {
        ActionId::RestoreRoute => restore_route::DEFAULT_BUDGET,
        ActionId::RenewDhcp => renew_dhcp::DEFAULT_BUDGET,
        ActionId::ResetDns => reset_dns::DEFAULT_BUDGET,
        ActionId::SetMtu => set_mtu::DEFAULT_BUDGET,
        ActionId::BounceIface => bounce_iface::DEFAULT_BUDGET,
        ActionId::FlushConntrack => flush_conntrack::DEFAULT_BUDGET,
        ActionId::RestartService => restart_service::DEFAULT_BUDGET,
        ActionId::Reboot => reboot::DEFAULT_BUDGET,
        ActionId::RenewDhcp6 => renew_dhcp6::DEFAULT_BUDGET,
        ActionId::RestoreRoute6 => restore_route6::DEFAULT_BUDGET,
        ActionId::ReapplyLanPrefix => reapply_lan_prefix::DEFAULT_BUDGET,
        ActionId::RestartHostapd => restart_hostapd::DEFAULT_BUDGET,
        ActionId::ReapplyWifiConfig => reapply_wifi_config::DEFAULT_BUDGET,
        ActionId::SteerClient => steer_client::DEFAULT_BUDGET,
        ActionId::DisassociateClient => disassociate_client::DEFAULT_BUDGET,
        ActionId::ChanSwitch => chan_switch::DEFAULT_BUDGET,
    }
}

/// Runs an action.
pub async fn run(
    action: ActionId,
    ctx: &Context,
    s: &Settings,
    input: &ActionInput,
) -> Result<Applied, ActionError> {
    match action {
        ActionId::RestoreRoute => restore_route::run(ctx).await.map(Applied::new),
        ActionId::RenewDhcp => renew_dhcp::run(ctx, s).await.map(Applied::new),
        ActionId::ResetDns => reset_dns::run(ctx, s),
        ActionId::SetMtu => set_mtu::run(ctx, s, input).await,
        ActionId::BounceIface => bounce_iface::run(ctx, s).await.map(Applied::new),
        ActionId::FlushConntrack => flush_conntrack::run(s).map(Applied::new),
        ActionId::RestartService => restart_service::run(s, input).await.map(Applied::new),
        ActionId::Reboot => reboot::run(s).await.map(Applied::new),
        ActionId::RenewDhcp6 => renew_dhcp6::run(s).await.map(Applied::new),
        ActionId::RestoreRoute6 => restore_route6::run(ctx, input).await.map(Applied::new),
        ActionId::ReapplyLanPrefix => reapply_lan_prefix::run(ctx, s).await.map(Applied::new),
        ActionId::RestartHostapd => restart_hostapd::run(s, input).await.map(Applied::new),
        ActionId::ReapplyWifiConfig => reapply_wifi_config::run(ctx, s).await,
        ActionId::SteerClient => steer_client::run(s, input).await.map(Applied::new),
        ActionId::DisassociateClient => disassociate_client::run(s, input).await.map(Applied::new),
        ActionId::ChanSwitch => chan_switch::run(s).await,
    }
}

/// Undoes a configuration change that did not pass verification (or could not finish it);
/// `Ok` says what was restored. The action that made the change owns its undo.
pub async fn rollback(undo: &Undo, ctx: &Context, s: &Settings) -> Result<String, ActionError> {
    match undo {
        Undo::ResolvConf { target, saved } => reset_dns::rollback(target, saved),
        Undo::Mtu { ifname, mtu } => set_mtu::rollback(ctx, ifname, *mtu).await,
        Undo::WifiConfig { target, saved } => reapply_wifi_config::rollback(s, target, saved).await,
        Undo::Channel { freq_mhz } => chan_switch::rollback(s, *freq_mhz).await,
    }
}

/// Keeps a configuration change that passed verification (drops what only its undo needed).
pub fn commit(undo: &Undo) {
    match undo {
        Undo::ResolvConf { saved, .. } => reset_dns::discard(saved),
        Undo::Mtu { .. } => set_mtu::commit(),
        Undo::WifiConfig { saved, .. } => reapply_wifi_config::commit(saved),
        Undo::Channel { .. } => {}
    }
}

/// Runs a configured command (argv, never a shell string) with a timeout; `Ok` carries its
/// exit status and the tail of its output.
pub async fn run_command(argv: &[String], timeout: Duration) -> Result<String, ActionError> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| ActionError::NotApplicable("no command configured".into()))?;
    let mut cmd = tokio::process::Command::new(prog);
    cmd.args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| ActionError::Failed(format!("{prog} did not finish within {timeout:?}")))?
        .map_err(|e| ActionError::Failed(format!("cannot run {prog}: {e}")))?;
    let mut text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    if text.is_empty() {
        text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    }
    let tail: String = text
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if out.status.success() {
        Ok(format!("{prog} exited 0"))
    } else {
        Err(ActionError::Failed(format!(
            "{prog}: {}: {tail}",
            out.status
        )))
    }
}
