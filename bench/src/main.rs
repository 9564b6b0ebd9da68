//! `netmedic-bench`: the agent's benchmarks in the lab (run as root). `agent` measures link-down
//! detection latency over real carrier drops and the CPU time of one full check cycle;
//! `footprint` measures an idle agent's memory, CPU and wakeups beside zabbix_agentd. They print
//! figures; nothing asserts a time. `heal` is the shipped-config heal benchmark.

mod agent;
mod footprint;
mod heal;
mod hostapd_sock;

use std::process::ExitCode;

const USAGE: &str = "\
netmedic-bench — the netmedic agent benchmarks (run as root; binaries from NETMEDIC_BIN_DIR)

USAGE:
    netmedic-bench agent [--drops N] [--runs N]
                          link-down detection latency over N carrier drops (default 100) and
                          the CPU time of one full check cycle (default 20 runs)
    netmedic-bench footprint [--minutes N] [--without CHECK,...] [--with-wifi] [--lease-secs N]
                          idle RSS/PSS, CPU per minute and wakeups per second of the agent with
                          the shipped config, beside zabbix_agentd, over N minutes (default 10)
                          after a 1-minute warm-up; --without turns those checks off (e.g.
                          `icmp,default_route`: the agent's cost beyond its probes);
                          --with-wifi turns wifi_ap and wifi_events on against a socket that
                          answers like hostapd (no radio needed); --lease-secs sets the lab's
                          WAN DHCP lease (default 3600, a router in service; 120, the lab's
                          minimum, renews every minute)
    netmedic-bench heal [--runs N] [--faults a,b,..] [--config PATH]
                          the shipped config (config/agent.toml, only site-specific keys
                          replaced): each local fault injected N times (default 5): detection,
                          fault gone and resolved auto-healed at the collector (median, p95,
                          worst). Faults: route address dns service conntrack mtu admin-down";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| -> Result<Option<f64>, String> {
        match args.iter().position(|a| a == name) {
            None => Ok(None),
            Some(i) => args
                .get(i + 1)
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v > 0.0)
                .map(Some)
                .ok_or_else(|| format!("{name} needs a positive number")),
        }
    };
    let result = match args.first().map(String::as_str) {
        Some("agent") => match (flag("--drops"), flag("--runs")) {
            (Ok(drops), Ok(runs)) => run_agent(
                drops.map_or(100, |d| d as usize),
                runs.map_or(20, |r| r as usize),
            ),
            (Err(e), _) | (_, Err(e)) => return usage_error(&e),
        },
        Some("footprint") => {
            let without: Vec<String> = match args.iter().position(|a| a == "--without") {
                None => Vec::new(),
                Some(i) => match args.get(i + 1) {
                    Some(list) => list.split(',').map(str::to_string).collect(),
                    None => return usage_error("--without needs a list of checks"),
                },
            };
            match (flag("--minutes"), flag("--lease-secs")) {
                (Ok(minutes), Ok(lease)) => {
                    let wifi = args.iter().any(|a| a == "--with-wifi");
                    let lease = lease.map_or(footprint::FIELD_LEASE_SECS, |s| s as u32);
                    footprint::run(minutes.unwrap_or(10.0), &without, wifi, lease)
                        .map_err(|e| format!("{e:#}"))
                }
                (Err(e), _) | (_, Err(e)) => return usage_error(&e),
            }
        }
        Some("heal") => match (flag("--runs"), heal_args(&args)) {
            (Ok(runs), Ok((config, faults))) => {
                heal::run(&config, runs.map_or(5, |r| r as usize), &faults)
                    .map_err(|e| e.to_string())
            }
            (Err(e), _) | (_, Err(e)) => return usage_error(&e),
        },
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => return usage_error(&format!("unknown command {other:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netmedic-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `--config PATH` (default: the repository's config/agent.toml) and `--faults a,b`.
fn heal_args(args: &[String]) -> Result<(std::path::PathBuf, Vec<heal::Fault>), String> {
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .map(|i| {
                args.get(i + 1)
                    .cloned()
                    .ok_or(format!("{name} needs a value"))
            })
            .transpose()
    };
    let config = value("--config")?.map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("config")
                .join("agent.toml")
        },
        std::path::PathBuf::from,
    );
    let faults = match value("--faults")? {
        None => heal::Fault::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .map(|k| {
                heal::Fault::ALL
                    .into_iter()
                    .find(|f| f.key() == k.trim())
                    .ok_or_else(|| format!("unknown fault {k:?}"))
            })
            .collect::<Result<_, _>>()?,
    };
    Ok((config, faults))
}

fn usage_error(e: &str) -> ExitCode {
    eprintln!("netmedic-bench: {e}\n\n{USAGE}");
    ExitCode::from(64)
}

fn run_agent(drops: usize, runs: usize) -> Result<(), String> {
    println!("netmedic agent benchmark (lab, debug or release as built; 2 shared cores)");
    let link = agent::link_down_latency(drops);
    let cycle = agent::check_cycle_cpu(runs);
    match (link, cycle) {
        (Ok(l), Ok(c)) => {
            println!("{}", l.report());
            println!("{c}");
            Ok(())
        }
        (l, c) => Err([l.err(), c.err()]
            .into_iter()
            .flatten()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; ")),
    }
}
