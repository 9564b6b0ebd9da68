//! `netmedic-bench heal`: the shipped-config heal benchmark. The lab runs the real agent with
//! `config/agent.toml` where only site-specific keys are replaced (printed), beside a real
//! collector, injects each local fault the agent claims to heal several times and prints, per
//! fault, detection (injection → the agent's "incident opened" log line), heal (injection →
//! the fault is gone in the namespace) and collector (injection → the incident is stored
//! resolved and auto-healed) times: median, p95 and worst. It asserts nothing.
//!
//! Every run starts a fresh agent with a fresh `state_dir`: the shipped budgets (reset_dns 3
//! per hour, 12 actions per hour in all) and `ladder_memory_secs` (a fault back within 30 min
//! resumes its ladder) are there to stop a flapping device, so repeating a fault on one agent
//! would measure them, not healing. Each run is the first time the fault hits a device. The
//! reporter's start delay (`start_delay_max_secs`, a fleet-restart jitter) is waited out
//! before each injection: a device in service has long passed it.

use crate::agent::{log_line_ms, percentile, unix_ms_now};
use netmedic_lab::faults::{LanDnsmasq, conntrack_count, fill_conntrack};
use netmedic_lab::heal_faults::lan_dnsmasq_restart_argv;
use netmedic_lab::stack::{COLLECTOR_PORT, Stack, StackOptions, spawn_agent};
use netmedic_lab::{
    COLLECTOR_NAME, Cpe, ISP_GATEWAY, LAN_IFACE, Lab, LabError, LabProcess, PROBE_IP, PROBE2_IP,
    Result, WAN_IFACE, wait_for,
};
use netmedic_proto::{CheckId, IncidentStatus};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use toml::{Table, Value};

/// How long one run may take to heal (and to reach the collector) before it counts as missed.
const RUN_DEADLINE: Duration = Duration::from_secs(120);
/// The lab's conntrack limit (`checks.conntrack.max_entries`): `nf_conntrack_max` is global and
/// read-only in a lab namespace, so the table is "full" against this instead.
const CONNTRACK_MAX: u64 = 200;

/// A local fault the agent claims to heal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Route,
    WanAddress,
    ResolvConf,
    LanDnsmasq,
    Conntrack,
    Mtu,
    WanAdminDown,
}

impl Fault {
    pub const ALL: [Fault; 7] = [
        Fault::Route,
        Fault::WanAddress,
        Fault::ResolvConf,
        Fault::LanDnsmasq,
        Fault::Conntrack,
        Fault::Mtu,
        Fault::WanAdminDown,
    ];

    /// The name `--faults` takes.
    pub fn key(self) -> &'static str {
        match self {
            Fault::Route => "route",
            Fault::WanAddress => "address",
            Fault::ResolvConf => "dns",
            Fault::LanDnsmasq => "service",
            Fault::Conntrack => "conntrack",
            Fault::Mtu => "mtu",
            Fault::WanAdminDown => "admin-down",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Fault::Route => "default route deleted",
            Fault::WanAddress => "WAN address flushed",
            Fault::ResolvConf => "resolv.conf emptied",
            Fault::LanDnsmasq => "LAN dnsmasq killed",
            Fault::Conntrack => "conntrack table full",
            Fault::Mtu => "WAN MTU 1400 (want 1500)",
            Fault::WanAdminDown => "WAN set admin down",
        }
    }

    fn check(self) -> CheckId {
        match self {
            Fault::Route => CheckId::DefaultRoute,
            Fault::WanAddress => CheckId::WanAddress,
            Fault::ResolvConf => CheckId::Dns,
            Fault::LanDnsmasq => CheckId::Service,
            Fault::Conntrack => CheckId::Conntrack,
            Fault::Mtu => CheckId::Mtu,
            Fault::WanAdminDown => CheckId::Link,
        }
    }
}

/// What the faults need besides the CPE: the supervised LAN dnsmasq.
struct Env<'a> {
    cpe: &'a Cpe,
    dnsmasq_pidfile: PathBuf,
    resolv_conf: String,
}

impl Env<'_> {
    /// The pid of the running LAN dnsmasq (from its pidfile), if it runs.
    fn dnsmasq_pid(&self) -> std::result::Result<u32, String> {
        let pid: u32 = std::fs::read_to_string(&self.dnsmasq_pidfile)
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|e| format!("pidfile: {e}"))?;
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
        match stat.rsplit(") ").next().and_then(|s| s.chars().next()) {
            Some('Z') | None => Err(format!("{pid} is a zombie")),
            Some(_) => Ok(pid),
        }
    }

    fn inject(&self, f: Fault) -> Result<()> {
        let c = self.cpe;
        match f {
            Fault::Route => c.delete_default_route(),
            Fault::WanAddress => c.flush_wan_address(),
            Fault::ResolvConf => c.write_resolv_conf(""),
            Fault::LanDnsmasq => {
                let pid = self.dnsmasq_pid().map_err(LabError::Setup)?;
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .map_err(|e| LabError::Setup(format!("kill {pid}: {e}")))?;
                wait_for(
                    "the LAN dnsmasq to die",
                    Duration::from_secs(5),
                    Duration::from_millis(10),
                    || match self.dnsmasq_pid() {
                        Ok(p) if p == pid => Err("still running".to_string()),
                        _ => Ok(()),
                    },
                )
            }
            Fault::Conntrack => fill_conntrack(c, PROBE_IP, CONNTRACK_MAX as u16 + 20).map(drop),
            Fault::Mtu => c.set_wan_mtu(1400),
            Fault::WanAdminDown => c.ns.ip(&["link", "set", WAN_IFACE, "down"]).map(drop),
        }
    }

    /// `Ok` when the fault is gone in the namespace.
    fn healthy(&self, f: Fault) -> std::result::Result<(), String> {
        let c = self.cpe;
        let e = |e: LabError| e.to_string();
        match f {
            Fault::Route | Fault::WanAddress | Fault::WanAdminDown => {
                let up = c.wan_has_carrier().map_err(e)?;
                let ip = c.wan_ip().map_err(e)?;
                let route = c.default_route().map_err(e)?;
                if up && ip.is_some() && route.is_some() {
                    Ok(())
                } else {
                    Err(format!("carrier {up}, address {ip:?}, route {route:?}"))
                }
            }
            Fault::ResolvConf => {
                let text = c.resolv_conf().map_err(e)?;
                if text
                    .lines()
                    .any(|l| l.trim_start().starts_with("nameserver"))
                {
                    Ok(())
                } else {
                    Err("resolv.conf names no nameserver".into())
                }
            }
            Fault::LanDnsmasq => self.dnsmasq_pid().map(drop),
            Fault::Conntrack => match conntrack_count(c).map_err(e)? {
                n if n * 100 < CONNTRACK_MAX * 80 => Ok(()),
                n => Err(format!("{n} entries tracked")),
            },
            Fault::Mtu => match c.wan_mtu().map_err(e)? {
                1500 => Ok(()),
                m => Err(format!("MTU {m}")),
            },
        }
    }

    /// Puts things right by hand after a run the agent did not heal in time.
    fn undo(&self, f: Fault, restart_argv: &[String]) {
        let c = self.cpe;
        let gw = ISP_GATEWAY.to_string();
        let _ = match f {
            Fault::Route => {
                c.ns.ip(&["route", "replace", "default", "via", &gw, "dev", WAN_IFACE])
                    .map(drop)
            }
            Fault::WanAddress => c.renew_lease(),
            Fault::ResolvConf => c.write_resolv_conf(&self.resolv_conf),
            Fault::LanDnsmasq => {
                let argv: Vec<&str> = restart_argv.iter().map(String::as_str).collect();
                c.ns.exec_unchecked(&argv).map(drop)
            }
            // Unreplied UDP entries expire after 30 s.
            Fault::Conntrack => Ok(()),
            Fault::Mtu => c.set_wan_mtu(1500),
            Fault::WanAdminDown => {
                c.ns.ip(&["link", "set", WAN_IFACE, "up"])
                    .and_then(|_| {
                        c.ns.ip(&["route", "replace", "default", "via", &gw, "dev", WAN_IFACE])
                    })
                    .map(drop)
            }
        };
    }
}

/// One run's figures, in seconds; `None` where the deadline passed.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    detect: Option<f64>,
    heal: Option<f64>,
    collector: Option<f64>,
}

/// Sets `path` (dotted) in `table` to `value`, creating tables on the way.
fn set(table: &mut Table, path: &str, value: Value) -> Result<()> {
    let mut parts: Vec<&str> = path.split('.').collect();
    let last = parts
        .pop()
        .ok_or_else(|| LabError::Setup("empty key".into()))?;
    let mut t = table;
    for p in parts {
        t = t
            .entry(p)
            .or_insert_with(|| Value::Table(Table::new()))
            .as_table_mut()
            .ok_or_else(|| LabError::Setup(format!("{path}: {p} is not a table")))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

fn s(v: impl std::fmt::Display) -> Value {
    Value::String(v.to_string())
}

/// The site-specific keys the lab replaces in the shipped config, as (key, value) pairs.
fn site_keys(
    lab: &Lab,
    env: &Env<'_>,
    state: &Path,
    restart_argv: &[String],
) -> Vec<(&'static str, Value)> {
    let cpe = env.cpe;
    let service = Table::from_iter([
        ("name".to_string(), s("dnsmasq")),
        ("pidfile".to_string(), s(env.dnsmasq_pidfile.display())),
        ("process".to_string(), s("dnsmasq")),
        ("same_netns".to_string(), Value::Boolean(true)),
    ]);
    let restart = Table::from_iter([
        ("name".to_string(), s("dnsmasq")),
        (
            "command".to_string(),
            Value::Array(restart_argv.iter().map(s).collect()),
        ),
    ]);
    vec![
        ("agent.id", s("lab-cpe-0")),
        ("agent.state_dir", s(state.display())),
        (
            "collector.url",
            s(format!("http://{COLLECTOR_NAME}:{COLLECTOR_PORT}")),
        ),
        (
            "collector.token_file",
            s(lab.dir().join("agent0.token").display()),
        ),
        ("wan.interface", s(WAN_IFACE)),
        ("wan.lease_file", s(cpe.lease_file.display())),
        (
            "checks.icmp.targets",
            Value::Array(vec![s(PROBE_IP), s(PROBE2_IP)]),
        ),
        ("checks.mtu.expected_mtu", Value::Integer(1500)),
        (
            "checks.conntrack.max_entries",
            Value::Integer(CONNTRACK_MAX as i64),
        ),
        (
            "checks.service.services",
            Value::Array(vec![Value::Table(service)]),
        ),
        (
            "healing.restart_service",
            Value::Array(vec![Value::Table(restart)]),
        ),
        (
            "healing.kill_switch_file",
            s(lab.dir().join("healing.disabled").display()),
        ),
        ("healing.busy_interface", s(LAN_IFACE)),
    ]
}

/// The shipped config with the site-specific keys replaced.
fn derive_config(shipped: &str, keys: &[(&'static str, Value)]) -> Result<String> {
    let mut table: Table = shipped
        .parse()
        .map_err(|e| LabError::Setup(format!("the shipped config does not parse: {e}")))?;
    for (k, v) in keys {
        set(&mut table, k, v.clone())?;
    }
    toml::to_string(&table).map_err(|e| LabError::Setup(format!("serialising the config: {e}")))
}

/// The reporter's start delay from the agent's log: when its first delivery may happen (ms).
fn first_delivery_ms(log: &str) -> Option<i64> {
    log.lines().find_map(|l| {
        let rest = l.split("reporter: first delivery in ").nth(1)?;
        let secs: f64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(log_line_ms(l)? + (secs * 1000.0) as i64)
    })
}

struct Bench<'a> {
    lab: &'a Lab,
    stack: Stack<'a>,
    env: Env<'a>,
    shipped: String,
    restart_argv: Vec<String>,
    dir: PathBuf,
}

impl Bench<'_> {
    fn count_healed(&self, f: Fault) -> usize {
        self.stack.incidents().map_or(0, |p| {
            p.incidents
                .iter()
                .filter(|i| {
                    i.check == f.check()
                        && i.status == IncidentStatus::Resolved
                        && i.auto_healed == Some(true)
                })
                .count()
        })
    }

    /// Starts a fresh agent on the derived config and waits until it has judged `f`'s check
    /// and its reporter's start delay is over.
    fn start_agent(&self, f: Fault, run: usize) -> Result<(LabProcess, PathBuf)> {
        let name = format!("{}-{run}", f.key());
        let dir = self.dir.join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| LabError::Setup(e.to_string()))?;
        let keys = site_keys(self.lab, &self.env, &dir.join("state"), &self.restart_argv);
        let cfg = dir.join("agent.toml");
        std::fs::write(&cfg, derive_config(&self.shipped, &keys)?)
            .map_err(|e| LabError::Setup(e.to_string()))?;
        let log = self.lab.log_path(&format!("bench-heal-{name}"));
        let mut agent = spawn_agent(self.env.cpe, &cfg, &log)?;
        let marker = format!("check {}:", f.check());
        wait_for(
            "the agent to judge the check and end its start delay",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                if !agent.is_running() {
                    return Err(format!("agent exited: {}", agent.log_tail(20)));
                }
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let started = text.contains(&marker) && text.contains("check link:");
                // The reporter logs its start delay before the first check runs; no line: none.
                let delay_over = first_delivery_ms(&text).is_none_or(|t| unix_ms_now() > t + 300);
                if started && delay_over {
                    Ok(())
                } else if !text.contains(&marker) {
                    Err(format!(
                        "check {} has not run (off in this config?)",
                        f.check()
                    ))
                } else {
                    Err("waiting for the reporter's start delay".to_string())
                }
            },
        )?;
        Ok((agent, log))
    }

    fn run_once(&self, f: Fault, run: usize) -> Result<Run> {
        wait_for(
            &format!("{} healthy before run {run}", f.key()),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || self.env.healthy(f),
        )?;
        let (mut agent, log) = self.start_agent(f, run)?;
        let before = self.count_healed(f);
        let t0 = unix_ms_now();
        let start = Instant::now();
        self.env.inject(f)?;
        let mut r = Run::default();
        let healed = wait_for(
            "the fault gone",
            RUN_DEADLINE,
            Duration::from_millis(50),
            || self.env.healthy(f),
        );
        if healed.is_ok() {
            r.heal = Some(start.elapsed().as_secs_f64());
            let stored = wait_for(
                "a resolved auto-healed incident at the collector",
                RUN_DEADLINE.saturating_sub(start.elapsed()),
                Duration::from_millis(100),
                || {
                    let n = self.count_healed(f);
                    if n > before {
                        Ok(())
                    } else {
                        Err(format!("{n} stored"))
                    }
                },
            );
            if stored.is_ok() {
                r.collector = Some(start.elapsed().as_secs_f64());
            }
        } else {
            self.env.undo(f, &self.restart_argv);
        }
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let opened = format!("incident opened: {}", f.check());
        r.detect = text
            .lines()
            .find(|l| l.contains(&opened))
            .and_then(log_line_ms)
            .map(|t| (t - t0) as f64 / 1000.0);
        if r.heal.is_none() || r.collector.is_none() {
            eprintln!(
                "  {} run {run}: missed (heal {:?}, collector {:?}); agent log: {}",
                f.key(),
                r.heal,
                r.collector,
                log.display()
            );
        }
        let _ = agent.kill();
        Ok(r)
    }
}

/// Median, p95 (nearest rank) and worst of the runs that finished, and how many did not.
fn stats(v: &[Option<f64>]) -> String {
    let mut done: Vec<f64> = v.iter().flatten().copied().collect();
    done.sort_by(f64::total_cmp);
    let missed = v.len() - done.len();
    let body = if done.is_empty() {
        format!("{:>6} {:>6} {:>6}", "-", "-", "-")
    } else {
        format!(
            "{:>6.1} {:>6.1} {:>6.1}",
            percentile(&done, 50.0),
            percentile(&done, 95.0),
            done.last().copied().unwrap_or(f64::NAN)
        )
    };
    if missed > 0 {
        format!("{body} ({missed} missed)")
    } else {
        body
    }
}

/// Runs the benchmark: `runs` injections of each fault in `faults`, with the shipped config
/// at `shipped_path`.
pub fn run(shipped_path: &Path, runs: usize, faults: &[Fault]) -> Result<()> {
    let shipped = std::fs::read_to_string(shipped_path)
        .map_err(|e| LabError::Setup(format!("{}: {e}", shipped_path.display())))?;
    let lab = Lab::builder().build()?;
    let cpe = lab.cpe(0);
    let mut stack = Stack::start(&lab, StackOptions::default())?;
    // The stack's own agent (lab config) is replaced by one on the shipped config per run.
    if let Some(mut a) = stack.agents[0].take() {
        let _ = a.kill();
    }
    let mut dnsmasq = LanDnsmasq::start(&lab, cpe)?;
    let pidfile = dnsmasq.pidfile().to_path_buf();
    let restart_log = lab.log_path("cpe0-lan-dnsmasq-restarted");
    let argv_toml = lan_dnsmasq_restart_argv(cpe, &pidfile, &restart_log);
    let restart_argv: Vec<String> = format!("a = {argv_toml}")
        .parse::<Table>()
        .ok()
        .and_then(|t| t.get("a").and_then(Value::as_array).cloned())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .ok_or_else(|| LabError::Setup(format!("restart argv {argv_toml}")))?;
    // From here on the LAN dnsmasq is one the agent restarts (daemonised, same pidfile).
    dnsmasq.crash()?;
    let argv: Vec<&str> = restart_argv.iter().map(String::as_str).collect();
    cpe.ns.exec(&argv)?;
    let env = Env {
        cpe,
        dnsmasq_pidfile: pidfile,
        resolv_conf: cpe.resolv_conf()?,
    };
    let dir = lab.dir().join("bench-heal");
    std::fs::create_dir_all(&dir).map_err(|e| LabError::Setup(e.to_string()))?;
    let bench = Bench {
        lab: &lab,
        stack,
        env,
        shipped,
        restart_argv,
        dir,
    };

    println!(
        "netmedic shipped-config heal benchmark: {} with only these keys replaced:",
        shipped_path.display()
    );
    for (k, v) in site_keys(
        &lab,
        &bench.env,
        Path::new("<fresh per run>"),
        &bench.restart_argv,
    ) {
        let shown = match &v {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        let shown: String = shown.chars().take(110).collect();
        println!("  {k} = {shown}");
    }
    println!(
        "{runs} injection(s) per fault, a fresh agent and state_dir per run; times in seconds from injection\n"
    );

    let mut rows = Vec::new();
    for &f in faults {
        let mut all = Vec::new();
        for run in 1..=runs {
            match bench.run_once(f, run) {
                Ok(r) => all.push(r),
                Err(e) => {
                    eprintln!("  {} run {run}: {e}", f.key());
                    all.push(Run::default());
                    bench.env.undo(f, &bench.restart_argv);
                }
            }
        }
        let row = format!(
            "{:<26} {:>2}  {:<27}{:<27}{}",
            f.describe(),
            all.len(),
            stats(&all.iter().map(|r| r.detect).collect::<Vec<_>>()),
            stats(&all.iter().map(|r| r.heal).collect::<Vec<_>>()),
            stats(&all.iter().map(|r| r.collector).collect::<Vec<_>>()),
        );
        eprintln!("{row}");
        rows.push(row);
    }
    println!(
        "{:<30}{:<27}{:<27}collector resolved",
        "", "detected", "fault gone"
    );
    let cols = format!("{:>6} {:>6} {:>6}", "median", "p95", "worst");
    println!("{:<26} {:>2}  {cols:<27}{cols:<27}{cols}", "fault", "n");
    for r in rows {
        println!("{r}");
    }
    // The daemonised LAN dnsmasq is not a child of ours: stop it by its pid.
    if let Ok(pid) = bench.env.dnsmasq_pid() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_replaced_and_tables_created() {
        let shipped = "[agent]\nid = \"x\"\n[checks.service]\nservices = []\n";
        let text = derive_config(
            shipped,
            &[
                ("agent.id", s("y")),
                ("checks.mtu.expected_mtu", Value::Integer(1500)),
            ],
        )
        .unwrap();
        let t: Table = text.parse().unwrap();
        assert_eq!(t["agent"]["id"].as_str(), Some("y"));
        assert_eq!(t["checks"]["mtu"]["expected_mtu"].as_integer(), Some(1500));
        assert!(t["checks"]["service"]["services"].as_array().is_some());
    }

    #[test]
    fn start_delay_is_read_from_the_log() {
        let log =
            "2026-11-23T09:19:49.451Z INFO  reporter: first delivery in 2.5 s (start delay)\n";
        assert_eq!(first_delivery_ms(log), Some(1_795_425_589_451 + 2_500));
        assert_eq!(first_delivery_ms("nothing"), None);
    }
}
