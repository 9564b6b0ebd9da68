//! `netmedic-bench footprint`: steady RSS, PSS, CPU per minute and wakeups per second of an idle
//! netmedic-agent with the shipped default config (config/agent.toml, compiled in and pointed at
//! the lab's collector) in a lab CPE, measured over N minutes (after a 1-minute warm-up) beside
//! zabbix_agentd, running in the foreground on the same CPE's loopback in the same window. Prints
//! one table; asserts nothing. Run by scripts/bench-footprint.sh. With `--with-wifi`, the
//! `wifi_ap` and `wifi_events` checks are on, against a socket that answers like hostapd
//! ([`crate::hostapd_sock`]; there is no radio here for a real one).
//!
//! The lab's WAN lease is [`FIELD_LEASE_SECS`] unless `--lease-secs` says otherwise: a router in
//! service renews every few hours, while the lab's shortest lease (120 s, dnsmasq's minimum)
//! renews every minute and each renewal is an event the agent handles. The lease used is
//! printed with the figures.

use crate::hostapd_sock::HostapdSock;
use anyhow::{Context, Result, anyhow, bail};
use netmedic_lab::stack::{Stack, StackOptions, bin_path};
use netmedic_lab::{Lab, LabProcess, WAN_IFACE, wait_for};
use std::time::{Duration, Instant};

/// The shipped agent config, the one a router starts with.
const SHIPPED_AGENT_CONFIG: &str = include_str!("../../config/agent.toml");

/// The WAN lease of the bench's lab by default: one hour, the short end of what ISPs hand out
/// (hours to days), so the figures are those of a router in service between renewals.
pub const FIELD_LEASE_SECS: u32 = 3600;

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
    /// Threads of the tree (`/proc/PID/task`): each may bring a stack and a malloc arena.
    threads: u64,
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
                s.threads += 1;
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
    threads_max: u64,
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
        threads_max: samples.iter().map(|s| s.1.threads).max().unwrap_or(0),
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

/// Where a part of a process's memory lives, from its mappings in `/proc/PID/smaps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    /// The executable's code (`r-x`).
    BinText,
    /// Its read-only segment (`r--`, not written): `.rodata`, `.eh_frame`, `.rela.dyn`, symbols.
    BinReadOnly,
    /// `.data.rel.ro` after relocation (private copies) and `.data`.
    BinRelroData,
    Libc,
    LdSo,
    OtherLibs,
    Heap,
    /// glibc's per-thread malloc arenas: a mapping at a 64 MiB boundary with its reserve after it.
    Arenas,
    /// Thread stacks: a mapping right after a one-page guard (`---p`).
    ThreadStacks,
    MainStack,
    /// Other anonymous mappings: `.bss` beyond the file, large allocations, TLS.
    OtherAnon,
    /// `[vdso]`, `[vvar]` and other files.
    Other,
}

impl Part {
    fn label(self) -> &'static str {
        match self {
            Part::BinText => "binary .text (r-x)",
            Part::BinReadOnly => "binary read-only (.rodata, .eh_frame, relocs)",
            Part::BinRelroData => "binary .data.rel.ro + .data (relocated)",
            Part::Libc => "libc.so",
            Part::LdSo => "ld.so",
            Part::OtherLibs => "other shared libraries",
            Part::Heap => "[heap] (main malloc arena)",
            Part::Arenas => "malloc arenas of threads",
            Part::ThreadStacks => "thread stacks",
            Part::MainStack => "[stack] (main thread)",
            Part::OtherAnon => "other anonymous (.bss, big allocations)",
            Part::Other => "other ([vdso], files)",
        }
    }
}

/// KiB of one part: mapped, resident, proportional (shared pages divided by their sharers),
/// anonymous (private, never backed by a file).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Usage {
    mapped_kib: u64,
    rss_kib: u64,
    pss_kib: u64,
    anon_kib: u64,
    /// Touched since the accessed bits were cleared ([`WORKING_SET_WINDOW`] before the end).
    /// For shared pages, also by the other processes mapping them.
    referenced_kib: u64,
}

struct Mapping {
    start: u64,
    end: u64,
    perms: String,
    path: String,
    usage: Usage,
}

fn parse_smaps(text: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let first = words.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
        {
            let perms = words.next().unwrap_or("").to_string();
            // offset, device, inode, then the path (which may hold spaces).
            let path = words.skip(3).collect::<Vec<_>>().join(" ");
            out.push(Mapping {
                start,
                end,
                perms,
                path,
                usage: Usage {
                    mapped_kib: end.saturating_sub(start) / 1024,
                    ..Usage::default()
                },
            });
            continue;
        }
        let Some(m) = out.last_mut() else { continue };
        let mut value = || {
            words
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match first {
            "Rss:" => m.usage.rss_kib = value(),
            "Pss:" => m.usage.pss_kib = value(),
            "Anonymous:" => m.usage.anon_kib = value(),
            "Referenced:" => m.usage.referenced_kib = value(),
            _ => {}
        }
    }
    out
}

/// glibc's arena size on 64-bit (`HEAP_MAX_SIZE`): a thread's arena starts at such a boundary.
const ARENA_ALIGN: u64 = 64 << 20;

fn classify(maps: &[Mapping], i: usize, exe: &str) -> Part {
    let m = &maps[i];
    let file = m.path.rsplit('/').next().unwrap_or("");
    if !exe.is_empty() && m.path == exe {
        return match m.perms.as_str() {
            p if p.contains('x') => Part::BinText,
            p if p.starts_with("r--") && m.usage.anon_kib == 0 => Part::BinReadOnly,
            _ => Part::BinRelroData,
        };
    }
    if file.starts_with("libc.so") || file.starts_with("libc-") {
        return Part::Libc;
    }
    if file.starts_with("ld-linux") || file.starts_with("ld-musl") || file.starts_with("ld.so") {
        return Part::LdSo;
    }
    if file.contains(".so") {
        return Part::OtherLibs;
    }
    match m.path.as_str() {
        "[heap]" => return Part::Heap,
        "[stack]" => return Part::MainStack,
        "" => {}
        _ => return Part::Other,
    }
    let prev = i.checked_sub(1).and_then(|j| maps.get(j));
    let next = maps.get(i + 1);
    let guard_before = prev.is_some_and(|p| {
        p.end == m.start && p.perms.starts_with("---") && p.end - p.start <= 64 << 10
    });
    let reserve_after = next.is_some_and(|n| n.start == m.end && n.perms.starts_with("---"));
    let is_arena =
        |m: &Mapping, reserve_after: bool| m.start.is_multiple_of(ARENA_ALIGN) && reserve_after;
    if is_arena(m, reserve_after) {
        return Part::Arenas;
    }
    if m.perms.starts_with("---") {
        // An arena's reserve (after its mapped part) or a stack's guard (before the stack).
        if prev.is_some_and(|p| p.end == m.start && p.path.is_empty() && is_arena(p, true)) {
            return Part::Arenas;
        }
        if next
            .is_some_and(|n| n.start == m.end && n.path.is_empty() && !n.perms.starts_with("---"))
            && m.end - m.start <= 64 << 10
        {
            return Part::ThreadStacks;
        }
    }
    if guard_before {
        Part::ThreadStacks
    } else {
        Part::OtherAnon
    }
}

/// The process's memory by part (parts it does not have are left out), and the total.
fn breakdown(smaps: &str, exe: &str) -> (Vec<(Part, Usage)>, Usage) {
    let maps = parse_smaps(smaps);
    let mut parts: std::collections::BTreeMap<Part, Usage> = Default::default();
    let mut total = Usage::default();
    for (i, m) in maps.iter().enumerate() {
        let u = parts.entry(classify(&maps, i, exe)).or_default();
        for (sum, add) in [(&mut *u, m.usage), (&mut total, m.usage)] {
            sum.mapped_kib += add.mapped_kib;
            sum.rss_kib += add.rss_kib;
            sum.pss_kib += add.pss_kib;
            sum.anon_kib += add.anon_kib;
            sum.referenced_kib += add.referenced_kib;
        }
    }
    (parts.into_iter().collect(), total)
}

/// Prints where `pid`'s resident memory is, so every run explains its RSS figure.
fn print_breakdown(name: &str, pid: u32) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).unwrap_or_default();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count());
    let (parts, total) = breakdown(&smaps, &exe);
    println!(
        "\n{name} memory at the end of the window (/proc/{pid}/smaps), {threads} thread(s), KiB:"
    );
    println!(
        "{:<46} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "part", "mapped", "RSS", "PSS", "anon", "touched"
    );
    let rows = parts.iter().map(|(p, u)| (p.label(), u));
    for (label, u) in rows.chain(std::iter::once(("total", &total))) {
        println!(
            "{:<46} {:>9} {:>8} {:>8} {:>8} {:>8}",
            label, u.mapped_kib, u.rss_kib, u.pss_kib, u.anon_kib, u.referenced_kib
        );
    }
    println!(
        "touched: resident pages accessed in the last {} s (shared pages: by any process)",
        WORKING_SET_WINDOW.as_secs()
    );
}

/// How long before the end the breakdown's `touched` column starts counting.
const WORKING_SET_WINDOW: Duration = Duration::from_secs(60);

fn measure(procs: &mut [(&str, &mut LabProcess)], minutes: f64) -> Result<Vec<Figures>> {
    let warmup = Duration::from_secs(60);
    let every = Duration::from_secs(5);
    let start = Instant::now();
    let mut samples: Vec<Vec<(Instant, Sample)>> = vec![Vec::new(); procs.len()];
    let end = start + warmup + Duration::from_secs_f64(minutes * 60.0);
    let mut refs_cleared = false;
    while Instant::now() < end {
        // The sampling period of the benchmark itself, not a wait for a condition.
        std::thread::sleep(every);
        // The last minute's working set: clear the first (measured) process's accessed bits,
        // so smaps' `Referenced` at the end counts the pages it touched since.
        if !refs_cleared && end.saturating_duration_since(Instant::now()) <= WORKING_SET_WINDOW {
            if let Some((_, p)) = procs.first() {
                let _ = std::fs::write(format!("/proc/{}/clear_refs", p.pid()), "1");
            }
            refs_cleared = true;
        }
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

pub fn run(minutes: f64, without: &[String], wifi: bool, lease_secs: u32) -> Result<()> {
    let lab = Lab::builder()
        .cpes(1)
        .lease_secs(lease_secs)
        .build()
        .context("building the lab")?;
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
    print_breakdown("netmedic-agent", agent.pid());
    println!("\nidle footprint over {minutes} min (after 1 min warm-up), same lab, same window:");
    println!(
        "(WAN DHCP lease {} s: the DHCP client renews every {} s)",
        lease_secs.max(netmedic_lab::MIN_LEASE_SECS),
        lease_secs.max(netmedic_lab::MIN_LEASE_SECS) / 2
    );
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
        "{:<20} {:>8} {:>8} {:>8} {:>11} {:>10} {:>10} {:>8}",
        "process",
        "RSS MiB",
        "RSS max",
        "PSS MiB",
        "CPU ms/min",
        "wakeups/s",
        "preempt/s",
        "threads"
    );
    for (name, f) in ["netmedic-agent", "zabbix_agentd (tree)"]
        .iter()
        .zip(&figures)
    {
        println!(
            "{:<20} {:>8.2} {:>8.2} {:>8.2} {:>11.1} {:>10.2} {:>10.2} {:>8}",
            name,
            f.rss_median_kib as f64 / 1024.0,
            f.rss_max_kib as f64 / 1024.0,
            f.pss_median_kib as f64 / 1024.0,
            f.cpu_ms_per_min,
            f.wakeups_per_sec,
            f.preemptions_per_sec,
            f.threads_max
        );
    }
    println!(
        "wakeups/s: voluntary context switches (the process slept and was woken); preempt/s: \
         involuntary ones, which count the machine's load rather than the process; threads: \
         the most seen in one sample"
    );
    println!("targets (netmedic-agent): RSS <= 4 MiB steady, <= 10 ms CPU/min, <= 1 wakeup/s");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An excerpt of a real agent's smaps (glibc, dynamically linked), fields trimmed.
    const SMAPS: &str = "\
55c208331000-55c20847c000 r--p 00000000 fe:01 1 /opt/netmedic-agent
Rss:                 576 kB
Pss:                 576 kB
Anonymous:             0 kB
55c20847c000-55c2087a9000 r-xp 0014b000 fe:01 1 /opt/netmedic-agent
Rss:                3140 kB
Pss:                3140 kB
Anonymous:             0 kB
Referenced:         2716 kB
55c2087a9000-55c2087ca000 r--p 00478000 fe:01 1 /opt/netmedic-agent
Rss:                 132 kB
Pss:                 132 kB
Anonymous:           132 kB
55c2351ac000-55c23528c000 rw-p 00000000 00:00 0 [heap]
Rss:                 748 kB
Pss:                 748 kB
Anonymous:           748 kB
7fae48000000-7fae48021000 rw-p 00000000 00:00 0
Rss:                  12 kB
Pss:                  12 kB
Anonymous:            12 kB
7fae48021000-7fae4c000000 ---p 00000000 00:00 0
Rss:                   0 kB
7fae55388000-7fae55389000 ---p 00000000 00:00 0
Rss:                   0 kB
7fae55389000-7fae55589000 rw-p 00000000 00:00 0
Rss:                   8 kB
Pss:                   8 kB
Anonymous:             8 kB
7fae5598b000-7fae5598e000 rw-p 00000000 00:00 0
Rss:                   8 kB
Pss:                   8 kB
Anonymous:             8 kB
7fae559b4000-7fae55b0a000 r-xp 00026000 fe:01 2 /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                1136 kB
Pss:                  34 kB
Anonymous:             0 kB
7fae55ba5000-7fae55bcb000 r-xp 00001000 fe:01 3 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
Rss:                 152 kB
Pss:                   5 kB
Anonymous:             0 kB
7fff7d292000-7fff7d2b3000 rw-p 00000000 00:00 0 [stack]
Rss:                  64 kB
Pss:                  64 kB
Anonymous:            64 kB
";

    #[test]
    fn smaps_breakdown_groups_mappings() {
        let (parts, total) = breakdown(SMAPS, "/opt/netmedic-agent");
        let rss = |part| {
            parts
                .iter()
                .find(|(p, _)| *p == part)
                .map_or(0, |(_, u)| u.rss_kib)
        };
        assert_eq!(rss(Part::BinText), 3140);
        assert_eq!(total.referenced_kib, 2716);
        assert_eq!(rss(Part::BinReadOnly), 576);
        assert_eq!(rss(Part::BinRelroData), 132);
        assert_eq!(rss(Part::Heap), 748);
        assert_eq!(rss(Part::Arenas), 12);
        assert_eq!(rss(Part::ThreadStacks), 8);
        assert_eq!(rss(Part::OtherAnon), 8);
        assert_eq!(rss(Part::Libc), 1136);
        assert_eq!(rss(Part::LdSo), 152);
        assert_eq!(rss(Part::MainStack), 64);
        let mapped = |part| {
            parts
                .iter()
                .find(|(p, _)| *p == part)
                .map_or(0, |(_, u)| u.mapped_kib)
        };
        // The arena's 64 MiB with its reserve; the stack with its guard page.
        assert_eq!(mapped(Part::Arenas), 64 << 10);
        assert_eq!(mapped(Part::ThreadStacks), 2048 + 4);
        assert_eq!(mapped(Part::OtherAnon), 12);
        assert_eq!(total.rss_kib, 5976);
        assert_eq!(
            total.pss_kib,
            3140 + 576 + 132 + 748 + 12 + 8 + 8 + 34 + 5 + 64
        );
        assert_eq!(
            total.mapped_kib,
            parts.iter().map(|(_, u)| u.mapped_kib).sum::<u64>()
        );
    }
}
