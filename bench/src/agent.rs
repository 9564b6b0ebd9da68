//! `netmedic-bench agent`: link-down detection latency over many real carrier drops, the CPU
//! time of one full check cycle and of one cycle of each check alone, in the lab. They print figures; nothing here asserts a time.

use netmedic_lab::stack::bin_path;
use netmedic_lab::{Lab, LabError, Result, WAN_IFACE, wait_for};
use nix::sys::resource::{UsageWho, getrusage};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The shipped config, for each check's interval in the per-check table.
const SHIPPED_AGENT_CONFIG: &str = include_str!("../../config/agent.toml");

/// Runs per minute of `[checks.NAME]` in `config` (60 / `interval_secs`); `None` when the
/// section is missing, off, or has no interval.
fn shipped_runs_per_min(config: &str, name: &str) -> Option<f64> {
    let header = format!("[checks.{name}]");
    let section = config
        .lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.starts_with('['));
    let (mut enabled, mut interval) = (false, None);
    for line in section {
        let line = line.split('#').next().unwrap_or_default();
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim() {
            "enabled" => enabled = value.trim() == "true",
            "interval_secs" => interval = value.trim().parse::<f64>().ok(),
            _ => {}
        }
    }
    interval.filter(|i| enabled && *i > 0.0).map(|i| 60.0 / i)
}

/// Percentile (nearest rank) of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the epoch of an agent log line (`2026-11-23T09:19:49.451Z LEVEL ...`).
pub(crate) fn log_line_ms(line: &str) -> Option<i64> {
    let ts = line.split_whitespace().next()?;
    ts.parse::<netmedic_proto::Timestamp>()
        .ok()
        .map(|t| t.unix_millis())
}

/// Figures of the link benchmark, in milliseconds.
#[derive(Debug, Clone)]
pub struct LinkLatency {
    pub samples_ms: Vec<f64>,
}

impl LinkLatency {
    pub fn report(&self) -> String {
        let mut s = self.samples_ms.clone();
        s.sort_by(f64::total_cmp);
        format!(
            "link-down detection over {} carrier drops: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms, min {:.1} ms",
            s.len(),
            percentile(&s, 50.0),
            percentile(&s, 99.0),
            s.last().copied().unwrap_or(f64::NAN),
            s.first().copied().unwrap_or(f64::NAN),
        )
    }
}

/// Drops the WAN carrier `drops` times (ISP end of the veth set down: the CPE loses carrier as
/// with a pulled cable) and measures from just before the drop to the agent's log line that
/// opens the link incident. The agent runs all its default checks, so slow checks in flight
/// are part of the measurement.
pub fn link_down_latency(drops: usize) -> Result<LinkLatency> {
    let lab = Lab::builder().cpes(1).build()?;
    let cpe = lab.cpe(0);
    let dir = lab.dir().join("bench-link");
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Setup(e.to_string()))?;
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"bench\"\nstate_dir = \"{state}\"\n\
             # Detection only: a bounce_iface would toggle the carrier under measurement.\n\
             mode = \"dry_run\"\n\n[collector]\nurl = \"http://203.0.113.10:8440\"\n\
             max_backoff_secs = 60\n\n[wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{lease}\"\n\n\
             [checks.link]\nfail_threshold = 1\nok_threshold = 1\n# Every drop must open an incident, not read as flapping.\n\
             flap_threshold = 100000\n",
            state = dir.join("state").display(),
            lease = cpe.lease_file.display()
        ),
    )
    .map_err(|e| LabError::Setup(e.to_string()))?;
    let log = lab.log_path("bench-agent");
    let bin = bin_path("netmedic-agent")?.display().to_string();
    let cfg = cfg.display().to_string();
    let mut agent = cpe.ns.spawn(&bin, &["run", "--config", &cfg], &log)?;
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for(
        "the agent to start",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            if read().contains("check link:") || read().contains("running in") {
                Ok(())
            } else {
                Err(read())
            }
        },
    )?;
    let opened = |text: &str| {
        text.lines()
            .filter(|l| l.contains("incident opened: link"))
            .count()
    };
    let resolved = |text: &str| {
        text.lines()
            .filter(|l| l.contains("resolved by itself"))
            .count()
    };
    let mut samples = Vec::with_capacity(drops);
    for i in 0..drops {
        if !agent.is_running() {
            return Err(LabError::Setup(format!(
                "agent exited: {}",
                agent.log_tail(20)
            )));
        }
        let t0 = unix_ms_now();
        cpe.drop_wan_carrier()?;
        let line = wait_for(
            "the link incident to open",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || {
                let text = read();
                text.lines()
                    .filter(|l| l.contains("incident opened: link"))
                    .nth(i)
                    .map(str::to_string)
                    .ok_or_else(|| format!("{} opened so far", opened(&text)))
            },
        )?;
        let t1 =
            log_line_ms(&line).ok_or_else(|| LabError::Setup(format!("no timestamp in {line}")))?;
        samples.push((t1 - t0) as f64);
        cpe.restore_wan_carrier()?;
        wait_for(
            "the link incident to resolve",
            Duration::from_secs(10),
            Duration::from_millis(5),
            || {
                let n = resolved(&read());
                if n > i {
                    Ok(())
                } else {
                    Err(format!("{n} resolved"))
                }
            },
        )?;
    }
    let _ = agent.kill();
    Ok(LinkLatency {
        samples_ms: samples,
    })
}

/// CPU time (user + system, in milliseconds) and voluntary context switches (wake-ups) of the
/// children reaped so far.
fn children_usage() -> Result<(f64, f64)> {
    let u = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| LabError::Sys {
        context: "getrusage".into(),
        source: e,
    })?;
    let tv = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1000.0 + t.tv_usec() as f64 / 1000.0;
    Ok((
        tv(u.user_time()) + tv(u.system_time()),
        u.voluntary_context_switches() as f64,
    ))
}

/// CPU time of `netmedic-agent check` (one pass of the default checks) against a baseline
/// of the same binary doing no checks (`--version`), both run `runs` times in the lab CPE.
pub fn check_cycle_cpu(runs: usize) -> Result<String> {
    let lab = Lab::builder().cpes(1).build()?;
    let cpe = lab.cpe(0);
    let dir = lab.dir().join("bench-cycle");
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Setup(e.to_string()))?;
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"bench\"\nstate_dir = \"{state}\"\n\n[collector]\nurl = \"http://203.0.113.10:8440\"\n\n\
             [wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{lease}\"\n\n[checks.clock]\nenabled = false\n",
            state = dir.join("state").display(),
            lease = cpe.lease_file.display()
        ),
    )
    .map_err(|e| LabError::Setup(e.to_string()))?;
    let bin = bin_path("netmedic-agent")?.display().to_string();
    let cfg = cfg.display().to_string();
    // Medians of CPU ms, wall ms and wake-ups (voluntary context switches) over `runs`.
    let measure_n = |runs: usize, args: &[&str]| -> Result<(f64, f64, f64)> {
        let mut cpu = Vec::new();
        let mut wall = Vec::new();
        let mut wakeups = Vec::new();
        for _ in 0..runs {
            let (cpu0, wake0) = children_usage()?;
            let start = Instant::now();
            let mut argv = vec![bin.as_str()];
            argv.extend_from_slice(args);
            cpe.ns.exec_unchecked(&argv)?;
            wall.push(start.elapsed().as_secs_f64() * 1000.0);
            let (cpu1, wake1) = children_usage()?;
            cpu.push(cpu1 - cpu0);
            wakeups.push(wake1 - wake0);
        }
        for v in [&mut cpu, &mut wall, &mut wakeups] {
            v.sort_by(f64::total_cmp);
        }
        Ok((
            percentile(&cpu, 50.0),
            percentile(&wall, 50.0),
            percentile(&wakeups, 50.0),
        ))
    };
    let measure = |args: &[&str]| measure_n(runs, args);
    let (base_cpu, base_wall, _) = measure(&["--version"])?;
    let (cycle_cpu, cycle_wall, _) = measure(&["check", "--config", &cfg])?;
    let mut out = format!(
        "one full check cycle (default checks, {runs} runs, medians): {:.1} ms CPU, {:.1} ms wall; \
         process baseline (--version, incl. `ip netns exec`): {:.1} ms CPU, {:.1} ms wall; \
         cycle minus baseline: {:.1} ms CPU",
        cycle_cpu,
        cycle_wall,
        base_cpu,
        base_wall,
        cycle_cpu - base_cpu
    );
    // Per check: one process running the check once and one running it 1 + EXTRA times back
    // to back; the difference over EXTRA is the CPU of one cycle, without the process's start
    // (runtime, config, netlink socket), which both pay.
    const EXTRA: u32 = 10;
    let per_check_runs = runs.clamp(1, 3);
    let listed = cpe
        .ns
        .exec_unchecked(&[bin.as_str(), "check", "--config", &cfg, "--json"])?;
    let checks: Vec<String> = serde_json::from_slice::<Vec<serde_json::Value>>(&listed.stdout)
        .map_err(|e| LabError::Setup(format!("`check --json` output: {e}")))?
        .iter()
        .filter_map(|o| o.get("check")?.as_str().map(str::to_string))
        .collect();
    out.push_str(&format!(
        "\nCPU per check cycle, each check alone ((CPU of {} cycles − CPU of 1) / {EXTRA}, \
         medians of {per_check_runs} runs; wake-ups = voluntary context switches; runs/min from \
         the shipped interval_secs, ms/min = ms CPU × runs/min, `off` = off in the shipped \
         config):\n\
         {:<16} {:>10} {:>12} {:>10} {:>9} {:>8}",
        EXTRA + 1,
        "check",
        "ms CPU",
        "ms wall",
        "wake-ups",
        "runs/min",
        "ms/min"
    ));
    let mut total = 0.0;
    let mut total_per_min = 0.0;
    for name in &checks {
        let more = (EXTRA + 1).to_string();
        let (one_cpu, one_wall, one_wake) = measure_n(
            per_check_runs,
            &["check", "--config", &cfg, "--only", name, "--cycles", "1"],
        )?;
        let (n_cpu, n_wall, n_wake) = measure_n(
            per_check_runs,
            &["check", "--config", &cfg, "--only", name, "--cycles", &more],
        )?;
        let cpu = (n_cpu - one_cpu) / f64::from(EXTRA);
        total += cpu;
        let (runs_per_min, per_min) = match shipped_runs_per_min(SHIPPED_AGENT_CONFIG, name) {
            Some(r) => {
                total_per_min += cpu * r;
                (format!("{r:.1}"), format!("{:.2}", cpu * r))
            }
            None => ("off".to_string(), "-".to_string()),
        };
        out.push_str(&format!(
            "\n{name:<16} {cpu:>10.2} {:>12.1} {:>10.1} {runs_per_min:>9} {per_min:>8}",
            (n_wall - one_wall) / f64::from(EXTRA),
            (n_wake - one_wake) / f64::from(EXTRA)
        ));
    }
    out.push_str(&format!(
        "\n{:<16} {total:>10.2} {:>12} {:>10} {:>9} {total_per_min:>8.2}",
        "sum", "", "", ""
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_per_minute_come_from_the_section_of_the_check() {
        let cfg = "[checks.a]\nenabled = true\ninterval_secs = 10\n\n[checks.b]\n\
                   enabled = false\ninterval_secs = 5\n[checks.c]\ninterval_secs = 30\n\
                   enabled = true # on\n";
        assert_eq!(shipped_runs_per_min(cfg, "a"), Some(6.0));
        assert_eq!(shipped_runs_per_min(cfg, "b"), None);
        assert_eq!(shipped_runs_per_min(cfg, "c"), Some(2.0));
        assert_eq!(shipped_runs_per_min(cfg, "missing"), None);
        // Every check the shipped config turns on has an interval.
        assert_eq!(
            shipped_runs_per_min(SHIPPED_AGENT_CONFIG, "conntrack"),
            Some(12.0)
        );
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert_eq!(percentile(&[7.0], 99.0), 7.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn log_timestamps_parse() {
        assert_eq!(
            log_line_ms("2026-11-23T09:19:49.451Z WARN  incident opened: link"),
            Some(1_795_425_589_451)
        );
    }
}
