//! `resources`: the router's own health — available memory (`MemAvailable` of `MemTotal`),
//! load average per CPU, and free space of the file system holding the agent's `state_dir`
//! (where the spool lives: a full flash stops incident delivery).

use super::{Context, Observation, check_settings, common_problems};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "low_memory",
    "low_disk_space",
    "high_load",
    "resources_unreadable",
];

/// `[checks.resources]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ResourcesConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Degraded when MemAvailable falls below this share of MemTotal.
    pub degraded_mem_available_percent: f64,
    pub failed_mem_available_percent: f64,
    /// Degraded when the 5-minute load average per CPU reaches this.
    pub degraded_load_per_cpu: f64,
    pub failed_load_per_cpu: f64,
    /// Degraded when the state dir's file system has less than this share free.
    pub degraded_disk_free_percent: f64,
    pub failed_disk_free_percent: f64,
}

impl Default for ResourcesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 60,
            fail_threshold: 3,
            ok_threshold: 2,
            degraded_mem_available_percent: 10.0,
            failed_mem_available_percent: 3.0,
            degraded_load_per_cpu: 2.0,
            failed_load_per_cpu: 4.0,
            degraded_disk_free_percent: 10.0,
            failed_disk_free_percent: 2.0,
        }
    }
}

check_settings!(ResourcesConfig);

/// `failed <= degraded`, both in `0..=max` (a "below" threshold pair).
fn below_pair(name: &str, degraded: f64, failed: f64, max: f64, out: &mut Vec<Problem>) {
    let ok = |v: f64| v.is_finite() && (0.0..=max).contains(&v);
    for (which, v) in [("degraded", degraded), ("failed", failed)] {
        if !ok(v) {
            out.push(Problem::new(
                format!("checks.resources.{which}_{name}"),
                format!("must be between 0 and {max}"),
            ));
        }
    }
    if ok(degraded) && ok(failed) && failed > degraded {
        out.push(Problem::new(
            format!("checks.resources.failed_{name}"),
            format!("must not exceed degraded_{name} ({degraded})"),
        ));
    }
}

impl ResourcesConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "resources",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        below_pair(
            "mem_available_percent",
            self.degraded_mem_available_percent,
            self.failed_mem_available_percent,
            100.0,
            out,
        );
        super::icmp::threshold_pair(
            "resources",
            "load_per_cpu",
            self.degraded_load_per_cpu,
            self.failed_load_per_cpu,
            1000.0,
            out,
        );
        below_pair(
            "disk_free_percent",
            self.degraded_disk_free_percent,
            self.failed_disk_free_percent,
            100.0,
            out,
        );
    }
}

/// `MemTotal` and `MemAvailable` from `/proc/meminfo`, in KiB.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some((field("MemTotal")?, field("MemAvailable")?))
}

/// The 1, 5 and 15-minute load averages from `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// The path itself or its nearest existing ancestor (the state dir may not exist yet).
fn existing_ancestor(p: &Path) -> Option<&Path> {
    p.ancestors()
        .find(|a| !a.as_os_str().is_empty() && a.exists())
}

/// One resource's judgement.
#[derive(Debug, Clone, PartialEq)]
struct Finding {
    status: CheckStatus,
    cause: &'static str,
    summary: String,
}

fn below(v: f64, degraded: f64, failed: f64) -> CheckStatus {
    if v < failed {
        CheckStatus::Failed
    } else if v < degraded {
        CheckStatus::Degraded
    } else {
        CheckStatus::Ok
    }
}

fn severity_rank(s: CheckStatus) -> u8 {
    match s {
        CheckStatus::Ok => 0,
        CheckStatus::Unknown => 1,
        CheckStatus::Degraded => 2,
        CheckStatus::Failed => 3,
    }
}

#[derive(Debug, Clone)]
pub struct ResourcesCheck {
    pub config: ResourcesConfig,
    pub state_dir: PathBuf,
}

impl ResourcesCheck {
    pub fn new(site: &Site, config: &ResourcesConfig) -> Self {
        Self {
            config: config.clone(),
            state_dir: site.state_dir.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = &self.config;
        let mut findings = Vec::new();
        let mut values = Vec::new();
        let mut ev: Vec<(String, String)> = Vec::new();

        match std::fs::read_to_string("/proc/meminfo")
            .ok()
            .as_deref()
            .and_then(parse_meminfo)
        {
            Some((total, avail)) if total > 0 => {
                let pct = avail as f64 * 100.0 / total as f64;
                ev.push(("mem_total_kib".into(), total.to_string()));
                ev.push(("mem_available_kib".into(), avail.to_string()));
                ev.push(("mem_available_percent".into(), format!("{pct:.1}")));
                values.push(format!("mem {pct:.0}% free"));
                findings.push(Finding {
                    status: below(
                        pct,
                        c.degraded_mem_available_percent,
                        c.failed_mem_available_percent,
                    ),
                    cause: "low_memory",
                    summary: format!(
                        "{pct:.1}% of memory available ({} of {} MiB)",
                        avail / 1024,
                        total / 1024
                    ),
                });
            }
            _ => ev.push(("mem".into(), "cannot read /proc/meminfo".into())),
        }

        let state = existing_ancestor(&self.state_dir).map(Path::to_path_buf);
        match state
            .as_ref()
            .map(|p| (p, nix::sys::statvfs::statvfs(p.as_path())))
        {
            Some((p, Ok(st))) if st.blocks() > 0 => {
                // c_ulong and fsblkcnt_t are 32-bit on MIPS routers, 64-bit here.
                #[allow(clippy::useless_conversion)]
                let frsize = u64::from(st.fragment_size());
                #[allow(clippy::useless_conversion)]
                let (total, free) = (
                    u64::from(st.blocks()) * frsize,
                    u64::from(st.blocks_available()) * frsize,
                );
                let pct = free as f64 * 100.0 / total as f64;
                ev.push(("disk_path".into(), p.display().to_string()));
                ev.push(("disk_free_bytes".into(), free.to_string()));
                ev.push(("disk_total_bytes".into(), total.to_string()));
                ev.push(("disk_free_percent".into(), format!("{pct:.1}")));
                values.push(format!("disk {pct:.0}% free"));
                findings.push(Finding {
                    status: below(
                        pct,
                        c.degraded_disk_free_percent,
                        c.failed_disk_free_percent,
                    ),
                    cause: "low_disk_space",
                    summary: format!("{pct:.1}% free on {} ({} KiB)", p.display(), free / 1024),
                });
            }
            Some((p, Err(e))) => ev.push(("disk".into(), format!("statvfs {}: {e}", p.display()))),
            _ => ev.push((
                "disk".into(),
                format!("no file system for {}", self.state_dir.display()),
            )),
        }

        match std::fs::read_to_string("/proc/loadavg")
            .ok()
            .as_deref()
            .and_then(parse_loadavg)
        {
            Some(load) => {
                let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
                let per_cpu = load[1] / cpus as f64;
                ev.push((
                    "load_average".into(),
                    format!("{:.2} {:.2} {:.2}", load[0], load[1], load[2]),
                ));
                ev.push(("cpus".into(), cpus.to_string()));
                ev.push(("load_per_cpu".into(), format!("{per_cpu:.2}")));
                values.push(format!("load {per_cpu:.2}/cpu"));
                let status = if per_cpu >= c.failed_load_per_cpu {
                    CheckStatus::Failed
                } else if per_cpu >= c.degraded_load_per_cpu {
                    CheckStatus::Degraded
                } else {
                    CheckStatus::Ok
                };
                findings.push(Finding {
                    status,
                    cause: "high_load",
                    summary: format!("5-minute load {per_cpu:.2} per CPU ({cpus} CPUs)"),
                });
            }
            None => ev.push(("load".into(), "cannot read /proc/loadavg".into())),
        }

        let threshold = format!(
            "mem available ≥ {}/{}%, disk free ≥ {}/{}%, load/cpu < {}/{} (degraded/failed)",
            c.degraded_mem_available_percent,
            c.failed_mem_available_percent,
            c.degraded_disk_free_percent,
            c.failed_disk_free_percent,
            c.degraded_load_per_cpu,
            c.failed_load_per_cpu
        );
        // The first of the worst findings names the cause (memory, then disk, then load).
        let worst = findings
            .iter()
            .filter(|f| f.status != CheckStatus::Ok)
            .fold(None::<&Finding>, |w, f| match w {
                Some(w) if severity_rank(w.status) >= severity_rank(f.status) => Some(w),
                _ => Some(f),
            });
        let mut o = match (worst, findings.is_empty()) {
            (Some(w), _) => {
                let others: Vec<_> = findings
                    .iter()
                    .filter(|f| f.status != CheckStatus::Ok && f.cause != w.cause)
                    .map(|f| f.cause)
                    .collect();
                let mut o = Observation::new(CheckId::Resources, w.status, w.cause, &w.summary)
                    .hint(match w.cause {
                        "low_memory" => "find the process that grew (restart_service), or reboot as a last resort",
                        "low_disk_space" => "the spool is bounded; look for logs or crash dumps filling the flash",
                        _ => "a runaway process or a traffic storm; see the load average evidence",
                    });
                if !others.is_empty() {
                    o = o.evidence("also", others.join(", "));
                }
                if w.status == CheckStatus::Failed {
                    o = o.severity(Severity::Major);
                }
                o
            }
            (None, false) => Observation::ok(
                CheckId::Resources,
                "memory, load and state-dir space within limits",
            ),
            (None, true) => Observation::new(
                CheckId::Resources,
                CheckStatus::Unknown,
                "resources_unreadable",
                "cannot read memory, load or disk figures",
            ),
        };
        o = o
            .category(Category::DeviceHealth)
            .value(values.join(", "))
            .threshold(threshold);
        for (k, v) in ev {
            o = o.evidence(k, v);
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let meminfo = "MemTotal:        2048000 kB\nMemFree:          100000 kB\nMemAvailable:     512000 kB\nBuffers: 1 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some((2_048_000, 512_000)));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None, "old kernels");
        assert_eq!(
            parse_loadavg("0.52 1.25 2.00 3/456 7890\n"),
            Some([0.52, 1.25, 2.0])
        );
        assert_eq!(parse_loadavg("0.5 x"), None);
    }

    #[test]
    fn below_thresholds() {
        assert_eq!(below(50.0, 10.0, 3.0), CheckStatus::Ok);
        assert_eq!(below(5.0, 10.0, 3.0), CheckStatus::Degraded);
        assert_eq!(below(1.0, 10.0, 3.0), CheckStatus::Failed);
    }

    #[test]
    fn config_problems() {
        let mut p = Vec::new();
        ResourcesConfig::default().problems(&mut p);
        assert!(p.is_empty(), "{p:?}");
        ResourcesConfig {
            degraded_mem_available_percent: 5.0,
            failed_mem_available_percent: 10.0,
            degraded_load_per_cpu: -1.0,
            failed_disk_free_percent: 101.0,
            ..ResourcesConfig::default()
        }
        .problems(&mut p);
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "checks.resources.failed_mem_available_percent",
                "checks.resources.degraded_load_per_cpu",
                "checks.resources.failed_disk_free_percent"
            ]
        );
    }
}
