//! Logging to stderr, one line per record, level from `NETMEDIC_LOG` (error|warn|info|debug|trace).
//!
//! Under systemd the journal captures stderr; each line carries a `<N>` syslog priority prefix
//! when `JOURNAL_STREAM` is set so journald files it at the right level.

use log::{Level, LevelFilter, Log, Metadata, Record};
use std::io::Write;

struct StderrLogger {
    level: LevelFilter,
    journal: bool,
}

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut err = std::io::stderr().lock();
        let _ = if self.journal {
            let prio = match r.level() {
                Level::Error => 3,
                Level::Warn => 4,
                Level::Info => 6,
                Level::Debug | Level::Trace => 7,
            };
            writeln!(err, "<{prio}>{}", r.args())
        } else {
            writeln!(
                err,
                "{} {:<5} {}",
                crate::checks::now(),
                r.level(),
                r.args()
            )
        };
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
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    if log::set_boxed_logger(Box::new(StderrLogger { level, journal })).is_ok() {
        log::set_max_level(level);
    }
}
