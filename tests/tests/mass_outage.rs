//! Mass outage in the lab (issue 7): three CPEs behind one access node, their upstream cut at the
//! ISP. The collector (bound to the ISP gateway address 100.64.0.1, which the cut spares) turns
//! their incidents into one network event; heartbeat replies to those devices carry the
//! upstream-outage advisory; the agents log it and take no disruptive action.

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{ISP_GATEWAY, Lab, http_request, wait_for};
use netmedic_proto::{ActionOutcome, Advisory, CheckId, CheckStatus, Heartbeat, HeartbeatReply};
use std::time::Duration;

const CPES: usize = 3;

#[test]
fn cutting_one_access_nodes_upstream_makes_one_network_event_and_holds_the_agents() {
    let lab = Lab::builder().cpes(CPES).build().expect("lab");
    let options = StackOptions {
        collector_ip: Some(ISP_GATEWAY),
        extra_collector_toml: "\n[outage]\nmin_devices = 3\nwindow_mins = 10\ninterval_secs = 1\n\
                               advisory_secs = 120\n"
            .into(),
        // Probe the "internet" (cut below) every 2 s; heartbeats every 2 s so the advisory
        // arrives within seconds.
        extra_agent_toml:
            "\n[checks.icmp]\nenabled = true\ninterval_secs = 2\nfail_threshold = 2\n\
                           ok_threshold = 2\ninclude_gateway = true\ntargets = [\"192.0.2.1\"]\n\
                           count = 4\ninterval_ms = 50\ntimeout_ms = 500\n\
                           \n[heartbeat]\nenabled = true\ninterval_secs = 2\njitter_secs = 0\n"
                .into(),
        ..StackOptions::default()
    };
    let stack = Stack::start(&lab, options).expect("stack");

    // All three CPEs are behind access node olt-lab.
    let subs = lab.dir().join("subscribers.csv");
    let mut csv = String::from("device_id,customer_id,region,access_node\n");
    for i in 0..CPES {
        csv.push_str(&format!("lab-cpe-{i},cust-{i},lab,olt-lab\n"));
    }
    std::fs::write(&subs, csv).unwrap();
    let out =
        std::process::Command::new(netmedic_lab::stack::bin_path("netmedic-collector").unwrap())
            .args([
                "import",
                "subscribers",
                subs.to_str().unwrap(),
                "--strict",
                "--config",
                stack.collector_config.to_str().unwrap(),
            ])
            .output()
            .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    lab.isp().cut_upstream().unwrap();

    // One network event, with the three devices.
    let event = wait_for(
        "a network event behind olt-lab",
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let resp = stack
                .api(
                    "GET",
                    "/api/v1/network-events?active=true&members=true",
                    None,
                )
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value =
                serde_json::from_str(&resp.body).map_err(|e| format!("{e}: {}", resp.body))?;
            let events = v["network_events"].as_array().cloned().unwrap_or_default();
            match events.as_slice() {
                [e] if e["devices"].as_u64() == Some(CPES as u64) => Ok(e.clone()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .unwrap();
    assert_eq!(event["access_node"], "olt-lab");
    let event_id = event["event_id"].as_str().unwrap().to_owned();
    let all = stack.api("GET", "/api/v1/network-events", None).unwrap();
    let all: serde_json::Value = serde_json::from_str(&all.body).unwrap();
    assert_eq!(all["network_events"].as_array().unwrap().len(), 1, "{all}");

    // A heartbeat as each enrolled device (its own token, from the ISP namespace) gets the
    // advisory naming that event.
    for i in 0..CPES {
        let token = std::fs::read_to_string(lab.dir().join(format!("agent{i}.token"))).unwrap();
        let hb = Heartbeat {
            schema_version: netmedic_proto::SCHEMA_VERSION,
            agent_id: format!("lab-cpe-{i}"),
            agent_version: "lab".into(),
            firmware_version: "lab".into(),
            uptime_secs: 1,
            sent_at: netmedic_proto::Timestamp::from_unix_millis(0).unwrap(),
            checks: [(CheckId::Icmp, CheckStatus::Failed)].into_iter().collect(),
            spool_depth: 0,
            dropped_total: 0,
        };
        let body = serde_json::to_string(&hb).unwrap();
        let auth = format!("Bearer {}", token.trim());
        let addr = stack.collector_addr;
        let resp = lab
            .isp()
            .ns
            .run(|| {
                http_request(
                    addr,
                    "POST",
                    netmedic_proto::paths::HEARTBEATS,
                    &[("Authorization", auth.as_str())],
                    Some(("application/json", body.as_bytes())),
                )
            })
            .unwrap()
            .unwrap();
        assert_eq!(resp.status, 200, "{}", resp.body);
        let reply: HeartbeatReply = serde_json::from_str(&resp.body).unwrap();
        assert!(
            reply.advisories.iter().any(|a| matches!(a,
                Advisory::UpstreamOutage { network_event_id, .. } if *network_event_id == event_id)),
            "lab-cpe-{i}: {reply:?}"
        );
    }

    // End to end: every agent logs the advisory from its own heartbeat reply ...
    for i in 0..CPES {
        wait_for(
            "the agent logs the upstream-outage advisory",
            Duration::from_secs(30),
            Duration::from_millis(300),
            || {
                let log = stack.agent_log(i);
                if log.contains(&format!("upstream outage {event_id}")) {
                    Ok(())
                } else {
                    Err(log.lines().rev().take(5).collect::<Vec<_>>().join("\n"))
                }
            },
        )
        .unwrap();
    }
    // ... and none of them changed anything: no action was carried out on any of their
    // incidents while the upstream was cut.
    std::thread::sleep(Duration::from_secs(5));
    let page = stack.incidents().unwrap();
    for inc in page
        .incidents
        .iter()
        .filter(|i| i.agent_id.starts_with("lab-cpe-"))
    {
        for a in &inc.actions {
            assert!(
                !matches!(
                    a.outcome,
                    ActionOutcome::Done | ActionOutcome::Verified | ActionOutcome::RolledBack
                ),
                "{} acted during the outage: {:?} {:?}",
                inc.agent_id,
                a.action,
                a.outcome
            );
        }
    }

    // The upstream comes back: the incidents resolve, and so does the event.
    lab.isp().restore_upstream().unwrap();
    wait_for(
        "the network event resolves",
        Duration::from_secs(120),
        Duration::from_millis(500),
        || {
            let resp = stack
                .api("GET", "/api/v1/network-events?active=true", None)
                .map_err(|e| e.to_string())?;
            let v: serde_json::Value =
                serde_json::from_str(&resp.body).map_err(|e| e.to_string())?;
            if v["network_events"].as_array().is_some_and(Vec::is_empty) {
                Ok(())
            } else {
                Err(resp.body)
            }
        },
    )
    .unwrap();
}
