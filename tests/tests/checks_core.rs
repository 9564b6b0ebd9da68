//! End-to-end tests of the core checks (`link`, `wan_address`, `default_route`): the real agent
//! binary observes real faults injected in a lab CPE, and one carrier loss is one incident.

use netmedic_lab::stack::{Stack, StackOptions, agent_check};
use netmedic_lab::{Lab, wait_for};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentStatus};
use std::time::Duration;

fn status_cause(obs: &serde_json::Value) -> (String, String) {
    (
        obs["status"].as_str().unwrap_or_default().to_string(),
        obs["cause"].as_str().unwrap_or_default().to_string(),
    )
}

#[test]
fn link_sees_the_wan_carrier_drop_and_return() {
    let lab = Lab::builder().cpes(1).build().unwrap();
    let cpe = lab.cpe(0);
    let ok = agent_check(&lab, 0, "link", "").unwrap();
    assert_eq!(status_cause(&ok), ("ok".into(), "ok".into()), "{ok:#}");

    cpe.drop_wan_carrier().unwrap();
    let down = agent_check(&lab, 0, "link", "").unwrap();
    assert_eq!(
        status_cause(&down),
        ("failed".into(), "wan_carrier_lost".into()),
        "{down:#}"
    );
    assert_eq!(down["category"], "no_internet");

    cpe.restore_wan_carrier().unwrap();
    wait_for(
        "carrier back",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || cpe.wan_has_carrier().ok().filter(|c| *c),
    )
    .unwrap();
    let back = agent_check(&lab, 0, "link", "").unwrap();
    assert_eq!(status_cause(&back).0, "ok", "{back:#}");
}

#[test]
fn wan_address_sees_a_flushed_address() {
    let lab = Lab::builder().cpes(1).build().unwrap();
    let ok = agent_check(&lab, 0, "wan_address", "").unwrap();
    assert_eq!(status_cause(&ok).0, "ok", "{ok:#}");
    // Keep udhcpc from putting it back while we look.
    lab.cpe(0).stop_udhcpc().unwrap();
    lab.cpe(0).flush_wan_address().unwrap();
    let obs = agent_check(&lab, 0, "wan_address", "").unwrap();
    assert_eq!(
        status_cause(&obs),
        ("failed".into(), "wan_no_address".into()),
        "{obs:#}"
    );
}

#[test]
fn wan_address_sees_the_lease_expire_when_the_dhcp_server_stops() {
    let lab = Lab::builder().cpes(1).build().unwrap();
    let lease = lab.cpe(0).lease().unwrap().expect("a lease");
    let secs = lease.lease_secs;
    lab.isp().stop_dhcp().unwrap();
    // udhcpc renews at T1 and rebinds at T2, both unanswered; at expiry the address goes.
    let obs = wait_for(
        "wan_address to fail after the lease expires",
        Duration::from_secs(secs + 60),
        Duration::from_secs(2),
        || {
            let obs = agent_check(&lab, 0, "wan_address", "").map_err(|e| e.to_string())?;
            if obs["status"] == "failed" {
                Ok(obs)
            } else {
                Err(obs.to_string())
            }
        },
    )
    .unwrap();
    let cause = status_cause(&obs).1;
    assert!(
        cause == "dhcp_lease_expired" || cause == "wan_no_address",
        "{obs:#}"
    );
}

#[test]
fn default_route_sees_a_deleted_route_and_a_silent_gateway() {
    let lab = Lab::builder().cpes(1).build().unwrap();
    let cpe = lab.cpe(0);
    let fast = "[checks.default_route]\nping_timeout_ms = 300\nping_count = 2\n";
    let ok = agent_check(&lab, 0, "default_route", fast).unwrap();
    assert_eq!(status_cause(&ok).0, "ok", "{ok:#}");
    assert_eq!(ok["evidence"]["gateway"], "100.64.0.1");

    // The ISP side drops everything the CPE sends: the gateway goes silent.
    lab.isp().inject_loss_percent(cpe, 100).unwrap();
    let silent = agent_check(&lab, 0, "default_route", fast).unwrap();
    let (status, cause) = status_cause(&silent);
    assert_eq!(status, "failed", "{silent:#}");
    assert!(
        cause == "gateway_arp_failed" || cause == "gateway_icmp_silent",
        "{silent:#}"
    );
    assert!(silent["evidence"]["gateway_arp"].is_string(), "{silent:#}");
    lab.isp().clear_loss(cpe).unwrap();

    cpe.stop_udhcpc().unwrap();
    cpe.delete_default_route().unwrap();
    let gone = agent_check(&lab, 0, "default_route", fast).unwrap();
    assert_eq!(
        status_cause(&gone),
        ("failed".into(), "default_route_missing".into()),
        "{gone:#}"
    );
}

#[test]
fn check_command_prints_a_table_and_exits_by_status() {
    let lab = Lab::builder().cpes(1).build().unwrap();
    let cpe = lab.cpe(0);
    let dir = lab.dir().join("table");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("agent.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"t\"\nstate_dir = \"{}\"\n[collector]\nurl = \"http://203.0.113.10:8440\"\n\
             [wan]\ninterface = \"wan\"\nlease_file = \"{}\"\n\
             # No collector in this lab: its Date header is the clock check's reference.\n\
             [checks.clock]\nenabled = false\n\
             # The test machine's own load is not the fault under test.\n\
             [checks.resources]\ndegraded_load_per_cpu = 500.0\nfailed_load_per_cpu = 1000.0\n\
             # This lab CPE has no LAN bridge: the LAN checks would say unknown (exit 1).\n\
             [checks.lan_dhcp]\nenabled = false\n[checks.lan_arp]\nenabled = false\n",
            dir.join("state").display(),
            cpe.lease_file.display()
        ),
    )
    .unwrap();
    let bin = netmedic_lab::stack::bin_path("netmedic-agent")
        .unwrap()
        .display()
        .to_string();
    let cfg = cfg.display().to_string();
    let out = cpe
        .ns
        .exec_unchecked(&[&bin, "check", "--config", &cfg])
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{table}");
    for col in [
        "CHECK",
        "STATUS",
        "VALUE",
        "THRESHOLD",
        "MEANING",
        "HINT",
        "link",
        "wan_address",
        "default_route",
    ] {
        assert!(table.contains(col), "{col} missing in\n{table}");
    }
    cpe.drop_wan_carrier().unwrap();
    let out = cpe
        .ns
        .exec_unchecked(&[&bin, "check", "--config", &cfg])
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_wan_carrier_loss_is_one_incident_caused_by_link() {
    let lab = Lab::builder().cpes(1).build().unwrap();
    let stack = Stack::start(&lab, StackOptions::default()).unwrap();
    let cpe = lab.cpe(0);
    cpe.drop_wan_carrier().unwrap();
    stack
        .wait_agent_log(0, &["incident opened: link"], Duration::from_secs(30))
        .unwrap();
    // Let the dependent checks (default_route every second) fail a few times under it.
    let runs = |log: &str| log.matches("check default_route: Failed").count();
    wait_for(
        "default_route to fail under the link fault",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let n = runs(&stack.agent_log(0));
            if n >= 3 {
                Ok(())
            } else {
                Err(format!("{n} failed runs"))
            }
        },
    )
    .unwrap();
    // The bounce cannot bring back a carrier the ISP side dropped: once it is judged not to
    // have helped (its verification window over), the carrier's return is the fault clearing
    // by itself. Restored inside that window it would be credited to the bounce.
    stack
        .wait_agent_log(0, &["bounce_iface did not help"], Duration::from_secs(60))
        .unwrap();
    cpe.restore_wan_carrier().unwrap();
    let inc = stack
        .wait_incident("the resolved link incident", Duration::from_secs(60), |i| {
            i.check == CheckId::Link && i.status == IncidentStatus::Resolved
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", stack.agent_log(0)));
    assert_eq!(inc.cause, "wan_carrier_lost");
    assert_eq!(inc.auto_healed, Some(false));
    assert!(
        inc.actions
            .iter()
            .any(|a| a.action == ActionId::BounceIface && a.outcome == ActionOutcome::NotEffective),
        "{:#?}",
        inc.actions
    );
    assert!(
        inc.evidence.contains_key("consequence.default_route"),
        "the default_route failures are recorded as consequences: {:#?}",
        inc.evidence
    );
    // Give any stray incident time to be reported, then count: exactly one.
    wait_for(
        "the agent's spool to drain",
        Duration::from_secs(30),
        Duration::from_millis(200),
        || {
            let log = stack.agent_log(0);
            if log.contains("delivered") {
                Ok(())
            } else {
                Err("nothing delivered yet".to_string())
            }
        },
    )
    .unwrap();
    let all = stack.incidents().unwrap();
    assert_eq!(
        all.incidents.len(),
        1,
        "one fault, one incident: {:#?}",
        all.incidents
    );
}
