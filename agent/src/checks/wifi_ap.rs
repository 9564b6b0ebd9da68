//! `wifi_ap`: the access point, from hostapd's control interface (see [`crate::hostapd`]).
//!
//! One run asks hostapd `STATUS`, `GET_CONFIG` and the station list (`STA-FIRST`/`STA-NEXT`),
//! each with `request_timeout_ms`. Judged in this order, the first finding wins:
//!
//! - no control socket, or nobody behind it → `hostapd_down` (the Wi-Fi is off);
//! - the socket is there but hostapd does not answer → `hostapd_frozen` (a stopped or wedged
//!   daemon: its BSS no longer serves clients);
//! - `state` is not `ENABLED` (`DISABLED`, `UNINITIALIZED`, ...) → `ap_disabled`; a running DFS
//!   channel availability check (`state=DFS`) is normal and only `Degraded`;
//! - the BSS is open while the provisioned security is not → `security_open`, **critical**
//!   with evidence `security = "open"` (a subscriber's network exposed);
//! - another security mode or SSID than provisioned → `security_mismatch`, `ssid_mismatch`;
//!   the agent reports these and never guesses which one is right;
//! - another channel than provisioned → `channel_mismatch` (`Degraded`: DFS or the driver may
//!   move the AP legitimately, so nothing acts on it);
//! - the operating channel sensed busy `busy_share_max_pct` of the time or more (the radio's
//!   nl80211 channel survey, between two runs; see [`crate::nl80211`]) → `channel_busy`
//!   (`Degraded`; `chan_switch` moves the AP to one of `chan_switch_channels`, which are
//!   therefore no `channel_mismatch` either);
//! - an authorized client below `sticky_signal_dbm` → `sticky_client` (`Degraded`; evidence
//!   `sticky_clients`, the MACs `steer_client` and `disassociate_client` address).
//!
//! The provisioned `ssid`, `security` and `channel` are optional; an empty value is not
//! compared. With `config_file` set, a run that finds the AP ok keeps a copy of that file in
//! `<state_dir>/wifi/hostapd.conf.provisioned` (the `reapply_wifi_config` action restores it),
//! but only when the file itself names the provisioned SSID, security and channel: a drifted
//! file is never taken for the provisioned one. The copy is the agent's own state; the CPE's
//! configuration is not touched. Client data (count, weakest signal, retries, rates) is evidence on every run. The
//! data comes from hostapd alone: its station list already carries the driver's signal, rates
//! and `tx_retry_failed`; only the channel survey needs nl80211.

use super::{Context, Observation, check_settings, common_problems};
use crate::hostapd::{
    self, CtrlClient, CtrlError, Provisioned, Station, Status, conf_is_provisioned,
    provisioned_copy_path, read_config_file,
};
use crate::nl80211::{self, ChannelSurvey};
use crate::site::{Problem, Site};
use netmedic_proto::{CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "hostapd_down",
    "hostapd_frozen",
    "ap_disabled",
    "ap_dfs_wait",
    "security_open",
    "security_mismatch",
    "ssid_mismatch",
    "channel_mismatch",
    "channel_busy",
    "sticky_client",
];

/// Security modes `security` may name (as [`hostapd::security_of`] reports them).
pub const SECURITY_MODES: &[&str] = &[
    "open",
    "owe",
    "wpa-psk",
    "wpa2-psk",
    "wpa-mixed-psk",
    "wpa3-sae",
    "wpa2-wpa3-psk",
    "wpa2-eap",
];

/// `[checks.wifi_ap]`. Off by default: a CPE without Wi-Fi has no hostapd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WifiApConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// hostapd's `ctrl_interface` directory.
    pub ctrl_dir: PathBuf,
    /// The AP interface (the socket's name in `ctrl_dir`).
    pub interface: String,
    /// Where the agent binds its own client socket (hostapd replies to it).
    pub client_socket_dir: PathBuf,
    pub request_timeout_ms: u64,
    /// Provisioned SSID; empty: not compared.
    pub ssid: String,
    /// Provisioned security mode (one of [`SECURITY_MODES`]); empty: not compared.
    pub security: String,
    /// Provisioned channel; 0: not compared.
    pub channel: u32,
    /// An authorized client below this signal is sticky.
    pub sticky_signal_dbm: i32,
    /// hostapd's config file, copied while it is the provisioned one; empty: no copy.
    pub config_file: PathBuf,
    /// The operating channel sensed busy this share of the time (nl80211 survey, between two
    /// runs) or more → `channel_busy`; 0: no survey.
    pub busy_share_max_pct: u32,
    /// Channels `chan_switch` may move the AP to (besides `channel`, none is a
    /// `channel_mismatch`); empty: the action is not applicable.
    pub chan_switch_channels: Vec<u32>,
    /// Beacons before the switch (`CHAN_SWITCH <cs_count>`): time for clients to follow.
    pub chan_switch_cs_count: u32,
}

impl Default for WifiApConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 10,
            fail_threshold: 2,
            ok_threshold: 1,
            ctrl_dir: PathBuf::from("/var/run/hostapd"),
            interface: "wlan0".into(),
            client_socket_dir: PathBuf::from("/tmp"),
            request_timeout_ms: 2000,
            ssid: String::new(),
            security: String::new(),
            channel: 0,
            sticky_signal_dbm: -80,
            config_file: PathBuf::new(),
            busy_share_max_pct: 0,
            chan_switch_channels: Vec::new(),
            chan_switch_cs_count: 5,
        }
    }
}

check_settings!(WifiApConfig);

impl WifiApConfig {
    /// The provisioned values to compare a config file with.
    pub fn provisioned(&self) -> Provisioned<'_> {
        Provisioned {
            ssid: &self.ssid,
            security: &self.security,
            channel: self.channel,
        }
    }

    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "wifi_ap",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        let mut bad = |f: &str, m: &str| out.push(Problem::new(format!("checks.wifi_ap.{f}"), m));
        if !self.ctrl_dir.is_absolute() {
            bad("ctrl_dir", "must be an absolute path");
        }
        if !self.client_socket_dir.is_absolute() {
            bad("client_socket_dir", "must be an absolute path");
        }
        if self.interface.is_empty()
            || self.interface.len() > 15
            || self.interface.contains('/')
            || self.interface.starts_with('.')
        {
            bad(
                "interface",
                "must be an interface name (1-15 characters, no /)",
            );
        }
        if self.request_timeout_ms == 0 || self.request_timeout_ms > 30_000 {
            bad("request_timeout_ms", "must be between 1 and 30000");
        }
        if self.ssid.len() > 32 {
            bad("ssid", "an SSID has at most 32 bytes");
        }
        if !self.security.is_empty() && !SECURITY_MODES.contains(&self.security.as_str()) {
            bad("security", "unknown security mode");
        }
        if self.channel > 233 {
            bad("channel", "must be a Wi-Fi channel number (0: not checked)");
        }
        if !self.config_file.as_os_str().is_empty() && !self.config_file.is_absolute() {
            bad("config_file", "must be an absolute path (or empty)");
        }
        if !(-120..=0).contains(&self.sticky_signal_dbm) {
            bad("sticky_signal_dbm", "must be between -120 and 0");
        }
        if self.busy_share_max_pct > 100 {
            bad("busy_share_max_pct", "must be between 0 (off) and 100");
        }
        if self.chan_switch_channels.len() > 64
            || self
                .chan_switch_channels
                .iter()
                .any(|c| !(1..=233).contains(c))
        {
            bad(
                "chan_switch_channels",
                "must be at most 64 Wi-Fi channel numbers (1-233)",
            );
        }
        if !(1..=50).contains(&self.chan_switch_cs_count) {
            bad("chan_switch_cs_count", "must be between 1 and 50 beacons");
        }
    }
}

/// What one run read from hostapd.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Probe {
    pub status: Status,
    /// `GET_CONFIG`, when hostapd answered it.
    pub config: Option<BTreeMap<String, String>>,
    pub stations: Vec<Station>,
    /// The operating channel's busy share (nl80211 survey), when asked for and reported.
    pub busy_pct: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct WifiApCheck {
    pub config: WifiApConfig,
    /// The operating channel's survey of the previous run (busy share between two runs).
    last_survey: Arc<Mutex<Option<ChannelSurvey>>>,
}

impl WifiApCheck {
    pub fn new(_site: &Site, config: &WifiApConfig) -> Self {
        Self {
            config: config.clone(),
            last_survey: Arc::default(),
        }
    }

    /// The busy share of the operating channel `freq_mhz` since the previous run.
    async fn busy_pct(&self, freq_mhz: u32) -> Option<u32> {
        let timeout = Duration::from_millis(self.config.request_timeout_ms);
        let now = match nl80211::survey(&self.config.interface, timeout).await {
            Ok(all) => all.into_iter().find(|c| c.freq_mhz == freq_mhz)?,
            Err(e) => {
                log::debug!("wifi_ap: no channel survey: {e}");
                return None;
            }
        };
        let mut last = self.last_survey.lock().ok()?;
        let pct = nl80211::busy_share_pct(last.as_ref(), &now);
        *last = Some(now);
        pct
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let mut probe = probe(&self.config).await;
        if self.config.busy_share_max_pct > 0
            && let Ok(p) = &mut probe
            && let Some(f) = p.status.freq_mhz
        {
            p.busy_pct = self.busy_pct(f).await;
        }
        let obs = judge(&self.config, probe);
        if obs.status == CheckStatus::Ok && !self.config.config_file.as_os_str().is_empty() {
            match keep_copy(&self.config, &ctx.site.state_dir) {
                Ok(true) => log::info!(
                    "wifi_ap: saved {} as the provisioned AP config",
                    self.config.config_file.display()
                ),
                Ok(false) => {}
                Err(e) => log::warn!("wifi_ap: provisioned copy not updated: {e}"),
            }
        }
        obs
    }
}

/// Copies `config_file` to the provisioned copy when it is the provisioned config and differs
/// from the copy; `Ok(true)` when it wrote.
fn keep_copy(cfg: &WifiApConfig, state_dir: &Path) -> Result<bool, String> {
    let live = read_config_file(&cfg.config_file)?;
    conf_is_provisioned(&cfg.provisioned(), &String::from_utf8_lossy(&live)).map_err(|e| {
        format!(
            "{} is not the provisioned config: {e}",
            cfg.config_file.display()
        )
    })?;
    let copy = provisioned_copy_path(state_dir);
    if std::fs::read(&copy).is_ok_and(|c| c == live) {
        return Ok(false);
    }
    if let Some(dir) = copy.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    crate::fsutil::write_durable(&copy, &live).map_err(|e| format!("{}: {e}", copy.display()))?;
    Ok(true)
}

/// Reads STATUS, GET_CONFIG and the stations. A failing STATUS is the verdict; the other two
/// are best effort (their absence is evidence, not a failure).
pub async fn probe(cfg: &WifiApConfig) -> Result<Probe, CtrlError> {
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    let client = CtrlClient::connect(&cfg.ctrl_dir.join(&cfg.interface), &cfg.client_socket_dir)?;
    let status = hostapd::parse_status(&client.request("STATUS", timeout).await?);
    let config = match client.request("GET_CONFIG", timeout).await {
        Ok(t) => Some(hostapd::parse_kv(&t)),
        Err(CtrlError::Refused { .. }) => None,
        Err(e) => return Err(e),
    };
    let stations = client.all_sta(timeout).await?;
    Ok(Probe {
        status,
        config,
        stations,
        busy_pct: None,
    })
}

fn socket_path(cfg: &WifiApConfig) -> String {
    cfg.ctrl_dir.join(&cfg.interface).display().to_string()
}

/// The verdict on one probe.
pub fn judge(cfg: &WifiApConfig, probe: Result<Probe, CtrlError>) -> Observation {
    let id = CheckId::WifiAp;
    let p = match probe {
        Ok(p) => p,
        Err(e @ CtrlError::Absent { .. }) => {
            return Observation::new(
                id,
                CheckStatus::Failed,
                "hostapd_down",
                "The Wi-Fi access point is off: hostapd is not running",
            )
            .value(e.to_string())
            .hint("Restart hostapd; if it does not stay up, check its log and the radio")
            .evidence("ctrl_socket", socket_path(cfg))
            .evidence("error", e);
        }
        Err(e @ CtrlError::Timeout { .. }) => {
            return Observation::new(
                id,
                CheckStatus::Failed,
                "hostapd_frozen",
                "The Wi-Fi access point is frozen: hostapd does not answer",
            )
            .value(e.to_string())
            .threshold(format!("answer within {} ms", cfg.request_timeout_ms))
            .hint("Restart hostapd (a stopped or wedged daemon serves no clients)")
            .evidence("ctrl_socket", socket_path(cfg))
            .evidence("error", e);
        }
        Err(e) => {
            return Observation::new(
                id,
                CheckStatus::Unknown,
                "ok",
                "Cannot ask hostapd about the access point",
            )
            .value(e.to_string())
            .evidence("error", e);
        }
    };
    let security = p.config.as_ref().map(hostapd::security_of);
    let ssid = p
        .status
        .ssid
        .clone()
        .or_else(|| p.config.as_ref().and_then(|c| c.get("ssid").cloned()));
    let authorized: Vec<&Station> = p.stations.iter().filter(|s| s.authorized()).collect();
    let weakest = authorized.iter().filter_map(|s| s.signal_dbm).min();
    let sticky: Vec<&&Station> = authorized
        .iter()
        .filter(|s| s.signal_dbm.is_some_and(|d| d < cfg.sticky_signal_dbm))
        .collect();
    let with_evidence = |o: Observation| {
        let mut o = o
            .evidence("state", &p.status.state)
            .evidence("ssid", ssid.as_deref().unwrap_or("?"))
            .evidence("security", security.as_deref().unwrap_or("?"))
            .evidence(
                "channel",
                p.status.channel.map_or("?".into(), |c| c.to_string()),
            )
            .evidence("clients", authorized.len())
            .evidence("stations", p.stations.len());
        if let Some(f) = p.status.freq_mhz {
            o = o.evidence("freq_mhz", f);
        }
        if let Some(b) = p.busy_pct {
            o = o.evidence("busy_pct", b);
        }
        if let Some(w) = weakest {
            o = o.evidence("weakest_signal_dbm", w);
        }
        let retries: u64 = authorized.iter().filter_map(|s| s.tx_retry_failed).sum();
        if authorized.iter().any(|s| s.tx_retry_failed.is_some()) {
            o = o.evidence("tx_retry_failed", retries);
        }
        let rates: Vec<String> = authorized
            .iter()
            .map(|s| {
                format!(
                    "{} {} dBm tx {} kbit/s",
                    s.mac,
                    s.signal_dbm.map_or("?".into(), |d| d.to_string()),
                    s.tx_rate_kbps.map_or("?".into(), |r| r.to_string())
                )
            })
            .take(8)
            .collect();
        if !rates.is_empty() {
            o = o.evidence("client_list", rates.join("; "));
        }
        o
    };
    if p.status.state == "DFS" {
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Degraded,
                "ap_dfs_wait",
                "The access point waits for a DFS channel check before it may transmit",
            )
            .value(format!(
                "channel availability check, {} s left",
                p.status
                    .cac_time_left_secs
                    .map_or("?".into(), |s| s.to_string())
            ))
            .hint("Wait: the radar check is required by regulation and ends by itself"),
        );
    }
    if p.status.state != "ENABLED" {
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Failed,
                "ap_disabled",
                "The access point is not enabled: no beacons, no clients",
            )
            .value(format!("state {}", p.status.state))
            .threshold("state ENABLED")
            .hint("Restart hostapd; check the radio (rfkill, driver) if it stays disabled"),
        );
    }
    if let Some(sec) = &security
        && !cfg.security.is_empty()
        && *sec != cfg.security
    {
        if sec == "open" {
            return with_evidence(
                Observation::new(
                    id,
                    CheckStatus::Failed,
                    "security_open",
                    "The Wi-Fi is open: anyone nearby can join the subscriber's network",
                )
                .severity(Severity::Critical)
                .value("security open")
                .threshold(format!("security {}", cfg.security))
                .hint("Restore the provisioned Wi-Fi configuration; find out who changed it"),
            )
            .evidence("provisioned_security", &cfg.security)
            .evidence("security_risk", "open_network");
        }
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Failed,
                "security_mismatch",
                "The Wi-Fi security mode differs from the provisioned one",
            )
            .value(format!("security {sec}"))
            .threshold(format!("security {}", cfg.security))
            .hint("Restore the provisioned Wi-Fi configuration"),
        )
        .evidence("provisioned_security", &cfg.security);
    }
    if !cfg.ssid.is_empty()
        && let Some(s) = &ssid
        && *s != cfg.ssid
    {
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Failed,
                "ssid_mismatch",
                "The Wi-Fi network name differs from the provisioned one: clients cannot find it",
            )
            .value(format!("ssid {s:?}"))
            .threshold(format!("ssid {:?}", cfg.ssid))
            .hint("Restore the provisioned Wi-Fi configuration"),
        )
        .evidence("provisioned_ssid", &cfg.ssid);
    }
    if cfg.channel != 0
        && let Some(c) = p.status.channel
        && c != cfg.channel
        && !cfg.chan_switch_channels.contains(&c)
    {
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Degraded,
                "channel_mismatch",
                "The access point runs on another channel than provisioned",
            )
            .severity(Severity::Minor)
            .value(format!("channel {c}"))
            .threshold(format!("channel {}", cfg.channel))
            .hint(
                "A radar detection (DFS) moves the AP for 30 minutes; otherwise check the config",
            ),
        )
        .evidence("provisioned_channel", cfg.channel);
    }
    if cfg.busy_share_max_pct > 0
        && let Some(b) = p.busy_pct
        && b >= cfg.busy_share_max_pct
    {
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Degraded,
                "channel_busy",
                "The Wi-Fi channel is crowded: the radio senses it busy most of the time",
            )
            .severity(Severity::Minor)
            .value(format!("busy {b} %"))
            .threshold(format!("busy < {} %", cfg.busy_share_max_pct))
            .hint("Neighbouring networks or interference: another channel may serve better"),
        );
    }
    if !sticky.is_empty() {
        let macs: Vec<&str> = sticky.iter().map(|s| s.mac.as_str()).take(8).collect();
        return with_evidence(
            Observation::new(
                id,
                CheckStatus::Degraded,
                "sticky_client",
                "A Wi-Fi client holds on to a weak signal",
            )
            .severity(Severity::Minor)
            .value(format!("{} dBm", weakest.unwrap_or_default()))
            .threshold(format!("signal >= {} dBm", cfg.sticky_signal_dbm))
            .hint("The device is far from the router: a repeater or mesh node would help"),
        )
        .evidence("sticky_clients", macs.join(","));
    }
    with_evidence(
        Observation::ok(id, "The Wi-Fi access point is up and serves its clients").value(format!(
            "{} on channel {}, {} client(s)",
            ssid.as_deref().unwrap_or("?"),
            p.status.channel.map_or("?".into(), |c| c.to_string()),
            authorized.len()
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hostapd::{parse_kv, parse_sta, parse_status};

    const STATUS: &str = include_str!("../../tests/fixtures/hostapd/status.txt");
    const GET_CONFIG: &str = include_str!("../../tests/fixtures/hostapd/get_config.txt");
    const GET_CONFIG_OPEN: &str = include_str!("../../tests/fixtures/hostapd/get_config_open.txt");
    const STA: &str = include_str!("../../tests/fixtures/hostapd/sta_first.txt");

    fn provisioned() -> WifiApConfig {
        WifiApConfig {
            enabled: true,
            ssid: "netmedic-lab".into(),
            security: "wpa2-psk".into(),
            channel: 6,
            ..WifiApConfig::default()
        }
    }

    fn lab_probe() -> Probe {
        Probe {
            status: parse_status(STATUS),
            config: Some(parse_kv(GET_CONFIG)),
            stations: parse_sta(STA).into_iter().collect(),
            busy_pct: None,
        }
    }

    #[test]
    fn busy_channel_and_the_switch_alternates() {
        let mut cfg = provisioned();
        let mut p = lab_probe();
        p.busy_pct = Some(12);
        // No threshold: the share is evidence only.
        let o = judge(&cfg, Ok(p.clone()));
        assert_eq!(
            (o.status, o.evidence["busy_pct"].as_str()),
            (CheckStatus::Ok, "12")
        );
        cfg.busy_share_max_pct = 10;
        let o = judge(&cfg, Ok(p.clone()));
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "channel_busy")
        );
        cfg.busy_share_max_pct = 13;
        assert_eq!(judge(&cfg, Ok(p.clone())).status, CheckStatus::Ok);
        // Channel 6 is provisioned; 11 is a mismatch unless chan_switch may move there.
        p.status.channel = Some(11);
        assert_eq!(judge(&cfg, Ok(p.clone())).cause, "channel_mismatch");
        cfg.chan_switch_channels = vec![1, 11];
        assert_eq!(judge(&cfg, Ok(p)).status, CheckStatus::Ok);
        let mut out = Vec::new();
        cfg.chan_switch_channels = vec![0];
        cfg.chan_switch_cs_count = 0;
        cfg.busy_share_max_pct = 101;
        cfg.problems(&mut out);
        assert_eq!(out.len(), 3, "{out:?}");
    }

    #[test]
    fn the_lab_ap_is_ok_with_client_evidence() {
        let o = judge(&provisioned(), Ok(lab_probe()));
        assert_eq!(o.status, CheckStatus::Ok, "{o:?}");
        assert_eq!(o.evidence["clients"], "1");
        assert_eq!(o.evidence["security"], "wpa2-psk");
        assert!(o.evidence.contains_key("weakest_signal_dbm"), "{o:?}");
    }

    #[test]
    fn down_and_frozen() {
        let cfg = provisioned();
        let down = judge(
            &cfg,
            Err(CtrlError::Absent {
                path: "/run/hostapd/wlan0".into(),
                reason: "No such file or directory".into(),
            }),
        );
        assert_eq!(
            (down.status, down.cause.as_str()),
            (CheckStatus::Failed, "hostapd_down")
        );
        let frozen = judge(
            &cfg,
            Err(CtrlError::Timeout {
                command: "STATUS".into(),
                timeout_ms: 2000,
            }),
        );
        assert_eq!(frozen.cause, "hostapd_frozen");
        assert_eq!(frozen.category, netmedic_proto::Category::WifiDegraded);
    }

    #[test]
    fn an_open_ap_is_a_critical_security_finding() {
        let mut p = lab_probe();
        p.config = Some(parse_kv(GET_CONFIG_OPEN));
        let o = judge(&provisioned(), Ok(p));
        assert_eq!(o.cause, "security_open");
        assert_eq!(o.severity, Severity::Critical);
        assert_eq!(o.evidence["security"], "open");
    }

    #[test]
    fn drift_is_reported_never_guessed() {
        let mut p = lab_probe();
        p.status.ssid = Some("evil-twin".into());
        assert_eq!(judge(&provisioned(), Ok(p.clone())).cause, "ssid_mismatch");
        // Nothing provisioned: nothing compared.
        assert_eq!(
            judge(&WifiApConfig::default(), Ok(p)).status,
            CheckStatus::Ok
        );
        let mut p = lab_probe();
        p.status.channel = Some(11);
        let o = judge(&provisioned(), Ok(p));
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "channel_mismatch")
        );
    }

    #[test]
    fn disabled_dfs_and_sticky() {
        let mut p = lab_probe();
        p.status.state = "DISABLED".into();
        assert_eq!(judge(&provisioned(), Ok(p)).cause, "ap_disabled");
        let mut p = lab_probe();
        p.status.state = "DFS".into();
        assert_eq!(judge(&provisioned(), Ok(p)).cause, "ap_dfs_wait");
        let mut p = lab_probe();
        p.stations[0].signal_dbm = Some(-88);
        let o = judge(&provisioned(), Ok(p));
        assert_eq!(o.cause, "sticky_client");
        assert_eq!(o.evidence["sticky_clients"], lab_probe().stations[0].mac);
    }

    #[test]
    fn only_a_provisioned_file_is_copied() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("hostapd.conf");
        let cfg = WifiApConfig {
            config_file: live.clone(),
            ..provisioned()
        };
        let good = "interface=wlan0\nssid=netmedic-lab\nchannel=6\nwpa=2\nwpa_key_mgmt=WPA-PSK\n";
        std::fs::write(&live, good).unwrap();
        assert_eq!(keep_copy(&cfg, dir.path()), Ok(true));
        assert_eq!(
            keep_copy(&cfg, dir.path()),
            Ok(false),
            "unchanged: no write"
        );
        // A drifted file (WPA gone) never replaces the copy.
        std::fs::write(&live, "interface=wlan0\nssid=netmedic-lab\nchannel=6\n").unwrap();
        let err = keep_copy(&cfg, dir.path()).unwrap_err();
        assert!(err.contains("security open"), "{err}");
        let copy = std::fs::read_to_string(provisioned_copy_path(dir.path())).unwrap();
        assert_eq!(copy, good);
        // Nothing provisioned: nothing is taken for the provisioned config.
        assert!(conf_is_provisioned(&WifiApConfig::default().provisioned(), good).is_err());
        assert!(
            conf_is_provisioned(
                &cfg.provisioned(),
                "ssid=other\nwpa=2\nwpa_key_mgmt=WPA-PSK\n"
            )
            .is_err()
        );
    }

    #[test]
    fn config_problems() {
        let mut out = Vec::new();
        WifiApConfig {
            interface: "../x".into(),
            security: "wep".into(),
            ctrl_dir: "run".into(),
            ..WifiApConfig::default()
        }
        .problems(&mut out);
        assert_eq!(out.len(), 3, "{out:?}");
    }
}
