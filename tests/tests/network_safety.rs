//! Network safety: the lab adds nothing to the host's network namespace, and while a full
//! self-heal runs, the host namespace sends no packet to the lab's addresses (everything the
//! tests say to the collector goes through a thread that joined the ISP namespace).

#![allow(clippy::unwrap_used)]

use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{Lab, UPSTREAM_RANGES, wait_for};
use netmedic_proto::{CheckId, IncidentStatus};
use std::process::Command;
use std::time::Duration;

fn host_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split(": ")
                .nth(1)
                .map(|s| s.split('@').next().unwrap_or(s).to_string())
        })
        .collect();
    names.sort();
    names
}

fn nft(script: &str) -> String {
    let out = Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(script.as_bytes())?;
            c.wait_with_output()
        });
    let out = out.unwrap();
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Removes the host counter table even when the test fails.
struct HostCounter(String);

impl Drop for HostCounter {
    fn drop(&mut self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.0])
            .status();
    }
}

#[test]
fn the_host_namespace_is_untouched_and_silent() {
    let links_before = host_links();
    let table = format!("nmguard{}", std::process::id());
    let ranges = format!("100.64.0.0/10, {}", UPSTREAM_RANGES.join(", "));
    nft(&format!(
        "table inet {table} {{\n chain out {{ type filter hook output priority 0; policy accept;\n  ip daddr {{ {ranges} }} counter\n }}\n}}\n"
    ));
    let guard = HostCounter(table.clone());

    let lab = Lab::builder().cpes(2).build().expect("lab");
    assert_eq!(
        host_links(),
        links_before,
        "the lab must not create interfaces in the host namespace"
    );
    let stack = Stack::start(&lab, StackOptions::default()).expect("stack");
    lab.cpe(1).delete_default_route().unwrap();
    stack
        .wait_incident("healed incident", Duration::from_secs(60), |i| {
            i.check == CheckId::DefaultRoute && i.status == IncidentStatus::Resolved
        })
        .unwrap();
    wait_for(
        "route back",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || lab.cpe(1).default_route().ok().flatten(),
    )
    .unwrap();

    let listing = Command::new("nft")
        .args(["list", "table", "inet", &guard.0])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(
        listing.contains("counter packets 0 bytes 0"),
        "host sent packets to lab addresses:\n{listing}"
    );
    drop(stack);
    drop(lab);
    assert_eq!(host_links(), links_before);
}
