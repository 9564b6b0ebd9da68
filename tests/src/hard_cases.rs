//! Helpers for the hard-case safety tests: a deadline-driven WAN carrier flapper (the host
//! kernel has no netem: the ISP end of the WAN veth goes down and up), LAN traffic from the
//! subscriber's namespace, and a few facts read back from the agent (actions run, budget
//! charges).

use crate::{Cpe, LabProcess, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// Flaps the WAN carrier of `cpe` for `total`: down for `down`, up for `up`, again, on a
/// schedule of absolute deadlines (a slow `ip` call shortens the next phase, it never
/// stretches the flapping). Ends with the carrier up. Returns the carrier changes made.
pub fn flap_carrier(cpe: &Cpe, down: Duration, up: Duration, total: Duration) -> Result<u32> {
    let start = Instant::now();
    let end = start + total;
    let mut next = start;
    let mut changes = 0;
    let result = (|| {
        while next < end {
            cpe.drop_wan_carrier()?;
            changes += 1;
            next += down;
            sleep_until(next);
            cpe.restore_wan_carrier()?;
            changes += 1;
            next += up;
            sleep_until(next.min(end));
        }
        Ok(changes)
    })();
    // Whatever happened, the link is left up.
    let _ = cpe.restore_wan_carrier();
    result
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Subscriber traffic on the LAN while it lives: the LAN host pings the CPE's LAN address
/// five times a second and a lab "internet" address through the CPE once a second. The pings
/// are killed (by PID) when this is dropped.
#[derive(Debug)]
pub struct LanTraffic {
    procs: Vec<LabProcess>,
}

impl LanTraffic {
    pub fn start(cpe: &Cpe, upstream: std::net::Ipv4Addr, log_dir: &Path) -> Result<Self> {
        let lan = cpe.lan_ip.to_string();
        let up = upstream.to_string();
        let procs = vec![
            cpe.lan_ns.spawn(
                "ping",
                &["-n", "-q", "-i", "0.2", "-s", "1000", &lan],
                log_dir.join(format!("lan-traffic-{}-lan.log", cpe.index)),
            )?,
            cpe.lan_ns.spawn(
                "ping",
                &["-n", "-q", "-i", "1", &up],
                log_dir.join(format!("lan-traffic-{}-up.log", cpe.index)),
            )?,
        ];
        Ok(Self { procs })
    }

    /// Whether every traffic source still runs.
    pub fn running(&mut self) -> bool {
        self.procs.iter_mut().all(LabProcess::is_running)
    }
}

/// The actions the agent started, in order (`running <action> for <check>` log lines).
pub fn actions_run(agent_log: &str) -> Vec<String> {
    agent_log
        .lines()
        .filter_map(|l| {
            let rest = l.split("running ").nth(1)?;
            let mut w = rest.split_whitespace();
            let action = w.next()?;
            (w.next() == Some("for")).then(|| action.to_string())
        })
        .collect()
}

/// Charges in the agent's persisted budget file (0 when there is none).
pub fn budget_charges(state_dir: &Path) -> usize {
    std::fs::read(state_dir.join("heal-budget.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["charges"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// The duration of the healthy soak: `NETMEDIC_HEALTHY_SOAK_SECS`, else `default_secs`.
pub fn soak_duration(default_secs: u64) -> Duration {
    let secs = std::env::var("NETMEDIC_HEALTHY_SOAK_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(default_secs);
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_actions_the_agent_ran() {
        let log = "x INFO running restore_route for default_route\n\
                   y WARN incident 1: reset_dns passed over: z\n\
                   z INFO running reset_dns for dns\nnot running anything\n";
        assert_eq!(actions_run(log), ["restore_route", "reset_dns"]);
    }
}
