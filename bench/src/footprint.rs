//! `netmedic-bench footprint`: steady RSS, PSS, CPU per minute and wakeups per second of an idle
//! netmedic-agent with the shipped default config (config/agent.toml, compiled in and pointed at
//! the lab's collector) in a lab CPE, measured over N minutes (after a 1-minute warm-up) beside
//! zabbix_agentd, running in the foreground on the same CPE's loopback in the same window. Prints
//! one table; asserts nothing. Run by scripts/bench-footprint.sh. With `--with-wifi`, the
//! `wifi_ap` and `wifi_events` checks are on, against a socket that answers like hostapd
//! ([`crate::hostapd_sock`]; there is no radio here for a real one).

use crate::hostapd_sock::HostapdSock;
use anyhow::{Context, Result, anyhow, bail};
use netmedic_lab::stack::{Stack, StackOptions, bin_path};
use netmedic_lab::{Lab, LabProcess, WAN_IFACE, wait_for};
use std::time::{Duration, Instant};

/// The shipped agent config, the one a router starts with.
const SHIPPED_AGENT_CONFIG: &str = include_str!("../../config/agent.toml");

/// What one process tree used at one moment.
#[derive(Debug, Default, Clone, Copy)]
struct Sample {
    rss_kib: u64,
    pss_kib: u64,
    cpu_ticks: u64,
    /// Voluntary context switches: the process blocked and was woken, one per wake-up.
    wakeups: u64,
    /// Involuntary ones: the scheduler preempted it (a loaded machine, not the agent's doing).
    preemptions: u64,
}

fn children(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                out.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    out.sort_unstable();
    out.dedup();
    out
}

fn field_kib(text: &str, key: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn sample(root: u32) -> Sample {
    let mut s = Sample::default();
    for pid in children(root) {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        s.rss_kib += field_kib(&status, "VmRSS:");
        let rollup =
            std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
        s.pss_kib += field_kib(&rollup, "Pss:");
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the `(comm)`: utime and stime are the 12th and 13th.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            s.cpu_ticks += n(11) + n(12);
        }
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for t in tasks.flatten() {
                let st = std::fs::read_to_string(t.path().join("status")).unwrap_or_default();
                s.wakeups += field_kib(&st, "voluntary_ctxt_switches:");
                s.preemptions += field_kib(&st, "nonvoluntary_ctxt_switches:");
            }
        }
    }
    s
}

#[derive(Debug, Default)]
struct Figures {
    rss_median_kib: u64,
    rss_max_kib: u64,
    pss_median_kib: u64,
    cpu_ms_per_min: f64,
    wakeups_per_sec: f64,
    preemptions_per_sec: f64,
}

fn summarize(samples: &[(Instant, Sample)]) -> Figures {
    let mut rss: Vec<u64> = samples.iter().map(|s| s.1.rss_kib).collect();
    let mut pss: Vec<u64> = samples.iter().map(|s| s.1.pss_kib).collect();
    rss.sort_unstable();
    pss.sort_unstable();
    let (Some(&(t0, first)), Some(&(t1, last))) = (samples.first(), samples.last()) else {
        return Figures::default();
    };
    let secs = (t1 - t0).as_secs_f64().max(1.0);
    let tick_ms = 1000.0 / 100.0; // USER_HZ
    Figures {
        rss_median_kib: rss.get(rss.len() / 2).copied().unwrap_or(0),
        rss_max_kib: rss.last().copied().unwrap_or(0),
        pss_median_kib: pss.get(pss.len() / 2).copied().unwrap_or(0),
        cpu_ms_per_min: (last.cpu_ticks - first.cpu_ticks) as f64 * tick_ms / (secs / 60.0),
        wakeups_per_sec: (last.wakeups - first.wakeups) as f64 / secs,
        preemptions_per_sec: (last.preemptions - first.preemptions) as f64 / secs,
    }
}

/// The Wi-Fi checks `--with-wifi` turns on.
const WIFI_CHECKS: [&str; 2] = ["wifi_ap", "wifi_events"];

/// Where the hostapd stand-in's socket lives in the lab.
fn hostapd_dir(lab: &Lab) -> std::path::PathBuf {
    lab.dir().join("hostapd")
}

/// Every `[checks.NAME]` of the shipped config (`--without all`: the agent's idle overhead).
fn shipped_checks() -> Vec<String> {
    SHIPPED_AGENT_CONFIG
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[checks.")?.strip_suffix(']'))
        .filter(|n| !n.contains('.'))
        .map(str::to_string)
        .collect()
}

/// The shipped config with the lab's id, state dir, collector, token and lease file, the
/// checks in `without` (`all`: every check) turned off and, with `wifi`, the Wi-Fi checks on
/// against the stand-in.
fn default_config(lab: &Lab, stack: &Stack<'_>, without: &[String], wifi: bool) -> Result<String> {
    let cpe = lab.cpe(0);
    let every: Vec<String>;
    let without = if without.iter().any(|w| w == "all") {
        every = shipped_checks();
        &every[..]
    } else {
        without
    };
    for name in without {
        if !SHIPPED_AGENT_CONFIG.contains(&format!("[checks.{name}]")) {
            bail!("--without {name}: the shipped config has no [checks.{name}]");
        }
    }
    let mut section = "";
    Ok(SHIPPED_AGENT_CONFIG
        .lines()
        .map(|l| {
            if l.starts_with('[') {
                section = l.trim();
            }
            let key = l.split('=').next().unwrap_or("").trim();
            let off = section
                .strip_prefix("[checks.")
                .and_then(|s| s.strip_suffix(']'))
                .is_some_and(|name| without.iter().any(|w| w == name));
            let wifi_on = wifi
                && section
                    .strip_prefix("[checks.")
                    .and_then(|s| s.strip_suffix(']'))
                    .is_some_and(|name| WIFI_CHECKS.contains(&name));
            match key {
                "enabled" if off => "enabled = false".to_string(),
                "enabled" if wifi_on => "enabled = true".to_string(),
                "ctrl_dir" if wifi_on => {
                    format!("ctrl_dir = \"{}\"", hostapd_dir(lab).display())
                }
                "client_socket_dir" if wifi_on => {
                    format!("client_socket_dir = \"{}\"", lab.dir().display())
                }
                "interface" if wifi_on => "interface = \"wlan0\"".to_string(),
                "id" => "id = \"lab-cpe-0\"".to_string(),
                "state_dir" => format!(
                    "state_dir = \"{}\"",
                    lab.dir().join("footprint-state").display()
                ),
                "url" if l.starts_with("url") => {
                    format!("url = \"http://{}\"", stack.collector_addr)
                }
                "token_file" => format!(
                    "token_file = \"{}\"",
                    lab.dir().join("agent0.token").display()
                ),
                "interface" if l.starts_with("interface") => format!("interface = \"{WAN_IFACE}\""),
                "lease_file" => format!("lease_file = \"{}\"", cpe.lease_file.display()),
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn measure(procs: &mut [(&str, &mut LabProcess)], minutes: f64) -> Result<Vec<Figures>> {
    let warmup = Duration::from_secs(60);
    let every = Duration::from_secs(5);
    let start = Instant::now();
    let mut samples: Vec<Vec<(Instant, Sample)>> = vec![Vec::new(); procs.len()];
    let end = start + warmup + Duration::from_secs_f64(minutes * 60.0);
    while Instant::now() < end {
        // The sampling period of the benchmark itself, not a wait for a condition.
        std::thread::sleep(every);
        for (i, (name, p)) in procs.iter_mut().enumerate() {
            if !p.is_running() {
                bail!("{name} exited: {}", p.log_tail(20));
            }
            if start.elapsed() >= warmup {
                samples[i].push((Instant::now(), sample(p.pid())));
            }
        }
    }
    Ok(samples.iter().map(|s| summarize(s)).collect())
}

pub fn run(minutes: f64, without: &[String], wifi: bool) -> Result<()> {
    let lab = Lab::builder().cpes(1).build().context("building the lab")?;
    let mut stack =
        Stack::start(&lab, StackOptions::default()).context("starting collector and agent")?;
    // The stack's agent runs a test config with debug logs: replace it by the default one.
    if let Some(mut a) = stack.agents[0].take() {
        a.kill().context("stopping the stack's agent")?;
    }
    let cfg = lab.dir().join("footprint-agent.toml");
    let hostapd = if wifi {
        Some(HostapdSock::start(&hostapd_dir(&lab), "wlan0")?)
    } else {
        None
    };
    std::fs::write(&cfg, default_config(&lab, &stack, without, wifi)?)
        .with_context(|| format!("writing {}", cfg.display()))?;
    let cpe = lab.cpe(0);
    let bin = bin_path("netmedic-agent")?;
    let log = lab.log_path("footprint-agent");
    let mut agent = cpe
        .ns
        .spawn(
            &bin.display().to_string(),
            &["run", "--config", &cfg.display().to_string()],
            &log,
        )
        .context("starting netmedic-agent")?;
    wait_for(
        "agent running its checks",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if !agent.is_running() {
                return Err(format!("agent exited: {text}"));
            }
            text.contains("running in").then_some(()).ok_or(text)
        },
    )
    .map_err(|e| anyhow!("{e}"))?;
    let zconf = lab.dir().join("zabbix_agentd.conf");
    std::fs::write(
        &zconf,
        format!(
            "Server=127.0.0.1\nServerActive=\nListenIP=127.0.0.1\nListenPort=10050\nHostname=lab-cpe-0\n\
             LogType=console\nPidFile={}\nAllowRoot=1\n",
            lab.dir().join("zabbix_agentd.pid").display()
        ),
    )
    .with_context(|| format!("writing {}", zconf.display()))?;
    let zlog = lab.log_path("zabbix_agentd");
    let mut zabbix = cpe
        .ns
        .spawn(
            "zabbix_agentd",
            &["-f", "-c", &zconf.display().to_string()],
            &zlog,
        )
        .context("starting zabbix_agentd (apt-get install zabbix-agent; scripts/setup.sh does)")?;
    let figures = measure(
        &mut [
            ("netmedic-agent", &mut agent),
            ("zabbix_agentd", &mut zabbix),
        ],
        minutes,
    )?;
    println!("\nidle footprint over {minutes} min (after 1 min warm-up), same lab, same window:");
    if without.iter().any(|w| w == "all") {
        println!("(shipped config with every check off: the idle overhead)");
    } else if !without.is_empty() {
        println!("(shipped config without the checks {})", without.join(", "));
    }
    if let Some(h) = &hostapd {
        println!(
            "(shipped config with wifi_ap and wifi_events on, against a socket answering like \
             hostapd: {} requests answered, {:.2}/s)",
            h.requests(),
            h.requests() as f64 / (60.0 + minutes * 60.0)
        );
    }
    println!(
        "{:<20} {:>8} {:>8} {:>8} {:>11} {:>10} {:>10}",
        "process", "RSS MiB", "RSS max", "PSS MiB", "CPU ms/min", "wakeups/s", "preempt/s"
    );
    for (name, f) in ["netmedic-agent", "zabbix_agentd (tree)"]
        .iter()
        .zip(&figures)
    {
        println!(
            "{:<20} {:>8.2} {:>8.2} {:>8.2} {:>11.1} {:>10.2} {:>10.2}",
            name,
            f.rss_median_kib as f64 / 1024.0,
            f.rss_max_kib as f64 / 1024.0,
            f.pss_median_kib as f64 / 1024.0,
            f.cpu_ms_per_min,
            f.wakeups_per_sec,
            f.preemptions_per_sec
        );
    }
    println!(
        "wakeups/s: voluntary context switches (the process slept and was woken); preempt/s: \
         involuntary ones, which count the machine's load rather than the process"
    );
    println!("targets (netmedic-agent): RSS <= 4 MiB steady, <= 10 ms CPU/min, <= 1 wakeup/s");
    Ok(())
}
