//! Holdout experiment on a lab fleet (issue 18): six CPEs, one real collector, an experiment on
//! the `default_route` playbook started through the collector's API with a fixed salt and a
//! 500‰ control share. The arms are computed here beforehand with the system's `sha256sum`
//! (the auditable rule: `printf '%s:%s' salt agent_id | sha256sum`, first 8 bytes mod 1000),
//! independently of the agent's code. The same fault (default route deleted) is injected on
//! every CPE: the treated ones heal, the control ones report the plan, skip every rung with the
//! holdout reason and keep the fault; every incident carries its arm, and the report's causal
//! section counts each arm.
//!
//! The collector listens on the ISP gateway address (on the CPEs' WAN subnet), so a CPE without
//! a default route still reports. The DHCP lease is long so no renewal puts the route back.

#![allow(clippy::unwrap_used)]

use netmedic_lab::heal_faults::{healing_toml, tail};
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{ISP_GATEWAY, Lab, wait_for};
use netmedic_proto::{
    ActionId, ActionOutcome, Arm, CheckId, ExperimentArm, IncidentStatus, IncidentView,
};
use std::io::Write;
use std::time::Duration;

const CPES: usize = 6;
const EXPERIMENT: &str = "route-holdout-lab";
const PERMILLE: u16 = 500;

/// The device's bucket by the system's `sha256sum` over `salt:agent_id`.
fn bucket(salt: &str, agent_id: &str) -> u16 {
    let mut child = std::process::Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sha256sum");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{salt}:{agent_id}").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let hex = String::from_utf8(out.stdout).unwrap();
    (u64::from_str_radix(&hex[..16], 16).unwrap() % 1000) as u16
}

/// A salt that splits the fleet evenly, and each device's bucket under it.
fn even_split() -> (String, Vec<u16>) {
    for n in 0..200 {
        let salt = format!("lab-salt-{n}");
        let buckets: Vec<u16> = (0..CPES)
            .map(|i| bucket(&salt, &format!("lab-cpe-{i}")))
            .collect();
        if buckets.iter().filter(|b| **b < PERMILLE).count() == CPES / 2 {
            return (salt, buckets);
        }
    }
    panic!("no salt splits {CPES} devices evenly");
}

fn arm(bucket: u16) -> Arm {
    if bucket < PERMILLE {
        Arm::Control
    } else {
        Arm::Treated
    }
}

/// The default-route incident of `agent`, once it satisfies `done`.
fn route_incident(
    stack: &Stack<'_>,
    agent: &str,
    what: &str,
    done: impl Fn(&IncidentView) -> bool,
) -> IncidentView {
    stack
        .wait_incident(&format!("{agent}: {what}"), Duration::from_secs(120), |i| {
            i.agent_id == agent && i.check == CheckId::DefaultRoute && done(i)
        })
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn control_devices_report_the_plan_and_keep_the_fault_while_treated_ones_heal() {
    let (salt, buckets) = even_split();
    println!("HOLDOUT salt {salt}: buckets {buckets:?} (control below {PERMILLE})");

    let lab = Lab::builder()
        .cpes(CPES)
        .lease_secs(3600)
        .ready_timeout(Duration::from_secs(90))
        .build()
        .expect("lab");
    let options = StackOptions {
        collector_ip: Some(ISP_GATEWAY),
        extra_agent_toml: format!(
            "\n[heartbeat]\nenabled = true\ninterval_secs = 1\njitter_secs = 0\n\n{}",
            healing_toml("")
        ),
        ..StackOptions::default()
    };
    let stack = Stack::start(&lab, options).expect("stack");

    // Start the experiment at the collector, as an operator would.
    let body = serde_json::json!({
        "id": EXPERIMENT,
        "scope": {"kind": "playbook", "name": "default_route"},
        "control_permille": PERMILLE,
        "salt": salt,
    })
    .to_string();
    let resp = stack
        .api("POST", "/api/v1/experiments", Some(&body))
        .unwrap();
    assert_eq!(resp.status, 201, "{}", resp.body);

    // Every agent learns its arm from its heartbeat reply and logs it, with the bucket the
    // system's sha256sum gives.
    for (i, b) in buckets.iter().enumerate() {
        let name = match arm(*b) {
            Arm::Control => "control",
            Arm::Treated => "treated",
        };
        let line =
            format!("experiment {EXPERIMENT}: this device is in the {name} arm (bucket {b} ");
        wait_for(
            &format!("lab-cpe-{i} logs its arm"),
            Duration::from_secs(60),
            Duration::from_millis(200),
            || {
                let log = stack.agent_log(i);
                if log.contains(&line) {
                    Ok(())
                } else {
                    Err(format!("want {line:?}; log ends:\n{}", tail(&log)))
                }
            },
        )
        .unwrap();
    }

    // The same fault everywhere.
    for cpe in lab.cpes() {
        cpe.delete_default_route().unwrap();
    }

    for (i, b) in buckets.iter().enumerate() {
        let agent = format!("lab-cpe-{i}");
        let recorded = Some(ExperimentArm {
            experiment_id: EXPERIMENT.into(),
            arm: arm(*b),
        });
        match arm(*b) {
            Arm::Treated => {
                let inc = route_incident(&stack, &agent, "resolved, auto-healed", |i| {
                    i.status == IncidentStatus::Resolved && i.auto_healed == Some(true)
                });
                assert_eq!(inc.experiment, recorded, "{inc:#?}");
                assert!(
                    inc.actions
                        .iter()
                        .any(|a| a.action == ActionId::RestoreRoute
                            && a.outcome == ActionOutcome::Verified),
                    "{inc:#?}"
                );
                let route = lab.cpe(i).default_route().unwrap();
                assert_eq!(route.and_then(|r| r.gateway), Some(ISP_GATEWAY), "{agent}");
            }
            Arm::Control => {
                let reason = format!("holdout experiment {EXPERIMENT}: control arm");
                let inc = route_incident(&stack, &agent, "the plan reported and skipped", |i| {
                    i.actions
                        .iter()
                        .any(|a| a.outcome == ActionOutcome::Skipped && a.detail == reason)
                });
                assert_eq!(inc.experiment, recorded, "{inc:#?}");
                assert_eq!(inc.status, IncidentStatus::Open, "{inc:#?}");
                assert_eq!(inc.actions[0].outcome, ActionOutcome::Planned, "{inc:#?}");
                assert_eq!(inc.actions[0].action, ActionId::RestoreRoute, "{inc:#?}");
                assert!(
                    inc.actions.iter().all(|a| !matches!(
                        a.outcome,
                        ActionOutcome::Done | ActionOutcome::Verified | ActionOutcome::RolledBack
                    )),
                    "a control device acted: {inc:#?}"
                );
                // Nothing was changed: the fault is still there.
                assert_eq!(lab.cpe(i).default_route().unwrap(), None, "{agent}");
            }
        }
    }

    // Every default-route incident of the fleet carries its device's arm.
    let page = stack.incidents().unwrap();
    let route: Vec<_> = page
        .incidents
        .iter()
        .filter(|i| i.check == CheckId::DefaultRoute)
        .collect();
    assert_eq!(route.len(), CPES, "{route:#?}");
    for inc in &route {
        let i: usize = inc.agent_id.trim_start_matches("lab-cpe-").parse().unwrap();
        assert_eq!(
            inc.experiment.as_ref().map(|e| e.arm),
            Some(arm(buckets[i])),
            "{inc:#?}"
        );
    }

    // The report's causal section counts each arm.
    check_causal_report(&stack, CPES / 2, CPES - CPES / 2);

    // Ending the experiment reaches every agent.
    let resp = stack
        .api("DELETE", &format!("/api/v1/experiments/{EXPERIMENT}"), None)
        .unwrap();
    assert!(resp.status / 100 == 2, "{} {}", resp.status, resp.body);
    for i in 0..CPES {
        stack
            .wait_agent_log(
                i,
                &[&format!("experiment {EXPERIMENT} ended")],
                Duration::from_secs(30),
            )
            .unwrap();
    }
}

/// `GET /api/v1/report`: the causal section lists the experiment with `control` incidents in
/// the control arm and `treated` in the treated arm.
fn check_causal_report(stack: &Stack<'_>, control: usize, treated: usize) {
    let resp = stack.api("GET", "/api/v1/report", None).unwrap();
    assert_eq!(resp.status, 200, "{}", resp.body);
    let report: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    println!("HOLDOUT report causal section: {}", report["causal"]);
    let experiments = report["causal"]
        .as_array()
        .unwrap_or_else(|| panic!("no causal section: {}", resp.body));
    let e = experiments
        .iter()
        .find(|e| e["experiment_id"] == EXPERIMENT)
        .unwrap_or_else(|| panic!("{EXPERIMENT} missing: {experiments:?}"));
    assert_eq!(e["control"]["incidents"], control as u64, "{e}");
    assert_eq!(e["treated"]["incidents"], treated as u64, "{e}");
    assert_eq!(e["control"]["devices"], control as u64, "{e}");
    assert_eq!(e["treated"]["devices"], treated as u64, "{e}");
}
