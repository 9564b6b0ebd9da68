//! Logging: to the systemd journal with structured fields when running under journald, to
//! stderr otherwise (OpenWrt procd, a terminal). Level from `NETMEDIC_LOG`
//! (error|warn|info|debug|trace), default info.
//!
//! Under journald (`JOURNAL_STREAM` names our stderr) each record is sent over the native
//! journal protocol (a datagram to `/run/systemd/journal/socket`, no library) with `MESSAGE`,
//! `PRIORITY`, `SYSLOG_IDENTIFIER`, `AGENT_ID` (once the config is loaded) and the record's
//! key-values as fields: `check` → `CHECK`, `action` → `ACTION`, `incident_id` →
//! `INCIDENT_ID`, `message_id` → `MESSAGE_ID` (one of the fixed ids below). If the socket is
//! unusable the line goes to stderr with a `<N>` priority prefix instead.

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::OnceLock;

/// `MESSAGE_ID` of "incident opened" (`journalctl MESSAGE_ID=...`).
pub const MSG_INCIDENT_OPENED: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f01";
/// `MESSAGE_ID` of "incident resolved".
pub const MSG_INCIDENT_RESOLVED: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f02";
/// `MESSAGE_ID` of a remediation step (planned, done, verified, failed, escalated).
pub const MSG_REMEDIATION: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f03";
/// `MESSAGE_ID` of a configuration reload (applied or refused).
pub const MSG_RELOAD: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f04";

const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

static AGENT_ID: OnceLock<String> = OnceLock::new();

/// Tags every later record with `AGENT_ID` (first call wins).
pub fn set_agent_id(id: &str) {
    let _ = AGENT_ID.set(id.to_string());
}

struct Logger {
    level: LevelFilter,
    journal: Option<UnixDatagram>,
}

fn priority(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// Appends one journal field; values with a newline use the length-prefixed form.
fn field(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
        buf.extend_from_slice(value.as_bytes());
    } else {
        buf.push(b'=');
        buf.extend_from_slice(value.as_bytes());
    }
    buf.push(b'\n');
}

struct Fields<'a>(&'a mut Vec<u8>);

impl<'kvs> VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        // Journal field names: upper case letters, digits, underscore; not starting with `_`.
        let name: String = key
            .as_str()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        if !name.is_empty()
            && !name.starts_with('_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
        {
            field(self.0, &name, &value.to_string());
        }
        Ok(())
    }
}

/// Renders key-values as ` key=value` for stderr.
struct Inline<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for Inline<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        if key.as_str() != "message_id" {
            use std::fmt::Write as _;
            let _ = write!(self.0, " {key}={value}");
        }
        Ok(())
    }
}

impl Logger {
    fn to_journal(&self, sock: &UnixDatagram, r: &Record<'_>) -> bool {
        let mut buf = Vec::with_capacity(256);
        field(&mut buf, "MESSAGE", &r.args().to_string());
        field(&mut buf, "PRIORITY", &priority(r.level()).to_string());
        field(&mut buf, "SYSLOG_IDENTIFIER", "netmedic-agent");
        if let Some(id) = AGENT_ID.get() {
            field(&mut buf, "AGENT_ID", id);
        }
        let _ = r.key_values().visit(&mut Fields(&mut buf));
        sock.send_to(&buf, JOURNAL_SOCKET).is_ok()
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        if let Some(sock) = &self.journal
            && self.to_journal(sock, r)
        {
            return;
        }
        let mut kv = String::new();
        let _ = r.key_values().visit(&mut Inline(&mut kv));
        let mut err = std::io::stderr().lock();
        let _ = if std::env::var_os("JOURNAL_STREAM").is_some() {
            writeln!(err, "<{}>{}{kv}", priority(r.level()), r.args())
        } else {
            writeln!(
                err,
                "{} {:<5} {}{kv}",
                crate::context::now(),
                r.level(),
                r.args()
            )
        };
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// True when stderr is the journal stream systemd set up for us (`JOURNAL_STREAM=dev:ino`).
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let v = v.to_string_lossy();
    let Some((dev, ino)) = v.split_once(':') else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    dev.parse::<u64>().is_ok_and(|d| d == meta.dev())
        && ino.parse::<u64>().is_ok_and(|i| i == meta.ino())
}

/// Installs the logger once; later calls are ignored.
pub fn init() {
    let level = std::env::var("NETMEDIC_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let journal = if stderr_is_journal() {
        UnixDatagram::unbound().ok()
    } else {
        None
    };
    if log::set_boxed_logger(Box::new(Logger { level, journal })).is_ok() {
        log::set_max_level(level);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_fields_are_encoded() {
        let mut b = Vec::new();
        field(&mut b, "MESSAGE", "one line");
        field(&mut b, "MESSAGE", "two\nlines");
        let mut want = b"MESSAGE=one line\nMESSAGE\n".to_vec();
        want.extend_from_slice(&9u64.to_le_bytes());
        want.extend_from_slice(b"two\nlines\n");
        assert_eq!(b, want);
    }
}
