//! Helpers for the delivery and daemon tests: what the agent says it spooled, the spool's files,
//! a firewall cut of the collector port, a tiny tmpfs, and a scriptable fake collector.

use crate::{COLLECTOR_IP, LabError, Netns, Result};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `(event_id, incident_id)` of every "spooled event" line in an agent log: what the spool
/// acknowledged to the producer (the line is written after the durable push returned).
pub fn spooled_events(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|l| {
            let rest = l.split("spooled event ").nth(1)?;
            let event = rest.split_whitespace().next()?.to_string();
            let incident = rest
                .split(" of incident ")
                .nth(1)?
                .split(|c: char| c == ':' || c.is_whitespace())
                .next()?
                .to_string();
            Some((event, incident))
        })
        .collect()
}

/// Spooled (undelivered) event files in `spool_dir`.
pub fn spool_files(spool_dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(spool_dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "evt"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits (up to `timeout`) until `spool_dir` holds no event file: the agent delivered it all.
pub fn wait_spool_drained(spool_dir: &Path, timeout: Duration) -> Result<()> {
    crate::wait_for("spool drained", timeout, Duration::from_millis(200), || {
        let n = spool_files(spool_dir).len();
        if n == 0 {
            Ok(())
        } else {
            Err(format!("{n} left"))
        }
    })
}

/// Drops TCP to `port` arriving in `ns` (the collector unreachable, everything else fine)
/// until dropped.
#[derive(Debug)]
pub struct PortCut {
    ns: Netns,
    table: String,
}

impl PortCut {
    pub fn new(ns: &Netns, port: u16) -> Result<Self> {
        let table = format!("nmcut{port}");
        ns.nft(&format!(
            "table inet {table} {{\n chain input {{\n  type filter hook input priority -50;\n  \
             iifname != \"lo\" tcp dport {port} drop\n }}\n}}\n"
        ))?;
        Ok(Self {
            ns: ns.clone(),
            table,
        })
    }

    pub fn heal(self) {}
}

impl Drop for PortCut {
    fn drop(&mut self) {
        let _ = self.ns.nft(&format!("delete table inet {}", self.table));
    }
}

/// A tmpfs mounted at `path` (created), unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: &Path, size: &str) -> Result<Self> {
        std::fs::create_dir_all(path)
            .map_err(|e| LabError::Setup(format!("{}: {e}", path.display())))?;
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .map_err(|e| LabError::Setup(format!("mount: {e}")))?;
        if !st.success() {
            return Err(LabError::Setup(format!(
                "mount tmpfs on {}",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
        })
    }

    /// Fills the file system with `name` until ENOSPC; returns its path.
    pub fn fill(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(name);
        let mut f = std::fs::File::create(&p)
            .map_err(|e| LabError::Setup(format!("{}: {e}", p.display())))?;
        let block = [0u8; 1024];
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let _ = f.sync_all();
        Ok(p)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
    }
}

/// One request the fake collector received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    /// Request line + headers + body, as on the wire.
    pub wire_bytes: usize,
}

/// What the fake collector answers: status, extra headers, body.
pub type Answer = (u16, Vec<(String, String)>, String);

/// A fake collector on `COLLECTOR_IP:port` in `ns`: records every request and answers with
/// `respond(path, index of this request for that path)`.
#[derive(Debug, Clone)]
pub struct FakeCollector {
    pub received: Arc<Mutex<Vec<Received>>>,
}

/// Reads one HTTP/1.1 request: its path, its headers (names lower-cased) and its size on the
/// wire. `None` at the end of the connection, on a read error, or past 1 MiB of head.
pub(crate) fn read_request(s: &mut TcpStream) -> Option<(String, BTreeMap<String, String>, usize)> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Some((path, headers, buf.len()))
}

/// Writes a JSON reply with `status`, the `extra` headers and `body`.
pub(crate) fn write_answer(
    s: &mut TcpStream,
    status: u16,
    extra: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut resp = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in extra {
        resp.push_str(&format!("{k}: {v}\r\n"));
    }
    resp.push_str("\r\n");
    resp.push_str(body);
    s.write_all(resp.as_bytes())
}

impl FakeCollector {
    pub fn start(
        ns: &Netns,
        port: u16,
        respond: impl Fn(&str, usize) -> Answer + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = ns
            .run(move || TcpListener::bind((COLLECTOR_IP, port)))?
            .map_err(|e| LabError::Setup(format!("fake collector bind: {e}")))?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let rec = received.clone();
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut s) = conn else { continue };
                let rec = rec.clone();
                let respond = respond.clone();
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    while let Some((path, headers, wire_bytes)) = read_request(&mut s) {
                        let index = {
                            let mut r = rec.lock().unwrap_or_else(|p| p.into_inner());
                            let index = r.iter().filter(|x: &&Received| x.path == path).count();
                            r.push(Received {
                                at: Instant::now(),
                                path: path.clone(),
                                headers,
                                wire_bytes,
                            });
                            index
                        };
                        let (status, extra, body) = respond(&path, index);
                        if write_answer(&mut s, status, &extra, &body).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Self { received })
    }

    pub fn requests(&self, path: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }
}
