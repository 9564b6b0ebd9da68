//! End-to-end safety of self-healing (docs/design.md, "Self-healing safety"): an upstream cut gets no
//! disruptive action and one incident with cause upstream, and the budgets hold; the kill
//! switch stops the next action; a reset_dns that did not help is rolled back byte for byte.

#![allow(clippy::unwrap_used)]

use netmedic_lab::heal_faults::{dead_resolver_dns_toml, healing_toml, tail};
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{Lab, PROBE_IP, PROBE2_IP, WAN_IFACE, wait_for};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentStatus};
use std::time::{Duration, Instant};

fn options(extra: &str) -> StackOptions {
    StackOptions {
        extra_agent_toml: extra.to_string(),
        ..StackOptions::default()
    }
}

fn wait_log(stack: &Stack<'_>, what: &str, timeout: Duration) {
    stack.wait_agent_log(0, &[what], timeout).unwrap();
}

/// Charges in the persisted budget file (0 when there is none).
fn budget_charges(lab: &Lab) -> usize {
    let path = lab.dir().join("agent0-state/heal-budget.json");
    match std::fs::read(&path) {
        Ok(b) => {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            v["charges"].as_array().map_or(0, Vec::len)
        }
        Err(_) => 0,
    }
}

#[test]
fn upstream_cut_gets_no_disruptive_action_one_upstream_incident_and_budgets_hold() {
    let lab = Lab::builder().build().unwrap();
    let reboots = lab.dir().join("reboot-called");
    let extra = format!(
        "[checks.icmp]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
         targets = [\"{PROBE_IP}\", \"{PROBE2_IP}\"]\ncount = 3\ninterval_ms = 100\ntimeout_ms = 300\n\
         {}\n[healing.reboot]\nenabled = true\ncommand = [\"/bin/sh\", \"-c\", \"echo reboot >> {}\"]\n\
         [[playbook]]\ncheck = \"icmp\"\ncauses = [\"upstream_unreachable\", \"target_unreachable\"]\n\
         actions = [\"bounce_iface\", \"reboot\"]\nmode = \"enforce\"\n",
        healing_toml(""),
        reboots.display()
    );
    let stack = Stack::start(&lab, options(&extra)).unwrap();
    let cpe = lab.cpe(0);
    let link_before = cpe.ns.ip(&["-o", "link", "show", WAN_IFACE]).unwrap();
    let routes_before = cpe.ns.ip(&["-4", "route", "show", "table", "all"]).unwrap();

    lab.isp().cut_upstream().unwrap();
    let cut_at = Instant::now();
    // Both disruptive rungs are ruled out and the NOC is told.
    wait_log(&stack, "escalating to the NOC", Duration::from_secs(60));
    // A long window (long against the test's 1 s checks and backoff): nothing disruptive.
    let window = Duration::from_secs(20);
    while cut_at.elapsed() < window {
        let log = stack.agent_log(0);
        assert!(!log.contains("running bounce_iface"), "{}", tail(&log));
        assert!(!log.contains("running reboot"), "{}", tail(&log));
        assert!(!reboots.exists(), "the reboot command ran");
        assert_eq!(
            cpe.ns.ip(&["-o", "link", "show", WAN_IFACE]).unwrap(),
            link_before
        );
        assert_eq!(budget_charges(&lab), 0, "an action was charged");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        cpe.ns.ip(&["-4", "route", "show", "table", "all"]).unwrap(),
        routes_before
    );
    lab.isp().restore_upstream().unwrap();

    // The collector (cut off too) gets the spooled incident once the upstream is back.
    let inc = stack
        .wait_incident("resolved upstream incident", Duration::from_secs(90), |i| {
            i.check == CheckId::Icmp && i.status == IncidentStatus::Resolved
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    assert_eq!(inc.cause, "upstream_unreachable");
    assert_eq!(inc.auto_healed, Some(false));
    let trail: Vec<_> = inc.actions.iter().map(|a| (a.action, a.outcome)).collect();
    assert_eq!(
        trail,
        [
            (ActionId::BounceIface, ActionOutcome::Skipped),
            (ActionId::Reboot, ActionOutcome::Skipped),
            (ActionId::Reboot, ActionOutcome::Escalated),
        ],
        "{:#?}",
        inc.actions
    );
    assert!(
        inc.actions[0].detail.contains("beyond"),
        "{:?}",
        inc.actions[0]
    );
    let all = stack.incidents().unwrap();
    assert_eq!(
        all.incidents.len(),
        1,
        "one fault, one incident: {:#?}",
        all.incidents
    );
    assert_eq!(budget_charges(&lab), 0);
}

#[test]
fn kill_switch_stops_the_next_action_until_it_is_lifted() {
    let lab = Lab::builder().build().unwrap();
    let switch = lab.dir().join("healing.disabled");
    let extra = format!(
        "[checks.mtu]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\nexpected_mtu = 1500\nprobe_path = false\n{}",
        healing_toml(&format!("kill_switch_file = \"{}\"", switch.display()))
    );
    let stack = Stack::start(&lab, options(&extra)).unwrap();
    let cpe = lab.cpe(0);

    std::fs::write(&switch, b"NOC: stop\n").unwrap();
    cpe.set_wan_mtu(1400).unwrap();
    let injected = Instant::now();
    wait_log(
        &stack,
        "set_mtu waits: kill switch",
        Duration::from_secs(30),
    );
    // Detection takes fail_threshold (2) runs of 1 s; the refusal follows at once.
    let refused_after = injected.elapsed();
    eprintln!("kill switch: refusal recorded {refused_after:?} after the injection");
    assert!(refused_after < Duration::from_secs(5), "{refused_after:?}");
    // The fault stays for many check intervals: nothing acts.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(
            cpe.wan_mtu().unwrap(),
            1400,
            "set_mtu ran despite the kill switch"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!stack.agent_log(0).contains("running set_mtu"));

    // Lifted: the next plan acts.
    std::fs::remove_file(&switch).unwrap();
    wait_for(
        "MTU healed",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || match cpe.wan_mtu().map_err(|e| e.to_string())? {
            1500 => Ok(()),
            m => Err(format!("{m}")),
        },
    )
    .unwrap();
    let inc = stack
        .wait_incident("resolved mtu incident", Duration::from_secs(60), |i| {
            i.check == CheckId::Mtu && i.status == IncidentStatus::Resolved
        })
        .unwrap();
    let trail: Vec<_> = inc.actions.iter().map(|a| (a.action, a.outcome)).collect();
    assert_eq!(
        trail,
        [
            (ActionId::SetMtu, ActionOutcome::Skipped),
            (ActionId::SetMtu, ActionOutcome::Planned),
            (ActionId::SetMtu, ActionOutcome::Done),
            (ActionId::SetMtu, ActionOutcome::Verified),
        ],
        "{:#?}",
        inc.actions
    );
    assert!(
        inc.actions[0].detail.contains("kill switch"),
        "{:?}",
        inc.actions[0]
    );
}

#[test]
fn reset_dns_that_does_not_help_is_rolled_back_byte_for_byte() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    // No DHCP renew may rewrite resolv.conf during the test.
    cpe.stop_udhcpc().unwrap();
    // One provisioned resolver is dead, so resetting to both cannot help.
    let extra = dead_resolver_dns_toml(3);
    let stack = Stack::start(&lab, options(&extra)).unwrap();
    let original = "# the subscriber's own  resolv.conf\t(odd spacing kept)\nsearch home.example\n\
                    nameserver 198.51.100.53\noptions timeout:1 attempts:1\n\n# trailing comment without newline";
    cpe.write_resolv_conf(original).unwrap();

    wait_log(&stack, "reset_dns rolled back", Duration::from_secs(60));
    let now = std::fs::read(&cpe.resolv_conf).unwrap();
    assert_eq!(
        now,
        original.as_bytes(),
        "resolv.conf after the rollback:\n{}",
        String::from_utf8_lossy(&now)
    );
    let inc = stack
        .wait_incident("dns incident with rollback", Duration::from_secs(60), |i| {
            i.check == CheckId::Dns
                && i.actions
                    .iter()
                    .any(|a| a.outcome == ActionOutcome::Escalated)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    let trail: Vec<_> = inc.actions.iter().map(|a| (a.action, a.outcome)).collect();
    assert_eq!(
        trail,
        [
            (ActionId::ResetDns, ActionOutcome::Planned),
            (ActionId::ResetDns, ActionOutcome::Done),
            (ActionId::ResetDns, ActionOutcome::NotEffective),
            (ActionId::ResetDns, ActionOutcome::RolledBack),
            (ActionId::ResetDns, ActionOutcome::Escalated),
        ],
        "{:#?}",
        inc.actions
    );
    assert!(
        inc.actions[1].detail.contains("100.64.0.99"),
        "{:?}",
        inc.actions[1]
    );
    assert!(
        inc.actions[3].detail.contains("identical"),
        "{:?}",
        inc.actions[3]
    );
    assert_eq!(inc.status, IncidentStatus::Open);
}
