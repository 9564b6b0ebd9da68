//! Helpers for the hard-case safety tests: a deadline-driven WAN carrier flapper (the host
//! kernel has no netem: the ISP end of the WAN veth goes down and up), LAN traffic from the
//! subscriber's namespace, and a few facts read back from the agent (actions run, budget
//! charges).

use crate::{Cpe, Result};
use std::net::{Ipv4Addr, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Subscriber traffic on the LAN while it lives, sent from the LAN host's namespace by a
/// thread of this process (the machine has no `ping`): 1000-byte UDP datagrams to the CPE's
/// LAN address 20 times a second, and once a second a DNS query for `name` to `resolver`
/// through the CPE (routed and masqueraded to the ISP). Stopped when dropped.
#[derive(Debug)]
pub struct LanTraffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    answers: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl LanTraffic {
    pub fn start(cpe: &Cpe, resolver: Ipv4Addr, name: &str) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let answers = Arc::new(AtomicU64::new(0));
        let (ns, lan_ip, query) = (cpe.lan_ns.clone(), cpe.lan_ip, dns_query(name));
        let (s, n, a) = (stop.clone(), sent.clone(), answers.clone());
        let thread = std::thread::spawn(move || {
            ns.run(move || -> std::io::Result<()> {
                let sock = UdpSocket::bind("0.0.0.0:0")?;
                sock.set_nonblocking(true)?;
                let payload = [0x5au8; 1000];
                let mut tick = 0u64;
                let mut buf = [0u8; 1500];
                while !s.load(Ordering::Relaxed) {
                    // A closed port answers with ICMP, which a UDP socket may report later.
                    let _ = sock.send_to(&payload, (lan_ip, 9));
                    if tick.is_multiple_of(20) {
                        let _ = sock.send_to(&query, (resolver, 53));
                    }
                    n.fetch_add(1, Ordering::Relaxed);
                    while let Ok((len, from)) = sock.recv_from(&mut buf) {
                        if from.port() == 53 && len > 12 {
                            a.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    tick += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Ok(())
            })?
            .map_err(|e| crate::LabError::Setup(format!("LAN traffic: {e}")))
        });
        Ok(Self {
            stop,
            sent,
            answers,
            thread: Some(thread),
        })
    }

    /// Datagrams sent and DNS answers received so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.answers.load(Ordering::Relaxed),
        )
    }

    /// Whether the traffic thread still runs.
    pub fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl Drop for LanTraffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A DNS query (id 0x6e6d, recursion desired) for the A record of `name`.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x6e, 0x6d, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len().min(63) as u8);
        q.extend(label.bytes().take(63));
    }
    q.extend([0, 0, 1, 0, 1]);
    q
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
    fn builds_a_dns_query() {
        let q = dns_query("probe.isp.test");
        assert_eq!(&q[12..19], b"\x05probe\x03");
        assert_eq!(&q[q.len() - 5..], [0, 0, 1, 0, 1]);
    }

    #[test]
    fn reads_the_actions_the_agent_ran() {
        let log = "x INFO running restore_route for default_route\n\
                   y WARN incident 1: reset_dns passed over: z\n\
                   z INFO running reset_dns for dns\nnot running anything\n";
        assert_eq!(actions_run(log), ["restore_route", "reset_dns"]);
    }
}
