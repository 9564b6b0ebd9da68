//! End-to-end: the `icmp` check's adaptive probing in the real agent daemon. While the path is
//! healthy a run sends only its `healthy_count` sample; a real loss (nftables at the ISP drops
//! a share of what the CPE sends) makes a sample show it, the same run goes on with the rest
//! of `count`, and that escalated run is the one that first judges the path degraded. Once the
//! loss is gone a full run judges it ok and the runs go back to samples.

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::{COLLECTOR_PORT, spawn_agent};
use netmedic_lab::{COLLECTOR_IP, Lab, PROBE_IP, WAN_IFACE, wait_for};
use std::time::Duration;

/// Shipped-like: 20 probes, a 3-probe sample, the shipped thresholds; probes 20 ms apart so a
/// full run (19 × 20 ms + 150 ms sample wait + 1 s timeout) fits in 2 s. One failing run is
/// reported at once (fail_threshold = 1), so the first non-ok verdict is the one the log shows.
fn config(lab: &Lab) -> std::path::PathBuf {
    let cpe = lab.cpe(0);
    let path = lab.dir().join("icmp-adaptive.toml");
    std::fs::write(
        &path,
        format!(
            "[agent]\nid = \"lab-cpe-0\"\nmode = \"off\"\nstate_dir = \"{state}\"\n\n\
             [collector]\nurl = \"http://{COLLECTOR_IP}:{COLLECTOR_PORT}\"\n\n\
             [wan]\ninterface = \"{WAN_IFACE}\"\nlease_file = \"{lease}\"\n\n\
             [checks.icmp]\nenabled = true\ninterval_secs = 2\nfail_threshold = 1\nok_threshold = 1\n\
             include_gateway = true\ntargets = [\"{PROBE_IP}\"]\ncount = 20\nhealthy_count = 3\n\
             interval_ms = 20\ntimeout_ms = 1000\n",
            state = lab.dir().join("icmp-adaptive-state").display(),
            lease = cpe.lease_file.display(),
        ),
    )
    .unwrap();
    path
}

/// The agent's `icmp` lines after byte `from` of its log: the run kinds (`icmp run: sample, 3
/// probes per target`) and the daemon's verdicts (`check icmp: Ok ...`), in order.
fn icmp_lines(log: &str, from: usize) -> Vec<String> {
    log.get(from..)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            ["icmp run: ", "check icmp: "]
                .iter()
                .find_map(|m| l.find(m).map(|i| l[i..].trim().to_string()))
        })
        .collect()
}

/// The first verdict in `lines` that is not ok, with the run line just before it.
fn first_failing(lines: &[String]) -> Option<(String, String)> {
    lines.iter().enumerate().find_map(|(i, l)| {
        (l.starts_with("check icmp: ") && !l.starts_with("check icmp: Ok")).then(|| {
            let run = lines[..i]
                .iter()
                .rev()
                .find(|r| r.starts_with("icmp run: "))
                .cloned()
                .unwrap_or_default();
            (run, l.clone())
        })
    })
}

#[test]
fn a_real_loss_escalates_a_healthy_sample_and_is_detected() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let cpe = lab.cpe(0);
    let log_path = lab.log_path("agent-icmp-adaptive");
    let read = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let _agent = spawn_agent(cpe, &config(&lab), &log_path).unwrap();

    // Healthy: the first run sends all 20, then a clean sample of 3 suffices.
    wait_for(
        "a healthy 3-probe sample run",
        Duration::from_secs(60),
        Duration::from_millis(100),
        || {
            let lines = icmp_lines(&read(), 0);
            let sampled = lines.windows(2).any(|w| {
                w[0] == "icmp run: sample, 3 probes per target"
                    && w[1].starts_with("check icmp: Ok")
            });
            if sampled {
                Ok(())
            } else {
                Err(lines.join("\n"))
            }
        },
    )
    .unwrap();
    let lines = icmp_lines(&read(), 0);
    assert_eq!(
        lines.first().map(String::as_str),
        Some("icmp run: full, 20 probes per target"),
        "the first run measures with count: {lines:#?}"
    );

    // 25% of what the ISP receives from the CPE is dropped, echo requests included.
    let from = read().len();
    lab.isp().inject_loss_percent(cpe, 25).unwrap();
    let (run, verdict) = wait_for(
        "a non-ok icmp verdict under 25% loss",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || {
            first_failing(&icmp_lines(&read(), from))
                .ok_or_else(|| icmp_lines(&read(), from).join("\n"))
        },
    )
    .unwrap();
    lab.isp().clear_loss(cpe).unwrap();
    // The verdict before was ok, so this run began as a sample: it went on to all 20.
    assert_eq!(
        run, "icmp run: escalated, 20 probes per target",
        "{verdict}"
    );
    assert!(
        verdict.contains("packet loss") || verdict.contains("does not answer"),
        "{verdict}"
    );

    // Loss gone: full runs until one is ok, then samples again.
    let from = read().len();
    wait_for(
        "icmp back to ok and to samples",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || {
            let lines = icmp_lines(&read(), from);
            let ok_full = lines.windows(2).position(|w| {
                w[0] == "icmp run: full, 20 probes per target" && w[1].starts_with("check icmp: Ok")
            });
            let ok_sample_after = ok_full.is_some_and(|i| {
                lines[i..].windows(2).any(|w| {
                    w[0] == "icmp run: sample, 3 probes per target"
                        && w[1].starts_with("check icmp: Ok")
                })
            });
            if ok_sample_after {
                Ok(())
            } else {
                Err(lines.join("\n"))
            }
        },
    )
    .unwrap();
}

#[test]
fn the_failing_verdict_is_found_after_its_run_line() {
    let lines: Vec<String> = [
        "icmp run: sample, 3 probes per target",
        "check icmp: Ok 2 path(s) healthy",
        "icmp run: escalated, 20 probes per target",
        "check icmp: Degraded 25.0% packet loss",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        first_failing(&lines),
        Some((lines[2].clone(), lines[3].clone()))
    );
    assert_eq!(first_failing(&lines[..2]), None);
    let log = "2026 DEBUG netmedic_agent::checks::icmp: icmp run: full, 20 probes per target\n\
               2026 DEBUG netmedic_agent::daemon: check icmp: Ok 2 path(s) healthy\n\
               2026 DEBUG netmedic_agent::daemon: check dns: Ok fine\n";
    assert_eq!(
        icmp_lines(log, 0),
        [
            "icmp run: full, 20 probes per target",
            "check icmp: Ok 2 path(s) healthy"
        ]
    );
}
