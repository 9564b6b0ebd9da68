//! The home Wi-Fi on real radios: the VM lab's guest (busybox init, static agent, hostapd on
//! the first `mac80211_hwsim` radio, a WPA2-PSK client on the second, in its own namespace)
//! with the agent's `wifi_ap` check and `restart_hostapd` action, reporting to the real
//! collector of a namespace lab. One boot; the faults run in sequence, each with deadlines:
//!
//! 1. `capture`: the client associates; hostapd's real control-interface replies (`STATUS`,
//!    `GET_CONFIG`, `STA-FIRST`) are saved as artifacts (the agent's unit-test fixtures under
//!    `agent/tests/fixtures/hostapd/` were captured this way).
//! 2. `killed`: hostapd SIGKILLed → `hostapd_down` → `restart_hostapd` → the client
//!    re-associates; the incident is auto-healed at the collector.
//! 3. `frozen`: hostapd SIGSTOPped (the process exists, its BSS serves nobody) → the control
//!    interface times out → `hostapd_frozen` → restarted, auto-healed.
//! 4. `open`: a bad config push (the WPA lines removed from `/etc/hostapd.conf`, hostapd
//!    restarted) → the AP is open → `security_open`, severity critical, evidence
//!    `security=open` → `reapply_wifi_config` writes the provisioned copy the agent kept back
//!    (the copy is taken only while the file names the provisioned values) → verified,
//!    auto-healed, the file is the provisioned one again and the client re-associates.
//! 5. `ssid`: the SSID changed at runtime through the control interface (`SET ssid`,
//!    `DISABLE`, `ENABLE`; the file unchanged) → `ssid_mismatch` → `reapply_wifi_config`
//!    restarts hostapd from the provisioned file → auto-healed.
//! 6. `password`: the client's password changed to a wrong one → hostapd's
//!    `AP-STA-POSSIBLE-PSK-MISMATCH` events → a `wifi_events` `psk_mismatch` incident naming the
//!    client's MAC, with no action and no second incident (no loop); the right password back →
//!    the client associates.
//!
//! `NETMEDIC_WIFI_REPEATS` (default 1) repeats steps 2 to 5 to measure detection and heal
//! times; each run prints them (host clock, fault → incident at the collector → healed).

use netmedic_lab::stack::{COLLECTOR_PORT, Stack, StackOptions, bin_path};
use netmedic_lab::vm::{Vm, VmOptions};
use netmedic_lab::{COLLECTOR_IP, Lab};
use netmedic_proto::{ActionId, CheckId, IncidentView, Severity};
use std::time::{Duration, Instant};

const AGENT_ID: &str = "vm-wifi-0";
const HOSTAPD_CLI: &str = "hostapd_cli -p /run/hostapd -i wlan0";
const STA_CLI: &str = "nsenter -t $(cat /run/sta.pid) -n wpa_cli -p /run/wpa_supplicant -i wlan1";

fn step(name: &str, t0: Instant) {
    eprintln!("[{:>6.1}s] step {name}", t0.elapsed().as_secs_f64());
}

/// The agent config: `wifi_ap` with the shipped intervals and the lab AP as provisioned.
fn agent_config() -> String {
    format!(
        r#"# written by the netmedic VM lab (vm_wifi)
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

[checks.wifi_ap]
enabled = true
ctrl_dir = "/run/hostapd"
interface = "wlan0"
client_socket_dir = "/tmp"
ssid = "netmedic-lab"
security = "wpa2-psk"
channel = 6
config_file = "/etc/hostapd.conf"

[checks.wifi_events]
enabled = true
ctrl_dir = "/run/hostapd"
interface = "wlan0"
client_socket_dir = "/tmp"
window_secs = 120

# Each injection is a fresh fault: without this, a fault that comes back within the ladder
# memory resumes its exhausted ladder and is escalated (the product's answer to a restart that
# does not hold), and the repeated measurements would stop at the second run.
[healing]
kill_switch_file = "/data/etc/healing.disabled"
ladder_memory_secs = 0

# Room for NETMEDIC_WIFI_REPEATS: the shipped budgets (restart_hostapd 4/h,
# reapply_wifi_config 3/h, all actions 12/h) would refuse the later runs (and rightly escalate).
[healing.global_budget]
max = 100
window_secs = 3600

[healing.budgets]
restart_hostapd = {{ max = 50, window_secs = 3600 }}
reapply_wifi_config = {{ max = 50, window_secs = 3600 }}

[healing.restart_hostapd]
command = ["/etc/init.d/wifi", "restart"]
timeout_secs = 20

[healing.reapply_wifi_config]
command = ["/etc/init.d/wifi", "restart"]
timeout_secs = 20
"#
    )
}

fn agent_log_tail(vm: &mut Vm) -> String {
    vm.save_artifact("/data/log/agent.log", "agent.log");
    vm.save_artifact("/run/hostapd.log", "hostapd.log");
    vm.run_timeout(
        "grep -v DEBUG /data/log/agent.log | tail -n 60; echo '--- hostapd'; \
         tail -n 20 /run/hostapd.log; ps",
        Duration::from_secs(10),
    )
    .map(|o| o.output)
    .unwrap_or_else(|e| e.to_string())
}

fn ours(i: &IncidentView, cause: &str) -> bool {
    i.agent_id == AGENT_ID && i.check == CheckId::WifiAp && i.cause == cause
}

/// Waits until the client's supplicant reports a completed WPA2-PSK association.
fn wait_associated(vm: &mut Vm, what: &str) {
    vm.wait(what, Duration::from_secs(90), |vm| {
        let o = vm
            .run_timeout(&format!("{STA_CLI} status"), Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        if o.output.contains("wpa_state=COMPLETED") && o.output.contains("key_mgmt=WPA2-PSK") {
            Ok(())
        } else {
            Err(o.output)
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Waits until the collector holds `n` incidents with `cause` that satisfy `pred`.
fn wait_nth(
    stack: &Stack<'_>,
    vm: &mut Vm,
    desc: &str,
    cause: &str,
    n: usize,
    pred: impl Fn(&IncidentView) -> bool,
) -> IncidentView {
    netmedic_lab::wait_for(
        desc,
        Duration::from_secs(120),
        Duration::from_millis(250),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            let hits: Vec<&IncidentView> = page
                .incidents
                .iter()
                .filter(|i| ours(i, cause) && pred(i))
                .collect();
            if hits.len() >= n {
                // Newest first.
                Ok(hits[0].clone())
            } else {
                Err(format!(
                    "{} of {n}: {:?}",
                    hits.len(),
                    netmedic_lab::stack::summarize(&page)
                ))
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(vm)))
}

/// Injects a fault, then waits for the nth incident of `cause` to appear and to be healed by
/// `restart_hostapd`; returns (detection, heal) as seen from the host.
fn fault_and_heal(
    stack: &Stack<'_>,
    vm: &mut Vm,
    fault: &str,
    cause: &str,
    n: usize,
) -> (Duration, Duration) {
    let t = Instant::now();
    vm.sh(fault).expect("inject the fault");
    wait_nth(
        stack,
        vm,
        &format!("wifi_ap {cause} incident #{n}"),
        cause,
        n,
        |_| true,
    );
    let detect = t.elapsed();
    let healed = wait_nth(
        stack,
        vm,
        &format!("wifi_ap {cause} incident #{n} auto-healed"),
        cause,
        n,
        |i| i.auto_healed == Some(true),
    );
    let heal = t.elapsed();
    assert!(
        healed
            .actions
            .iter()
            .any(|a| a.action == ActionId::RestartHostapd),
        "healed by restart_hostapd: {healed:?}"
    );
    assert_eq!(healed.category, netmedic_proto::Category::WifiDegraded);
    wait_associated(vm, &format!("the client re-associates after {cause}"));
    eprintln!(
        "wifi {cause} #{n}: detected after {:.1} s, healed after {:.1} s (host clock, fault → collector)",
        detect.as_secs_f64(),
        heal.as_secs_f64()
    );
    (detect, heal)
}

/// Step 4: a config push that makes the AP open → critical → the provisioned config restored.
fn open_ap(stack: &Stack<'_>, vm: &mut Vm, n: usize) -> (Duration, Duration) {
    vm.wait(
        "the agent kept a copy of the provisioned AP config",
        Duration::from_secs(60),
        |vm| {
            vm.run_timeout(
                "cmp /etc/hostapd.conf /data/netmedic/wifi/hostapd.conf.provisioned",
                Duration::from_secs(10),
            )
            .map_err(|e| e.to_string())
            .and_then(|o| if o.code == 0 { Ok(()) } else { Err(o.output) })
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(vm)));
    let t = Instant::now();
    vm.sh(
        "sed -i '/^wpa/d; /^rsn_pairwise/d' /etc/hostapd.conf && /etc/init.d/wifi restart && \
         sleep 1; hostapd_cli -p /run/hostapd -i wlan0 raw GET_CONFIG > /tmp/hostapd-get_config_open.txt",
    )
    .expect("make the AP open");
    vm.save_artifact(
        "/tmp/hostapd-get_config_open.txt",
        "hostapd-get_config_open.txt",
    );
    let open = wait_nth(
        stack,
        vm,
        &format!("security_open incident #{n}"),
        "security_open",
        n,
        |_| true,
    );
    let detect = t.elapsed();
    assert_eq!(open.severity, Severity::Critical, "{open:?}");
    assert_eq!(
        open.evidence.get("security").map(String::as_str),
        Some("open"),
        "{open:?}"
    );
    let healed = wait_nth(
        stack,
        vm,
        &format!("security_open incident #{n} auto-healed"),
        "security_open",
        n,
        |i| i.auto_healed == Some(true),
    );
    let heal = t.elapsed();
    eprintln!(
        "wifi open AP #{n}: detected after {:.1} s, healed after {:.1} s",
        detect.as_secs_f64(),
        heal.as_secs_f64()
    );
    assert!(
        healed
            .actions
            .iter()
            .any(|a| a.action == ActionId::ReapplyWifiConfig),
        "healed by reapply_wifi_config: {healed:?}"
    );
    let conf = vm.sh("cat /etc/hostapd.conf").expect("hostapd.conf");
    assert!(
        conf.contains("wpa=2") && conf.contains("wpa_key_mgmt=WPA-PSK"),
        "the provisioned config is back: {conf}"
    );
    wait_associated(vm, "the client re-associates with WPA2-PSK");
    (detect, heal)
}

/// Step 5: the SSID changed at runtime → the provisioned file applied again.
fn ssid_drift(stack: &Stack<'_>, vm: &mut Vm, n: usize) -> (Duration, Duration) {
    let t = Instant::now();
    vm.sh(&format!(
        "{HOSTAPD_CLI} set ssid evil-twin && {HOSTAPD_CLI} disable && {HOSTAPD_CLI} enable"
    ))
    .expect("change the SSID at runtime");
    wait_nth(
        stack,
        vm,
        &format!("ssid_mismatch incident #{n}"),
        "ssid_mismatch",
        n,
        |_| true,
    );
    let detect = t.elapsed();
    let healed = wait_nth(
        stack,
        vm,
        &format!("ssid_mismatch incident #{n} auto-healed"),
        "ssid_mismatch",
        n,
        |i| i.auto_healed == Some(true),
    );
    let heal = t.elapsed();
    eprintln!(
        "wifi ssid drift #{n}: detected after {:.1} s, healed after {:.1} s",
        detect.as_secs_f64(),
        heal.as_secs_f64()
    );
    assert_eq!(
        healed.evidence.get("ssid").map(String::as_str),
        Some("evil-twin"),
        "{healed:?}"
    );
    assert!(
        healed
            .actions
            .iter()
            .any(|a| a.action == ActionId::ReapplyWifiConfig),
        "healed by reapply_wifi_config: {healed:?}"
    );
    wait_associated(vm, "the client re-associates after the SSID drift");
    (detect, heal)
}

#[test]
fn vm_wifi_stories() {
    let t0 = Instant::now();
    let repeats: usize = std::env::var("NETMEDIC_WIFI_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .clamp(1, 10);
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
            name: "vm_wifi".into(),
            ..VmOptions::default()
        },
    )
    .expect("boot the guest");

    // ---- 1. Association, and hostapd's real replies as artifacts.
    step("capture", t0);
    wait_associated(&mut vm, "the client associates with WPA2-PSK");
    for (cmd, name) in [
        ("raw STATUS", "hostapd-status.txt"),
        ("raw GET_CONFIG", "hostapd-get_config.txt"),
        ("raw STA-FIRST", "hostapd-sta_first.txt"),
    ] {
        let out = vm
            .sh(&format!(
                "{HOSTAPD_CLI} {cmd} > /tmp/{name}; cat /tmp/{name}"
            ))
            .expect("hostapd_cli");
        assert!(!out.trim().is_empty(), "{cmd}: empty reply");
        vm.save_artifact(&format!("/tmp/{name}"), name);
    }

    // ---- The agent with wifi_ap.
    vm.copy_in("/data/etc/agent.token", &token.stdout, 0o600)
        .expect("copy the token in");
    vm.copy_in("/data/etc/agent.toml", agent_config().as_bytes(), 0o600)
        .expect("copy the agent config in");
    vm.sh("killall netmedic-agent 2>/dev/null; true")
        .expect("restart the agent");
    vm.wait(
        "the agent runs wifi_ap and finds the AP ok",
        Duration::from_secs(90),
        |vm| {
            let o = vm
                .run_timeout(
                    "grep 'check wifi_ap:' /data/log/agent.log | tail -n 1",
                    Duration::from_secs(10),
                )
                .map_err(|e| e.to_string())?;
            if o.output.contains("Ok") {
                Ok(())
            } else {
                Err(o.output)
            }
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));

    // ---- 2./3. Killed and frozen hostapd, healed.
    let mut times = Vec::new();
    for n in 1..=repeats {
        step(&format!("killed #{n}"), t0);
        times.push((
            "killed",
            fault_and_heal(
                &stack,
                &mut vm,
                "kill -KILL $(pidof hostapd)",
                "hostapd_down",
                n,
            ),
        ));
        step(&format!("frozen #{n}"), t0);
        times.push((
            "frozen",
            fault_and_heal(
                &stack,
                &mut vm,
                "kill -STOP $(pidof hostapd)",
                "hostapd_frozen",
                n,
            ),
        ));
        // ---- 4./5. Drift from the provisioned config, restored.
        step(&format!("open #{n}"), t0);
        times.push(("open", open_ap(&stack, &mut vm, n)));
        step(&format!("ssid #{n}"), t0);
        times.push(("ssid", ssid_drift(&stack, &mut vm, n)));
    }
    for kind in ["killed", "frozen", "open", "ssid"] {
        let mut d: Vec<f64> = times
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, (d, _))| d.as_secs_f64())
            .collect();
        let mut h: Vec<f64> = times
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, (_, h))| h.as_secs_f64())
            .collect();
        d.sort_by(f64::total_cmp);
        h.sort_by(f64::total_cmp);
        eprintln!(
            "wifi {kind} over {} run(s): detection median {:.1} s worst {:.1} s; heal median {:.1} s worst {:.1} s",
            d.len(),
            d[d.len() / 2],
            d[d.len() - 1],
            h[h.len() / 2],
            h[h.len() - 1]
        );
    }

    // ---- 6. A wrong password on the client: reported with its cause, nothing acts.
    step("password", t0);
    // The guest's /sys is the root namespace's: the client's MAC comes from its supplicant.
    let sta_mac = vm
        .sh(&format!("{STA_CLI} status"))
        .expect("client status")
        .lines()
        .find_map(|l| l.strip_prefix("address="))
        .map(|m| m.trim().to_ascii_lowercase())
        .expect("the client's MAC in wpa_cli status");
    let t = Instant::now();
    vm.sh(&format!(
        "{STA_CLI} set_network 0 psk '\"not-the-password\"' && {STA_CLI} reassociate"
    ))
    .expect("a wrong password on the client");
    let mismatch = netmedic_lab::wait_for(
        "a psk_mismatch incident",
        Duration::from_secs(180),
        Duration::from_millis(250),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            page.incidents
                .iter()
                .find(|i| {
                    i.agent_id == AGENT_ID
                        && i.check == CheckId::WifiEvents
                        && i.cause == "psk_mismatch"
                })
                .cloned()
                .ok_or_else(|| format!("{:?}", netmedic_lab::stack::summarize(&page)))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(&mut vm)));
    eprintln!(
        "wifi wrong password: detected after {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        mismatch.evidence.get("clients").map(String::as_str),
        Some(sta_mac.as_str()),
        "{mismatch:?}"
    );
    assert_eq!(mismatch.category, netmedic_proto::Category::WifiDegraded);
    vm.sh(&format!(
        "{STA_CLI} set_network 0 psk '\"netmedic-lab-psk\"' && {STA_CLI} enable_network 0 && \
         {STA_CLI} reassociate"
    ))
    .expect("the right password back");
    wait_associated(&mut vm, "the client associates with the right password");
    let page = stack.incidents().expect("incidents");
    let mismatches: Vec<&IncidentView> = page
        .incidents
        .iter()
        .filter(|i| i.check == CheckId::WifiEvents)
        .collect();
    assert_eq!(mismatches.len(), 1, "one incident, no loop: {mismatches:?}");
    assert!(
        mismatches[0].actions.is_empty(),
        "nothing acts on a wrong password: {mismatches:?}"
    );

    // The agent's footprint with the Wi-Fi checks on (after all of the above).
    let status = vm
        .sh("grep -E '^(VmRSS|VmHWM|Threads)' /proc/$(pidof netmedic-agent)/status | tr -s ' \t' ' '")
        .expect("agent status");
    eprintln!(
        "agent footprint with wifi_ap + wifi_events: {}",
        status.lines().collect::<Vec<_>>().join(", ")
    );

    step("done", t0);
    vm.save_artifact("/data/log/agent.log", "agent.log");
    vm.save_artifact("/run/hostapd.log", "hostapd.log");
}
