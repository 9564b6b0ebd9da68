//! Logging: to the systemd journal with structured fields when running under journald, to
//! stderr otherwise (OpenWrt procd, a terminal). Level from `NETMEDIC_LOG`
//! (error|warn|info|debug|trace), default info.
//!
//! Under journald (`JOURNAL_STREAM` names our stderr) records go through
//! `systemd-journal-logger` (the native journal protocol) with `MESSAGE`, `PRIORITY`,
//! `SYSLOG_IDENTIFIER=netmedic-agent`, `AGENT_ID` (once the config is loaded) and the record's
//! key-values as fields: `check` → `CHECK`, `action` → `ACTION`, `incident_id` →
//! `INCIDENT_ID`, `message_id` → `MESSAGE_ID` (one of the fixed ids below). If the journal
//! socket is unusable the line goes to stderr with a `<N>` priority prefix instead (the same
//! priorities: error 3, warn 4, info 5, debug 6, trace 7).

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use systemd_journal_logger::JournalLog;

/// `MESSAGE_ID` of "incident opened" (`journalctl MESSAGE_ID=...`).
pub const MSG_INCIDENT_OPENED: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f01";
/// `MESSAGE_ID` of "incident resolved".
pub const MSG_INCIDENT_RESOLVED: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f02";
/// `MESSAGE_ID` of a remediation step (planned, done, verified, failed, escalated).
pub const MSG_REMEDIATION: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f03";
/// `MESSAGE_ID` of a configuration reload (applied or refused).
pub const MSG_RELOAD: &str = "6b1f0c2e5a9d4c1f8e3a7b2d9c4e1f04";

const IDENTIFIER: &str = "netmedic-agent";

/// Whether [`init`] found stderr connected to the journal.
static UNDER_JOURNALD: AtomicBool = AtomicBool::new(false);
/// The journal logger with `AGENT_ID`, once [`set_agent_id`] ran under journald.
static JOURNAL_WITH_ID: OnceLock<JournalLog> = OnceLock::new();

/// Tags every later journal record with `AGENT_ID` (first call wins).
pub fn set_agent_id(id: &str) {
    if UNDER_JOURNALD.load(Ordering::Relaxed)
        && let Some(j) = journal(Some(id))
    {
        let _ = JOURNAL_WITH_ID.set(j);
    }
}

/// A journal logger (its own datagram socket), `None` when no socket can be made.
fn journal(agent_id: Option<&str>) -> Option<JournalLog> {
    let j = JournalLog::empty()
        .ok()?
        .with_syslog_identifier(IDENTIFIER.to_string());
    Some(match agent_id {
        Some(id) => j.with_extra_fields([("AGENT_ID", id)]),
        None => j,
    })
}

struct Logger {
    level: LevelFilter,
    /// Under journald: the journal logger used until the agent id is known.
    journal: Option<JournalLog>,
}

/// Syslog priority of a level, as `systemd-journal-logger` maps it.
fn priority(l: Level) -> u8 {
    match l {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 5,
        Level::Debug => 6,
        Level::Trace => 7,
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

/// One stderr line: `<N>message kv` when journald reads our stderr (the journal socket failed),
/// else `TIME LEVEL message kv`.
fn stderr_line(r: &Record<'_>, journal_stream: bool) -> String {
    let mut kv = String::new();
    let _ = r.key_values().visit(&mut Inline(&mut kv));
    if journal_stream {
        format!("<{}>{}{kv}", priority(r.level()), r.args())
    } else {
        format!(
            "{} {:<5} {}{kv}",
            crate::context::now(),
            r.level(),
            r.args()
        )
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
        if let Some(j) = JOURNAL_WITH_ID.get().or(self.journal.as_ref())
            && j.journal_send(r).is_ok()
        {
            return;
        }
        let line = stderr_line(r, std::env::var_os("JOURNAL_STREAM").is_some());
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger once; later calls are ignored.
pub fn init() {
    let level = std::env::var("NETMEDIC_LOG")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(LevelFilter::Info);
    let journal = if systemd_journal_logger::connected_to_journal() {
        UNDER_JOURNALD.store(true, Ordering::Relaxed);
        journal(None)
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
    fn stderr_lines_carry_key_values_but_not_the_message_id() {
        let kvs: &[(&str, &str)] = &[
            ("check", "dns"),
            ("incident_id", "i-1"),
            ("message_id", MSG_INCIDENT_OPENED),
        ];
        let args = format_args!("incident opened");
        let r = Record::builder()
            .level(Level::Warn)
            .args(args)
            .key_values(&kvs)
            .build();
        assert_eq!(
            stderr_line(&r, true),
            "<4>incident opened check=dns incident_id=i-1"
        );
        let plain = stderr_line(&r, false);
        assert!(
            plain.ends_with(" WARN  incident opened check=dns incident_id=i-1"),
            "{plain}"
        );
    }
}
