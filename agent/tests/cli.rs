//! The agent binary's command line: `check-config` on good and bad files, usage errors.

#![allow(clippy::unwrap_used)]

use std::process::Command;

const AGENT: &str = env!("CARGO_BIN_EXE_netmedic-agent");
const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml");

#[test]
fn shipped_config_passes_check_config() {
    let out = Command::new(AGENT)
        .args(["check-config", EXAMPLE])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn bad_config_names_file_line_and_field_and_exits_3() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    let text = std::fs::read_to_string(EXAMPLE).unwrap().replace(
        "[checks.default_route]\nenabled = true\ninterval_secs = 10",
        "[checks.default_route]\nenabled = true\ninterval_secs = \"soon\"",
    );
    assert!(
        text.contains("\"soon\""),
        "the example config changed shape"
    );
    std::fs::write(&path, &text).unwrap();
    let line = text.lines().position(|l| l.contains("\"soon\"")).unwrap() + 1;
    let out = Command::new(AGENT)
        .args(["check-config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    let want = format!("{}:{line}:", path.display());
    assert!(err.starts_with(&want), "{err}");
    assert!(err.contains("checks.default_route.interval_secs"), "{err}");

    // `check` refuses the same file with the same exit code, before touching the network.
    let out = Command::new(AGENT)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn usage_errors_exit_64() {
    let out = Command::new(AGENT)
        .args(["run", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("USAGE"));
}

#[test]
fn output_into_a_closed_pipe_is_dropped_quietly() {
    // The reading end is closed before the agent starts, so every write meets EPIPE (as in
    // `netmedic-agent check --json | head -1` once head has exited).
    for args in [&["--help"][..], &["--version"], &["check-config", EXAMPLE]] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(AGENT)
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {err}", out.status);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
