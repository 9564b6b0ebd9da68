//! A control socket that answers like hostapd, for the footprint benchmark with the Wi-Fi checks
//! on: the build machine has no radio, and a real hostapd does not start without one. It binds
//! `<dir>/<iface>` (a UNIX datagram socket, hostapd's control interface) and answers the requests
//! the agent's `wifi_ap` and `wifi_events` checks send with the replies a real hostapd gave in
//! the router VM (the agent's fixtures: `STATUS`, `GET_CONFIG`, one station), `OK` to
//! `ATTACH`/`DETACH` and to the event monitor's probe (`LEVEL 3`), `PONG` to `PING`. It runs as a thread of the benchmark, so what it costs
//! is not counted in the agent's figures; what the agent spends on the requests, the replies'
//! parsing and the attached event monitor is.

use anyhow::{Context, Result};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

const STATUS: &str = include_str!("../../agent/tests/fixtures/hostapd/status.txt");
const GET_CONFIG: &str = include_str!("../../agent/tests/fixtures/hostapd/get_config.txt");
const STA_FIRST: &str = include_str!("../../agent/tests/fixtures/hostapd/sta_first.txt");

/// The stand-in; stopped and its socket removed on drop.
#[derive(Debug)]
pub struct HostapdSock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    requests: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// hostapd's answer to one request.
fn reply(cmd: &str) -> &'static str {
    match cmd.trim_end() {
        "STATUS" => STATUS,
        "GET_CONFIG" => GET_CONFIG,
        "STA-FIRST" => STA_FIRST,
        // One station: the next after it is none (hostapd answers an empty datagram).
        c if c.starts_with("STA-NEXT ") => "",
        "ATTACH" | "DETACH" | "LEVEL 3" => "OK\n",
        "PING" => "PONG\n",
        _ => "UNKNOWN COMMAND\n",
    }
}

impl HostapdSock {
    /// Binds `<dir>/<iface>` and starts answering.
    pub fn start(dir: &Path, iface: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(iface);
        let _ = std::fs::remove_file(&path);
        let sock =
            UnixDatagram::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        // Wakes the loop to see the stop flag; not a wait for a condition.
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .context("socket timeout")?;
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), requests.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Some(to) = from.as_pathname() else {
                    continue;
                };
                r.fetch_add(1, Ordering::Relaxed);
                let cmd = String::from_utf8_lossy(&buf[..n]);
                // A client that left meanwhile is no error of the stand-in.
                let _ = sock.send_to(reply(&cmd).as_bytes(), to);
            }
        });
        Ok(Self {
            path,
            stop,
            requests,
            thread: Some(thread),
        })
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl Drop for HostapdSock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_like_the_fixtures_and_cleans_up() {
        let dir = tempfile_dir();
        let hs = HostapdSock::start(&dir, "wlan0").unwrap();
        let me = UnixDatagram::bind(dir.join("client")).unwrap();
        me.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 4096];
        for (cmd, want) in [
            ("STATUS", "state=ENABLED"),
            ("PING", "PONG"),
            ("STA-NEXT x", ""),
        ] {
            me.send_to(cmd.as_bytes(), dir.join("wlan0")).unwrap();
            let n = me.recv(&mut buf).unwrap();
            assert!(
                String::from_utf8_lossy(&buf[..n]).starts_with(want),
                "{cmd}"
            );
        }
        assert_eq!(hs.requests(), 3);
        drop(hs);
        assert!(!dir.join("wlan0").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("nm-hapd-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
