//! `conntrack`: how full the connection-tracking table is (`nf_conntrack_count` against
//! `nf_conntrack_max`). A full table drops every new connection: the "internet works for
//! what is open, nothing new loads" fault a game console or a P2P client causes.
//!
//! Both files live under `/proc/sys/net/netfilter/` and are read in the agent's network
//! namespace. On Linux 6.x the count is per network namespace, while `nf_conntrack_max` is one
//! global limit that only the initial namespace may change (it reads back 0444 elsewhere).
//! `max_entries` overrides the limit for devices whose effective limit is lower (and for the
//! lab, which must never change the host's global value).

use super::{Context, Observation, check_settings, common_problems};
use crate::fsutil::read_proc_u64;
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::path::PathBuf;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "conntrack_table_full",
    "conntrack_table_filling",
    "conntrack_unavailable",
    "conntrack_unreadable",
];

/// `[checks.conntrack]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConntrackConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Table use (count / max) at which the check is degraded.
    pub degraded_percent: f64,
    /// Table use at which it fails (new connections are about to be dropped).
    pub failed_percent: f64,
    /// The table's limit; 0 = read `nf_conntrack_max`.
    pub max_entries: u64,
    /// Where `nf_conntrack_count` / `nf_conntrack_max` live.
    pub proc_dir: PathBuf,
}

impl Default for ConntrackConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 5,
            fail_threshold: 2,
            ok_threshold: 2,
            degraded_percent: 80.0,
            failed_percent: 95.0,
            max_entries: 0,
            proc_dir: PathBuf::from("/proc/sys/net/netfilter"),
        }
    }
}

check_settings!(ConntrackConfig);

impl ConntrackConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "conntrack",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        super::icmp::threshold_pair(
            "conntrack",
            "percent",
            self.degraded_percent,
            self.failed_percent,
            100.0,
            out,
        );
        if !self.proc_dir.is_absolute() {
            out.push(Problem::new(
                "checks.conntrack.proc_dir",
                "must be an absolute path",
            ));
        }
    }

    /// Status of a table with `count` entries out of `max`.
    pub fn judge(&self, count: u64, max: u64) -> (CheckStatus, f64) {
        let percent = if max == 0 {
            0.0
        } else {
            count as f64 * 100.0 / max as f64
        };
        let status = if max > 0 && (percent >= self.failed_percent || count >= max) {
            CheckStatus::Failed
        } else if percent >= self.degraded_percent {
            CheckStatus::Degraded
        } else {
            CheckStatus::Ok
        };
        (status, percent)
    }
}

#[derive(Debug, Clone)]
pub struct ConntrackCheck {
    pub config: ConntrackConfig,
}

impl ConntrackCheck {
    pub fn new(_site: &Site, config: &ConntrackConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        Observation::new(CheckId::Conntrack, status, cause, summary)
            .category(Category::DeviceHealth)
            .threshold(format!(
                "use < {}% (degraded) / {}% (failed)",
                self.config.degraded_percent, self.config.failed_percent
            ))
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = &self.config;
        let count_path = c.proc_dir.join("nf_conntrack_count");
        let max_path = c.proc_dir.join("nf_conntrack_max");
        let count =
            match read_proc_u64(&count_path) {
                Ok(Some(n)) => n,
                Ok(None) => {
                    return self
                    .obs(
                        CheckStatus::Unknown,
                        "conntrack_unavailable",
                        "connection tracking is not loaded (no nf_conntrack_count)".into(),
                    )
                    .evidence("path", count_path.display())
                    .hint("without nf_conntrack there is no NAT table to fill; disable this check");
                }
                Err(e) => {
                    return self.obs(
                        CheckStatus::Unknown,
                        "conntrack_unreadable",
                        format!("cannot read the conntrack count: {e}"),
                    );
                }
            };
        let (max, source) = if c.max_entries > 0 {
            (c.max_entries, "checks.conntrack.max_entries")
        } else {
            match read_proc_u64(&max_path) {
                Ok(Some(m)) => (m, "nf_conntrack_max"),
                Ok(None) => {
                    return self.obs(
                        CheckStatus::Unknown,
                        "conntrack_unavailable",
                        "nf_conntrack_max is missing".into(),
                    );
                }
                Err(e) => {
                    return self.obs(
                        CheckStatus::Unknown,
                        "conntrack_unreadable",
                        format!("cannot read the conntrack limit: {e}"),
                    );
                }
            }
        };
        let (status, percent) = c.judge(count, max);
        let (cause, summary, hint) = match status {
            CheckStatus::Failed => (
                "conntrack_table_full",
                format!(
                    "connection-tracking table is full ({count} of {max}, {percent:.0}%): new connections are dropped"
                ),
                "flush_conntrack frees it; a device on the LAN opening connections in bulk is the usual cause",
            ),
            CheckStatus::Degraded => (
                "conntrack_table_filling",
                format!("connection-tracking table is {percent:.0}% full ({count} of {max})"),
                "watch for a LAN device opening connections in bulk",
            ),
            _ => (
                "ok",
                format!("connection-tracking table {percent:.0}% full"),
                "",
            ),
        };
        let mut o = self
            .obs(status, cause, summary)
            .value(format!("{count}/{max} ({percent:.1}%)"))
            .hint(hint)
            .evidence("count", count)
            .evidence("max", max)
            .evidence("max_source", source)
            .evidence("percent", format!("{percent:.1}"));
        if status == CheckStatus::Failed {
            o = o.severity(Severity::Major);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_table_use() {
        let c = ConntrackConfig::default();
        assert_eq!(c.judge(10, 1000).0, CheckStatus::Ok);
        assert_eq!(c.judge(800, 1000).0, CheckStatus::Degraded);
        assert_eq!(c.judge(950, 1000).0, CheckStatus::Failed);
        assert_eq!(c.judge(300, 200), (CheckStatus::Failed, 150.0));
        assert_eq!(c.judge(0, 0).0, CheckStatus::Ok);
    }

    #[test]
    fn reads_proc_values() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nf_conntrack_count");
        std::fs::write(&p, "1234\n").unwrap();
        assert_eq!(read_proc_u64(&p).unwrap(), Some(1234));
        assert_eq!(read_proc_u64(&dir.path().join("missing")).unwrap(), None);
        std::fs::write(&p, "lots\n").unwrap();
        assert!(read_proc_u64(&p).unwrap_err().contains("lots"));
    }

    #[test]
    fn config_problems() {
        let mut p = Vec::new();
        ConntrackConfig::default().problems(&mut p);
        assert!(p.is_empty(), "{p:?}");
        ConntrackConfig {
            degraded_percent: 99.0,
            failed_percent: 90.0,
            proc_dir: "rel".into(),
            ..ConntrackConfig::default()
        }
        .problems(&mut p);
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "checks.conntrack.degraded_percent",
                "checks.conntrack.proc_dir"
            ]
        );
    }
}
