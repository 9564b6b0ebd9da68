//! `wifi_events`: what hostapd reports as it happens, from its unsolicited control-interface
//! events (`ATTACH`; see [`crate::hostapd`]).
//!
//! A background task (started by the first run) stays attached to hostapd: it re-attaches
//! every [`REATTACH_SECS`] (`DETACH` + `ATTACH`, so a restarted hostapd is followed and no
//! event is delivered twice) and after any error, and keeps the events of the last
//! `window_secs` (at most [`EVENTS_MAX`]). Each run judges that window:
//!
//! - `AP-STA-POSSIBLE-PSK-MISMATCH` (a client's 4-way handshake failed on its first message:
//!   the wrong password) at least `psk_mismatch_count` times → `psk_mismatch` (`Degraded`,
//!   minor, evidence: the clients' MACs). Report only: the router cannot fix a phone's password,
//!   and nothing restarts the AP over it, so there is no loop.
//! - `DFS-RADAR-DETECTED` → `radar_detected` (`Degraded`, evidence: the radar's frequency,
//!   where the AP moved to from `DFS-NEW-CHANNEL`/`AP-CSA-FINISHED`, and whether the
//!   no-occupancy period ended, `DFS-NOP-FINISHED`). Report only: the channel move is the DFS
//!   logic's, and no action of the agent fights it.
//!
//! Without hostapd the check is `Unknown` (the `wifi_ap` check reports a dead AP).

use super::{Context, Observation, check_settings, common_problems};
use crate::hostapd::{self, CtrlClient};
use crate::site::{Problem, Site};
use netmedic_proto::{CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &["psk_mismatch", "radar_detected"];

/// Most events kept.
pub const EVENTS_MAX: usize = 256;

/// The monitor re-attaches this often (a restarted hostapd forgets its monitors).
pub const REATTACH_SECS: u64 = 15;

/// `[checks.wifi_events]`. Off by default: a CPE without Wi-Fi has no hostapd.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WifiEventsConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// hostapd's `ctrl_interface` directory.
    pub ctrl_dir: PathBuf,
    /// The AP interface (the socket's name in `ctrl_dir`).
    pub interface: String,
    /// Where the monitor binds its own socket.
    pub client_socket_dir: PathBuf,
    /// The events judged: those of the last `window_secs`.
    pub window_secs: u64,
    /// This many PSK mismatches within the window make a `psk_mismatch`.
    pub psk_mismatch_count: u32,
}

impl Default for WifiEventsConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 10,
            fail_threshold: 1,
            ok_threshold: 1,
            ctrl_dir: PathBuf::from("/var/run/hostapd"),
            interface: "wlan0".into(),
            client_socket_dir: PathBuf::from("/tmp"),
            window_secs: 300,
            psk_mismatch_count: 3,
        }
    }
}

check_settings!(WifiEventsConfig);

impl WifiEventsConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "wifi_events",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        let mut bad =
            |f: &str, m: &str| out.push(Problem::new(format!("checks.wifi_events.{f}"), m));
        if !self.ctrl_dir.is_absolute() {
            bad("ctrl_dir", "must be an absolute path");
        }
        if !self.client_socket_dir.is_absolute() {
            bad("client_socket_dir", "must be an absolute path");
        }
        if self.interface.is_empty() || self.interface.len() > 15 || self.interface.contains('/') {
            bad(
                "interface",
                "must be an interface name (1-15 characters, no /)",
            );
        }
        if self.window_secs == 0 || self.window_secs > 86_400 {
            bad("window_secs", "must be between 1 and 86400");
        }
        if self.psk_mismatch_count == 0 || self.psk_mismatch_count > 1000 {
            bad("psk_mismatch_count", "must be between 1 and 1000");
        }
    }
}

/// One event of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PskMismatch {
        mac: String,
    },
    Radar {
        freq_mhz: Option<u32>,
    },
    /// The AP moved (`DFS-NEW-CHANNEL`, `AP-CSA-FINISHED`).
    Moved {
        freq_mhz: Option<u32>,
    },
    NopFinished {
        freq_mhz: Option<u32>,
    },
}

/// Parses one datagram (`<3>AP-STA-POSSIBLE-PSK-MISMATCH 02:00:...`); `None` for events this
/// check does not judge.
pub fn parse_event(text: &str) -> Option<Event> {
    if !hostapd::is_event(text) {
        return None;
    }
    let body = &text[text.find('>')? + 1..];
    let mut words = body.split_whitespace();
    // hostapd prefixes events with the interface for a multi-BSS monitor ("IFNAME=wlan0 ").
    let mut name = words.next()?;
    if name.starts_with("IFNAME=") {
        name = words.next()?;
    }
    let rest: Vec<&str> = words.collect();
    let freq = || {
        rest.iter()
            .find_map(|w| w.strip_prefix("freq="))
            .and_then(|f| f.parse().ok())
    };
    match name {
        "AP-STA-POSSIBLE-PSK-MISMATCH" => {
            let mac = rest.first()?.to_ascii_lowercase();
            hostapd::is_mac(&mac).then_some(Event::PskMismatch { mac })
        }
        "DFS-RADAR-DETECTED" => Some(Event::Radar { freq_mhz: freq() }),
        "DFS-NEW-CHANNEL" | "AP-CSA-FINISHED" => Some(Event::Moved { freq_mhz: freq() }),
        "DFS-NOP-FINISHED" => Some(Event::NopFinished { freq_mhz: freq() }),
        _ => None,
    }
}

/// Events with the time they arrived, newest last, bounded.
#[derive(Debug, Default)]
pub struct EventLog {
    events: VecDeque<(Instant, Event)>,
    /// Whether the monitor is attached right now, and its last error.
    pub attached: bool,
    pub last_error: Option<String>,
}

impl EventLog {
    pub fn push(&mut self, at: Instant, e: Event) {
        if self.events.len() >= EVENTS_MAX {
            self.events.pop_front();
        }
        self.events.push_back((at, e));
    }

    /// The events no older than `window` at `now`.
    pub fn recent(&self, now: Instant, window: Duration) -> Vec<Event> {
        self.events
            .iter()
            .filter(|(t, _)| now.saturating_duration_since(*t) <= window)
            .map(|(_, e)| e.clone())
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct WifiEventsCheck {
    pub config: WifiEventsConfig,
    log: Arc<Mutex<EventLog>>,
    started: Arc<OnceLock<()>>,
}

impl WifiEventsCheck {
    pub fn new(_site: &Site, config: &WifiEventsConfig) -> Self {
        Self {
            config: config.clone(),
            log: Arc::default(),
            started: Arc::default(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        if self.started.set(()).is_ok() {
            tokio::spawn(monitor(self.config.clone(), Arc::downgrade(&self.log)));
            // Give the first attach a moment so that the first run is not blind.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (events, attached, err) = match self.log.lock() {
            Ok(l) => (
                l.recent(Instant::now(), Duration::from_secs(self.config.window_secs)),
                l.attached,
                l.last_error.clone(),
            ),
            Err(_) => (Vec::new(), false, Some("event log poisoned".into())),
        };
        judge(&self.config, &events, attached, err)
    }
}

/// The attached monitor: runs while the check exists (a config reload makes a new check; the
/// old monitor ends within [`REATTACH_SECS`] once nothing holds its log).
async fn monitor(cfg: WifiEventsConfig, shared: Weak<Mutex<EventLog>>) {
    let path = cfg.ctrl_dir.join(&cfg.interface);
    let timeout = Duration::from_secs(2);
    let set = |attached: bool, err: Option<String>| {
        if let Some(shared) = shared.upgrade()
            && let Ok(mut l) = shared.lock()
        {
            l.attached = attached;
            l.last_error = err;
        }
    };
    while shared.strong_count() > 0 {
        let client = match CtrlClient::connect(&path, &cfg.client_socket_dir) {
            Ok(c) => c,
            Err(e) => {
                set(false, Some(e.to_string()));
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
        };
        while shared.strong_count() > 0 {
            // DETACH first: hostapd does not deduplicate monitors.
            let _ = client.request("DETACH", timeout).await;
            if let Err(e) = client.request("ATTACH", timeout).await {
                set(false, Some(e.to_string()));
                break;
            }
            set(true, None);
            let until = Instant::now() + Duration::from_secs(REATTACH_SECS);
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                match client.recv_event(left).await {
                    Ok(Some(text)) => {
                        if let Some(e) = parse_event(&text) {
                            log::info!("wifi_events: {}", text.trim());
                            if let Some(shared) = shared.upgrade()
                                && let Ok(mut l) = shared.lock()
                            {
                                l.push(Instant::now(), e);
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        set(false, Some(e.to_string()));
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The verdict on the events of the window.
pub fn judge(
    cfg: &WifiEventsConfig,
    events: &[Event],
    attached: bool,
    error: Option<String>,
) -> Observation {
    let id = CheckId::WifiEvents;
    let mut macs: Vec<&str> = Vec::new();
    let mut mismatches = 0u32;
    let mut radar: Option<Option<u32>> = None;
    let mut moved: Option<Option<u32>> = None;
    let mut nop_finished = false;
    for e in events {
        match e {
            Event::PskMismatch { mac } => {
                mismatches += 1;
                if !macs.contains(&mac.as_str()) {
                    macs.push(mac);
                }
            }
            Event::Radar { freq_mhz } => {
                radar = Some(*freq_mhz);
                nop_finished = false;
            }
            Event::Moved { freq_mhz } => moved = Some(*freq_mhz),
            Event::NopFinished { .. } => nop_finished = true,
        }
    }
    let mhz = |f: Option<u32>| f.map_or("?".into(), |f| format!("{f} MHz"));
    let channel = |f: Option<u32>| {
        f.and_then(crate::nl80211::channel_of)
            .map_or("?".into(), |c| c.to_string())
    };
    if let Some(r) = radar {
        let mut o = Observation::new(
            id,
            CheckStatus::Degraded,
            "radar_detected",
            "A radar was detected on the Wi-Fi channel: the access point had to leave it",
        )
        .severity(Severity::Minor)
        .value(format!("radar on {}", mhz(r)))
        .threshold("no radar detection")
        .hint("Nothing to do: regulation (DFS) moves the AP and bars the channel for 30 minutes")
        .evidence("radar_freq", mhz(r))
        .evidence("radar_channel", channel(r))
        .evidence("moved_to", mhz(moved.flatten()))
        .evidence("moved_to_channel", channel(moved.flatten()))
        .evidence("no_occupancy_finished", nop_finished)
        .evidence("window_secs", cfg.window_secs);
        if mismatches > 0 {
            o = o.evidence("psk_mismatches", mismatches);
        }
        return o;
    }
    if mismatches >= cfg.psk_mismatch_count {
        return Observation::new(
            id,
            CheckStatus::Degraded,
            "psk_mismatch",
            "A device keeps failing to join the Wi-Fi: wrong password",
        )
        .severity(Severity::Minor)
        .value(format!(
            "{mismatches} failed handshake(s) in {} s",
            cfg.window_secs
        ))
        .threshold(format!(
            "fewer than {} in {} s",
            cfg.psk_mismatch_count, cfg.window_secs
        ))
        .hint("Tell the subscriber to re-enter the Wi-Fi password on the device (MAC in evidence)")
        .evidence(
            "clients",
            macs.iter().take(8).copied().collect::<Vec<_>>().join(","),
        )
        .evidence("psk_mismatches", mismatches);
    }
    if !attached {
        return Observation::new(
            id,
            CheckStatus::Unknown,
            "ok",
            "Not attached to hostapd's events",
        )
        .value(error.unwrap_or_else(|| "attaching".into()));
    }
    Observation::ok(id, "No Wi-Fi authentication failures or radar events")
        .value(format!(
            "{} event(s) in {} s",
            events.len(),
            cfg.window_secs
        ))
        .evidence("psk_mismatches", mismatches)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_as_hostapd_sends_them() {
        assert_eq!(
            parse_event("<3>AP-STA-POSSIBLE-PSK-MISMATCH 02:00:00:00:01:00"),
            Some(Event::PskMismatch {
                mac: "02:00:00:00:01:00".into()
            })
        );
        assert_eq!(
            parse_event(
                "<3>DFS-RADAR-DETECTED success=1 freq=5260 ht_enabled=1 chan_offset=0 chan_width=1 cf1=5260 cf2=0"
            ),
            Some(Event::Radar {
                freq_mhz: Some(5260)
            })
        );
        assert_eq!(
            parse_event("<3>IFNAME=wlan0 AP-CSA-FINISHED freq=5180 dfs=0"),
            Some(Event::Moved {
                freq_mhz: Some(5180)
            })
        );
        assert_eq!(parse_event("<3>AP-STA-CONNECTED 02:00:00:00:01:00"), None);
        assert_eq!(
            parse_event("<3>AP-STA-POSSIBLE-PSK-MISMATCH nonsense"),
            None
        );
        assert_eq!(parse_event("DFS-RADAR-DETECTED freq=5260"), None);
        assert_eq!(parse_event("<3>"), None);
    }

    #[test]
    fn judged_over_the_window() {
        let cfg = WifiEventsConfig::default();
        let mm = Event::PskMismatch {
            mac: "02:00:00:00:01:00".into(),
        };
        let o = judge(&cfg, &[mm.clone(), mm.clone()], true, None);
        assert_eq!(o.status, CheckStatus::Ok);
        let o = judge(&cfg, &[mm.clone(), mm.clone(), mm], true, None);
        assert_eq!(
            (o.status, o.cause.as_str()),
            (CheckStatus::Degraded, "psk_mismatch")
        );
        assert_eq!(o.evidence["clients"], "02:00:00:00:01:00");
        let o = judge(
            &cfg,
            &[
                Event::Radar {
                    freq_mhz: Some(5260),
                },
                Event::Moved {
                    freq_mhz: Some(5180),
                },
            ],
            true,
            None,
        );
        assert_eq!(o.cause, "radar_detected");
        assert_eq!(o.evidence["moved_to"], "5180 MHz");
        assert_eq!(
            (
                o.evidence["radar_channel"].as_str(),
                o.evidence["moved_to_channel"].as_str()
            ),
            ("52", "36")
        );
        assert_eq!(judge(&cfg, &[], false, None).status, CheckStatus::Unknown);
    }

    #[test]
    fn the_log_is_bounded_and_windowed() {
        let mut l = EventLog::default();
        let t0 = Instant::now();
        for _ in 0..EVENTS_MAX + 10 {
            l.push(t0, Event::NopFinished { freq_mhz: None });
        }
        assert_eq!(l.recent(t0, Duration::from_secs(1)).len(), EVENTS_MAX);
        let later = t0 + Duration::from_secs(10);
        assert!(l.recent(later, Duration::from_secs(5)).is_empty());
    }
}
