//! The shipped systemd units are hardened and valid: `systemd-analyze security --offline=true`
//! scores the agent ≤ 2.0 and the collector ≤ 1.5, and `systemd-analyze verify` accepts both
//! (with their `ExecStart` pointed at the built binaries). Skipped, saying so, only when
//! `systemd-analyze` is absent (scripts/setup.sh installs it). The agent's stop settings let a
//! heal step in flight drain: `KillMode=mixed` and a `TimeoutStopSec` above the longest drain
//! the agent's config validation allows (checked with the built agent's `check-config`).

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

/// The value of `key=` in a unit's text: exactly one such line.
fn setting<'a>(text: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}=");
    let found: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix.as_str()))
        .collect();
    assert_eq!(found.len(), 1, "{key}= must appear once: {found:?}");
    found[0].trim()
}

/// Whether the built agent's `check-config` accepts a config with these extra tables.
fn agent_accepts(dir: &Path, tables: &str) -> bool {
    let path = dir.join("agent.toml");
    let text = format!(
        "[agent]\nid = \"cpe-000000000000\"\nstate_dir = \"{}\"\n\n\
         [collector]\nurl = \"http://127.0.0.1:9\"\n\n[wan]\ninterface = \"wan\"\n\n{tables}",
        dir.join("state").display()
    );
    std::fs::write(&path, text).unwrap();
    let agent = bin_path("netmedic-agent").unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(agent)
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    out.status.success()
}

/// The config tables at the validation maxima that bound a shutdown drain, one value raised
/// by `over` where asked.
fn drain_maxima(over: &str) -> String {
    let v = |name: &str, max: u64| if name == over { max + 1 } else { max };
    format!(
        "[checks.http]\ntimeout_ms = {}\n\n\
         [healing.renew_dhcp]\ntimeout_secs = {}\n\n\
         [healing.bounce_iface]\ndown_ms = {}\ncarrier_wait_secs = {}\n\n\
         [[healing.restart_service]]\nname = \"dnsmasq\"\ncommand = [\"/bin/true\"]\ntimeout_secs = {}\n",
        v("http_timeout_ms", CHECK_MAX_MS),
        v("renew_timeout_secs", COMMAND_MAX_SECS),
        v("down_ms", BOUNCE_DOWN_MAX_MS),
        v("carrier_wait_secs", CARRIER_WAIT_MAX_SECS),
        v("restart_timeout_secs", COMMAND_MAX_SECS),
    )
}

/// The validation maxima a drain is made of (asserted against the agent below).
const COMMAND_MAX_SECS: u64 = 600;
const BOUNCE_DOWN_MAX_MS: u64 = 60_000;
const CARRIER_WAIT_MAX_SECS: u64 = 120;
const CHECK_MAX_MS: u64 = 60_000;

#[test]
fn agent_stop_lets_a_heal_step_drain() {
    let text = std::fs::read_to_string(unit("netmedic-agent.service")).unwrap();
    // SIGTERM to the agent only: systemd must not signal the restart commands it runs.
    assert_eq!(setting(&text, "KillMode"), "mixed");
    let stop_secs: u64 = setting(&text, "TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in plain seconds");
    // The maxima assumed here are the agent's: at them the config passes, one above it fails.
    let dir = tempfile::tempdir().unwrap();
    assert!(
        agent_accepts(dir.path(), &drain_maxima("")),
        "the agent refuses a config at the drain maxima"
    );
    for over in [
        "http_timeout_ms",
        "renew_timeout_secs",
        "down_ms",
        "carrier_wait_secs",
        "restart_timeout_secs",
    ] {
        assert!(
            !agent_accepts(dir.path(), &drain_maxima(over)),
            "the agent accepts {over} above the maximum this test assumes: raise the maximum \
             here and TimeoutStopSec in the unit"
        );
    }
    // The action runs to its end, the check runs once more, then an instant rollback.
    let action = COMMAND_MAX_SECS.max(BOUNCE_DOWN_MAX_MS / 1000 + CARRIER_WAIT_MAX_SECS);
    let drain = action + CHECK_MAX_MS / 1000;
    assert!(
        stop_secs > drain,
        "TimeoutStopSec={stop_secs} does not cover the longest drain ({drain} s)"
    );
}
