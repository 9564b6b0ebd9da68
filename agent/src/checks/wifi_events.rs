//! `wifi_events`: what hostapd reports as it happens, from its unsolicited control-interface
//! events (`ATTACH`; see [`crate::hostapd`]).
//!
//! A background task (started by the first run) stays attached to hostapd and keeps the events
//! of the last `window_secs` (at most [`EVENTS_MAX`]). It `ATTACH`es once per connection and
//! never detaches while it runs: a `DETACH` + `ATTACH` cycle is a gap in which an event is
//! lost, and a radar event is never repeated. Every [`PROBE_SECS`] it asks `LEVEL 3` (the
//! level `ATTACH` set, so nothing changes), which hostapd answers `FAIL` for a client it does
//! not hold as a monitor:
//!
//! - `OK`: still attached;
//! - `FAIL`: hostapd dropped the monitor (it does after a send to it failed, e.g. a full socket
//!   queue while the agent was stalled) → `ATTACH` again;
//! - refused or no answer: hostapd restarted or is gone → a new socket, `ATTACH`.
//!
//! A restart is also seen at once: inotify on `ctrl_dir` reports hostapd's socket created again
//! ([`SocketWatch`]), and the monitor reconnects without waiting for the probe. Events that
//! arrive while a probe awaits its reply are kept, not skipped. Each run judges
//! the window:
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
use crate::hostapd::{self, CtrlClient, CtrlError, SocketWatch};
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

/// The monitor checks this often that hostapd still holds it (a restarted hostapd forgets
/// its monitors).
pub const PROBE_SECS: u64 = 15;

/// Without hostapd, the monitor tries to connect again this often (or as soon as the socket
/// appears).
pub const RETRY_SECS: u64 = 5;

/// How long the monitor waits for hostapd's answer to one of its requests.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// hostapd's `MSG_INFO`: the level `ATTACH` sets, and the one the probe sets again.
const MONITOR_LEVEL: &str = "LEVEL 3";

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
/// old monitor ends within [`PROBE_SECS`] once nothing holds its log).
async fn monitor(cfg: WifiEventsConfig, shared: Weak<Mutex<EventLog>>) {
    monitor_timed(
        cfg,
        shared,
        Duration::from_secs(PROBE_SECS),
        Duration::from_secs(RETRY_SECS),
    )
    .await;
}

/// [`monitor`] with its probe interval and its retry interval without hostapd as parameters
/// (the tests set them to tell the watch's work from the timers').
async fn monitor_timed(
    cfg: WifiEventsConfig,
    shared: Weak<Mutex<EventLog>>,
    probe_every: Duration,
    retry_after: Duration,
) {
    let path = cfg.ctrl_dir.join(&cfg.interface);
    let set = |attached: bool, err: Option<String>| {
        if let Some(shared) = shared.upgrade()
            && let Ok(mut l) = shared.lock()
        {
            l.attached = attached;
            l.last_error = err;
        }
    };
    // Set up before connecting, so a hostapd that restarts right after the connect is seen.
    let mut watch: Option<SocketWatch> = None;
    while shared.strong_count() > 0 {
        if watch.is_none() {
            watch = SocketWatch::new(&path)
                .inspect_err(|e| log::debug!("wifi_events: no watch on {} ({e})", path.display()))
                .ok();
        }
        // What was created before this connect is what it connects to: no news. A creation
        // from now on (hostapd restarting under this connection) stays pending for the watch.
        if let Some(w) = watch.as_mut() {
            w.take_created();
        }
        let client = match CtrlClient::connect(&path, &cfg.client_socket_dir) {
            Ok(c) => c,
            Err(e) => {
                set(false, Some(e.to_string()));
                // No hostapd: try again in 5 s, or as soon as its socket appears.
                let appeared = async {
                    match watch.as_mut() {
                        Some(w) => w.created().await.is_ok(),
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = tokio::time::sleep(retry_after) => {}
                    ok = appeared => {
                        if !ok {
                            watch = None;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                    }
                }
                continue;
            }
        };
        // A fresh socket: hostapd has never seen it, so one ATTACH makes one monitor.
        if let Err(e) = ask(&client, "ATTACH", &shared).await {
            set(false, Some(e.to_string()));
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        set(true, None);
        // Whether to pause before reconnecting (after a failure; not after a restart was seen).
        let mut pause = true;
        'attached: while shared.strong_count() > 0 {
            let until = Instant::now() + probe_every;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                let recreated = async {
                    match watch.as_mut() {
                        Some(w) => w.created().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = client.recv_event(left) => match r {
                        Ok(Some(text)) => record(&shared, &text),
                        Ok(None) => break,
                        Err(e) => {
                            set(false, Some(e.to_string()));
                            break 'attached;
                        }
                    },
                    r = recreated => {
                        if let Err(e) = r {
                            log::debug!("wifi_events: watch on {} failed ({e})", path.display());
                            watch = None;
                            continue;
                        }
                        // hostapd restarted: the old socket is dead, follow the new one now.
                        log::debug!("wifi_events: {} created again; reconnecting", path.display());
                        pause = false;
                        break 'attached;
                    }
                }
            }
            match ask(&client, MONITOR_LEVEL, &shared).await {
                // A hostapd without LEVEL (UNKNOWN COMMAND) cannot say more than that it runs.
                Ok(_) => {}
                Err(CtrlError::Refused { reply, .. }) if reply != "FAIL" => {}
                // hostapd answers, but does not hold this socket as a monitor any more.
                Err(CtrlError::Refused { .. }) => {
                    log::info!(
                        "wifi_events: hostapd dropped the event monitor on {}; attaching again",
                        path.display()
                    );
                    if let Err(e) = ask(&client, "ATTACH", &shared).await {
                        set(false, Some(e.to_string()));
                        break 'attached;
                    }
                }
                // Restarted (the socket refuses) or wedged: start over with a new socket.
                Err(e) => {
                    log::debug!("wifi_events: monitor probe failed ({e}); reconnecting");
                    set(false, Some(e.to_string()));
                    break 'attached;
                }
            }
        }
        if shared.strong_count() == 0 {
            // The check is gone: leave hostapd's monitor list tidy (best effort).
            let _ = client.request("DETACH", REQUEST_TIMEOUT).await;
            break;
        }
        if pause {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Sends `command` on the monitor's socket; the events that arrive before the answer are
/// recorded like any other.
async fn ask(
    client: &CtrlClient,
    command: &str,
    shared: &Weak<Mutex<EventLog>>,
) -> Result<String, CtrlError> {
    let mut events = Vec::new();
    let answer = client
        .request_keeping_events(command, REQUEST_TIMEOUT, &mut events)
        .await;
    for text in &events {
        record(shared, text);
    }
    answer
}

/// Logs and keeps one event datagram if this check judges it.
fn record(shared: &Weak<Mutex<EventLog>>, text: &str) {
    if let Some(e) = parse_event(text) {
        log::info!("wifi_events: {}", text.trim());
        if let Some(shared) = shared.upgrade()
            && let Ok(mut l) = shared.lock()
        {
            l.push(Instant::now(), e);
        }
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

    /// The next command a scripted hostapd receives, and who sent it (10-s deadline).
    async fn next_command(server: &tokio::net::UnixDatagram) -> (String, PathBuf) {
        let mut buf = [0u8; 128];
        let (n, from) = tokio::time::timeout(Duration::from_secs(10), server.recv_from(&mut buf))
            .await
            .expect("a command within 10 s")
            .expect("recv");
        let from = from.as_pathname().expect("a bound client").to_path_buf();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
    }

    /// The monitor against a scripted hostapd: one `ATTACH` per socket and no `DETACH` while
    /// it runs (a detach/attach cycle is a gap that loses events), the events that arrive
    /// around a probe kept, and `FAIL` to the probe (hostapd dropped the monitor) answered by
    /// attaching the same socket again.
    #[tokio::test]
    async fn the_monitor_leaves_no_gap_and_attaches_again_when_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = tokio::net::UnixDatagram::bind(dir.path().join("wlan0")).expect("bind");
        let cfg = WifiEventsConfig {
            ctrl_dir: dir.path().into(),
            client_socket_dir: dir.path().into(),
            ..WifiEventsConfig::default()
        };
        let log: Arc<Mutex<EventLog>> = Arc::default();
        let mon = tokio::spawn(monitor_timed(
            cfg,
            Arc::downgrade(&log),
            Duration::from_millis(50),
            Duration::from_millis(50),
        ));
        let send = async |text: &str, to: &PathBuf| {
            server.send_to(text.as_bytes(), to).await.expect("send");
        };
        let (cmd, client) = next_command(&server).await;
        assert_eq!(cmd, "ATTACH");
        send("OK\n", &client).await;
        send("<3>DFS-RADAR-DETECTED freq=5260", &client).await;
        let (cmd, from) = next_command(&server).await;
        assert_eq!((cmd.as_str(), &from), ("LEVEL 3", &client));
        // An event queued before the probe's answer, and the answer: not attached any more.
        send("<3>DFS-NEW-CHANNEL freq=5180 chan=36", &client).await;
        send("FAIL\n", &client).await;
        let (cmd, from) = next_command(&server).await;
        assert_eq!(
            (cmd.as_str(), &from),
            ("ATTACH", &client),
            "the same socket"
        );
        send("OK\n", &client).await;
        let (cmd, from) = next_command(&server).await;
        assert_eq!((cmd.as_str(), &from), ("LEVEL 3", &client));
        {
            let l = log.lock().expect("log");
            assert!(l.attached);
            assert_eq!(
                l.recent(Instant::now(), Duration::from_secs(60)),
                [
                    Event::Radar {
                        freq_mhz: Some(5260)
                    },
                    Event::Moved {
                        freq_mhz: Some(5180)
                    }
                ]
            );
        }
        send("OK\n", &client).await;
        // The check is gone: the monitor probes on until it notices, then detaches and ends.
        drop(log);
        loop {
            let (cmd, from) = next_command(&server).await;
            assert_eq!(from, client);
            if cmd == "DETACH" {
                break;
            }
            assert_eq!(cmd, "LEVEL 3");
            send("OK\n", &client).await;
        }
        send("OK\n", &client).await;
        tokio::time::timeout(Duration::from_secs(10), mon)
            .await
            .expect("the monitor ends")
            .expect("monitor task");
    }

    /// A starting and a restarted hostapd are followed at once through the inotify watch, not
    /// at the next retry or probe (an hour away here): a new socket, one `ATTACH`, and its
    /// events are kept. Restarted twice: the socket bound again in the same directory, then
    /// (as hostapd does when it stops) the directory removed and created again with the socket
    /// in it.
    #[tokio::test]
    async fn the_monitor_follows_a_restarted_hostapd_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ctrl = dir.path().join("hostapd");
        std::fs::create_dir(&ctrl).expect("ctrl dir");
        let path = ctrl.join("wlan0");
        let cfg = WifiEventsConfig {
            ctrl_dir: ctrl.clone(),
            client_socket_dir: dir.path().into(),
            ..WifiEventsConfig::default()
        };
        let log: Arc<Mutex<EventLog>> = Arc::default();
        let hour = Duration::from_secs(3600);
        let mon = tokio::spawn(monitor_timed(cfg, Arc::downgrade(&log), hour, hour));
        // No hostapd yet: the monitor's first connect fails, and the next one is an hour away
        // unless the watch sees the socket appear. (Wait until the first attempt failed.)
        wait_until(|| log.lock().expect("log").last_error.is_some()).await;
        let mut server = tokio::net::UnixDatagram::bind(&path).expect("bind");
        let (cmd, mut client) = next_command(&server).await;
        assert_eq!(cmd, "ATTACH");
        server.send_to(b"OK\n", &client).await.expect("send");
        for (restart, freq) in [("same directory", 5500), ("directory removed", 5600)] {
            drop(server);
            std::fs::remove_file(&path).expect("unlink");
            if restart == "directory removed" {
                std::fs::remove_dir(&ctrl).expect("rmdir");
                std::fs::create_dir(&ctrl).expect("mkdir");
            }
            server = tokio::net::UnixDatagram::bind(&path).expect("bind again");
            let (cmd, from) = next_command(&server).await;
            assert_eq!(cmd, "ATTACH", "{restart}: attached to the new hostapd");
            assert_ne!(from, client, "{restart}: through a new socket");
            client = from;
            server.send_to(b"OK\n", &client).await.expect("send");
            let event = format!("<3>DFS-RADAR-DETECTED freq={freq}");
            server
                .send_to(event.as_bytes(), &client)
                .await
                .expect("event");
            wait_until(|| {
                log.lock()
                    .expect("log")
                    .recent(Instant::now(), Duration::from_secs(60))
                    .contains(&Event::Radar {
                        freq_mhz: Some(freq),
                    })
            })
            .await;
        }
        drop(log);
        mon.abort();
    }

    /// Polls `cond` every 10 ms until it holds (10-s deadline).
    async fn wait_until(cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(Instant::now() < deadline, "condition not met within 10 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
