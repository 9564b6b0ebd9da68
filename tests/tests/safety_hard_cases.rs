//! Safety under the hard cases, each against the real agent and collector binaries in the lab:
//! an action that cannot help is ruled out before it runs; a flapping WAN carrier gets bounded
//! actions and every incident resolves once the link is stable; a fault under the fleet kill
//! switch is reported but untouched until the switch is lifted; two faults at once both heal;
//! a fault healed while the collector is unreachable arrives exactly once; a healthy device
//! under LAN traffic gets no incident and no action.
//!
//! Each test says which intervals it runs on: the shipped ones (10-30 s checks, the shipped
//! hysteresis, budgets and backoff) where the case is about behaviour over time (flapping, the
//! healthy soak), 1 s checks elsewhere.
//!
//! Already covered elsewhere and not repeated here: the local kill-switch file set before the
//! fault (`healing_safety.rs`), the upstream-outage advisory from a real mass outage
//! (`mass_outage.rs`), a long collector cut with incident churn (`delivery.rs`).

#![allow(clippy::unwrap_used)]

use netmedic_lab::delivery::{PortCut, spooled_events, wait_spool_drained};
use netmedic_lab::hard_cases::{
    LanTraffic, actions_run, budget_charges, flap_carrier, soak_duration,
};
use netmedic_lab::heal_faults::{healing_toml, tail};
use netmedic_lab::stack::{COLLECTOR_PORT, Stack, StackOptions, agent_check};
use netmedic_lab::{ISP_GATEWAY, LAN_IFACE, Lab, PROBE_IP, PROBE_NAME, wait_for};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentStatus, IncidentView};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// 1 s checks, `fail_threshold = 2`, `ok_threshold = 2` (the lab default) plus `extra`.
fn fast(extra: &str) -> StackOptions {
    StackOptions {
        extra_agent_toml: extra.to_string(),
        ..StackOptions::default()
    }
}

/// The shipped intervals, hysteresis, budgets and backoff: `default_route` as shipped
/// (10 s, 2/2), every other table at its built-in default (the same as `config/agent.toml`);
/// only the busy interface is the lab's `lan` (the shipped `br-lan` does not exist here), and
/// the `resources` check is off: the lab's namespaces share the host's load and memory, and a
/// CI machine shared by many builds runs at a 5-minute load far above a router's threshold —
/// that would be the host's incident, not the CPE's.
fn shipped(extra: &str) -> StackOptions {
    StackOptions {
        check_interval_secs: 10,
        fail_threshold: 2,
        ok_threshold: 2,
        extra_agent_toml: format!(
            "[checks.resources]\nenabled = false\n[healing]\nbusy_interface = \"{LAN_IFACE}\"\n{extra}"
        ),
        ..StackOptions::default()
    }
}

fn trail(inc: &IncidentView) -> Vec<(ActionId, ActionOutcome)> {
    inc.actions.iter().map(|a| (a.action, a.outcome)).collect()
}

fn state_dir(lab: &Lab) -> std::path::PathBuf {
    lab.dir().join("agent0-state")
}

/// A provisioned resolver that answers an error to every name the check asks (the ISP's
/// dnsmasq serves only `*.test` and has no upstream): no rewrite of resolv.conf can fix it.
/// Without the rule-out the agent rewrites resolv.conf to that same resolver, finds it not
/// effective and rolls it back (the trail assertion fails on Planned/Done/NotEffective).
#[test]
fn reset_dns_is_ruled_out_when_the_provisioned_resolver_itself_fails() {
    // 1 s checks.
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    // No DHCP renew may rewrite resolv.conf during the test.
    cpe.stop_udhcpc().unwrap();
    let original = format!("# the ISP's resolver, as provisioned\nnameserver {ISP_GATEWAY}\n");
    cpe.write_resolv_conf(&original).unwrap();
    let extra = format!(
        "[checks.dns]\nenabled = true\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
         resolv_conf = \"/etc/resolv.conf\"\nprovisioned_resolvers = [\"{ISP_GATEWAY}\"]\n\
         test_names = [\"www.broken.example\"]\ntimeout_ms = 300\nretries = 0\n{}",
        healing_toml("verify_timeout_secs = 3")
    );
    let stack = Stack::start(&lab, fast(&extra)).unwrap();

    let inc = stack
        .wait_incident("escalated dns incident", Duration::from_secs(60), |i| {
            i.check == CheckId::Dns
                && i.actions
                    .iter()
                    .any(|a| a.outcome == ActionOutcome::Escalated)
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    assert!(inc.cause.starts_with("resolver_"), "{inc:#?}");
    assert_eq!(
        trail(&inc),
        [
            (ActionId::ResetDns, ActionOutcome::Skipped),
            (ActionId::ResetDns, ActionOutcome::Escalated),
        ],
        "{:#?}",
        inc.actions
    );
    assert!(
        inc.actions[0].detail.contains("already names exactly"),
        "{:?}",
        inc.actions[0]
    );
    // Ruled out before it ran: nothing written, nothing saved for a rollback, nothing charged.
    let log = stack.agent_log(0);
    assert!(actions_run(&log).is_empty(), "{}", tail(&log));
    assert_eq!(std::fs::read_to_string(&cpe.resolv_conf).unwrap(), original);
    assert!(!state_dir(&lab).join("rollback/resolv.conf.orig").exists());
    assert_eq!(budget_charges(&state_dir(&lab)), 0);
    assert_eq!(inc.status, IncidentStatus::Open);
}

/// The WAN carrier flaps (down 4 s, up 6 s) for two minutes, then stays up. Shipped
/// intervals: link 30 s safety net plus netlink events, flap_threshold 4 in 600 s,
/// flap_clear_secs 120, shipped budgets (bounce_iface 4/h, all actions 12/h) and backoff.
/// Without the cause take-over no incident names the flapping; with the link judged over the
/// whole 600 s window (flap_clear_secs = flap_window_secs) the incident stays open past the
/// 300 s deadline.
#[test]
fn a_flapping_wan_carrier_gets_bounded_actions_and_every_incident_resolves_once_stable() {
    let lab = Lab::builder().build().unwrap();
    let stack = Stack::start(&lab, shipped("")).unwrap();
    let cpe = lab.cpe(0);

    let changes = flap_carrier(
        cpe,
        Duration::from_secs(4),
        Duration::from_secs(6),
        Duration::from_secs(120),
    )
    .unwrap();
    let stable_at = Instant::now();
    eprintln!("flapping: {changes} carrier changes in 120 s");
    assert!(cpe.wan_has_carrier().unwrap());
    // While it settles the open incident already names the flapping (an update event).
    stack
        .wait_incident("open flapping incident", Duration::from_secs(60), |i| {
            i.check == CheckId::Link
                && i.cause == "wan_link_flapping"
                && i.status == IncidentStatus::Open
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));

    // Every incident resolves once the link is stable (flap_clear_secs 120 + one 30 s link
    // interval + the dependants' 10 s intervals, with margin).
    let resolved = wait_for(
        "every incident resolved at the collector",
        Duration::from_secs(300),
        Duration::from_secs(1),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            let open: Vec<String> = page
                .incidents
                .iter()
                .filter(|i| i.status != IncidentStatus::Resolved)
                .map(|i| format!("{} {} {}", i.check, i.cause, i.summary))
                .collect();
            let link = page.incidents.iter().any(|i| i.check == CheckId::Link);
            if link && open.is_empty() {
                Ok(page.incidents)
            } else {
                Err(format!("still open: {open:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    eprintln!(
        "flapping: every incident resolved {:.0} s after the link became stable",
        stable_at.elapsed().as_secs_f64()
    );
    let link: Vec<&IncidentView> = resolved
        .iter()
        .filter(|i| i.check == CheckId::Link)
        .collect();
    for i in &resolved {
        eprintln!(
            "  {} {} ({} events): {:?}",
            i.check,
            i.cause,
            i.event_count,
            trail(i)
        );
    }
    // One or few incidents, and the flapping is named.
    assert!(
        link.len() <= 3,
        "{} link incidents: {:#?}",
        link.len(),
        link
    );
    assert!(
        link.iter().any(|i| i.cause == "wan_link_flapping"),
        "no incident reports wan_link_flapping: {link:#?}"
    );
    // No heal loop: the actions stay within the shipped budgets, by far.
    let log = stack.agent_log(0);
    let ran = actions_run(&log);
    let mut per_action: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &ran {
        *per_action.entry(a.as_str()).or_default() += 1;
    }
    eprintln!("flapping: actions run {per_action:?}");
    assert!(ran.len() <= 12, "global budget exceeded: {ran:?}");
    assert!(
        per_action.get("bounce_iface").copied().unwrap_or(0) <= 2,
        "bounce_iface on every flap: {ran:?}"
    );
    assert!(!per_action.contains_key("reboot"), "{ran:?}");
    assert!(budget_charges(&state_dir(&lab)) <= ran.len());
    // A fresh `check` agrees with the daemon: the link is fine.
    let obs = agent_check(&lab, 0, "link", "").unwrap();
    assert_eq!(obs["status"], "ok", "{obs}");
}

/// The fault (the default route deleted) appears while the collector's fleet kill switch is in
/// force: nothing acts, the incident still reaches the collector with the refusal on it, and
/// the route is restored once the switch is lifted. 1 s checks, heartbeats every second.
#[test]
fn a_fault_under_the_fleet_kill_switch_is_reported_untouched_and_healed_once_lifted() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    cpe.stop_udhcpc().unwrap();
    let extra = format!(
        "[heartbeat]\nenabled = true\ninterval_secs = 1\njitter_secs = 0\n{}",
        healing_toml("")
    );
    // The collector listens on the gateway address: reachable without the default route.
    let options = StackOptions {
        collector_ip: Some(ISP_GATEWAY),
        ..fast(&extra)
    };
    let stack = Stack::start(&lab, options).unwrap();
    let put = stack
        .api(
            "PUT",
            "/api/v1/killswitches",
            Some(r#"{"scope":"fleet","reason":"lab: NOC stops all remediation"}"#),
        )
        .unwrap();
    assert_eq!(put.status, 200, "{}", put.body);
    stack
        .wait_agent_log(0, &["collector kill switch on"], Duration::from_secs(20))
        .unwrap();

    let route = cpe.default_route().unwrap().expect("a default route");
    cpe.delete_default_route().unwrap();
    stack
        .wait_agent_log(
            0,
            &["restore_route waits: kill switch"],
            Duration::from_secs(30),
        )
        .unwrap();
    // Reported while held: the open incident with the refusal on its trail.
    let inc = stack
        .wait_incident("held route incident", Duration::from_secs(30), |i| {
            i.check == CheckId::DefaultRoute
                && i.status == IncidentStatus::Open
                && i.actions.iter().any(|a| {
                    a.outcome == ActionOutcome::Skipped && a.detail.contains("kill switch")
                })
        })
        .unwrap();
    // Many check intervals and heartbeats later, still nothing acted.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        assert_eq!(cpe.default_route().unwrap(), None, "the route came back");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(actions_run(&stack.agent_log(0)).is_empty());
    assert_eq!(budget_charges(&state_dir(&lab)), 0);

    let del = stack
        .api("DELETE", "/api/v1/killswitches?scope=fleet", None)
        .unwrap();
    assert_eq!(del.status, 200, "{}", del.body);
    wait_for(
        "route restored",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match cpe.default_route().map_err(|e| e.to_string())? {
            Some(r) if r.gateway == route.gateway => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    let healed = stack
        .wait_incident("healed route incident", Duration::from_secs(30), |i| {
            i.incident_id == inc.incident_id && i.status == IncidentStatus::Resolved
        })
        .unwrap();
    assert_eq!(healed.auto_healed, Some(true));
    assert_eq!(
        trail(&healed),
        [
            (ActionId::RestoreRoute, ActionOutcome::Skipped),
            (ActionId::RestoreRoute, ActionOutcome::Planned),
            (ActionId::RestoreRoute, ActionOutcome::Done),
            (ActionId::RestoreRoute, ActionOutcome::Verified),
        ],
        "{:#?}",
        healed.actions
    );
}

/// Two faults at once: the default route deleted and resolv.conf pointed at a resolver that is
/// not provisioned (and unreachable without the route). DNS depends on the route, so its
/// failure is layered on the route incident until the route is back; then it is its own
/// fault. Both heal; no action is rolled back or undone by the other's. 1 s checks.
#[test]
fn route_and_dns_broken_at_once_both_heal_and_neither_action_undoes_the_other() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    cpe.stop_udhcpc().unwrap();
    cpe.point_resolv_conf_at(ISP_GATEWAY).unwrap();
    let extra = format!(
        "[checks.dns]\nenabled = true\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
         resolv_conf = \"/etc/resolv.conf\"\nprovisioned_resolvers = [\"{ISP_GATEWAY}\"]\n\
         test_names = [\"probe.isp.test\"]\ntimeout_ms = 300\nretries = 0\n{}",
        healing_toml("")
    );
    let stack = Stack::start(&lab, fast(&extra)).unwrap();
    stack
        .wait_agent_log(0, &["check dns: Ok"], Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));

    let route = cpe.default_route().unwrap().expect("a default route");
    cpe.delete_default_route().unwrap();
    cpe.point_resolv_conf_at(PROBE_IP).unwrap();
    let injected = Instant::now();
    wait_for(
        "route and resolv.conf healed",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let r = cpe.default_route().map_err(|e| e.to_string())?;
            let rc = cpe.resolv_conf().map_err(|e| e.to_string())?;
            let route_ok = r.is_some_and(|r| r.gateway == route.gateway);
            let dns_ok = rc.contains(&format!("nameserver {ISP_GATEWAY}"))
                && !rc.contains(&PROBE_IP.to_string());
            if route_ok && dns_ok {
                Ok(())
            } else {
                Err(format!("route ok {route_ok}, resolv.conf {rc:?}"))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    eprintln!(
        "double fault: both healed {:?} after injection",
        injected.elapsed()
    );

    let page = wait_for(
        "both incidents resolved",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            let done = |c: CheckId| {
                page.incidents
                    .iter()
                    .any(|i| i.check == c && i.status == IncidentStatus::Resolved)
            };
            let open = page
                .incidents
                .iter()
                .any(|i| i.status != IncidentStatus::Resolved);
            if done(CheckId::DefaultRoute) && done(CheckId::Dns) && !open {
                Ok(page)
            } else {
                Err(format!("{:?}", netmedic_lab::stack::summarize(&page)))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    for i in &page.incidents {
        eprintln!("  {} {}: {:?}", i.check, i.cause, trail(i));
        assert_eq!(i.auto_healed, Some(true), "{i:#?}");
        assert!(
            !i.actions
                .iter()
                .any(|a| matches!(a.outcome, ActionOutcome::RolledBack | ActionOutcome::Failed)),
            "{i:#?}"
        );
    }
    let healed_by = |c: CheckId| {
        page.incidents
            .iter()
            .filter(|i| i.check == c)
            .flat_map(|i| i.actions.iter())
            .filter(|a| a.outcome == ActionOutcome::Verified)
            .map(|a| a.action)
            .collect::<Vec<_>>()
    };
    assert_eq!(healed_by(CheckId::DefaultRoute), [ActionId::RestoreRoute]);
    assert_eq!(healed_by(CheckId::Dns), [ActionId::ResetDns]);
    // One fault, one incident each.
    assert_eq!(page.incidents.len(), 2, "{:#?}", page.incidents);
    // Neither undid the other: both fixes still hold a while later.
    std::thread::sleep(Duration::from_secs(3));
    assert!(cpe.default_route().unwrap().is_some());
    assert!(
        cpe.resolv_conf()
            .unwrap()
            .contains(&format!("nameserver {ISP_GATEWAY}"))
    );
}

/// The collector port is cut while a fault (the default route deleted) happens and is healed;
/// when the port is back the incident arrives exactly once: one incident, every spooled event
/// stored once, one resolved event, the trail without a duplicate. 1 s checks.
#[test]
fn a_fault_healed_while_the_collector_is_unreachable_arrives_exactly_once() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    cpe.stop_udhcpc().unwrap();
    let stack = Stack::start(&lab, fast(&healing_toml(""))).unwrap();
    let spool_dir = state_dir(&lab).join("spool");

    let cut = PortCut::new(&lab.isp().ns, COLLECTOR_PORT).unwrap();
    cpe.delete_default_route().unwrap();
    stack
        .wait_agent_log(0, &["healed by restore_route"], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    // The agent tried to deliver meanwhile (its reporter backs off and retries).
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        stack.incidents().unwrap().incidents.is_empty(),
        "the collector was cut off"
    );
    cut.heal();

    wait_spool_drained(&spool_dir, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    let log = stack.agent_log(0);
    let spooled = spooled_events(&log);
    let incidents: BTreeSet<&str> = spooled.iter().map(|(_, i)| i.as_str()).collect();
    assert_eq!(incidents.len(), 1, "{spooled:?}");
    let events: BTreeSet<&str> = spooled.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(events.len(), spooled.len(), "an event id spooled twice");
    let page = stack.incidents().unwrap();
    assert_eq!(page.incidents.len(), 1, "{:#?}", page.incidents);
    let inc = &page.incidents[0];
    assert_eq!(inc.status, IncidentStatus::Resolved);
    assert_eq!(inc.auto_healed, Some(true));
    assert_eq!(inc.event_count as usize, spooled.len(), "{inc:#?}");
    assert_eq!(
        trail(inc),
        [
            (ActionId::RestoreRoute, ActionOutcome::Planned),
            (ActionId::RestoreRoute, ActionOutcome::Done),
            (ActionId::RestoreRoute, ActionOutcome::Verified),
        ]
    );
    // Re-delivery after the cut (the agent may resend what it never saw acknowledged) stores
    // nothing twice: still the same counts a few seconds later.
    std::thread::sleep(Duration::from_secs(3));
    let again = stack.incidents().unwrap();
    assert_eq!(again.incidents.len(), 1);
    assert_eq!(again.incidents[0].event_count, inc.event_count);
    assert_eq!(again.incidents[0].actions.len(), inc.actions.len());
}

/// A healthy device under LAN traffic for `NETMEDIC_HEALTHY_SOAK_SECS` (120 s by default in
/// CI; the issue's 30 minutes is `NETMEDIC_HEALTHY_SOAK_SECS=1800`, run by hand): zero
/// incidents, zero actions, nothing charged. Shipped intervals, every built-in check as
/// shipped plus DNS against the lab's resolver.
#[test]
fn a_healthy_device_under_lan_traffic_gets_no_incident_and_no_action() {
    let soak = soak_duration(120);
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    let extra = format!(
        "[checks.dns]\nenabled = true\nresolv_conf = \"/etc/resolv.conf\"\n\
         provisioned_resolvers = [\"{ISP_GATEWAY}\"]\ntest_names = [\"probe.isp.test\"]\n\
         [checks.icmp]\nenabled = true\ntargets = [\"{PROBE_IP}\"]\n"
    );
    cpe.point_resolv_conf_at(ISP_GATEWAY).unwrap();
    let stack = Stack::start(&lab, shipped(&extra)).unwrap();
    let traffic = LanTraffic::start(cpe, ISP_GATEWAY, PROBE_NAME).unwrap();
    let start = Instant::now();
    let mut checked = 0u32;
    while start.elapsed() < soak {
        std::thread::sleep(Duration::from_secs(5).min(soak.saturating_sub(start.elapsed())));
        assert!(traffic.running(), "the LAN traffic stopped");
        let page = stack.incidents().unwrap();
        assert!(
            page.incidents.is_empty(),
            "after {:?}: {:#?}",
            start.elapsed(),
            page.incidents
        );
        checked += 1;
    }
    let (sent, answers) = traffic.counts();
    assert!(
        answers > 0,
        "no DNS answer through the CPE ({sent} datagrams sent)"
    );
    let log = stack.agent_log(0);
    assert!(!log.contains("incident opened"), "{}", tail(&log));
    assert!(actions_run(&log).is_empty(), "{}", tail(&log));
    assert_eq!(budget_charges(&state_dir(&lab)), 0);
    // The checks did run all along (a soak of a stopped agent would prove nothing).
    let runs = log.matches("check default_route: Ok").count() as u64;
    assert!(
        runs + 1 >= soak.as_secs() / 10,
        "{runs} default_route runs in {soak:?}"
    );
    eprintln!(
        "healthy soak: {soak:?}, {checked} collector checks, {runs} default_route runs, \
         {sent} LAN datagrams, {answers} DNS answers via the CPE, 0 incidents, 0 actions"
    );
}
