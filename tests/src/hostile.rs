//! A hostile collector for the agent's hardening tests: answers each request with a scripted
//! [`Reply`] — ordinary JSON, or a body that never ends — and records when each request came,
//! plus the agent's memory and log as seen from outside.

use crate::{COLLECTOR_IP, LabError, Netns, Result};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the hostile collector answers to one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, JSON body.
    Json(u16, Vec<(String, String)>, String),
    /// `200` with a chunked body that never ends (until the agent hangs up, or 60 s).
    Endless,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Self {
        Reply::Json(200, Vec::new(), body.into())
    }
}

/// The hostile collector on `COLLECTOR_IP:port` in a namespace; stops serving when dropped.
#[derive(Debug)]
pub struct HostileCollector {
    received: Arc<Mutex<Vec<(Instant, String)>>>,
    /// Bytes of endless bodies written so far.
    pub streamed_bytes: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

fn read_request(s: &mut TcpStream) -> Option<String> {
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
    let path = head.split_whitespace().nth(1)?.to_string();
    let len: usize = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut tmp).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    Some(path)
}

fn endless(s: &mut TcpStream, streamed: &AtomicU64, stop: &AtomicBool) {
    let head =
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
    if s.write_all(head.as_bytes()).is_err() {
        return;
    }
    // A JSON string that never closes: a client that buffers the body grows without end.
    let mut chunk = format!("{:x}\r\n{{\"advisories\":\"", 15).into_bytes();
    chunk.extend_from_slice(b"\r\n");
    let _ = s.write_all(&chunk);
    let block = vec![b'a'; 64 * 1024];
    let mut frame = format!("{:x}\r\n", block.len()).into_bytes();
    frame.extend_from_slice(&block);
    frame.extend_from_slice(b"\r\n");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        if s.write_all(&frame).is_err() {
            return;
        }
        streamed.fetch_add(block.len() as u64, Ordering::Relaxed);
    }
}

impl HostileCollector {
    pub fn start(
        ns: &Netns,
        port: u16,
        respond: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
    ) -> Result<Self> {
        let listener = ns
            .run(move || TcpListener::bind((COLLECTOR_IP, port)))?
            .map_err(|e| LabError::Setup(format!("hostile collector bind: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::Setup(format!("hostile collector: {e}")))?;
        let received = Arc::new(Mutex::new(Vec::new()));
        let streamed_bytes = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, streamed, stopped) = (received.clone(), streamed_bytes.clone(), stop.clone());
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let mut s = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let _ = s.set_nonblocking(false);
                let (rec, respond) = (rec.clone(), respond.clone());
                let (streamed, stopped) = (streamed.clone(), stopped.clone());
                std::thread::spawn(move || {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
                    while let Some(path) = read_request(&mut s) {
                        let index = {
                            let mut r = rec.lock().unwrap_or_else(|p| p.into_inner());
                            let index = r.iter().filter(|(_, p)| *p == path).count();
                            r.push((Instant::now(), path.clone()));
                            index
                        };
                        match respond(&path, index) {
                            Reply::Endless => {
                                endless(&mut s, &streamed, &stopped);
                                return;
                            }
                            Reply::Json(status, extra, body) => {
                                let mut resp = format!(
                                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                                     content-length: {}\r\n",
                                    body.len()
                                );
                                for (k, v) in extra {
                                    resp.push_str(&format!("{k}: {v}\r\n"));
                                }
                                resp.push_str("\r\n");
                                resp.push_str(&body);
                                if s.write_all(resp.as_bytes()).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Ok(Self {
            received,
            streamed_bytes,
            stop,
        })
    }

    /// When each request for `path` arrived, in order.
    pub fn times(&self, path: &str) -> Vec<Instant> {
        self.received
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|(_, p)| p == path)
            .map(|(t, _)| *t)
            .collect()
    }

    pub fn count(&self, path: &str) -> usize {
        self.times(path).len()
    }
}

impl Drop for HostileCollector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM` = peak RSS); `None` once it exited.
pub fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A log file's bytes (lossy text), empty when it does not exist yet.
pub fn read_log(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}
