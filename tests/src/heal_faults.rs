//! Helpers for the self-healing tests and their timing figures: a healing config with short
//! windows, a LAN dnsmasq restart command for the agent's allow-list, and a loop that injects a
//! fault several times and measures injection → healed in the namespace and → resolved at the
//! collector.

use crate::stack::Stack;
use crate::{Cpe, LAN_IFACE, wait_for};
use netmedic_proto::{CheckId, IncidentStatus};
use std::path::Path;
use std::time::{Duration, Instant};

/// `[healing]` for tests: 1 s backoff, no ladder memory (each injection is a fresh fault),
/// generous budgets, the lab's `lan` as the busy interface. `extra` goes inside `[healing]`.
pub fn healing_toml(extra: &str) -> String {
    let mut budgets = String::new();
    for a in netmedic_proto::ActionId::ALL {
        budgets.push_str(&format!("{a} = {{ max = 100, window_secs = 3600 }}\n"));
    }
    format!(
        "[healing]\nbackoff_initial_secs = 1\nbackoff_max_secs = 2\nladder_memory_secs = 0\n\
         busy_interface = \"{LAN_IFACE}\"\n\
         global_budget = {{ max = 500, window_secs = 3600 }}\n{extra}\n[healing.budgets]\n{budgets}\n"
    )
}

/// Agent TOML for the reset_dns rollback tests: the DNS check on `/etc/resolv.conf` with two
/// provisioned resolvers, a dead one (100.64.0.99) and the lab's working one (the ISP gateway),
/// plus [`healing_toml`] with `verify_timeout_secs`. A resolv.conf naming another resolver is
/// blamed (one provisioned resolver answers), so reset_dns runs; but writing both makes the
/// dead one a resolver in use, the check stays failing and the change is rolled back. (With
/// only dead provisioned resolvers reset_dns would be ruled out before it ran.)
pub fn dead_resolver_dns_toml(verify_timeout_secs: u64) -> String {
    format!(
        "[checks.dns]\nenabled = true\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
         resolv_conf = \"/etc/resolv.conf\"\n\
         provisioned_resolvers = [\"100.64.0.99\", \"{}\"]\n\
         test_names = [\"probe.isp.test\"]\ntimeout_ms = 300\nretries = 0\n{}",
        crate::ISP_GATEWAY,
        healing_toml(&format!("verify_timeout_secs = {verify_timeout_secs}"))
    )
}

/// argv that starts a daemonised LAN dnsmasq like [`crate::faults::LanDnsmasq`] (same
/// pidfile), as a TOML array for `[[healing.restart_service]]`.
pub fn lan_dnsmasq_restart_argv(cpe: &Cpe, pidfile: &Path, log: &Path) -> String {
    let o = cpe.lan_ip.octets();
    let args = [
        "/usr/sbin/dnsmasq".to_string(),
        "--conf-file=/dev/null".into(),
        format!("--log-facility={}", log.display()),
        format!("--pid-file={}", pidfile.display()),
        "--user=root".into(),
        "--group=root".into(),
        format!("--interface={LAN_IFACE}"),
        "--bind-interfaces".into(),
        "--no-resolv".into(),
        "--no-hosts".into(),
        format!("--server={}", crate::ISP_GATEWAY),
        format!(
            "--dhcp-range={}.{}.{}.100,{}.{}.{}.199,255.255.255.0,1h",
            o[0], o[1], o[2], o[0], o[1], o[2]
        ),
    ];
    format!(
        "[{}]",
        args.iter()
            .map(|a| format!("{a:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// Injection → healed figures of one fault.
#[derive(Debug, Clone)]
pub struct HealTimes {
    pub fault: String,
    /// Until the namespace was healthy again.
    pub healed: Vec<Duration>,
    /// Until the collector showed the incident resolved and auto-healed.
    pub reported: Vec<Duration>,
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    match s.len() {
        0 => Duration::ZERO,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2,
    }
}

impl HealTimes {
    /// One line for the log: `HEAL-TIMING fault runs=N healed median/worst reported median/worst`.
    pub fn line(&self) -> String {
        let w = |v: &[Duration]| v.iter().max().copied().unwrap_or_default();
        format!(
            "HEAL-TIMING {:<28} runs={} healed median {:>6.2} s worst {:>6.2} s | collector resolved median {:>6.2} s worst {:>6.2} s",
            self.fault,
            self.healed.len(),
            median(&self.healed).as_secs_f64(),
            w(&self.healed).as_secs_f64(),
            median(&self.reported).as_secs_f64(),
            w(&self.reported).as_secs_f64(),
        )
    }
}

/// Injects a fault `runs` times; each time waits until `healthy` holds again and until the
/// collector holds one more resolved, auto-healed incident of `check` with one of `causes`.
pub fn measure(
    stack: &Stack<'_>,
    fault: &str,
    runs: usize,
    check: CheckId,
    causes: &[&str],
    mut inject: impl FnMut(),
    healthy: impl Fn() -> Result<(), String>,
) -> HealTimes {
    let mut t = HealTimes {
        fault: fault.to_string(),
        healed: Vec::new(),
        reported: Vec::new(),
    };
    let count = || {
        stack.incidents().map_or(0, |p| {
            p.incidents
                .iter()
                .filter(|i| {
                    i.check == check
                        && causes.contains(&i.cause.as_str())
                        && i.status == IncidentStatus::Resolved
                        && i.auto_healed == Some(true)
                })
                .count()
        })
    };
    for run in 1..=runs {
        healthy().unwrap_or_else(|e| panic!("{fault}: not healthy before run {run}: {e}"));
        let start = Instant::now();
        inject();
        wait_for(
            &format!("{fault} healed (run {run})"),
            Duration::from_secs(90),
            Duration::from_millis(50),
            &healthy,
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", tail(&stack.agent_log(0))));
        t.healed.push(start.elapsed());
        wait_for(
            &format!("{fault}: {run} resolved auto-healed {check} {causes:?} incident(s)"),
            Duration::from_secs(90),
            Duration::from_millis(100),
            || {
                let n = count();
                if n >= run {
                    Ok(())
                } else {
                    // What the collector holds, so a failure says which condition was missing.
                    let seen = stack
                        .incidents()
                        .map_or_else(|e| vec![e.to_string()], |p| crate::stack::summarize(&p));
                    Err(format!("{n} so far; stored: {seen:?}"))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", tail(&stack.agent_log(0))));
        t.reported.push(start.elapsed());
    }
    eprintln!("{}", t.line());
    t
}

/// The last 150 lines of a log, without its DEBUG lines.
pub fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.contains(" DEBUG ")).collect();
    lines[lines.len().saturating_sub(150)..].join("\n")
}
