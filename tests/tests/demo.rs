//! The README's demo command: it heals the fault, and leaves no namespace or process behind,
//! also when interrupted with Ctrl-C (SIGINT) in the middle.

#![allow(clippy::unwrap_used)]

use netmedic_lab::{NETNS_RUN_DIR, wait_for};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

const DEMO: &str = env!("CARGO_BIN_EXE_netmedic-lab");

/// The lab prefix the demo printed (`namespaces nm123x0-isp, ...`).
fn prefix_of(output: &str) -> Option<String> {
    let rest = output.split("namespaces ").nth(1)?;
    let first = rest.split([',', ' ']).next()?;
    Some(first.strip_suffix("-isp")?.to_string())
}

/// Namespaces and processes that still carry the lab's prefix.
fn leftovers(prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(NETNS_RUN_DIR)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default();
    for entry in std::fs::read_dir("/proc").unwrap().filter_map(Result::ok) {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(prefix) {
                out.push(format!(
                    "process {}: {cmd}",
                    entry.file_name().to_string_lossy()
                ));
            }
        }
    }
    out
}

#[test]
fn demo_heals_and_cleans_up() {
    let out = Command::new(DEMO).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("healed"), "{text}");
    assert!(text.contains("restore_route:verified"), "{text}");
    let prefix = prefix_of(&text).unwrap_or_else(|| panic!("no prefix in {text}"));
    assert_eq!(leftovers(&prefix), Vec::<String>::new());
}

#[test]
fn interrupted_demo_cleans_up() {
    let mut child = Command::new(DEMO)
        .arg("demo")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // Read until the stack is up, then press Ctrl-C.
    let mut text = String::new();
    let mut buf = [0u8; 256];
    while !text.contains("netmedic-agent is running") {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "demo ended early: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    kill(Pid::from_raw(child.id() as i32), Signal::SIGINT).unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    let prefix = prefix_of(&text).unwrap_or_else(|| panic!("no prefix in {text}"));
    // Interrupted runs exit non-zero; a run that finished first exits 0. Both must clean up.
    assert!(rest.contains("teardown"), "{text}{rest} ({status})");
    wait_for(
        "no leftovers",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || {
            let l = leftovers(&prefix);
            if l.is_empty() {
                Ok(())
            } else {
                Err(format!("{l:?}"))
            }
        },
    )
    .unwrap();
}
