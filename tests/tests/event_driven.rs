//! Event-driven detection and delivery with the SHIPPED check intervals (config/agent.toml:
//! dns 30 s, service 15 s, default_route 10 s, fail_threshold 2): only site-specific keys are
//! set. Each deadline is well under what polling alone could achieve (two runs an interval
//! apart), so a test passes only if the event path works:
//! - an emptied resolv.conf opens a dns incident within seconds (inotify),
//! - a killed LAN dnsmasq opens a service incident within seconds (pidfd),
//! - an incident of a WAN outage reaches the collector seconds after the carrier is back,
//!   although the reporter's backoff (max_backoff_secs = 3600) was far longer (WAN-back wake),
//! - a DHCP renewal that changes nothing (same address, router, resolvers) runs none of the
//!   checks it would wake, while a real change (the default route deleted) still runs them.
//!
//! Times are printed as `EVENT-TIMING` lines:
//! `cargo test -p netmedic-lab --test event_driven -- --nocapture --test-threads=1`.

#![allow(clippy::unwrap_used)]

use netmedic_lab::faults::LanDnsmasq;
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{Lab, wait_for};
use netmedic_proto::{CheckId, IncidentStatus};
use std::time::{Duration, Instant};

/// Shipped `checks.default_route.interval_secs` (the lab's stack config sets this table).
const SHIPPED_ROUTE_INTERVAL_SECS: u64 = 10;

/// Detection deadline: the shipped dns (30 s) and service (15 s) intervals with
/// fail_threshold 2 need ≥ 30 s and ≥ 15 s by polling alone.
const DETECT_WITHIN: Duration = Duration::from_secs(8);

fn options(extra: &str) -> StackOptions {
    StackOptions {
        check_interval_secs: SHIPPED_ROUTE_INTERVAL_SECS,
        fail_threshold: 2,
        ok_threshold: 2,
        extra_agent_toml: extra.to_string(),
        ..StackOptions::default()
    }
}

fn count(stack: &Stack<'_>, check: CheckId) -> usize {
    stack
        .incidents()
        .unwrap()
        .incidents
        .iter()
        .filter(|i| i.check == check)
        .count()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[test]
fn emptied_resolv_conf_opens_a_dns_incident_at_once() {
    let lab = Lab::builder().build().unwrap();
    // Site-specific keys only; interval and thresholds stay the shipped ones.
    let dns = "[checks.dns]\nenabled = true\nresolv_conf = \"/etc/resolv.conf\"\n\
               provisioned_resolvers = [\"100.64.0.1\"]\ntest_names = [\"probe.isp.test\"]\n";
    let stack = Stack::start(&lab, options(dns)).unwrap();
    let cpe = lab.cpe(0);
    let original = cpe.resolv_conf().unwrap();
    let mut times = Vec::new();
    for run in 0..3 {
        let before = count(&stack, CheckId::Dns);
        let t0 = Instant::now();
        cpe.write_resolv_conf("").unwrap();
        stack
            .wait_incident(
                "dns incident after emptying resolv.conf",
                DETECT_WITHIN,
                |_| count(&stack, CheckId::Dns) > before,
            )
            .unwrap_or_else(|e| panic!("run {run}: {e}\n{}", stack.agent_log(0)));
        let took = t0.elapsed();
        eprintln!("EVENT-TIMING dns emptied resolv.conf run {run}: {took:?} to the collector");
        times.push(took);
        // reset_dns heals it, or we put it back; either way wait until it is resolved.
        cpe.write_resolv_conf(&original).unwrap();
        stack
            .wait_incident("dns incident resolved", Duration::from_secs(120), |i| {
                i.check == CheckId::Dns && i.status == IncidentStatus::Resolved
            })
            .unwrap();
        wait_for(
            "every dns incident resolved",
            Duration::from_secs(120),
            Duration::from_millis(200),
            || {
                let page = stack.incidents().map_err(|e| e.to_string())?;
                let open = page
                    .incidents
                    .iter()
                    .filter(|i| i.check == CheckId::Dns && i.status != IncidentStatus::Resolved)
                    .count();
                if open == 0 {
                    Ok(())
                } else {
                    Err(format!("{open} open"))
                }
            },
        )
        .unwrap();
    }
    eprintln!("EVENT-TIMING dns median of 3: {:?}", median(times.clone()));
    assert!(stack.agent_log(0).contains("file change: waking check dns"));
}

#[test]
fn killed_lan_dnsmasq_opens_a_service_incident_at_once() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    let mut dnsmasq = LanDnsmasq::start(&lab, cpe).unwrap();
    let extra = format!(
        "[checks.service]\n[[checks.service.services]]\nname = \"dnsmasq\"\npidfile = \"{}\"\n\
         process = \"dnsmasq\"\nsame_netns = true\n",
        dnsmasq.pidfile().display()
    );
    let stack = Stack::start(&lab, options(&extra)).unwrap();
    stack
        .wait_agent_log(
            0,
            &["service dnsmasq: watching pid"],
            Duration::from_secs(20),
        )
        .unwrap();
    let t0 = Instant::now();
    dnsmasq.crash().unwrap();
    let inc = stack
        .wait_incident(
            "service incident after killing dnsmasq",
            DETECT_WITHIN,
            |i| i.check == CheckId::Service,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.agent_log(0)));
    eprintln!(
        "EVENT-TIMING service killed LAN dnsmasq: {:?} to the collector",
        t0.elapsed()
    );
    assert_eq!(inc.cause, "service_down", "{inc:#?}");
    assert!(stack.agent_log(0).contains("service dnsmasq (pid"));
}

#[test]
fn an_outage_reaches_the_collector_as_soon_as_the_wan_is_back() {
    let lab = Lab::builder().build().unwrap();
    let mut stack = Stack::start(&lab, options("")).unwrap();
    // A backoff ceiling far above the deadline: only the WAN-back wake explains a fast delivery.
    stack.agents[0].take().unwrap().kill().unwrap();
    let cfg = std::fs::read_to_string(&stack.agent_configs[0]).unwrap();
    assert!(cfg.contains("max_backoff_secs = 2\n"), "{cfg}");
    std::fs::write(
        &stack.agent_configs[0],
        cfg.replace("max_backoff_secs = 2\n", "max_backoff_secs = 3600\n"),
    )
    .unwrap();
    stack.start_agent(0).unwrap();
    let cpe = lab.cpe(0);
    let before = count(&stack, CheckId::Link);
    cpe.drop_wan_carrier().unwrap();
    // Wait until the reporter, failing to reach the collector, has backed off far longer than
    // the deadline below.
    let backed_off = wait_for(
        "the reporter to back off ≥ 20 s",
        Duration::from_secs(300),
        Duration::from_millis(100),
        || {
            let log = stack.agent_log(0);
            let last = log
                .lines()
                .rev()
                .find_map(|l| {
                    let rest = l.split("retry in ").nth(1)?;
                    rest.split(' ').next()?.parse::<f64>().ok()
                })
                .unwrap_or(0.0);
            if last >= 20.0 {
                Ok(last)
            } else {
                Err(format!("last backoff {last} s"))
            }
        },
    )
    .unwrap();
    assert_eq!(
        count(&stack, CheckId::Link),
        before,
        "delivered during the outage?"
    );
    let t0 = Instant::now();
    cpe.restore_wan_carrier().unwrap();
    stack
        .wait_incident(
            "the outage's incident at the collector",
            Duration::from_secs(10),
            |i| i.check == CheckId::Link,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.agent_log(0)));
    let took = t0.elapsed();
    eprintln!(
        "EVENT-TIMING outage delivered {took:?} after the WAN came back (backoff was {backed_off:.1} s)"
    );
    assert!(
        took.as_secs_f64() < backed_off,
        "{took:?} vs {backed_off} s"
    );
    assert!(
        stack
            .agent_log(0)
            .contains("the WAN is back: retrying delivery now")
    );
}

/// The agent's scheduler lines (`changes [..] woke: ..`) in `log` after byte `from`.
fn wake_lines(log: &str, from: usize) -> Vec<String> {
    log.get(from..)
        .unwrap_or("")
        .lines()
        .filter(|l| l.contains("changes [") && l.contains(" woke: "))
        .map(str::to_string)
        .collect()
}

/// Waits up to `within` for a line of the agent's log after byte `from` that `pred` accepts;
/// returns it.
fn log_line(
    stack: &Stack<'_>,
    from: usize,
    what: &str,
    within: Duration,
    pred: impl Fn(&str) -> bool,
) -> String {
    let found = wait_for(what, within, Duration::from_millis(20), || {
        let log = stack.agent_log(0);
        let line = log.get(from..).unwrap_or("").lines().find(|l| pred(l));
        line.map(str::to_string).ok_or("not yet")
    });
    found.unwrap_or_else(|e| panic!("{e}\n{}", stack.agent_log(0)))
}

/// Waits until wan_address and default_route reported ok after byte `from` of the log.
fn settled(stack: &Stack<'_>, from: usize) {
    for check in ["wan_address", "default_route"] {
        let ok = format!("check {check}: Ok");
        log_line(stack, from, &ok, Duration::from_secs(30), |l| {
            l.contains(&ok)
        });
    }
}

/// Renews the lease and returns the line that says what the lease file's rewrite did for
/// wan_address: woke it (a change) or not (nothing changed).
fn renew(stack: &Stack<'_>, cpe: &netmedic_lab::Cpe, from: usize) -> String {
    cpe.renew_lease().unwrap();
    log_line(
        stack,
        from,
        "the lease rewrite handled",
        Duration::from_secs(20),
        |l| {
            l.contains("file change: waking check wan_address")
                || l.contains("file rewritten, nothing changed for check wan_address")
        },
    )
}

#[test]
fn a_renewal_that_changes_nothing_runs_no_check_and_a_real_change_still_does() {
    let lab = Lab::builder().build().unwrap();
    let stack = Stack::start(&lab, options("")).unwrap();
    let cpe = lab.cpe(0);
    settled(&stack, 0);
    // The first renewal the agent sees is news (it had read neither the lease file nor an
    // address message before): it runs the checks.
    let from = stack.agent_log(0).len();
    let first = renew(&stack, cpe, from);
    assert!(first.contains("file change: waking"), "{first}");
    settled(&stack, from);
    // The next one repeats the same address (udhcpc's `ip addr replace` notifies anyway), the
    // same default route and a lease file with only new times: nothing to run.
    let from = stack.agent_log(0).len();
    let second = renew(&stack, cpe, from);
    let log = stack.agent_log(0);
    assert!(
        second.contains("nothing changed"),
        "a renewal of the same lease woke wan_address: {second}\n{log}"
    );
    let lines = wake_lines(&log, from);
    assert!(
        lines.iter().any(|l| l.contains("Same")),
        "the repeated address message did not reach the scheduler: {lines:?}"
    );
    for l in &lines {
        let woke = l.split(" woke: ").nth(1).unwrap_or("");
        assert!(
            !woke
                .split(", ")
                .any(|c| ["link", "wan_address", "default_route"].contains(&c)),
            "the renewal ran a check: {l}\n{log}"
        );
    }
    // A real change still runs the checks at once (the interval is 10 s).
    let from = stack.agent_log(0).len();
    let t0 = Instant::now();
    cpe.delete_default_route().unwrap();
    log_line(
        &stack,
        from,
        "default_route woken by the route's removal",
        Duration::from_secs(5),
        |l| {
            l.contains("changes [")
                && l.contains("Route")
                && l.contains("woke: ")
                && l.contains("default_route")
        },
    );
    eprintln!(
        "EVENT-TIMING default route deleted: default_route woken after {:?}",
        t0.elapsed()
    );
}
