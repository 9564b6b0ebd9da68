//! Dual stack end to end: the real agent in a CPE whose WAN gets IPv6 from real daemons
//! (dnsmasq RAs, kea DHCPv6 with prefix delegation, dhcpcd on the CPE; see `netmedic_lab::ipv6`)
//! detects each IPv6 fault as one `wan6` incident of category `ipv6_degraded` at the real
//! collector, heals the local ones, leaves IPv4 alone, and keeps a WAN carrier loss one incident.
//!
//! The `wan6` check runs with its shipped settings (10 s interval, 2 failures to open, 2 passes to
//! resolve, RA memory 120 s); the healer's backoff is shortened as in the other healing tests.
//! Each test prints `IPV6-TIMING` lines (injection → incident at the collector, → repaired in the
//! namespace, → resolved at the collector): `cargo test -p netmedic-lab --test ipv6 -- --nocapture`.

#![allow(clippy::unwrap_used)]

use netmedic_lab::heal_faults::{healing_toml, tail};
use netmedic_lab::ipv6::{
    Dhcp6Timers, HOP6_MTU, HOP6_TARGET, ISP_GATEWAY6, Ipv6Lab, PROBE6_IP, PROBE6_NAME,
};
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{Lab, wait_for};
use netmedic_proto::{ActionId, ActionOutcome, Category, CheckId, IncidentStatus, IncidentView};
use std::time::{Duration, Instant};

/// Detection needs 2 runs 10 s apart (plus an RA solicitation of up to 4 s): well within this.
const DETECT: Duration = Duration::from_secs(90);

fn run(timers: Dhcp6Timers, extra: &str, test: impl FnOnce(&Lab, &Ipv6Lab, &Stack<'_>)) {
    let lab = Lab::builder().build().unwrap();
    let v6 = Ipv6Lab::start(&lab, timers).unwrap();
    let options = StackOptions {
        extra_agent_toml: format!("{}\n{extra}\n{}", v6.agent_toml(0), healing_toml("")),
        ..StackOptions::default()
    };
    let stack = Stack::start(&lab, options).unwrap();
    // The ISP's router has left its start-up burst of advertisements (each would make dhcpcd
    // repair a route fault at once) and the agent's first wan6 runs pass.
    v6.wait_ra_quiet(Duration::from_secs(20), Duration::from_secs(120))
        .unwrap();
    stack
        .wait_agent_log(0, &["check wan6: Ok"], Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", tail(&stack.agent_log(0)), v6.diagnostics()));
    test(&lab, &v6, &stack);
}

fn wan6_incidents(stack: &Stack<'_>) -> Vec<IncidentView> {
    stack
        .incidents()
        .unwrap()
        .incidents
        .into_iter()
        .filter(|i| i.check == CheckId::Wan6)
        .collect()
}

/// The checks of the network path (IPv4 and IPv6); device-health checks (resources: the shared
/// test machine's load) are not this test's business.
const NETWORK: &[CheckId] = &[
    CheckId::Link,
    CheckId::WanAddress,
    CheckId::DefaultRoute,
    CheckId::Icmp,
    CheckId::Dns,
    CheckId::Mtu,
    CheckId::Http,
    CheckId::Wan6,
    CheckId::Icmp6,
    CheckId::Dns6,
    CheckId::Mtu6,
];

/// No network incident of any check but `allowed` was opened (IPv4 untouched, nothing
/// duplicated).
fn assert_only(stack: &Stack<'_>, allowed: CheckId) {
    let page = stack.incidents().unwrap();
    let others: Vec<String> = page
        .incidents
        .iter()
        .filter(|i| i.check != allowed && NETWORK.contains(&i.check))
        .map(|i| format!("{} {} {:?}", i.check, i.cause, i.status))
        .collect();
    assert!(others.is_empty(), "unexpected incidents: {others:?}");
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Injects a local fault, waits for the wan6 incident of `cause`, for `healthy` in the
/// namespace and for the incident resolved and auto-healed by `action`.
fn heal_case(
    stack: &Stack<'_>,
    v6: &Ipv6Lab,
    fault: &str,
    cause: &str,
    action: ActionId,
    inject: impl FnOnce(),
    healthy: impl Fn() -> Result<(), String>,
) {
    let t0 = Instant::now();
    inject();
    let diag = || format!("{}\n{}", tail(&stack.agent_log(0)), v6.diagnostics());
    let inc = stack
        .wait_incident(&format!("wan6 {cause}"), DETECT, |i| {
            i.check == CheckId::Wan6 && i.cause == cause
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", diag()));
    let detected = t0.elapsed();
    assert_eq!(inc.category, Category::Ipv6Degraded);
    assert_eq!(inc.evidence.get("family").map(String::as_str), Some("ipv6"));
    wait_for(fault, DETECT, Duration::from_millis(200), &healthy)
        .unwrap_or_else(|e| panic!("{e}\n{}", diag()));
    let healed = t0.elapsed();
    let done = stack
        .wait_incident("wan6 incident resolved", DETECT, |i| {
            i.incident_id == inc.incident_id && i.status == IncidentStatus::Resolved
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", diag()));
    let resolved = t0.elapsed();
    println!(
        "IPV6-TIMING {fault:<28} detected {} healed {} resolved {}",
        secs(detected),
        secs(healed),
        secs(resolved)
    );
    assert_eq!(done.auto_healed, Some(true), "{done:#?}");
    let trail: Vec<(ActionId, ActionOutcome)> =
        done.actions.iter().map(|a| (a.action, a.outcome)).collect();
    assert_eq!(
        trail,
        [
            (action, ActionOutcome::Planned),
            (action, ActionOutcome::Done),
            (action, ActionOutcome::Verified),
        ],
        "{}",
        diag()
    );
    assert_eq!(
        wan6_incidents(stack).len(),
        1,
        "{:#?}",
        wan6_incidents(stack)
    );
    assert_only(stack, CheckId::Wan6);
}

#[test]
fn deleted_ipv6_default_route_is_restored_from_the_router_advertisement() {
    run(Dhcp6Timers::LONG, "", |_, v6, stack| {
        let cpe = v6.cpe(0);
        heal_case(
            stack,
            v6,
            "ipv6 default route deleted",
            "ipv6_default_route_missing",
            ActionId::RestoreRoute6,
            || cpe.delete_default_routes6().unwrap(),
            || {
                let r = cpe.default_routes6().map_err(|e| e.to_string())?;
                if r.iter().any(|(via, _)| via.starts_with("fe80:")) {
                    Ok(())
                } else {
                    Err(format!("{r:?}"))
                }
            },
        );
    });
}

#[test]
fn removed_lan_prefix_is_reapplied_from_the_lease() {
    run(Dhcp6Timers::LONG, "", |_, v6, stack| {
        let cpe = v6.cpe(0);
        let before = cpe.lan_prefixes().unwrap();
        assert_eq!(before.len(), 1, "{before:?}");
        heal_case(
            stack,
            v6,
            "LAN prefix removed",
            "lan_prefix_missing",
            ActionId::ReapplyLanPrefix,
            || cpe.remove_lan_prefix().unwrap(),
            || {
                let now = cpe.lan_prefixes().map_err(|e| e.to_string())?;
                if now == before {
                    Ok(())
                } else {
                    Err(format!("{now:?}"))
                }
            },
        );
    });
}

/// An upstream fault, as the tests below inject it.
struct Upstream<'a> {
    /// The label of its `IPV6-TIMING` line.
    label: &'a str,
    check: CheckId,
    cause: &'a str,
    /// How long detection and resolution may take.
    detect: Duration,
    resolve: Duration,
    /// What undoing it means, for the timing line ("the RAs came back").
    undone: &'a str,
    /// The shipped playbook reports it only: no action may run.
    report_only: bool,
}

/// Injects an upstream fault, waits for one incident of `u.check`/`u.cause` (category
/// `ipv6_degraded`, evidence `family = ipv6`; `more` asserts the rest), undoes the fault, waits
/// for the incident resolved and prints the timings; no other network check opened an incident.
fn upstream_case(
    stack: &Stack<'_>,
    v6: &Ipv6Lab,
    u: Upstream<'_>,
    inject: impl FnOnce(),
    undo: impl FnOnce(),
    more: impl FnOnce(&IncidentView),
) {
    let diag = || format!("{}\n{}", tail(&stack.agent_log(0)), v6.diagnostics());
    let t0 = Instant::now();
    inject();
    let inc = stack
        .wait_incident(&format!("{} {}", u.check, u.cause), u.detect, |i| {
            i.check == u.check && i.cause == u.cause
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", diag()));
    let detected = t0.elapsed();
    assert_eq!(inc.category, Category::Ipv6Degraded);
    assert_eq!(inc.evidence.get("family").map(String::as_str), Some("ipv6"));
    if u.report_only {
        assert!(inc.actions.is_empty(), "{:#?}", inc.actions);
    }
    more(&inc);
    undo();
    let t1 = Instant::now();
    let done = stack
        .wait_incident(&format!("{} resolved", u.cause), u.resolve, |i| {
            i.incident_id == inc.incident_id && i.status == IncidentStatus::Resolved
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", diag()));
    println!(
        "IPV6-TIMING {:<28} detected {} resolved {} after {}",
        u.label,
        secs(detected),
        secs(t1.elapsed()),
        u.undone
    );
    if u.report_only {
        assert!(done.actions.is_empty(), "{:#?}", done.actions);
    }
    let page = stack.incidents().unwrap();
    let n = page.incidents.iter().filter(|i| i.check == u.check).count();
    assert_eq!(n, 1, "{:#?}", page.incidents);
    assert_only(stack, u.check);
}

#[test]
fn stopped_router_advertisements_are_one_ipv6_incident() {
    run(Dhcp6Timers::LONG, "", |_, v6, stack| {
        let u = Upstream {
            label: "router advertisements stopped",
            check: CheckId::Wan6,
            cause: "ra_missing",
            // The RA memory (120 s) must run out before a solicitation goes unanswered.
            detect: DETECT + Duration::from_secs(120),
            resolve: DETECT,
            undone: "the RAs came back",
            // Nothing local fixes a silent router.
            report_only: true,
        };
        let inject = || v6.stop_ra().unwrap();
        upstream_case(stack, v6, u, inject, || v6.start_ra().unwrap(), |_| {});
    });
}

#[test]
fn lost_prefix_delegation_is_detected_and_recovers_with_the_server() {
    run(Dhcp6Timers::SHORT, "", |_, v6, stack| {
        let u = Upstream {
            label: "prefix delegation lost",
            check: CheckId::Wan6,
            cause: "prefix_delegation_missing",
            // The delegation's valid lifetime (24 s) runs out without renewals.
            detect: DETECT,
            resolve: DETECT * 2,
            undone: "the server came back",
            // renew_dhcp6 runs (and fails while the server is gone).
            report_only: false,
        };
        let inject = || v6.stop_kea().unwrap();
        upstream_case(stack, v6, u, inject, || v6.start_kea().unwrap(), |_| {});
        assert!(!v6.cpe(0).lan_prefixes().unwrap().is_empty());
    });
}

#[test]
fn ipv6_path_loss_is_one_icmp6_incident_beside_a_healthy_ipv4() {
    let extra = format!("[checks.icmp6]\nenabled = true\ntargets = [\"{PROBE6_IP}\"]\n");
    run(Dhcp6Timers::LONG, &extra, |_, v6, stack| {
        let u = Upstream {
            label: "ipv6 path loss 40%",
            check: CheckId::Icmp6,
            cause: "packet_loss",
            detect: DETECT,
            resolve: DETECT,
            undone: "the loss ended",
            report_only: true,
        };
        let inject = || v6.inject_echo_loss6(0, 40).unwrap();
        let undo = || v6.inject_echo_loss6(0, 0).unwrap();
        upstream_case(stack, v6, u, inject, undo, |_| {});
    });
}

#[test]
fn dead_ipv6_resolver_is_one_dns6_incident_beside_a_healthy_ipv4() {
    let extra = format!(
        "[checks.dns6]\nenabled = true\nresolvers = [\"{ISP_GATEWAY6}\"]\ntest_names = [\"{PROBE6_NAME}\"]\n"
    );
    run(Dhcp6Timers::LONG, &extra, |_, v6, stack| {
        stack
            .wait_agent_log(0, &["check dns6: Ok"], DETECT)
            .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
        let u = Upstream {
            label: "ipv6 resolver dead",
            check: CheckId::Dns6,
            cause: "resolver6_unreachable",
            detect: DETECT,
            resolve: DETECT * 2,
            undone: "the resolver returned",
            report_only: true,
        };
        let inject = || v6.stop_dns6().unwrap();
        upstream_case(stack, v6, u, inject, || v6.start_dns6().unwrap(), |_| {});
    });
}

#[test]
fn dead_lan_ra_daemon_is_one_wan6_incident() {
    run(Dhcp6Timers::LONG, "", |_, v6, stack| {
        let cpe = v6.cpe(0);
        let u = Upstream {
            label: "LAN RA daemon dead",
            check: CheckId::Wan6,
            cause: "lan_ra_missing",
            detect: DETECT,
            resolve: DETECT,
            undone: "the daemon returned",
            // The shipped playbook reports it only (a dead daemon is the service check's to
            // restart).
            report_only: true,
        };
        let inject = || cpe.stop_lan_ra().unwrap();
        let heard = |i: &IncidentView| {
            assert_eq!(
                i.evidence.get("lan_ra_heard").map(String::as_str),
                Some("none"),
                "{:#?}",
                i.evidence
            );
        };
        upstream_case(stack, v6, u, inject, || cpe.start_lan_ra().unwrap(), heard);
    });
}

#[test]
fn ipv6_path_mtu_blackhole_is_one_mtu6_incident_and_no_action() {
    // The shipped mtu6 settings (60 s interval, 2 failures, 2 passes), probing the host behind
    // the ISP's 1400-byte hop.
    let extra = format!("[checks.mtu6]\nenabled = true\ntarget = \"{HOP6_TARGET}\"\n");
    run(Dhcp6Timers::LONG, &extra, |_, v6, stack| {
        // Before the fault the hop answers Packet Too Big: path-MTU discovery works, no fault.
        stack
            .wait_agent_log(0, &["check mtu6: Ok"], DETECT)
            .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
        let u = Upstream {
            label: "ipv6 path-MTU blackhole",
            check: CheckId::Mtu6,
            cause: "pmtu_blackhole",
            detect: DETECT * 3,
            resolve: DETECT * 3,
            undone: "Packet Too Big returned",
            // Upstream: the agent never acts on it.
            report_only: true,
        };
        let inject = || v6.filter_packet_too_big(true).unwrap();
        let undo = || v6.filter_packet_too_big(false).unwrap();
        let largest = |i: &IncidentView| {
            assert_eq!(
                i.evidence.get("largest_passing_bytes").map(String::as_str),
                Some(HOP6_MTU.to_string().as_str()),
                "{:#?}",
                i.evidence
            );
        };
        upstream_case(stack, v6, u, inject, undo, largest);
    });
}

#[test]
fn dual_stack_carrier_loss_is_one_link_incident() {
    run(Dhcp6Timers::LONG, "", |lab, _, stack| {
        let cpe = lab.cpe(0);
        let log_len = stack.agent_log(0).len();
        let since = |from: usize| {
            let log = stack.agent_log(0);
            log[from.min(log.len())..].to_string()
        };
        cpe.drop_wan_carrier().unwrap();
        // The collector is behind the lost link: watch the agent until link has opened its
        // incident and wan6 has failed often enough to open one of its own had it not been
        // layered under link.
        wait_for(
            "link incident and wan6 failures as its consequences",
            DETECT,
            Duration::from_millis(200),
            || {
                let log = since(log_len);
                let n = log.matches("wan6 failure is a consequence of link").count();
                let link = log.contains("incident opened: link (wan_carrier_lost)");
                if n >= 2 && link {
                    Ok(())
                } else {
                    Err(format!("link opened: {link}, wan6 consequences: {n}"))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
        cpe.restore_wan_carrier().unwrap();
        stack
            .wait_incident("link incident resolved", DETECT, |i| {
                i.check == CheckId::Link && i.status == IncidentStatus::Resolved
            })
            .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
        // wan6 passes again after the carrier returned (dhcpcd rebinds).
        let ok_len = stack.agent_log(0).len();
        wait_for(
            "wan6 passes again",
            DETECT,
            Duration::from_millis(200),
            || {
                if since(ok_len).contains("check wan6: Ok") {
                    Ok(())
                } else {
                    Err("not yet".to_string())
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
        let page = stack.incidents().unwrap();
        let link = page
            .incidents
            .iter()
            .filter(|i| i.check == CheckId::Link)
            .count();
        assert_eq!(link, 1, "{:#?}", page.incidents);
        assert!(
            wan6_incidents(stack).is_empty(),
            "{:#?}",
            wan6_incidents(stack)
        );
        assert!(
            !since(log_len).contains("incident opened: wan6"),
            "{}",
            tail(&stack.agent_log(0))
        );
    });
}
