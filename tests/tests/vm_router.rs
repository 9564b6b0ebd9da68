//! The VM lab's stories: one router-like qemu guest (busybox init, static agent, two
//! `mac80211_hwsim` radios) with its WAN in a namespace lab's ISP namespace (dnsmasq, the real
//! collector). One guest is shared by the stories, run in sequence as named steps:
//!
//! 1. `wifi`: hostapd beacons on radio 0, the client on radio 1 (own namespace) associates
//!    with WPA2-PSK and pings the LAN bridge across the air.
//! 2. `heal`: the agent, started by busybox init, reports and heals a deleted default route.
//! 3. `clock`: the guest clock set an hour ahead → a `clock` incident; the persisted budget is
//!    not fooled by the jump.
//! 4. `power_cut`: qemu killed while incidents are spooled → after the next boot each reaches
//!    the collector once and the spool is consistent.
//! 5. `reboot`: a playbook whose rung is `reboot` reboots the guest for real; the budget
//!    persisted on the guest's disk allows [`REBOOT_MAX`] reboots per 24 h across reboots; the
//!    next one is refused and, as the budget reopens only hours later, escalated to the NOC
//!    (an `escalated` reboot with the budget's reason, reported) and the guest stays up — also
//!    after a reboot the agent did not make (the harness's `Vm::reboot`).
//!
//! Time budget: under 10 minutes on 2 cores with TCG (measured 5-7 min on a shared, loaded
//! machine: 25-30 s per cold boot, 40-55 s per agent-triggered reboot, six boots).

use netmedic_lab::Lab;
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::vm::{GUEST_LAN_IP, STA_IP, Vm};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentView};
use std::time::{Duration, Instant};

const AGENT_ID: &str = "vm-cpe-0";
/// Reboots allowed per 24 h in the reboot step (the agent's built-in limit, set explicitly).
const REBOOT_MAX: u32 = 3;

fn step(name: &str, t0: Instant) {
    eprintln!("[{:>6.1}s] step {name}", t0.elapsed().as_secs_f64());
}

/// The agent config the harness copies into the guest.
fn agent_config(extra: &str) -> String {
    let base = netmedic_lab::vm::agent_config_base(AGENT_ID);
    format!(
        r#"{base}

[checks.default_route]
interval_secs = 1
fail_threshold = 2
ok_threshold = 2
ping_timeout_ms = 500
ping_count = 2

[healing]
kill_switch_file = "/data/etc/healing.disabled"
backoff_initial_secs = 1
{extra}"#
    )
}

/// Installs a config and restarts the agent (busybox init respawns it); waits for its checks.
fn install_agent_config(vm: &mut Vm, text: &str) {
    vm.copy_in("/data/etc/agent.toml", text.as_bytes(), 0o600)
        .expect("copy the agent config in");
    restart_agent(vm);
}

fn restart_agent(vm: &mut Vm) {
    let before = agent_starts(vm);
    vm.sh("killall netmedic-agent 2>/dev/null; true")
        .expect("stop the agent");
    wait_agent_running(vm, before);
}

/// Waits until the agent has been (re)started more than `before` times in this boot (see
/// [`agent_starts`]) and its log shows a check run since the last start.
fn wait_agent_running(vm: &mut Vm, before: u32) {
    vm.wait(
        "the agent (re)started by busybox init runs its checks",
        Duration::from_secs(60),
        |vm| {
            let out = vm
                .run_timeout(
                    "echo starts=$(cat /run/agent-starts 2>/dev/null | wc -l); \
                     pidof netmedic-agent",
                    Duration::from_secs(10),
                )
                .map_err(|e| e.to_string())?;
            let starts: u32 = out
                .output
                .lines()
                .find_map(|l| l.strip_prefix("starts="))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            if starts <= before {
                return Err(format!("agent starts: {starts} (before: {before})"));
            }
            let log = vm
                .run_timeout(
                    "sed -n \"$(awk '/netmedic-vm: agent start/ { s = NR } END { print s }' /data/log/agent.log),\\$p\" /data/log/agent.log | grep -c 'check default_route:'",
                    Duration::from_secs(10),
                )
                .map_err(|e| e.to_string())?;
            if log.output.trim().parse::<u32>().unwrap_or(0) > 0 {
                Ok(())
            } else {
                Err(format!("no check yet: {}", out.output.trim()))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(vm)));
}

fn agent_log_tail(vm: &mut Vm) -> String {
    vm.run_timeout(
        "tail -n 40 /data/log/agent.log | grep -v DEBUG",
        Duration::from_secs(10),
    )
    .map(|o| o.output)
    .unwrap_or_else(|e| e.to_string())
}

fn ours(i: &IncidentView, check: CheckId) -> bool {
    i.agent_id == AGENT_ID && i.check == check
}

fn default_route(vm: &mut Vm) -> Option<String> {
    vm.default_route().ok().flatten()
}

/// `(action, at_ms)` of every charge in the persisted budget (`heal-budget.json`).
fn budget_charges(vm: &mut Vm) -> Vec<(String, i64)> {
    let text = vm
        .run_timeout(
            "cat /data/netmedic/heal-budget.json 2>/dev/null",
            Duration::from_secs(10),
        )
        .map(|o| o.output)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["charges"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["action"].as_str().unwrap_or_default().to_owned(),
                        c["at_ms"].as_i64().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// How many times the agent service has started in this boot: lines its init script appends
/// to `/run/agent-starts` (tmpfs: 0 after a reboot or power cut; the copy in the agent log on
/// `/data` may lose unflushed lines in a power cut, so it cannot be counted on).
fn agent_starts(vm: &mut Vm) -> u32 {
    vm.sh("cat /run/agent-starts 2>/dev/null | wc -l")
        .expect("count agent starts")
        .trim()
        .parse()
        .unwrap_or(0)
}

/// `(event_id, incident_id)` of every event in the guest's spool (`SEQ-EVENTID.evt`: a 12-byte
/// header, then JSON).
fn spool_events(vm: &mut Vm) -> Vec<(String, String)> {
    let out = vm
        .run_timeout(
            "for f in /data/netmedic/spool/*.evt; do [ -e \"$f\" ] && tail -c +13 \"$f\" && echo; done",
            Duration::from_secs(20),
        )
        .map(|o| o.output)
        .unwrap_or_default();
    out.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["event_id"].as_str().unwrap_or_default().to_owned(),
                v["incident_id"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// How many of `event_ids` the collector's database holds (`events.event_id` is its primary
/// key: an event is stored at most once).
fn stored_events(stack: &Stack<'_>, event_ids: &[&str]) -> usize {
    let list: Vec<String> = event_ids
        .iter()
        .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(|e| format!("'{e}'"))
        .collect();
    let out = std::process::Command::new("sqlite3")
        .arg(stack.db_path())
        .arg(format!(
            "SELECT COUNT(*) FROM events WHERE event_id IN ({});",
            list.join(",")
        ))
        .output()
        .expect("sqlite3");
    assert!(out.status.success(), "sqlite3: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// Waits until the collector holds at least `n` incidents matching `pred`; returns how many.
fn wait_incident_count(
    stack: &Stack<'_>,
    desc: &str,
    n: usize,
    pred: impl Fn(&IncidentView) -> bool,
) -> netmedic_lab::Result<usize> {
    netmedic_lab::wait_for(
        desc,
        Duration::from_secs(90),
        Duration::from_millis(500),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            let count = page.incidents.iter().filter(|i| pred(i)).count();
            if count >= n {
                Ok(count)
            } else {
                Err(format!(
                    "{count}: {:?}",
                    netmedic_lab::stack::summarize(&page)
                ))
            }
        },
    )
}

fn guest_uptime_ms(vm: &mut Vm) -> i64 {
    let up = vm.sh("cut -d' ' -f1 /proc/uptime").expect("uptime");
    (up.trim().parse::<f64>().unwrap_or(0.0) * 1000.0) as i64
}

#[test]
fn vm_router_stories() {
    let t0 = Instant::now();
    let lab = Lab::builder().cpes(0).build().expect("lab");
    let stack = Stack::start(&lab, StackOptions::default()).expect("collector");
    let token = netmedic_lab::vm::device_token(&stack, AGENT_ID).expect("device add");

    step("boot", t0);
    let mut vm = Vm::boot_named(&lab.isp().ns, "vm_router").expect("boot the guest");
    let initramfs_mib = std::fs::metadata(vm.initramfs()).map_or(0, |m| m.len()) as f64 / 1048576.0;
    eprintln!(
        "VM booted with {} in {:.1} s (initramfs {initramfs_mib:.1} MiB)",
        vm.accel().name(),
        vm.boot_times()[0].as_secs_f64()
    );

    // ---- 1. Wi-Fi is real.
    step("wifi", t0);
    vm.wait(
        "hostapd beacons: the client's scan results list the SSID with WPA2-PSK-CCMP",
        Duration::from_secs(90),
        |vm| {
            let o = vm
                .run_timeout(
                    "iw dev wlan0 info; nsenter -t $(cat /run/sta.pid) -n \
                     wpa_cli -p /run/wpa_supplicant -i wlan1 scan_results",
                    Duration::from_secs(20),
                )
                .map_err(|e| e.to_string())?;
            if o.output.contains("type AP")
                && o.output.contains("[WPA2-PSK-CCMP]")
                && o.output.contains("netmedic-lab")
            {
                Ok(())
            } else {
                Err(o.output)
            }
        },
    )
    .expect("beacons");
    vm.wait(
        "the client associates with WPA2-PSK",
        Duration::from_secs(60),
        |vm| {
            let o = vm
                .run_timeout(
                    "nsenter -t $(cat /run/sta.pid) -n wpa_cli -p /run/wpa_supplicant -i wlan1 status",
                    Duration::from_secs(10),
                )
                .map_err(|e| e.to_string())?;
            if o.output.contains("wpa_state=COMPLETED")
                && o.output.contains("key_mgmt=WPA2-PSK")
                && o.output.contains("pairwise_cipher=CCMP")
            {
                Ok(())
            } else {
                Err(o.output)
            }
        },
    )
    .expect("association");
    let stations = vm.sh("iw dev wlan0 station dump").expect("station dump");
    assert!(
        stations.contains("authorized:\tyes"),
        "the AP lists an authorized station: {stations}"
    );
    let ping = vm
        .run(&format!(
            "nsenter -t $(cat /run/sta.pid) -n ping -c 3 -W 2 {GUEST_LAN_IP}"
        ))
        .expect("ping across the air");
    assert_eq!(ping.code, 0, "client → AP ping: {}", ping.output);
    let rx = vm
        .sh("cat /sys/class/net/wlan0/statistics/rx_packets")
        .expect("wlan0 counters");
    assert!(
        rx.trim().parse::<u64>().unwrap_or(0) >= 3,
        "the pings crossed the radio (wlan0 rx_packets {rx}); client {STA_IP}"
    );

    // ---- 2. The agent boots with the guest, reports, and heals a deleted default route.
    step("heal", t0);
    vm.copy_in("/data/etc/agent.token", &token, 0o600)
        .expect("copy the token in");
    install_agent_config(&mut vm, &agent_config(""));
    let route = vm
        .wait(
            "the guest's DHCP default route",
            Duration::from_secs(60),
            |vm| default_route(vm).ok_or_else(|| "no default route".to_owned()),
        )
        .expect("default route");
    vm.delete_default_route().expect("delete the default route");
    let incident = stack
        .wait_incident(
            "the guest agent's default_route incident, healed",
            Duration::from_secs(90),
            |i| ours(i, CheckId::DefaultRoute) && i.auto_healed == Some(true),
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    assert!(
        incident
            .actions
            .iter()
            .any(|a| a.action == netmedic_proto::ActionId::RestoreRoute),
        "healed by restore_route: {incident:?}"
    );
    let healed = default_route(&mut vm).expect("route back");
    assert!(
        healed.starts_with(route.split(" dev").next().unwrap_or("default via")),
        "restored {healed:?}, DHCP gave {route:?}"
    );

    // ---- 3. Clock skew: an hour ahead → a clock incident; the budget is not fooled.
    step("clock", t0);
    install_agent_config(
        &mut vm,
        &agent_config(
            "\n[checks.clock]\ninterval_secs = 2\nfail_threshold = 1\nok_threshold = 1\n\
             max_skew_secs = 60\nsample_max_age_secs = 0\n",
        ),
    );
    let before = budget_charges(&mut vm);
    assert!(
        !before.is_empty(),
        "the heal step's restore_route was charged to the persisted budget"
    );
    vm.skew_clock(3600)
        .expect("set the guest clock an hour ahead");
    let clock = stack
        .wait_incident(
            "a clock incident from the skewed guest",
            Duration::from_secs(90),
            |i| ours(i, CheckId::Clock),
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    eprintln!("clock incident: {} ({})", clock.summary, clock.cause);
    // A restore_route after the jump: its charge is stamped on CLOCK_BOOTTIME, not an hour
    // after the previous one.
    vm.delete_default_route().expect("delete the default route");
    vm.wait(
        "restore_route charged after the jump",
        Duration::from_secs(90),
        |vm| {
            let now = budget_charges(vm);
            if now.len() > before.len() {
                Ok(())
            } else {
                Err(format!("{} charge(s)", now.len()))
            }
        },
    )
    .expect("a new charge");
    let after = budget_charges(&mut vm);
    let (prev, last) = (before[before.len() - 1].1, after[after.len() - 1].1);
    let uptime_ms = guest_uptime_ms(&mut vm);
    assert!(
        last > prev && last - prev < 3_000_000 && last <= uptime_ms,
        "the charge after the +1 h jump is {} s after the previous one (boot time {last} ms, \
         uptime {uptime_ms} ms): the budget must not see the wall-clock jump",
        (last - prev) / 1000
    );
    vm.sync_clock_to_host().expect("set the guest clock back");

    // ---- 4. Power cut while incidents are being spooled.
    step("power_cut", t0);
    install_agent_config(&mut vm, &agent_config(""));
    lab.isp().cut_upstream().expect("cut the collector off");
    for k in 0..2 {
        vm.delete_default_route().expect("delete the default route");
        vm.wait(
            &format!("fault {k}: the agent restores the route (collector unreachable)"),
            Duration::from_secs(90),
            |vm| default_route(vm).ok_or_else(|| "no default route".to_owned()),
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    }
    let spooled_before = spool_events(&mut vm);
    vm.delete_default_route().expect("delete the default route");
    vm.wait(
        "the next incident's first event is spooled",
        Duration::from_secs(60),
        |vm| {
            let n = spool_events(vm).len();
            if n > spooled_before.len() {
                Ok(())
            } else {
                Err(format!("{n} event(s) spooled"))
            }
        },
    )
    .expect("spooling");
    let tap = vm.tap().to_owned();
    vm.power_cut().expect("power cut");
    assert!(
        lab.isp().ns.ip(&["link", "show", &tap]).is_err(),
        "the tap {tap} went with qemu"
    );
    vm.start().expect("boot after the power cut");
    wait_agent_running(&mut vm, 0);
    let recovery = vm
        .sh("grep 'spool: .* awaiting delivery' /data/log/agent.log | tail -n 1")
        .expect("spool recovery line");
    assert!(
        recovery.contains(" 0 quarantined"),
        "the spool is consistent after the power cut: {recovery}"
    );
    let acked = spool_events(&mut vm);
    assert!(
        acked.len() >= spooled_before.len(),
        "every event spooled before the cut is still there: {} before, {} after ({recovery})",
        spooled_before.len(),
        acked.len()
    );
    for (event, _) in &spooled_before {
        assert!(
            acked.iter().any(|(e, _)| e == event),
            "event {event}, durable before the cut, survived it"
        );
    }
    lab.isp()
        .restore_upstream()
        .expect("reconnect the collector");
    vm.wait("the spool drains", Duration::from_secs(90), |vm| {
        let left = spool_events(vm);
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{} event(s) left", left.len()))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    let page = stack.incidents().expect("incidents");
    let mut incidents: Vec<&str> = acked.iter().map(|(_, i)| i.as_str()).collect();
    incidents.sort_unstable();
    incidents.dedup();
    for id in &incidents {
        let stored: Vec<&IncidentView> = page
            .incidents
            .iter()
            .filter(|i| i.agent_id == AGENT_ID && i.incident_id == *id)
            .collect();
        let events = acked.iter().filter(|(_, i)| i == id).count();
        assert_eq!(stored.len(), 1, "incident {id} stored once: {stored:?}");
        assert!(
            stored[0].event_count as usize >= events,
            "incident {id}: its {events} spooled event(s) reached the collector: {:?}",
            stored[0]
        );
    }
    let ids: Vec<&str> = acked.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        stored_events(&stack, &ids),
        ids.len(),
        "every event durable across the power cut is in the collector's database, once"
    );
    eprintln!(
        "power cut: {} event(s) of {} incident(s) durable across the cut, delivered once",
        acked.len(),
        incidents.len()
    );

    // ---- 5. Reboot, for real; the persisted budget holds across reboots.
    step("reboot", t0);
    install_agent_config(
        &mut vm,
        &agent_config(&format!(
            "\n[healing.reboot]\nenabled = true\ncommand = [\"/sbin/reboot\"]\n\n\
             [healing.budgets]\nreboot = {{ max = {REBOOT_MAX}, window_secs = 86400 }}\n\n\
             [[playbook]]\ncheck = \"default_route\"\ncauses = [\"default_route_missing\"]\n\
             actions = [\"reboot\"]\nmode = \"enforce\"\n"
        )),
    );
    let rebooted = |i: &IncidentView| {
        ours(i, CheckId::DefaultRoute) && i.actions.iter().any(|a| a.action == ActionId::Reboot)
    };
    for n in 1..=REBOOT_MAX as usize {
        vm.delete_default_route().expect("delete the default route");
        let boot_id = vm
            .wait_rebooted(vm.boot_timeout() + Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("reboot {n}: {e}"));
        eprintln!("reboot {n}: back as {boot_id}");
        wait_agent_running(&mut vm, 0);
        let incidents = wait_incident_count(
            &stack,
            &format!("{n} incident(s) with a reboot"),
            n,
            rebooted,
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
        assert_eq!(incidents, n, "each rebooting incident delivered once");
        vm.wait(
            "the DHCP route after the reboot",
            Duration::from_secs(60),
            |vm| default_route(vm).ok_or_else(|| "no default route".to_owned()),
        )
        .expect("route after reboot");
    }
    let reboots = budget_charges(&mut vm)
        .iter()
        .filter(|(a, _)| a == "reboot")
        .count();
    assert_eq!(
        reboots, REBOOT_MAX as usize,
        "reboot charges persisted across reboots"
    );
    let boot_id = vm.boot_id().to_owned();
    vm.delete_default_route().expect("delete the default route");
    let refused = stack
        .wait_incident(
            "the reboot over budget is refused and escalated to the NOC",
            Duration::from_secs(90),
            |i| {
                ours(i, CheckId::DefaultRoute)
                    && i.actions.iter().any(|a| {
                        a.action == ActionId::Reboot
                            && a.outcome == ActionOutcome::Escalated
                            && a.detail.contains("budget")
                    })
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    eprintln!("refused: {:?}", refused.actions);
    assert!(
        !refused
            .actions
            .iter()
            .any(|a| a.action == ActionId::Reboot && a.outcome == ActionOutcome::Skipped),
        "over budget, the reboot escalates rather than waits: {:?}",
        refused.actions
    );
    let same = vm
        .sh("cat /proc/sys/kernel/random/boot_id")
        .expect("boot id");
    assert_eq!(same.trim(), boot_id, "no reboot beyond the budget");
    assert_eq!(
        stack
            .incidents()
            .expect("incidents")
            .incidents
            .iter()
            .filter(|i| rebooted(i)
                && i.actions.iter().any(|a| {
                    a.action == ActionId::Reboot
                        && !matches!(a.outcome, ActionOutcome::Skipped | ActionOutcome::Escalated)
                }))
            .count(),
        REBOOT_MAX as usize,
        "exactly {REBOOT_MAX} reboots in the window"
    );
    // A reboot the agent did not make (the harness's, like a subscriber pulling the plug
    // politely) neither resets nor stretches the window: the next fault is still refused.
    let boot_id = vm.reboot().expect("reboot by the harness");
    wait_agent_running(&mut vm, 0);
    vm.wait(
        "the DHCP route after the reboot",
        Duration::from_secs(60),
        |vm| default_route(vm).ok_or_else(|| "no default route".to_owned()),
    )
    .expect("route after reboot");
    vm.delete_default_route().expect("delete the default route");
    let again = stack
        .wait_incident(
            "after a reboot by the harness, the next reboot is still not made",
            Duration::from_secs(90),
            |i| {
                ours(i, CheckId::DefaultRoute)
                    && i.incident_id != refused.incident_id
                    && i.actions.iter().any(|a| {
                        a.action == ActionId::Reboot
                            && matches!(
                                a.outcome,
                                ActionOutcome::Skipped | ActionOutcome::Escalated
                            )
                    })
            },
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    eprintln!("after the harness's reboot: {:?}", again.actions);
    assert!(
        !again
            .actions
            .iter()
            .any(|a| a.action == ActionId::Reboot && a.outcome == ActionOutcome::Done),
        "no reboot over budget after a reboot by the harness: {again:?}"
    );
    let same = vm
        .sh("cat /proc/sys/kernel/random/boot_id")
        .expect("boot id");
    assert_eq!(same.trim(), boot_id, "no reboot beyond the budget");
    let reboots = budget_charges(&mut vm)
        .iter()
        .filter(|(a, _)| a == "reboot")
        .count();
    assert_eq!(
        reboots, REBOOT_MAX as usize,
        "the reboot charges survived a reboot the agent did not charge"
    );
    eprintln!(
        "boot times (host s): {:?}",
        vm.boot_times()
            .iter()
            .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );

    vm.save_artifact("/data/log/agent.log", "agent.log");
    let qemu = vm.qemu_pid().expect("qemu runs");
    let tap = vm.tap().to_owned();
    drop(vm);
    assert!(
        !std::path::Path::new(&format!("/proc/{qemu}")).exists(),
        "qemu (pid {qemu}) is gone after the Vm is dropped"
    );
    assert!(
        lab.isp().ns.ip(&["link", "show", &tap]).is_err(),
        "the tap {tap} is gone after the Vm is dropped"
    );
    eprintln!("[{:>6.1}s] done", t0.elapsed().as_secs_f64());
}
