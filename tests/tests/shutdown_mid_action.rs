//! One shutdown story, end to end: SIGTERM reaches the real agent in the middle of a heal step
//! that changes the system, and when the agent has exited the system is as it should be (the
//! action finished and verified) or as it was (the change rolled back) — never half-changed.
//!
//! - `bounce_iface` stopped during its down phase: the WAN is up again (and its default route
//!   back) when the agent exits.
//! - `reset_dns` stopped during its verification (which would take two minutes): resolv.conf
//!   is byte for byte the original when the agent exits.
//! - `restart_service` stopped while its (slow) restart command runs: the service runs again
//!   when the agent exits.

#![allow(clippy::unwrap_used)]

use netmedic_lab::faults::LanDnsmasq;
use netmedic_lab::heal_faults::{
    dead_resolver_dns_toml, healing_toml, lan_dnsmasq_restart_argv, tail,
};
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::{ISP_GATEWAY, Lab, WAN_IFACE, wait_for};
use nix::sys::signal::Signal;
use std::path::Path;
use std::time::Duration;

fn options(extra: &str) -> StackOptions {
    StackOptions {
        extra_agent_toml: extra.to_string(),
        ..StackOptions::default()
    }
}

/// Whether `wan` is administratively up (`UP` among the flags of `ip -o link show`).
fn wan_admin_up(lab: &Lab) -> bool {
    let line = lab
        .cpe(0)
        .ns
        .ip(&["-o", "link", "show", WAN_IFACE])
        .unwrap();
    let flags = line
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or("", |(flags, _)| flags);
    flags.split(',').any(|f| f == "UP")
}

/// Sends SIGTERM to agent 0 and waits for a clean exit; returns its log.
fn stop_agent(stack: &mut Stack<'_>, timeout: Duration) -> String {
    let mut agent = stack.agents[0].take().unwrap();
    agent.signal(Signal::SIGTERM).unwrap();
    let status = agent.wait_exit(timeout);
    let log = stack.agent_log(0);
    let status = status.unwrap_or_else(|| {
        let _ = agent.kill();
        panic!("the agent did not exit within {timeout:?}\n{}", tail(&log))
    });
    assert!(status.success(), "{status:?}\n{}", tail(&log));
    log
}

#[test]
fn sigterm_during_bounce_iface_down_phase_leaves_the_wan_up() {
    let lab = Lab::builder().build().unwrap();
    // A long down phase, so the stop surely lands in it.
    let extra = format!(
        "[checks.link]\ninterval_secs = 1\nfail_threshold = 1\nok_threshold = 1\n{}\n\
         [healing.bounce_iface]\ndown_ms = 6000\ncarrier_wait_secs = 10\n",
        healing_toml("")
    );
    let mut stack = Stack::start(&lab, options(&extra)).unwrap();
    let cpe = lab.cpe(0);
    wait_for(
        "the WAN default route before the fault",
        Duration::from_secs(30),
        Duration::from_millis(100),
        || match cpe.default_route() {
            Ok(Some(r)) if r.gateway == Some(ISP_GATEWAY) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    )
    .unwrap();
    assert!(wan_admin_up(&lab));

    // Carrier lost: the link check's ladder starts with bounce_iface.
    cpe.drop_wan_carrier().unwrap();
    stack
        .wait_agent_log(0, &["running bounce_iface"], Duration::from_secs(30))
        .unwrap();
    wait_for(
        "bounce_iface to take the WAN down",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || (!wan_admin_up(&lab)).then_some(()).ok_or("still up"),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    // The ISP side comes back while the agent is told to stop in the middle of the bounce.
    cpe.restore_wan_carrier().unwrap();
    let log = stop_agent(&mut stack, Duration::from_secs(40));

    assert!(
        log.contains("heal step(s) in flight finish first"),
        "{}",
        tail(&log)
    );
    assert!(
        wan_admin_up(&lab),
        "the agent exited with the WAN down\n{}",
        tail(&log)
    );
    // The route bounce_iface reinstated is there (the kernel dropped it with the link).
    match cpe.default_route().unwrap() {
        Some(r) if r.gateway == Some(ISP_GATEWAY) => {}
        other => panic!("default route after the stop: {other:?}\n{}", tail(&log)),
    }
}

#[test]
fn sigterm_during_reset_dns_verification_rolls_resolv_conf_back() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    // No DHCP renew may rewrite resolv.conf during the test.
    cpe.stop_udhcpc().unwrap();
    // The provisioned resolver is dead too: the verification would fail after 120 s.
    let extra = dead_resolver_dns_toml(120);
    let mut stack = Stack::start(&lab, options(&extra)).unwrap();
    let original = "# the subscriber's own resolv.conf\nsearch home.example\n\
                    nameserver 198.51.100.53\noptions timeout:1 attempts:1\n";
    cpe.write_resolv_conf(original).unwrap();

    // reset_dns has rewritten the file and is verifying.
    wait_for(
        "reset_dns to rewrite resolv.conf",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || {
            let now = cpe.resolv_conf().map_err(|e| e.to_string())?;
            if now.contains("100.64.0.99") {
                Ok(())
            } else {
                Err(now)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    let saved = lab.dir().join("agent0-state/rollback/resolv.conf.orig");
    assert!(saved.exists(), "{}", saved.display());
    let log = stop_agent(&mut stack, Duration::from_secs(30));

    let now = std::fs::read(&cpe.resolv_conf).unwrap();
    assert_eq!(
        now,
        original.as_bytes(),
        "resolv.conf after the stop:\n{}\n{}",
        String::from_utf8_lossy(&now),
        tail(&log)
    );
    assert!(log.contains("reset_dns rolled back"), "{}", tail(&log));
    assert!(!saved.exists(), "{}", saved.display());
}

/// The pid the pidfile names, when that process runs (and is no zombie).
fn service_pid(pidfile: &Path) -> Result<u32, String> {
    let pid: u32 = std::fs::read_to_string(pidfile)
        .map_err(|e| e.to_string())?
        .trim()
        .parse()
        .map_err(|e| format!("{e}"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| e.to_string())?;
    match stat.rsplit(") ").next().and_then(|s| s.chars().next()) {
        Some('Z') => Err(format!("{pid} is a zombie")),
        _ => Ok(pid),
    }
}

#[test]
fn sigterm_during_restart_service_command_leaves_the_service_running() {
    let lab = Lab::builder().build().unwrap();
    let cpe = lab.cpe(0);
    let mut dnsmasq = LanDnsmasq::start(&lab, cpe).unwrap();
    let pidfile = dnsmasq.pidfile().to_path_buf();
    let started = lab.dir().join("restart-started");
    let argv = lan_dnsmasq_restart_argv(cpe, &pidfile, &lab.log_path("cpe0-lan-dnsmasq-restarted"));
    // A slow restart (3 s, as an init script may take) that marks when it began. It ignores
    // SIGTERM: the lab stops the agent's whole process group, as systemd would its cgroup.
    let slow = format!(
        "[\"/bin/sh\", \"-c\", \"trap '' TERM; touch {}; sleep 3; exec \\\"$0\\\" \\\"$@\\\"\", {}",
        started.display(),
        argv.trim_start_matches('[')
    );
    let extra = format!(
        "[checks.service]\ninterval_secs = 1\nfail_threshold = 2\nok_threshold = 1\n\
         [[checks.service.services]]\nname = \"dnsmasq\"\npidfile = \"{}\"\nprocess = \"dnsmasq\"\nsame_netns = true\n\
         {}\n[[healing.restart_service]]\nname = \"dnsmasq\"\ncommand = {slow}\n",
        pidfile.display(),
        healing_toml("")
    );
    let mut stack = Stack::start(&lab, options(&extra)).unwrap();
    service_pid(&pidfile).unwrap();

    dnsmasq.crash().unwrap();
    wait_for(
        "the restart command to start",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || started.exists().then_some(()),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&stack.agent_log(0))));
    assert!(
        service_pid(&pidfile).is_err(),
        "dnsmasq runs before the restart"
    );
    let log = stop_agent(&mut stack, Duration::from_secs(40));

    service_pid(&pidfile)
        .unwrap_or_else(|e| panic!("dnsmasq is not running after the stop: {e}\n{}", tail(&log)));
    assert!(log.contains("healed by restart_service"), "{}", tail(&log));
}
