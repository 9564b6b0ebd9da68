//! The shipped systemd units are hardened and valid: `systemd-analyze security --offline=true`
//! scores the agent ≤ 2.0 and the collector ≤ 1.5, and `systemd-analyze verify` accepts both
//! (with their `ExecStart` pointed at the built binaries). Skipped, saying so, only when
//! `systemd-analyze` is absent (scripts/setup.sh installs it).

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::bin_path;
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../systemd")
        .join(name)
}

fn analyze_available() -> bool {
    let ok = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("SKIPPED: systemd-analyze not found (install `systemd`; scripts/setup.sh does)");
    }
    ok
}

/// The overall exposure `systemd-analyze security --offline=true` gives a unit file.
fn exposure(path: &Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| {
            panic!(
                "no score for {}: {text}\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    line.split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable score line {line:?}"))
}

#[test]
fn units_are_hardened_to_their_exposure_budget() {
    if !analyze_available() {
        return;
    }
    let agent = exposure(&unit("netmedic-agent.service"));
    let collector = exposure(&unit("netmedic-collector.service"));
    eprintln!("exposure: agent {agent}, collector {collector}");
    assert!(
        agent <= 2.0,
        "netmedic-agent.service exposure {agent} > 2.0"
    );
    assert!(
        collector <= 1.5,
        "netmedic-collector.service exposure {collector} > 1.5"
    );
}

#[test]
fn agent_unit_keeps_only_the_two_network_capabilities() {
    let text = std::fs::read_to_string(unit("netmedic-agent.service")).unwrap();
    let caps: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .collect();
    assert_eq!(caps, ["CAP_NET_ADMIN CAP_NET_RAW"], "{caps:?}");
    assert!(
        text.contains("Type=notify"),
        "the agent reports READY/WATCHDOG"
    );
    assert!(text.contains("WatchdogSec="));
    assert!(text.contains("ExecReload=/bin/kill -HUP $MAINPID"));
}

#[test]
fn units_verify() {
    if !analyze_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (name, bin) in [
        ("netmedic-agent.service", "netmedic-agent"),
        ("netmedic-collector.service", "netmedic-collector"),
    ] {
        let built = match bin_path(bin) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let text = std::fs::read_to_string(unit(name))
            .unwrap()
            .replace(&format!("/usr/bin/{bin}"), &built.display().to_string());
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Users are created by the package, not on the build machine; anything else fails.
        let problems: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !l.contains("Failed to resolve user") && !l.contains("Failed to resolve group")
            })
            .collect();
        assert!(
            out.status.success() || problems.is_empty(),
            "systemd-analyze verify {name}: {stderr}"
        );
        assert!(
            problems.is_empty(),
            "systemd-analyze verify {name}: {stderr}"
        );
    }
}
