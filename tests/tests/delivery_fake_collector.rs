//! The reporter and heartbeat against a scripted fake collector in the ISP namespace: a 429
//! with `Retry-After` is respected (no request before the time), a 400 is never retried, report
//! bodies are gzip'd, heartbeats are ≤ 600 bytes on the wire and their advisories are applied.

#![allow(clippy::unwrap_used)]

use netmedic_lab::delivery::FakeCollector;
use netmedic_lab::stack::{COLLECTOR_PORT, bin_path};
use netmedic_lab::{COLLECTOR_IP, Lab, LabProcess, WAN_IFACE, wait_for};
use std::time::Duration;

const RETRY_AFTER_SECS: u64 = 3;
// The agent caps a Retry-After at `collector.max_backoff_secs` (5 s below): 3 s is honoured.

fn start_agent(lab: &Lab) -> LabProcess {
    let cpe = lab.cpe(0);
    let cfg = lab.dir().join("agent-fake.toml");
    std::fs::write(
        &cfg,
        format!(
            "[agent]\nid = \"lab-cpe-0\"\nstate_dir = \"{state}\"\nfirmware_version = \"lab-1.0\"\n\n\
             [collector]\nurl = \"http://{COLLECTOR_IP}:{COLLECTOR_PORT}\"\nstart_delay_max_secs = 0\n\
             max_backoff_secs = 5\n\n[heartbeat]\ninterval_secs = 2\njitter_secs = 1\n\n\
             [wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{lease}\"\n\n\
             [checks.default_route]\ninterval_secs = 1\nfail_threshold = 1\nok_threshold = 1\n",
            state = lab.dir().join("fake-state").display(),
            lease = cpe.lease_file.display(),
        ),
    )
    .unwrap();
    cpe.ns
        .spawn_with_env(
            &bin_path("netmedic-agent").unwrap().display().to_string(),
            &["run", "--config", &cfg.display().to_string()],
            &[("NETMEDIC_LOG", "debug")],
            lab.log_path("agent-fake"),
        )
        .unwrap()
}

#[test]
fn retry_after_is_respected_a_400_is_never_retried_and_heartbeats_are_small() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let fake = FakeCollector::start(&lab.isp().ns, COLLECTOR_PORT, |path, index| {
        let retry = vec![("retry-after".to_string(), RETRY_AFTER_SECS.to_string())];
        match (path, index) {
            ("/api/v1/reports", 0) => (429, retry, r#"{"error":"busy","reason":"queue full"}"#.into()),
            // Every event of any batch named: a 400 that names no event is not a verdict on
            // any one of them (the agent keeps those and backs off).
            ("/api/v1/reports", _) => (400, vec![], refuse_every_event()),
            ("/api/v1/heartbeats", _) => (
                200,
                vec![],
                r#"{"schema_version":1,"server_time":"2030-01-01T00:00:00Z","heartbeat_interval_secs":300,
                   "advisories":[{"type":"diagnostics","request_id":"diag-1","checks":["link"]}]}"#
                    .into(),
            ),
            _ => (404, vec![], r#"{"error":"not_found","reason":""}"#.into()),
        }
    })
    .unwrap();
    let mut agent = start_agent(&lab);
    let log = || std::fs::read_to_string(lab.log_path("agent-fake")).unwrap_or_default();
    wait_for(
        "agent runs its checks",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || {
            if !agent.is_running() {
                return Err(format!("agent exited: {}", log()));
            }
            if log().contains("check default_route:") {
                Ok(())
            } else {
                Err(log())
            }
        },
    )
    .unwrap();
    lab.cpe(0).delete_default_route().unwrap();
    wait_for(
        "two report requests",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let n = fake.requests("/api/v1/reports").len();
            if n >= 2 {
                Ok(())
            } else {
                Err(format!(
                    "{n} requests; all: {:?}\n{}",
                    fake.received
                        .lock()
                        .unwrap()
                        .iter()
                        .map(|r| r.path.clone())
                        .collect::<Vec<_>>(),
                    tail(&log(), 8)
                ))
            }
        },
    )
    .unwrap();
    let reports = fake.requests("/api/v1/reports");
    let gap = reports[1].at - reports[0].at;
    assert!(
        gap >= Duration::from_secs(RETRY_AFTER_SECS),
        "second request {gap:?} after a 429 with Retry-After: {RETRY_AFTER_SECS}"
    );
    assert_eq!(
        reports[0]
            .headers
            .get("content-encoding")
            .map(String::as_str),
        Some("gzip")
    );
    // The 400'd events are set aside: two more heartbeats pass and no report repeats them.
    let hb_now = fake.requests("/api/v1/heartbeats").len();
    wait_for(
        "two more heartbeats",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || {
            let n = fake.requests("/api/v1/heartbeats").len();
            if n >= hb_now + 2 {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .unwrap();
    let after = fake.requests("/api/v1/reports");
    let text = log();
    assert!(text.contains("set aside, not retried"), "{text}");
    // Every refused event is set aside with its reason, none is left to retry, and each
    // report after the 429 carried new events only (at most one request per event).
    let spool = lab.dir().join("fake-state/spool");
    let spooled = netmedic_lab::delivery::spooled_events(&text).len();
    let rejected = std::fs::read_dir(spool.join("rejected"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "evt"))
        .count();
    assert_eq!(rejected, spooled, "all refused events set aside");
    assert!(netmedic_lab::delivery::spool_files(&spool).is_empty());
    assert!(
        after.len() - 1 <= spooled,
        "{} report requests for {spooled} events: a refused batch was retried",
        after.len()
    );
    // Heartbeats: ≤ 600 bytes on the wire; the advisory reached the agent.
    let hbs = fake.requests("/api/v1/heartbeats");
    let biggest = hbs.iter().map(|r| r.wire_bytes).max().unwrap();
    eprintln!("heartbeat on the wire: {biggest} bytes");
    assert!(biggest <= 600, "heartbeat of {biggest} bytes");
    assert!(text.contains("diagnostics diag-1: link ok"), "{text}");
    assert!(agent.is_running());
}

/// A 400 body whose violations name `events[0]` to `events[99]`.
fn refuse_every_event() -> String {
    let violations: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"field":"events[{i}].summary","problem":"test refuses it"}}"#))
        .collect();
    format!(
        r#"{{"error":"invalid_report","reason":"test refuses everything","violations":[{}]}}"#,
        violations.join(",")
    )
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
