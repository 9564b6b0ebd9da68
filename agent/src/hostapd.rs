//! A client of hostapd's control interface: the UNIX datagram protocol `hostapd_cli` speaks.
//!
//! hostapd listens on `<ctrl_interface>/<ifname>` (a `SOCK_DGRAM` UNIX socket). A client binds
//! its own socket path (replies are sent to it), sends one command per datagram (`STATUS`,
//! `GET_CONFIG`, `STA-FIRST`, `STA-NEXT <mac>`, ...) and reads one datagram back, at most
//! [`REPLY_MAX`] bytes (hostapd's own reply buffer). Unsolicited events (after `ATTACH`) start
//! with `<level>`; one that arrives while a reply is awaited is set aside, so an attached client
//! loses none ([`CtrlClient::request_keeping_events`]). Every request has a timeout: a
//! hostapd that is stopped (SIGSTOP) or wedged still accepts the datagram into its socket
//! buffer but never answers, and that is exactly how a frozen daemon is told from a dead one
//! (no socket, or `ECONNREFUSED`).
//!
//! Replies are text from a local daemon, still parsed defensively: bounded sizes, unknown
//! keys ignored, numbers that do not parse are absent rather than errors.

use crate::afd::{InotifyFd, owned_async_fd};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::net::UnixDatagram;

/// hostapd answers in one datagram of at most this size (its ctrl_iface reply buffer).
pub const REPLY_MAX: usize = 4096;

/// Most unsolicited events one request hands back (a flood before the reply is cut here).
pub const EVENTS_PER_REQUEST_MAX: usize = 64;

/// Most stations read by one [`CtrlClient::all_sta`] (a bound on the `STA-NEXT` paging).
pub const STA_MAX: usize = 256;

/// Why a request got no usable reply.
#[derive(Debug, thiserror::Error)]
pub enum CtrlError {
    /// No socket, or nobody behind it: hostapd is not running for this interface.
    #[error("hostapd control socket {path}: {reason}")]
    Absent { path: String, reason: String },
    /// The socket exists but hostapd did not answer in time (stopped, wedged, overloaded).
    #[error("hostapd did not answer {command} within {timeout_ms} ms")]
    Timeout { command: String, timeout_ms: u64 },
    /// hostapd answered `FAIL` or `UNKNOWN COMMAND`.
    #[error("hostapd refused {command}: {reply}")]
    Refused { command: String, reply: String },
    /// The client's own socket could not be set up, or another I/O error.
    #[error("hostapd control interface: {0}")]
    Io(String),
}

static CLIENT_SEQ: AtomicU32 = AtomicU32::new(0);

/// One client socket bound in `client_dir`, connected to hostapd's socket; unlinked on drop.
#[derive(Debug)]
pub struct CtrlClient {
    sock: UnixDatagram,
    local: PathBuf,
    /// hostapd's socket (what an `Absent` error names).
    peer: PathBuf,
}

impl CtrlClient {
    /// Binds a fresh client socket in `client_dir` and connects it to `ctrl_path`.
    pub fn connect(ctrl_path: &Path, client_dir: &Path) -> Result<Self, CtrlError> {
        let local = client_dir.join(format!(
            "netmedic-hapd-{}-{}",
            std::process::id(),
            CLIENT_SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of a previous run with the same pid (after a reboot) would block bind.
        let _ = std::fs::remove_file(&local);
        let sock = UnixDatagram::bind(&local)
            .map_err(|e| CtrlError::Io(format!("bind {}: {e}", local.display())))?;
        let client = Self {
            sock,
            local,
            peer: ctrl_path.to_path_buf(),
        };
        client.sock.connect(ctrl_path).map_err(|e| match e.kind() {
            ErrorKind::NotFound | ErrorKind::ConnectionRefused => CtrlError::Absent {
                path: ctrl_path.display().to_string(),
                reason: e.to_string(),
            },
            _ => CtrlError::Io(format!("connect {}: {e}", ctrl_path.display())),
        })?;
        Ok(client)
    }

    /// Sends `command` and returns hostapd's reply (`FAIL`/`UNKNOWN COMMAND` are errors).
    /// Unsolicited events that arrive before the reply are dropped: for clients that are not
    /// attached (see [`Self::request_keeping_events`] for the one that is).
    pub async fn request(&self, command: &str, timeout: Duration) -> Result<String, CtrlError> {
        self.request_keeping_events(command, timeout, &mut Vec::new())
            .await
    }

    /// [`Self::request`] for an attached client: the unsolicited events that arrive before the
    /// reply are appended to `events` (at most [`EVENTS_PER_REQUEST_MAX`] per request), not
    /// lost. An event queued just before a command is sent comes back here, not in
    /// [`Self::recv_event`].
    pub async fn request_keeping_events(
        &self,
        command: &str,
        timeout: Duration,
        events: &mut Vec<String>,
    ) -> Result<String, CtrlError> {
        let timeout_err = || CtrlError::Timeout {
            command: command.split(' ').next().unwrap_or(command).to_owned(),
            timeout_ms: timeout.as_millis() as u64,
        };
        let exchange = async {
            self.sock
                .send(command.as_bytes())
                .await
                .map_err(|e| match e.kind() {
                    ErrorKind::ConnectionRefused | ErrorKind::NotFound => CtrlError::Absent {
                        path: self.peer.display().to_string(),
                        reason: e.to_string(),
                    },
                    _ => CtrlError::Io(format!("send {command}: {e}")),
                })?;
            let mut buf = vec![0u8; REPLY_MAX];
            loop {
                let n = self.sock.recv(&mut buf).await.map_err(|e| match e.kind() {
                    ErrorKind::ConnectionRefused => CtrlError::Absent {
                        path: self.peer.display().to_string(),
                        reason: e.to_string(),
                    },
                    _ => CtrlError::Io(format!("recv {command}: {e}")),
                })?;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                // An unsolicited event ("<3>AP-STA-CONNECTED ...") is not the reply.
                if is_event(&text) {
                    if events.len() < EVENTS_PER_REQUEST_MAX {
                        events.push(text);
                    }
                    continue;
                }
                return Ok(text);
            }
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| timeout_err())??;
        let head = reply.trim_end();
        if head == "FAIL" || head.starts_with("UNKNOWN COMMAND") {
            return Err(CtrlError::Refused {
                command: command.to_owned(),
                reply: head.to_owned(),
            });
        }
        Ok(reply)
    }

    /// Waits up to `timeout` for an unsolicited event (after `ATTACH`); `Ok(None)` when none
    /// came. Stray replies are skipped.
    pub async fn recv_event(&self, timeout: Duration) -> Result<Option<String>, CtrlError> {
        let mut buf = vec![0u8; REPLY_MAX];
        let wait = async {
            loop {
                let n = self
                    .sock
                    .recv(&mut buf)
                    .await
                    .map_err(|e| CtrlError::Io(format!("recv: {e}")))?;
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if is_event(&text) {
                    return Ok::<String, CtrlError>(text);
                }
            }
        };
        match tokio::time::timeout(timeout, wait).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Every associated station, through `STA-FIRST` / `STA-NEXT` paging (at most
    /// [`STA_MAX`]; a MAC seen twice ends the walk, so a changing list cannot loop).
    pub async fn all_sta(&self, timeout: Duration) -> Result<Vec<Station>, CtrlError> {
        let mut out: Vec<Station> = Vec::new();
        let mut reply = self.request("STA-FIRST", timeout).await?;
        while let Some(sta) = parse_sta(&reply) {
            if out.iter().any(|s| s.mac == sta.mac) || out.len() >= STA_MAX {
                break;
            }
            let next = format!("STA-NEXT {}", sta.mac);
            out.push(sta);
            reply = match self.request(&next, timeout).await {
                Ok(r) => r,
                // The station left between the two requests: the walk ends here.
                Err(CtrlError::Refused { .. }) => break,
                Err(e) => return Err(e),
            };
        }
        Ok(out)
    }
}

impl Drop for CtrlClient {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.local);
    }
}

/// Tells when hostapd's control socket is created again (hostapd restarted), through inotify.
/// A connected client keeps talking to the old, dead socket until it sends (`ECONNREFUSED`);
/// this lets an attached monitor follow the new hostapd at once instead of at its next probe.
///
/// hostapd removes its `ctrl_interface` directory when it stops (if nothing else is in it) and
/// creates it again when it starts, so the directory's parent is watched too: when the
/// directory comes back, the watch on it is renewed.
pub struct SocketWatch {
    fd: AsyncFd<InotifyFd>,
    /// The `ctrl_interface` directory, its name in its parent, and the socket's name in it.
    dir: PathBuf,
    dir_name: OsString,
    name: OsString,
    parent_wd: i32,
    dir_wd: Option<i32>,
}

impl std::fmt::Debug for SocketWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketWatch")
            .field("dir", &self.dir)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

const CREATED: AddWatchFlags = AddWatchFlags::IN_CREATE.union(AddWatchFlags::IN_MOVED_TO);

impl SocketWatch {
    /// Watches for `ctrl_path` being created; `Err` if there is no inotify or the directory's
    /// parent does not exist.
    pub fn new(ctrl_path: &Path) -> std::io::Result<Self> {
        let invalid = || {
            std::io::Error::new(
                ErrorKind::InvalidInput,
                format!("{} is not a path two levels deep", ctrl_path.display()),
            )
        };
        let dir = ctrl_path.parent().ok_or_else(invalid)?;
        let name = ctrl_path.file_name().ok_or_else(invalid)?;
        let parent = dir.parent().ok_or_else(invalid)?;
        let dir_name = dir.file_name().ok_or_else(invalid)?;
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let parent_wd = inotify.add_watch(parent, CREATED)?.as_raw();
        // Absent now (hostapd not started yet): renewed when the parent sees it created.
        let dir_wd = inotify.add_watch(dir, CREATED).ok().map(|w| w.as_raw());
        Ok(Self {
            fd: owned_async_fd(InotifyFd(inotify))?,
            dir: dir.to_path_buf(),
            dir_name: dir_name.to_owned(),
            name: name.to_owned(),
            parent_wd,
            dir_wd,
        })
    }

    /// Whether `events` say the socket was created; renews the directory's watch when the
    /// directory itself was created again.
    fn scan(&mut self, events: &[InotifyEvent]) -> bool {
        let mut seen = false;
        for e in events {
            let wd = e.wd.as_raw();
            let named = |n: &OsString| e.name.as_deref() == Some(n.as_os_str());
            if e.mask.contains(AddWatchFlags::IN_IGNORED) && Some(wd) == self.dir_wd {
                self.dir_wd = None;
            } else if wd == self.parent_wd && named(&self.dir_name) {
                self.dir_wd = self
                    .fd
                    .get_ref()
                    .0
                    .add_watch(self.dir.as_path(), CREATED)
                    .ok()
                    .map(|w| w.as_raw());
                // The socket may be in it before the new watch was added.
                seen |= self.dir.join(&self.name).exists();
            } else if Some(wd) == self.dir_wd && named(&self.name) {
                seen = true;
            }
        }
        seen
    }

    /// Whether the socket was created since the last call, without waiting. Called before a
    /// connect: a creation after it (hostapd restarting under the new connection) stays
    /// pending for [`Self::created`].
    pub fn take_created(&mut self) -> bool {
        let mut seen = false;
        while let Ok(events) = self.fd.get_ref().0.read_events() {
            if events.is_empty() {
                break;
            }
            seen |= self.scan(&events);
        }
        seen
    }

    /// Waits until the socket is created (again). Cancel-safe: nothing is read between the
    /// last await and the return.
    pub async fn created(&mut self) -> std::io::Result<()> {
        loop {
            let events = {
                let mut guard = self.fd.readable().await?;
                match guard.get_inner().0.read_events() {
                    Ok(events) => events,
                    Err(nix::errno::Errno::EAGAIN) => {
                        guard.clear_ready();
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            if self.scan(&events) {
                return Ok(());
            }
        }
    }
}

/// Whether a datagram is an unsolicited event (`<N>TEXT`).
pub fn is_event(text: &str) -> bool {
    let Some(rest) = text.strip_prefix('<') else {
        return false;
    };
    rest.split_once('>')
        .is_some_and(|(lvl, _)| !lvl.is_empty() && lvl.bytes().all(|b| b.is_ascii_digit()))
}

/// `key=value` lines; later keys win, lines without `=` are skipped.
pub fn parse_kv(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// The parts of `STATUS` the checks use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Status {
    /// `ENABLED`, `DISABLED`, `COUNTRY_UPDATE`, `ACS`, `HT_SCAN`, `DFS`, `UNINITIALIZED`...
    pub state: String,
    pub channel: Option<u32>,
    pub freq_mhz: Option<u32>,
    /// The first BSS: interface, SSID, station count.
    pub bss: Option<String>,
    pub ssid: Option<String>,
    pub num_sta: Option<u32>,
    /// Set while a DFS channel availability check runs.
    pub cac_time_left_secs: Option<u32>,
}

pub fn parse_status(text: &str) -> Status {
    let kv = parse_kv(text);
    let num = |k: &str| kv.get(k).and_then(|v| v.parse().ok());
    Status {
        state: kv.get("state").cloned().unwrap_or_default(),
        channel: num("channel"),
        freq_mhz: num("freq"),
        bss: kv.get("bss[0]").cloned(),
        ssid: kv.get("ssid[0]").cloned(),
        num_sta: num("num_sta[0]"),
        cac_time_left_secs: num("cac_time_left_seconds").filter(|_| {
            kv.get("cac_time_left_seconds")
                .is_some_and(|v| v != "N/A" && v != "0")
        }),
    }
}

/// The security mode of a BSS, as `GET_CONFIG` shows it, in the words of the config.
pub fn security_of(get_config: &BTreeMap<String, String>) -> String {
    let wpa: u32 = get_config
        .get("wpa")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let key_mgmt = get_config.get("key_mgmt").map(String::as_str).unwrap_or("");
    if wpa == 0 || key_mgmt.is_empty() {
        return if key_mgmt.contains("OWE") {
            "owe".into()
        } else {
            "open".into()
        };
    }
    let proto = match wpa {
        1 => "wpa",
        2 => "wpa2",
        _ => "wpa-mixed",
    };
    let mut parts: Vec<&str> = Vec::new();
    for m in key_mgmt.split_whitespace() {
        let w = match m {
            "WPA-PSK" | "WPA-PSK-SHA256" | "FT-PSK" => "psk",
            "SAE" | "FT-SAE" | "SAE-EXT-KEY" => "sae",
            "WPA-EAP" | "WPA-EAP-SHA256" | "FT-EAP" | "WPA-EAP-SUITE-B-192" => "eap",
            "OWE" => "owe",
            _ => continue,
        };
        if !parts.contains(&w) {
            parts.push(w);
        }
    }
    match parts.as_slice() {
        ["sae"] => "wpa3-sae".into(),
        ["psk", "sae"] | ["sae", "psk"] => "wpa2-wpa3-psk".into(),
        [] => format!("{proto}-unknown"),
        p => format!("{proto}-{}", p.join("-")),
    }
}

/// A hostapd config file as `key=value` pairs (comments and blank lines skipped), with
/// `wpa_key_mgmt` also under `key_mgmt`, so that [`security_of`] reads it like `GET_CONFIG`.
pub fn parse_conf(text: &str) -> BTreeMap<String, String> {
    let mut kv: BTreeMap<String, String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    if let Some(m) = kv.get("wpa_key_mgmt").cloned() {
        kv.insert("key_mgmt".into(), m);
    }
    kv
}

/// The provisioned AP (`[checks.wifi_ap]` `ssid`, `security`, `channel`; empty / 0: any).
#[derive(Debug, Clone, Copy)]
pub struct Provisioned<'a> {
    pub ssid: &'a str,
    pub security: &'a str,
    pub channel: u32,
}

/// Most bytes of a hostapd config file the agent reads.
pub const CONFIG_FILE_MAX_BYTES: u64 = 64 * 1024;

/// Where the agent keeps the provisioned copy of hostapd's config file.
pub fn provisioned_copy_path(state_dir: &Path) -> PathBuf {
    state_dir.join("wifi").join("hostapd.conf.provisioned")
}

/// Reads a config file, refusing one over [`CONFIG_FILE_MAX_BYTES`].
pub fn read_config_file(path: &Path) -> Result<Vec<u8>, String> {
    let len = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if len > CONFIG_FILE_MAX_BYTES {
        return Err(format!(
            "{}: {len} bytes, more than {CONFIG_FILE_MAX_BYTES}",
            path.display()
        ));
    }
    std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Whether a hostapd config file names the provisioned SSID, security and channel (at least
/// one of them must be provisioned: with nothing to compare, no file is "the provisioned one").
pub fn conf_is_provisioned(p: &Provisioned<'_>, text: &str) -> Result<(), String> {
    if p.ssid.is_empty() && p.security.is_empty() {
        return Err("neither ssid nor security is provisioned".into());
    }
    let kv = parse_conf(text);
    let ssid = kv.get("ssid").map(String::as_str).unwrap_or("");
    if !p.ssid.is_empty() && ssid != p.ssid {
        return Err(format!("ssid {ssid:?}, provisioned {:?}", p.ssid));
    }
    let security = security_of(&kv);
    if !p.security.is_empty() && security != p.security {
        return Err(format!("security {security}, provisioned {}", p.security));
    }
    let channel: u32 = kv.get("channel").and_then(|c| c.parse().ok()).unwrap_or(0);
    if p.channel != 0 && channel != 0 && channel != p.channel {
        return Err(format!("channel {channel}, provisioned {}", p.channel));
    }
    Ok(())
}

/// One station of `STA-FIRST`/`STA-NEXT`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Station {
    pub mac: String,
    /// `[AUTH][ASSOC][AUTHORIZED]...`
    pub flags: String,
    pub signal_dbm: Option<i32>,
    pub tx_retry_failed: Option<u64>,
    pub tx_packets: Option<u64>,
    /// Rates in kbit/s (hostapd reports units of 100 kbit/s).
    pub tx_rate_kbps: Option<u64>,
    pub rx_rate_kbps: Option<u64>,
    pub inactive_msec: Option<u64>,
    pub connected_secs: Option<u64>,
}

impl Station {
    pub fn authorized(&self) -> bool {
        self.flags.contains("[AUTHORIZED]")
    }
}

/// Parses one station block (first line the MAC); `None` for an empty reply (end of list) or
/// a first line that is not a MAC address.
pub fn parse_sta(text: &str) -> Option<Station> {
    let mut lines = text.lines();
    let mac = lines.next()?.trim().to_ascii_lowercase();
    if !is_mac(&mac) {
        return None;
    }
    let kv = parse_kv(text);
    let num = |k: &str| -> Option<u64> { kv.get(k)?.parse().ok() };
    let rate = |k: &str| -> Option<u64> {
        kv.get(k)?
            .split_whitespace()
            .next()?
            .parse::<u64>()
            .ok()
            .map(|r| r * 100)
    };
    Some(Station {
        mac,
        flags: kv.get("flags").cloned().unwrap_or_default(),
        signal_dbm: kv
            .get("signal")
            .and_then(|v| v.parse().ok())
            .filter(|s: &i32| *s != 0),
        tx_retry_failed: num("tx_retry_failed"),
        tx_packets: num("tx_packets"),
        tx_rate_kbps: rate("tx_rate_info"),
        rx_rate_kbps: rate("rx_rate_info"),
        inactive_msec: num("inactive_msec"),
        connected_secs: num("connected_time"),
    })
}

/// `aa:bb:cc:dd:ee:ff`, lowercase or uppercase hex.
pub fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = include_str!("../tests/fixtures/hostapd/status.txt");
    const GET_CONFIG: &str = include_str!("../tests/fixtures/hostapd/get_config.txt");
    const GET_CONFIG_OPEN: &str = include_str!("../tests/fixtures/hostapd/get_config_open.txt");
    const STA: &str = include_str!("../tests/fixtures/hostapd/sta_first.txt");

    #[test]
    fn status_of_the_lab_ap() {
        let s = parse_status(STATUS);
        assert_eq!(s.state, "ENABLED");
        assert_eq!(s.channel, Some(6));
        assert_eq!(s.freq_mhz, Some(2437));
        assert_eq!(s.bss.as_deref(), Some("wlan0"));
        assert_eq!(s.ssid.as_deref(), Some("netmedic-lab"));
        assert_eq!(s.num_sta, Some(1));
        assert_eq!(s.cac_time_left_secs, None);
    }

    #[test]
    fn security_modes() {
        assert_eq!(security_of(&parse_kv(GET_CONFIG)), "wpa2-psk");
        assert_eq!(security_of(&parse_kv(GET_CONFIG_OPEN)), "open");
        assert_eq!(
            security_of(&parse_kv("wpa=2\nkey_mgmt=WPA-PSK SAE\n")),
            "wpa2-wpa3-psk"
        );
        assert_eq!(security_of(&parse_kv("wpa=2\nkey_mgmt=SAE\n")), "wpa3-sae");
        assert_eq!(
            security_of(&parse_kv("wpa=2\nkey_mgmt=WPA-EAP\n")),
            "wpa2-eap"
        );
    }

    #[test]
    fn station_block() {
        let s = parse_sta(STA).expect("a station");
        assert!(is_mac(&s.mac), "{}", s.mac);
        assert!(s.authorized(), "{}", s.flags);
        assert!(s.signal_dbm.is_some_and(|d| d < 0), "{:?}", s.signal_dbm);
        assert!(
            s.tx_rate_kbps.is_some_and(|r| r > 0),
            "{:?}",
            s.tx_rate_kbps
        );
        assert!(s.connected_secs.is_some());
    }

    #[test]
    fn hostile_replies() {
        assert_eq!(parse_sta(""), None);
        assert_eq!(parse_sta("FAIL\n"), None);
        assert_eq!(parse_sta("zz:zz:zz:zz:zz:zz\nflags=[AUTH]"), None);
        let s = parse_sta("02:00:00:00:01:00\nsignal=loud\ntx_rate_info=x\n").expect("sta");
        assert_eq!((s.signal_dbm, s.tx_rate_kbps), (None, None));
        let st = parse_status("garbage\n=\nstate\nchannel=-1\n");
        assert_eq!(st, Status::default());
        assert!(is_event("<3>AP-STA-CONNECTED 02:00:00:00:01:00"));
        assert!(!is_event("<html>"));
        assert!(!is_event("state=ENABLED"));
    }

    #[tokio::test]
    async fn absent_and_silent_daemons() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No socket at all: hostapd is not running.
        let err = CtrlClient::connect(&dir.path().join("wlan0"), dir.path()).unwrap_err();
        assert!(matches!(err, CtrlError::Absent { .. }), "{err}");
        // A socket nobody reads (a stopped hostapd): the request times out.
        let server_path = dir.path().join("wlan1");
        let server = UnixDatagram::bind(&server_path).expect("bind");
        let c = CtrlClient::connect(&server_path, dir.path()).expect("connect");
        let err = c
            .request("STATUS", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, CtrlError::Timeout { .. }), "{err}");
        // A socket whose owner closed it: refused, i.e. absent.
        drop(server);
        let err = c
            .request("STATUS", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CtrlError::Absent { path, .. } if path == &server_path.display().to_string()),
            "names hostapd's socket, not the client's: {err}"
        );
        let local = c.local.clone();
        drop(c);
        assert!(!local.exists(), "the client socket is removed");
    }

    #[tokio::test]
    async fn a_talking_daemon_with_events_and_paging() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server_path = dir.path().join("wlan0");
        let server = UnixDatagram::bind(&server_path).expect("bind");
        let c = CtrlClient::connect(&server_path, dir.path()).expect("connect");
        let peer = tokio::spawn(async move {
            let mut buf = [0u8; 256];
            let mut seen = Vec::new();
            for _ in 0..3 {
                let (n, from) = server.recv_from(&mut buf).await.expect("recv");
                let cmd = String::from_utf8_lossy(&buf[..n]).into_owned();
                let to = from.as_pathname().expect("bound client").to_path_buf();
                let reply = match cmd.as_str() {
                    "STA-FIRST" => {
                        server
                            .send_to(b"<3>AP-STA-CONNECTED 02:00:00:00:01:00", &to)
                            .await
                            .expect("event");
                        "02:00:00:00:01:00\nflags=[AUTH][ASSOC][AUTHORIZED]\nsignal=-40\n"
                    }
                    // The list changes under the walk: the same station again ends it.
                    "STA-NEXT 02:00:00:00:01:00" => {
                        "02:00:00:00:02:00\nflags=[AUTH][ASSOC]\nsignal=-80\n"
                    }
                    "STA-NEXT 02:00:00:00:02:00" => "02:00:00:00:01:00\nflags=[AUTH]\n",
                    _ => "UNKNOWN COMMAND\n",
                };
                server.send_to(reply.as_bytes(), &to).await.expect("send");
                seen.push(cmd);
            }
            seen
        });
        let stas = c.all_sta(Duration::from_secs(5)).await.expect("all_sta");
        assert_eq!(stas.len(), 2, "{stas:?}");
        assert_eq!(stas[1].signal_dbm, Some(-80));
        assert_eq!(peer.await.expect("peer").len(), 3);
    }

    #[tokio::test]
    async fn events_before_a_reply_are_kept_for_an_attached_client() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server_path = dir.path().join("wlan0");
        let server = UnixDatagram::bind(&server_path).expect("bind");
        let c = CtrlClient::connect(&server_path, dir.path()).expect("connect");
        let peer = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            for reply in ["OK\n", "FAIL\n", "OK\n"] {
                let (_, from) = server.recv_from(&mut buf).await.expect("recv");
                let to = from.as_pathname().expect("bound client").to_path_buf();
                // The event hostapd queued just before it read the command.
                server
                    .send_to(b"<3>DFS-RADAR-DETECTED freq=5260", &to)
                    .await
                    .expect("event");
                server.send_to(reply.as_bytes(), &to).await.expect("reply");
            }
        });
        let t = Duration::from_secs(5);
        let mut events = Vec::new();
        let reply = c.request_keeping_events("LEVEL 3", t, &mut events).await;
        assert_eq!(reply.expect("OK").trim(), "OK");
        assert_eq!(events, ["<3>DFS-RADAR-DETECTED freq=5260"]);
        // FAIL (not attached) is an error; the event before it is still handed back.
        let err = c
            .request_keeping_events("LEVEL 3", t, &mut events)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, CtrlError::Refused { reply, .. } if reply == "FAIL"),
            "{err}"
        );
        assert_eq!(events.len(), 2, "{events:?}");
        // A client that is not attached has no use for them.
        assert_eq!(c.request("STATUS", t).await.expect("OK").trim(), "OK");
        peer.await.expect("peer");
    }
}
