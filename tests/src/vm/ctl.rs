//! The control channel to the guest: a virtio-serial port (`netmedic.ctl`) that qemu exposes
//! as a unix socket on the host, served in the guest by a busybox shell loop
//! (`tests/lab/vm/netmedic-ctl`).
//!
//! Request: `<id> <seconds> <base64 of a shell script>\n`; the guest kills the script after
//! `<seconds>` (a little less than the harness waits), so a slow command never queues up the
//! next requests behind it. Answer: `BEGIN <id>`, the base64 of the
//! script's stdout+stderr (wrapped lines), `END <id> <exit code>`. Each time the guest's loop
//! (re)starts — at every boot — it first writes `READY <boot id>`. Answers to requests the
//! harness gave up on (timeouts across a reboot) carry old ids and are skipped.

use crate::{LabError, Result};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// What a guest command printed and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOutput {
    /// Its exit code.
    pub code: i32,
    /// Its stdout and stderr, interleaved.
    pub output: String,
}

/// A connection to the guest's control port.
#[derive(Debug)]
pub struct Ctl {
    stream: UnixStream,
    pending: Vec<u8>,
    next_id: u64,
    /// The boot id of the last `READY` line seen.
    last_ready: Option<String>,
}

impl Ctl {
    /// Connects to qemu's socket for the port (waits until qemu has created it).
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self> {
        let stream = crate::wait_for(
            &format!("qemu's control socket {}", path.display()),
            timeout,
            Duration::from_millis(50),
            || UnixStream::connect(path),
        )?;
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| ctl_err(format!("setting a read timeout: {e}")))?;
        Ok(Self {
            stream,
            pending: Vec::new(),
            next_id: 1,
            last_ready: None,
        })
    }

    /// The boot id the guest announced last (`READY` line), if any.
    pub fn last_ready(&self) -> Option<&str> {
        self.last_ready.as_deref()
    }

    /// Reads whatever the guest sent until `deadline`, handing each complete line to `f`;
    /// stops early when `f` returns `Some`.
    fn read_lines<T>(
        &mut self,
        deadline: Instant,
        mut f: impl FnMut(&str) -> Option<T>,
    ) -> Result<Option<T>> {
        loop {
            while let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line).trim().to_owned();
                if let Some(id) = line.strip_prefix("READY ") {
                    self.last_ready = Some(id.trim().to_owned());
                }
                if let Some(v) = f(&line) {
                    return Ok(Some(v));
                }
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ctl_err("qemu closed the control socket".into())),
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ctl_err(format!("reading the control socket: {e}"))),
            }
        }
    }

    /// Waits until the guest's control loop announces itself (`READY <boot id>`) with a boot
    /// id different from `not`; returns it.
    pub fn wait_ready(&mut self, not: Option<&str>, timeout: Duration) -> Result<String> {
        if let Some(id) = &self.last_ready
            && Some(id.as_str()) != not
        {
            return Ok(id.clone());
        }
        let deadline = Instant::now() + timeout;
        let found = self.read_lines(deadline, |line| {
            line.strip_prefix("READY ")
                .map(|id| id.trim().to_owned())
                .filter(|id| Some(id.as_str()) != not)
        })?;
        found.ok_or_else(|| LabError::Timeout {
            desc: "the guest's control channel (READY)".into(),
            waited: timeout,
            last_seen: format!("last READY: {:?}", self.last_ready),
        })
    }

    /// Runs `script` with the guest's `sh` and returns its output; `Err(Timeout)` when no
    /// answer came within `timeout` (e.g. the guest is rebooting).
    pub fn run(&mut self, script: &str, timeout: Duration) -> Result<GuestOutput> {
        let id = self.next_id;
        self.next_id += 1;
        let guest_secs = timeout.as_secs().saturating_sub(1).max(1);
        let line = format!("{id} {guest_secs} {}\n", base64_encode(script.as_bytes()));
        self.stream
            .write_all(line.as_bytes())
            .map_err(|e| ctl_err(format!("writing the control socket: {e}")))?;
        let deadline = Instant::now() + timeout;
        let begin = format!("BEGIN {id}");
        let end = format!("END {id} ");
        let mut inside = false;
        let mut body = String::new();
        let code = self.read_lines(deadline, |line| {
            if line == begin {
                inside = true;
                body.clear();
                None
            } else if let Some(rc) = line.strip_prefix(&end) {
                Some(rc.trim().parse::<i32>().unwrap_or(-1))
            } else {
                if inside && !line.starts_with("READY ") {
                    body.push_str(line);
                }
                None
            }
        })?;
        let Some(code) = code else {
            return Err(LabError::Timeout {
                desc: format!("guest command {}", first_line(script)),
                waited: timeout,
                last_seen: "no answer on the control channel".into(),
            });
        };
        let bytes = base64_decode(&body)
            .ok_or_else(|| ctl_err(format!("undecodable answer to request {id}")))?;
        Ok(GuestOutput {
            code,
            output: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
}

fn first_line(script: &str) -> String {
    let line = script.lines().next().unwrap_or_default();
    let short: String = line.chars().take(60).collect();
    format!("`{short}`")
}

fn ctl_err(msg: String) -> LabError {
    LabError::Setup(format!("VM control channel: {msg}"))
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (what busybox `base64 -d` reads).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64, ignoring whitespace; `None` on any other invalid character.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc = 0u32;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..40 {
            let enc = base64_encode(&data[..len]);
            assert_eq!(enc.len() % 4, 0);
            assert_eq!(
                base64_decode(&enc).as_deref(),
                Some(&data[..len]),
                "len {len}"
            );
        }
        assert_eq!(base64_encode(b"ip route"), "aXAgcm91dGU=");
        assert_eq!(
            base64_decode("aXAg\ncm91dGU=\n").as_deref(),
            Some(&b"ip route"[..])
        );
        assert_eq!(base64_decode("a*b"), None);
    }
}
