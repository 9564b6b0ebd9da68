//! On-demand diagnostics end to end in the lab: the NOC queues diagnostics for a CPE through the
//! collector's API, the real agent gets the request in its next heartbeat reply, runs the
//! checks against the real namespace and POSTs the result, and the collector lists it on the
//! device with the requested checks and plausible statuses.

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::wait_for;
use netmedic_lab::{ISP_GATEWAY, Lab};
use netmedic_proto::{CheckId, CheckStatus, DiagnosticsResult};
use std::time::Duration;

#[test]
fn queued_diagnostics_are_run_by_the_agent_and_listed_with_their_result() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let options = StackOptions {
        // Heartbeats every 2 s, so the request reaches the agent within seconds.
        extra_agent_toml: "\n[heartbeat]\nenabled = true\ninterval_secs = 2\njitter_secs = 0\n"
            .into(),
        ..StackOptions::default()
    };
    let stack = Stack::start(&lab, options).expect("stack");
    let device = "/api/v1/devices/lab-cpe-0/diagnostics";

    // modem_snmp is off in the lab's agent config: the result must say so rather than skip it.
    let resp = stack
        .api(
            "POST",
            device,
            Some(r#"{"checks": ["default_route", "link", "wan_address", "modem_snmp"]}"#),
        )
        .unwrap();
    assert_eq!(resp.status, 202, "{}", resp.body);
    let queued: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
    let request_id = queued["request_id"].as_str().unwrap().to_owned();

    let record = wait_for(
        "the diagnostics result is listed on the device",
        Duration::from_secs(90),
        Duration::from_millis(250),
        || {
            let resp = stack.api("GET", device, None).map_err(|e| e.to_string())?;
            if resp.status != 200 {
                return Err(format!("GET {device}: {} {}", resp.status, resp.body));
            }
            let list: serde_json::Value =
                serde_json::from_str(&resp.body).map_err(|e| e.to_string())?;
            let record = list["diagnostics"]
                .as_array()
                .and_then(|a| a.iter().find(|r| r["request_id"] == request_id.as_str()))
                .cloned()
                .ok_or_else(|| format!("request {request_id} not listed: {}", resp.body))?;
            if record["state"] == "completed" {
                Ok(record)
            } else {
                Err(format!("state {}", record["state"]))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", stack.agent_log(0)));

    assert!(record["delivered_at"].is_string(), "{record}");
    assert!(record["completed_at"].is_string(), "{record}");
    let result: DiagnosticsResult = serde_json::from_value(record["result"].clone()).unwrap();
    assert_eq!(result.agent_id, "lab-cpe-0");
    assert_eq!(result.request_id, request_id);
    let checks: Vec<CheckId> = result.results.iter().map(|c| c.check).collect();
    assert_eq!(
        checks,
        [
            CheckId::Link,
            CheckId::WanAddress,
            CheckId::DefaultRoute,
            CheckId::ModemSnmp
        ],
        "{result:#?}"
    );
    let entry = |id: CheckId| result.results.iter().find(|c| c.check == id).unwrap();

    // The lab's CPE is healthy: its WAN link is up and the default route leads to the ISP.
    let route = entry(CheckId::DefaultRoute);
    assert_eq!(route.status, CheckStatus::Ok, "{route:#?}");
    assert_eq!(route.cause, "ok");
    assert!(
        route
            .evidence
            .values()
            .chain([&route.value, &route.summary])
            .any(|v| v.contains(&ISP_GATEWAY.to_string())),
        "the gateway is named: {route:#?}"
    );
    let link = entry(CheckId::Link);
    assert_eq!(link.status, CheckStatus::Ok, "{link:#?}");
    let wan = entry(CheckId::WanAddress);
    assert!(
        matches!(wan.status, CheckStatus::Ok | CheckStatus::Degraded),
        "{wan:#?}"
    );
    let modem = entry(CheckId::ModemSnmp);
    assert_eq!(modem.status, CheckStatus::Unknown, "{modem:#?}");
    assert_eq!(modem.cause, "check_not_enabled");

    // The agent still logs the results, and says the collector took them.
    let log = stack.agent_log(0);
    assert!(
        log.contains(&format!("diagnostics {request_id}: default_route ok")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "diagnostics {request_id}: result delivered to the collector"
        )),
        "{log}"
    );
}
