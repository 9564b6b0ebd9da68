//! End-to-end: the real agent in a CPE namespace heals a deleted default route, and the real
//! collector stores the incident as resolved and auto-healed with its action trail.

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{ISP_GATEWAY, Lab, WAN_IFACE, wait_for};
use netmedic_proto::{ActionId, ActionOutcome, Category, CheckId, IncidentStatus};
use std::time::Duration;

#[test]
fn deleted_default_route_is_restored_and_reported() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let stack = Stack::start(&lab, StackOptions::default()).expect("stack");
    let cpe = lab.cpe(0);
    assert!(
        cpe.default_route().unwrap().is_some(),
        "the lab starts healthy"
    );

    cpe.delete_default_route().unwrap();
    assert!(
        cpe.default_route().unwrap().is_none(),
        "the fault is really injected"
    );

    // The route comes back in the namespace...
    let route = wait_for(
        "default route restored",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            cpe.default_route()
                .map_err(|e| e.to_string())?
                .ok_or("no default route".to_string())
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", stack.agent_log(0)));
    assert_eq!(route.gateway, Some(ISP_GATEWAY));
    assert_eq!(route.dev, WAN_IFACE);

    // ...and the collector says so.
    let inc = stack
        .wait_incident(
            "resolved default_route incident",
            Duration::from_secs(60),
            |i| i.check == CheckId::DefaultRoute && i.status == IncidentStatus::Resolved,
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", stack.agent_log(0)));
    assert_eq!(inc.agent_id, "lab-cpe-0");
    assert_eq!(inc.category, Category::NoInternet);
    assert_eq!(inc.cause, "default_route_missing");
    assert_eq!(inc.auto_healed, Some(true));
    assert!(inc.resolved_at.is_some());
    let trail: Vec<_> = inc.actions.iter().map(|a| (a.action, a.outcome)).collect();
    assert_eq!(
        trail,
        [
            (ActionId::RestoreRoute, ActionOutcome::Planned),
            (ActionId::RestoreRoute, ActionOutcome::Done),
            (ActionId::RestoreRoute, ActionOutcome::Verified),
        ],
        "action trail: {:#?}",
        inc.actions
    );
    assert!(
        inc.actions[1].detail.contains("100.64.0.1"),
        "{:?}",
        inc.actions[1]
    );
    // One fault, one incident.
    let all = stack.incidents().unwrap();
    assert_eq!(all.incidents.len(), 1, "{:#?}", all.incidents);

    // The CLI shows the same incident.
    let table = stack.incidents_cli(false).unwrap();
    assert!(
        table.contains(&inc.incident_id) || table.contains(&inc.incident_id[..8]),
        "{table}"
    );
    assert!(table.contains("restore_route"), "{table}");
}

#[test]
fn dry_run_plans_but_changes_nothing_and_reports_once_the_wan_is_back() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let options = StackOptions {
        mode: "dry_run".into(),
        // Short backoff so the whole ladder is planned within the test.
        extra_agent_toml: netmedic_lab::heal_faults::healing_toml(""),
        ..StackOptions::default()
    };
    let stack = Stack::start(&lab, options).expect("stack");
    let cpe = lab.cpe(0);
    // No DHCP renew may put the route back behind the test's back.
    cpe.stop_udhcpc().unwrap();
    cpe.delete_default_route().unwrap();
    let routes_before = cpe.ns.ip(&["-4", "route", "show", "table", "all"]).unwrap();
    let links_before = cpe.ns.ip(&["-o", "link", "show"]).unwrap();
    let resolv_before = std::fs::read(&cpe.resolv_conf).unwrap();

    // The agent plans restore_route and skips it; the report waits in its spool, since the
    // fault itself cut the CPE off from the collector.
    stack
        .wait_agent_log(
            0,
            &["dry_run: would run restore_route"],
            Duration::from_secs(60),
        )
        .unwrap();
    // ...and the rest of the same ladder enforce mode would climb, then the escalation.
    stack
        .wait_agent_log(
            0,
            &["dry_run: would run bounce_iface", "escalating to the NOC"],
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(std::fs::read(&cpe.resolv_conf).unwrap(), resolv_before);
    assert_eq!(
        cpe.ns.ip(&["-4", "route", "show", "table", "all"]).unwrap(),
        routes_before
    );
    assert_eq!(cpe.ns.ip(&["-o", "link", "show"]).unwrap(), links_before);
    assert!(
        cpe.default_route().unwrap().is_none(),
        "dry_run must not touch the routes"
    );

    // Someone else fixes the WAN: the spooled events are delivered and the incident resolves
    // as not healed by the agent.
    cpe.ns
        .ip(&[
            "route",
            "add",
            "default",
            "via",
            &ISP_GATEWAY.to_string(),
            "dev",
            WAN_IFACE,
        ])
        .unwrap();
    let inc = stack
        .wait_incident("resolved dry-run incident", Duration::from_secs(60), |i| {
            i.check == CheckId::DefaultRoute && i.status == IncidentStatus::Resolved
        })
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", stack.agent_log(0)));
    assert_eq!(inc.auto_healed, Some(false));
    let outcomes: Vec<_> = inc.actions.iter().map(|a| a.outcome).collect();
    assert!(
        outcomes.starts_with(&[ActionOutcome::Planned, ActionOutcome::Skipped]),
        "{:#?}",
        inc.actions
    );
    assert!(
        !outcomes.contains(&ActionOutcome::Done),
        "{:#?}",
        inc.actions
    );
    // The same ladder as enforce mode (the built-in default_route_missing playbook), each
    // rung planned and skipped, then the escalation.
    let trail: Vec<_> = inc.actions.iter().map(|a| (a.action, a.outcome)).collect();
    let mut want = Vec::new();
    for a in [
        ActionId::RestoreRoute,
        ActionId::RenewDhcp,
        ActionId::BounceIface,
    ] {
        want.push((a, ActionOutcome::Planned));
        want.push((a, ActionOutcome::Skipped));
    }
    want.push((ActionId::BounceIface, ActionOutcome::Escalated));
    assert_eq!(trail, want, "{:#?}", inc.actions);
    assert!(
        inc.actions[1].detail.contains("dry_run"),
        "{:?}",
        inc.actions[1]
    );
}
