//! A minimal stderr logger for the `log` facade (journald captures stderr under systemd). The
//! level comes from `NETMEDIC_LOG` (`error`, `warn`, `info`, `debug`, `trace`; default `info`).

use log::{LevelFilter, Log, Metadata, Record};
use std::io::Write;
use std::sync::OnceLock;

#[derive(Debug)]
struct StderrLogger {
    level: LevelFilter,
}

impl Log for StderrLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let line = format!(
            "{} {:<5} {}: {}\n",
            crate::now(),
            record.level(),
            record.target(),
            record.args()
        );
        // One write per line so concurrent lines do not interleave; a closed stderr is ignored.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {
        let _ = std::io::stderr().flush();
    }
}

/// Installs the logger once; later calls (e.g. from tests) are no-ops.
pub fn init() {
    let level = std::env::var("NETMEDIC_LOG")
        .ok()
        .and_then(|v| v.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::Info);
    static LOGGER: OnceLock<StderrLogger> = OnceLock::new();
    let logger = LOGGER.get_or_init(|| StderrLogger { level });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(level);
    }
}
