//! End-to-end: the home network behind a CPE (issue 16, LAN). The CPE's LAN is a bridge
//! `br-lan` with the router's own dnsmasq on it; a second router with its DHCP server on (a
//! real dnsmasq in its own namespace) and a host configured with the router's LAN address are
//! plugged into it, and two hosts that share one client address. The real agent detects each
//! with the offenders' MACs in evidence, the
//! collector stores the incident, and it resolves when the device is unplugged. A clean LAN
//! (the router's own DHCP server only) opens nothing.

#![allow(clippy::unwrap_used)]

use netmedic_lab::lan::{DeviceKind, HomeLan, ROGUE_SERVER, device_mac};
use netmedic_lab::stack::{Stack, StackOptions, agent_check, summarize};
use netmedic_lab::{Lab, wait_for};
use netmedic_proto::{Category, CheckId, IncidentStatus, IncidentView, Severity};
use std::hash::{BuildHasher as _, Hasher as _, RandomState};
use std::time::{Duration, Instant};

/// Short intervals for the functional tests (the timing test uses the shipped ones).
const FAST: &str = "[checks.lan_dhcp]\ninterval_secs = 6\nlisten_ms = 4000\n\n\
    [checks.lan_arp]\ninterval_secs = 2\nlisten_ms = 500\n";

fn home() -> (Lab, HomeLan) {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let home = HomeLan::build(&lab, lab.cpe(0)).expect("home LAN");
    (lab, home)
}

fn stack<'a>(lab: &'a Lab, extra: &str) -> Stack<'a> {
    Stack::start(
        lab,
        StackOptions {
            extra_agent_toml: extra.into(),
            ..StackOptions::default()
        },
    )
    .expect("stack")
}

fn is_lan(i: &IncidentView) -> bool {
    matches!(i.check, CheckId::LanDhcp | CheckId::LanArp)
}

fn wait_open(s: &Stack, check: CheckId, cause: &str, timeout: Duration) -> IncidentView {
    s.wait_incident(&format!("{check}/{cause} incident"), timeout, |i| {
        i.check == check && i.cause == cause && i.status == IncidentStatus::Open
    })
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", tail(&s.agent_log(0))))
}

fn wait_resolved(s: &Stack, id: &str, timeout: Duration) {
    s.wait_incident(&format!("incident {id} resolved"), timeout, |i| {
        i.incident_id == id && i.status == IncidentStatus::Resolved
    })
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", tail(&s.agent_log(0))));
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("lan_")).collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Waits until the agent has judged both LAN checks at least `runs` times.
fn wait_runs(s: &Stack, runs: usize) {
    wait_for(
        "the agent to run lan_dhcp and lan_arp",
        Duration::from_secs(180),
        Duration::from_millis(100),
        || {
            let log = s.agent_log(0);
            let n = |c: &str| log.matches(&format!("check {c}:")).count();
            if n("lan_dhcp") >= runs && n("lan_arp") >= runs {
                Ok(())
            } else {
                Err(format!("{} / {} runs", n("lan_dhcp"), n("lan_arp")))
            }
        },
    )
    .unwrap();
}

#[test]
fn the_check_command_sees_the_rogue_server_and_its_mac() {
    let (lab, home) = home();
    let clean = agent_check(&lab, 0, "lan_dhcp", FAST).unwrap();
    assert_eq!(clean["status"], "ok", "{clean:#}");
    assert_eq!(clean["category"], "lan_degraded");

    let rogue = home.plug(DeviceKind::RogueDhcp, 1).unwrap();
    let o = agent_check(&lab, 0, "lan_dhcp", FAST).unwrap();
    assert_eq!(o["status"], "failed", "{o:#}");
    assert_eq!(o["cause"], "rogue_dhcp_server");
    assert_eq!(o["severity"], "major");
    let ev = &o["evidence"];
    assert_eq!(ev["offender_mac"], rogue.mac.as_str(), "{o:#}");
    assert_eq!(ev["server_id"], ROGUE_SERVER.to_string());
    assert_eq!(ev["offered_router"], "198.51.100.1", "{o:#}");
    assert_eq!(ev["offered_subnet_mask"], "255.255.255.0");
    let offered: std::net::Ipv4Addr = ev["offered_address"].as_str().unwrap().parse().unwrap();
    assert_eq!(offered.octets()[..3], [198, 51, 100]);

    rogue.unplug().unwrap();
    let o = agent_check(&lab, 0, "lan_dhcp", FAST).unwrap();
    assert_eq!(o["status"], "ok", "{o:#}");
}

#[test]
fn the_check_command_sees_a_host_on_the_routers_address() {
    let (lab, home) = home();
    let clean = agent_check(&lab, 0, "lan_arp", FAST).unwrap();
    assert_eq!(clean["status"], "ok", "{clean:#}");
    assert_eq!(clean["evidence"]["probed"], lab.cpe(0).lan_ip.to_string());

    let dup = home.plug(DeviceKind::DuplicateIp, 1).unwrap();
    let o = agent_check(&lab, 0, "lan_arp", FAST).unwrap();
    assert_eq!(o["status"], "failed", "{o:#}");
    assert_eq!(o["cause"], "lan_ip_conflict");
    assert_eq!(o["evidence"]["offender_mac"], dup.mac.as_str(), "{o:#}");
    assert_eq!(o["evidence"]["ip"], lab.cpe(0).lan_ip.to_string());
    assert_eq!(o["evidence"]["router_mac"], home.bridge_mac.as_str());
    // The lab's LAN host (another address) is no conflict, and the router still works for it.
    assert!(
        lab.cpe(0)
            .lan_ns
            .ping(&lab.cpe(0).lan_ip.to_string())
            .is_ok()
    );

    dup.unplug().unwrap();
    let o = agent_check(&lab, 0, "lan_arp", FAST).unwrap();
    assert_eq!(o["status"], "ok", "{o:#}");
}

#[test]
fn two_hosts_on_one_client_address_are_one_conflict_with_both_macs() {
    let (lab, home) = home();
    let one = home.plug(DeviceKind::SharedClientIp, 1).unwrap();
    // One host on the address (and the router's neighbour entry for it): no conflict.
    let o = agent_check(&lab, 0, "lan_arp", FAST).unwrap();
    assert_eq!(o["status"], "ok", "{o:#}");
    // The lab's own LAN host and the new one are in the router's neighbour table.
    let probed: u32 = o["evidence"]["clients_probed"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(probed >= 1, "{o:#}");

    let two = home.plug(DeviceKind::SharedClientIp, 2).unwrap();
    let o = agent_check(&lab, 0, "lan_arp", FAST).unwrap();
    assert_eq!(o["status"], "degraded", "{o:#}");
    assert_eq!(o["cause"], "lan_client_ip_conflict");
    let ev = &o["evidence"];
    assert_eq!(ev["ip"], home.shared_client_ip().to_string(), "{o:#}");
    assert_eq!(ev["conflict"], "client_address");
    let mut macs: Vec<&str> = ev["offender_macs"].as_str().unwrap().split(',').collect();
    macs.sort_unstable();
    let mut want = [one.mac.as_str(), two.mac.as_str()];
    want.sort_unstable();
    assert_eq!(macs, want, "{o:#}");
    assert_eq!(ev["router_mac"], home.bridge_mac.as_str());

    // The running agent opens one incident with both MACs, resolved when one host leaves.
    let s = stack(&lab, FAST);
    let i = wait_open(
        &s,
        CheckId::LanArp,
        "lan_client_ip_conflict",
        Duration::from_secs(60),
    );
    assert_eq!(i.category, Category::LanDegraded);
    assert_eq!(i.evidence["ip"], home.shared_client_ip().to_string());
    for m in want {
        assert!(i.evidence["offender_macs"].contains(m), "{:?}", i.evidence);
    }
    two.unplug().unwrap();
    wait_resolved(&s, &i.incident_id, Duration::from_secs(60));
    let page = s.incidents().unwrap();
    let lan: Vec<_> = page.incidents.iter().filter(|i| is_lan(i)).collect();
    assert_eq!(lan.len(), 1, "one incident: {:?}", summarize(&page));
    drop(one);
}

#[test]
fn without_a_bridge_nothing_is_sent_and_nothing_opens() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    for check in ["lan_dhcp", "lan_arp"] {
        let o = agent_check(&lab, 0, check, FAST).unwrap();
        assert_eq!(o["status"], "unknown", "{o:#}");
        assert_eq!(o["cause"], "lan_bridge_missing", "{o:#}");
    }
}

#[test]
fn lan_faults_reach_the_collector_with_the_offenders_mac_and_resolve() {
    let (lab, home) = home();
    let s = stack(&lab, FAST);

    // A clean LAN, the router's own DHCP server running: several runs, no incident.
    wait_runs(&s, 3);
    let page = s.incidents().unwrap();
    assert!(
        !page.incidents.iter().any(is_lan),
        "clean LAN: {:?}",
        summarize(&page)
    );

    // A second router plugged in.
    let rogue = home.plug(DeviceKind::RogueDhcp, 1).unwrap();
    let i = wait_open(
        &s,
        CheckId::LanDhcp,
        "rogue_dhcp_server",
        Duration::from_secs(60),
    );
    assert_eq!(i.evidence["offender_mac"], rogue.mac);
    assert_eq!(i.evidence["server_id"], ROGUE_SERVER.to_string());
    assert_eq!(i.category, Category::LanDegraded);
    assert_eq!(i.severity, Severity::Major);
    assert!(i.actions.is_empty(), "nothing to heal: {:?}", i.actions);
    rogue.unplug().unwrap();
    wait_resolved(&s, &i.incident_id, Duration::from_secs(60));

    // A host on the router's own address.
    let dup = home.plug(DeviceKind::DuplicateIp, 2).unwrap();
    let i = wait_open(
        &s,
        CheckId::LanArp,
        "lan_ip_conflict",
        Duration::from_secs(60),
    );
    assert_eq!(
        i.evidence["offender_mac"],
        device_mac(DeviceKind::DuplicateIp, 2)
    );
    assert_eq!(i.evidence["ip"], lab.cpe(0).lan_ip.to_string());
    assert_eq!(i.category, Category::LanDegraded);
    dup.unplug().unwrap();
    wait_resolved(&s, &i.incident_id, Duration::from_secs(60));

    // Each fault opened exactly one incident.
    let page = s.incidents().unwrap();
    let lan: Vec<_> = page.incidents.iter().filter(|i| is_lan(i)).collect();
    assert_eq!(lan.len(), 2, "{:?}", summarize(&page));
}

/// Detection time with the shipped intervals (`config/agent.toml`: both checks every 60 s,
/// fail_threshold 1): from the device being plugged in to the incident at the collector. The
/// fault is plugged at a random phase of the checks' schedule, as a real one would be.
/// `NETMEDIC_LAN_TIMING_RUNS` (default 1) sets the number of runs; the times are printed.
#[test]
fn detection_time_with_the_shipped_intervals() {
    let runs: usize = std::env::var("NETMEDIC_LAN_TIMING_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 20);
    // The agent's config is the lab's plus nothing for these checks: their shipped defaults,
    // which config/agent.toml documents.
    let shipped =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml"))
            .unwrap();
    for table in ["[checks.lan_dhcp]", "[checks.lan_arp]"] {
        let at = shipped.find(table).unwrap();
        assert!(
            shipped[at..].starts_with(&format!("{table}\nenabled = true\ninterval_secs = 60\n")),
            "{table} no longer ships interval_secs = 60: update this test"
        );
    }
    let interval = Duration::from_secs(60);
    let mut dhcp = Vec::new();
    let mut arp = Vec::new();
    for run in 0..runs {
        let (lab, home) = home();
        let s = stack(&lab, "");
        wait_runs(&s, 1);
        // The measurement's random phase, not a synchronisation.
        let r = RandomState::new().build_hasher().finish();
        let phase = interval.mul_f64((r % 10_000) as f64 / 10_000.0);
        std::thread::sleep(phase);
        let _rogue = home.plug(DeviceKind::RogueDhcp, 1).unwrap();
        let _dup = home.plug(DeviceKind::DuplicateIp, 2).unwrap();
        let t0 = Instant::now();
        let deadline = interval * 2 + Duration::from_secs(30);
        let (mut t_dhcp, mut t_arp) = (None, None);
        wait_for(
            "both LAN incidents",
            deadline,
            Duration::from_millis(100),
            || {
                let page = s.incidents().map_err(|e| e.to_string())?;
                for i in &page.incidents {
                    match (i.check, t_dhcp, t_arp) {
                        (CheckId::LanDhcp, None, _) => t_dhcp = Some(t0.elapsed()),
                        (CheckId::LanArp, _, None) => t_arp = Some(t0.elapsed()),
                        _ => {}
                    }
                }
                match (t_dhcp, t_arp) {
                    (Some(_), Some(_)) => Ok(()),
                    _ => Err(format!("{:?}", summarize(&page))),
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", tail(&s.agent_log(0))));
        let (d, a) = (t_dhcp.unwrap(), t_arp.unwrap());
        eprintln!(
            "lan timing run {}: phase {:.1} s, rogue DHCP {:.1} s, duplicate IP {:.1} s",
            run + 1,
            phase.as_secs_f64(),
            d.as_secs_f64(),
            a.as_secs_f64()
        );
        dhcp.push(d);
        arp.push(a);
    }
    for (name, mut v) in [("rogue DHCP", dhcp), ("duplicate IP", arp)] {
        v.sort();
        eprintln!(
            "lan timing {name}: median {:.1} s, worst {:.1} s over {} run(s)",
            v[v.len() / 2].as_secs_f64(),
            v[v.len() - 1].as_secs_f64(),
            v.len()
        );
    }
}
