//! End-to-end self-healing: the real agent in a CPE namespace heals each fault of issue 4 with
//! no human action, and the real collector shows every incident resolved and auto-healed with
//! its action trail. Each fault is injected several times and the time from injection to
//! healed (namespace) and to resolved (collector) is printed as `HEAL-TIMING` lines:
//! `cargo test -p netmedic-lab --test healing -- --nocapture --test-threads=1`.
//!
//! Check intervals here are 1 s with `fail_threshold = 2` (the test config); the shipped
//! defaults are slower (10-30 s intervals), see the closing note of issue 4.

#![allow(clippy::unwrap_used)]

use netmedic_lab::faults::{LanDnsmasq, conntrack_count, fill_conntrack};
use netmedic_lab::heal_faults::{healing_toml, lan_dnsmasq_restart_argv, measure, tail};
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{ISP_GATEWAY, Lab, PROBE_IP, wait_for};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentStatus, IncidentView};
use std::time::Duration;

const RUNS: usize = 5;

fn options(extra: &str) -> StackOptions {
    StackOptions {
        extra_agent_toml: format!("{extra}\n{}", healing_toml("")),
        ..StackOptions::default()
    }
}

/// The latest resolved, auto-healed incident of `check` and its trail as (action, outcome).
fn last_healed(
    stack: &Stack<'_>,
    check: CheckId,
) -> (IncidentView, Vec<(ActionId, ActionOutcome)>) {
    let page = stack.incidents().unwrap();
    let inc = page
        .incidents
        .iter()
        .filter(|i| i.check == check && i.status == IncidentStatus::Resolved)
        .max_by_key(|i| i.started_at)
        .cloned()
        .unwrap_or_else(|| panic!("no resolved {check} incident: {:#?}", page.incidents));
    let trail = inc.actions.iter().map(|a| (a.action, a.outcome)).collect();
    (inc, trail)
}

fn assert_trail(stack: &Stack<'_>, check: CheckId, action: ActionId) -> IncidentView {
    let (inc, trail) = last_healed(stack, check);
    assert_eq!(inc.auto_healed, Some(true), "{inc:#?}");
    assert_eq!(
        trail,
        [
            (action, ActionOutcome::Planned),
            (action, ActionOutcome::Done),
            (action, ActionOutcome::Verified),
        ],
        "{:#?}\nagent log:\n{}",
        inc.actions,
        tail(&stack.agent_log(0))
    );
    inc
}

#[test]
fn deleted_default_route_is_healed_repeatedly() {
    let lab = Lab::builder().build().unwrap();
    let stack = Stack::start(&lab, options("")).unwrap();
    let cpe = lab.cpe(0);
    measure(
        &stack,
        "default route deleted",
        RUNS,
        CheckId::DefaultRoute,
        &["default_route_missing"],
        || cpe.delete_default_route().unwrap(),
        || match cpe.default_route().map_err(|e| e.to_string())? {
            Some(r) if r.gateway == Some(ISP_GATEWAY) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    assert_trail(&stack, CheckId::DefaultRoute, ActionId::RestoreRoute);
}

#[test]
fn resolv_conf_pointing_at_a_dead_resolver_is_reset() {
    let lab = Lab::builder().build().unwrap();
    let dns = "[checks.dns]\nenabled = true\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
               resolv_conf = \"/etc/resolv.conf\"\nprovisioned_resolvers = [\"100.64.0.1\"]\n\
               test_names = [\"probe.isp.test\"]\ntimeout_ms = 300\nretries = 0\n";
    let stack = Stack::start(&lab, options(dns)).unwrap();
    let cpe = lab.cpe(0);
    let dead = "198.51.100.53".parse().unwrap();
    measure(
        &stack,
        "resolv.conf -> dead resolver",
        RUNS,
        CheckId::Dns,
        &[
            "resolv_conf_not_provisioned",
            "resolver_timeout",
            "resolver_unreachable",
        ],
        || cpe.point_resolv_conf_at(dead).unwrap(),
        || {
            let text = cpe.resolv_conf().map_err(|e| e.to_string())?;
            if text.contains("nameserver 100.64.0.1") && !text.contains("198.51.100.53") {
                Ok(())
            } else {
                Err(text)
            }
        },
    );
    let inc = assert_trail(&stack, CheckId::Dns, ActionId::ResetDns);
    assert!(
        inc.actions[1].detail.contains("100.64.0.1"),
        "{:?}",
        inc.actions[1]
    );
    // The original is not kept once the change was verified.
    let saved = lab.dir().join("agent0-state/rollback/resolv.conf.orig");
    assert!(!saved.exists(), "{}", saved.display());
}

#[test]
fn lost_dhcp_lease_is_renewed() {
    let lab = Lab::builder().build().unwrap();
    let wan = "[checks.wan_address]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n";
    let stack = Stack::start(&lab, options(wan)).unwrap();
    let cpe = lab.cpe(0);
    measure(
        &stack,
        "DHCP lease lost (addr flush)",
        RUNS,
        CheckId::WanAddress,
        &["wan_no_address"],
        || cpe.flush_wan_address().unwrap(),
        || {
            let ip = cpe.wan_ip().map_err(|e| e.to_string())?;
            let route = cpe.default_route().map_err(|e| e.to_string())?;
            if ip.is_some() && route.is_some() {
                Ok(())
            } else {
                Err(format!("address {ip:?}, route {route:?}"))
            }
        },
    );
    let inc = assert_trail(&stack, CheckId::WanAddress, ActionId::RenewDhcp);
    assert!(
        inc.actions[1].detail.contains("SIGUSR"),
        "{:?}",
        inc.actions[1]
    );
    // The missing route was a consequence, not an incident of its own.
    let page = stack.incidents().unwrap();
    assert!(
        page.incidents
            .iter()
            .all(|i| i.check == CheckId::WanAddress),
        "{:#?}",
        page.incidents
    );
}

#[test]
fn killed_lan_dnsmasq_is_restarted() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    let mut dnsmasq = LanDnsmasq::start(&lab, cpe).unwrap();
    let pidfile = dnsmasq.pidfile().to_path_buf();
    let argv = lan_dnsmasq_restart_argv(cpe, &pidfile, &lab.log_path("cpe0-lan-dnsmasq-restarted"));
    let extra = format!(
        "[checks.service]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
         [[checks.service.services]]\nname = \"dnsmasq\"\npidfile = \"{}\"\nprocess = \"dnsmasq\"\nsame_netns = true\n\
         {}\n[[healing.restart_service]]\nname = \"dnsmasq\"\ncommand = {argv}\n",
        pidfile.display(),
        healing_toml("")
    );
    let stack = Stack::start(
        &lab,
        StackOptions {
            extra_agent_toml: extra,
            ..StackOptions::default()
        },
    )
    .unwrap();
    let running = || -> Result<u32, String> {
        let pid: u32 = std::fs::read_to_string(&pidfile)
            .map_err(|e| e.to_string())?
            .trim()
            .parse()
            .map_err(|e| format!("{e}"))?;
        let stat =
            std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
        let state = stat.rsplit(") ").next().unwrap_or("").chars().next();
        if state == Some('Z') {
            return Err(format!("{pid} is a zombie"));
        }
        Ok(pid)
    };
    let mut first = true;
    measure(
        &stack,
        "LAN dnsmasq killed",
        RUNS,
        CheckId::Service,
        &["service_down"],
        || {
            if std::mem::take(&mut first) {
                dnsmasq.crash().unwrap();
            } else {
                let pid = running().unwrap();
                nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                )
                .unwrap();
                wait_for(
                    "dnsmasq to die",
                    Duration::from_secs(5),
                    Duration::from_millis(20),
                    || match running() {
                        Ok(p) if p == pid => Err("still running".to_string()),
                        _ => Ok(()),
                    },
                )
                .unwrap();
            }
        },
        || running().map(drop),
    );
    let inc = assert_trail(&stack, CheckId::Service, ActionId::RestartService);
    assert!(
        inc.actions[1].detail.contains("dnsmasq"),
        "{:?}",
        inc.actions[1]
    );
    // It serves the LAN again: the LAN host's DNS query through it is answered.
    let answered =
        cpe.lan_ns
            .exec_unchecked(&["nslookup", "probe.isp.test", &cpe.lan_ip.to_string()]);
    if let Ok(out) = answered {
        eprintln!(
            "nslookup via restarted dnsmasq: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn full_conntrack_table_is_flushed() {
    let lab = Lab::builder().build().unwrap();
    let ct = "[checks.conntrack]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\nmax_entries = 200\n";
    let stack = Stack::start(&lab, options(ct)).unwrap();
    let cpe = lab.cpe(0);
    measure(
        &stack,
        "conntrack table full",
        RUNS,
        CheckId::Conntrack,
        &["conntrack_table_full"],
        || {
            fill_conntrack(cpe, PROBE_IP, 300).unwrap();
        },
        || match conntrack_count(cpe).map_err(|e| e.to_string())? {
            n if n < 150 => Ok(()),
            n => Err(format!("{n} entries tracked")),
        },
    );
    let inc = assert_trail(&stack, CheckId::Conntrack, ActionId::FlushConntrack);
    assert!(
        inc.actions[1].detail.contains("flushed"),
        "{:?}",
        inc.actions[1]
    );
}

#[test]
fn wrong_wan_mtu_is_set_back() {
    let lab = Lab::builder().build().unwrap();
    let mtu = "[checks.mtu]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\nexpected_mtu = 1500\nprobe_path = false\n";
    let stack = Stack::start(&lab, options(mtu)).unwrap();
    let cpe = lab.cpe(0);
    measure(
        &stack,
        "WAN MTU set wrong (1400)",
        RUNS,
        CheckId::Mtu,
        &["mtu_mismatch"],
        || cpe.set_wan_mtu(1400).unwrap(),
        || match cpe.wan_mtu().map_err(|e| e.to_string())? {
            1500 => Ok(()),
            m => Err(format!("MTU {m}")),
        },
    );
    let inc = assert_trail(&stack, CheckId::Mtu, ActionId::SetMtu);
    assert!(
        inc.actions[1].detail.contains("1400 to 1500"),
        "{:?}",
        inc.actions[1]
    );
}
