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

use netmedic_lab::Lab;
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_lab::vm::Vm;
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentView, Severity};
use std::time::{Duration, Instant};

const AGENT_ID: &str = "vm-wifi-0";
const HOSTAPD_CLI: &str = "hostapd_cli -p /run/hostapd -i wlan0";
const STA_CLI: &str = "nsenter -t $(cat /run/sta.pid) -n wpa_cli -p /run/wpa_supplicant -i wlan1";

fn step(name: &str, t0: Instant) {
    eprintln!("[{:>6.1}s] step {name}", t0.elapsed().as_secs_f64());
}

/// What a step adds to the agent config: keys of `[checks.wifi_ap]` and `[healing]`, and
/// tables at the end.
#[derive(Default)]
struct Extra<'a> {
    wifi_ap: &'a str,
    healing: &'a str,
    tail: &'a str,
}

/// The agent config: `wifi_ap` with the shipped intervals and the lab AP as provisioned
/// (on `channel`).
fn agent_config(channel: u32, extra: &Extra<'_>) -> String {
    let Extra {
        wifi_ap,
        healing,
        tail,
    } = extra;
    let base = netmedic_lab::vm::agent_config_base(AGENT_ID);
    format!(
        r#"{base}

[checks.wifi_ap]
enabled = true
ctrl_dir = "/run/hostapd"
interface = "wlan0"
client_socket_dir = "/tmp"
ssid = "netmedic-lab"
security = "wpa2-psk"
channel = {channel}
config_file = "/etc/hostapd.conf"
{wifi_ap}

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
{healing}

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
{tail}
"#
    )
}

fn agent_log_tail(vm: &mut Vm) -> String {
    vm.save_artifact("/data/log/agent.log", "agent.log");
    vm.save_artifact("/run/hostapd.log", "hostapd.log");
    // The short story first (a long report is cut in the middle): the agent's starts and
    // event monitor, hostapd's monitor errors and DFS events.
    vm.run_timeout(
        "echo '--- agent: starts and wifi_events'; \
         grep -E ' running in |shutting down|wifi_events' /data/log/agent.log | grep -v DEBUG \
         | tail -n 15; \
         echo '--- hostapd: monitors and DFS'; \
         grep -E 'CTRL_IFACE|DFS-|AP-ENABLED|AP-DISABLED' /run/hostapd.log | tail -n 12; \
         echo '--- agent log'; grep -v DEBUG /data/log/agent.log | tail -n 60; \
         echo '--- hostapd'; tail -n 20 /run/hostapd.log; ps",
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

/// Waits for a `wifi_events` incident with `cause` at the collector.
fn wait_events_incident(
    stack: &Stack<'_>,
    vm: &mut Vm,
    cause: &str,
    timeout: Duration,
) -> IncidentView {
    netmedic_lab::wait_for(
        &format!("a {cause} incident"),
        timeout,
        Duration::from_millis(250),
        || {
            let page = stack.incidents().map_err(|e| e.to_string())?;
            page.incidents
                .iter()
                .find(|i| {
                    i.agent_id == AGENT_ID && i.check == CheckId::WifiEvents && i.cause == cause
                })
                .cloned()
                .ok_or_else(|| format!("{:?}", netmedic_lab::stack::summarize(&page)))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(vm)))
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

/// Host-clock times from a fault's injection: the incident at the collector (`detected`), the
/// agent's verified action at the collector (`healed`), the incident resolved there (`resolved`).
#[derive(Debug, Clone, Copy)]
struct Timing {
    detected: Duration,
    healed: Duration,
    resolved: Duration,
}

/// After a fault injected at `t`: waits for the nth incident of `cause`, for its `action`
/// verified and for its resolution as auto-healed, all at the collector.
fn measure(
    stack: &Stack<'_>,
    vm: &mut Vm,
    t: Instant,
    cause: &str,
    n: usize,
    action: ActionId,
) -> (Timing, IncidentView) {
    wait_nth(
        stack,
        vm,
        &format!("{cause} incident #{n}"),
        cause,
        n,
        |_| true,
    );
    let detected = t.elapsed();
    let verified = |i: &IncidentView| {
        i.actions
            .iter()
            .any(|a| a.action == action && a.outcome == ActionOutcome::Verified)
    };
    wait_nth(
        stack,
        vm,
        &format!("{cause} incident #{n}: {action:?} verified"),
        cause,
        n,
        verified,
    );
    let healed = t.elapsed();
    let done = wait_nth(
        stack,
        vm,
        &format!("{cause} incident #{n} auto-healed"),
        cause,
        n,
        |i| i.auto_healed == Some(true) && i.resolved_at.is_some(),
    );
    let resolved = t.elapsed();
    assert!(verified(&done), "healed by {action:?}: {done:?}");
    assert_eq!(done.category, netmedic_proto::Category::WifiDegraded);
    eprintln!(
        "wifi {cause} #{n}: detected {:.1} s, healed {:.1} s, resolved {:.1} s (host clock, fault → collector)",
        detected.as_secs_f64(),
        healed.as_secs_f64(),
        resolved.as_secs_f64()
    );
    (
        Timing {
            detected,
            healed,
            resolved,
        },
        done,
    )
}

/// Injects a fault, then waits for the nth incident of `cause` to appear and to be healed by
/// `restart_hostapd`.
fn fault_and_heal(stack: &Stack<'_>, vm: &mut Vm, fault: &str, cause: &str, n: usize) -> Timing {
    let t = Instant::now();
    vm.sh(fault).expect("inject the fault");
    let (times, _) = measure(stack, vm, t, cause, n, ActionId::RestartHostapd);
    wait_associated(vm, &format!("the client re-associates after {cause}"));
    times
}

/// Step 4: a config push that makes the AP open → critical → the provisioned config restored.
fn open_ap(stack: &Stack<'_>, vm: &mut Vm, n: usize) -> Timing {
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
    let (times, open) = measure(
        stack,
        vm,
        t,
        "security_open",
        n,
        ActionId::ReapplyWifiConfig,
    );
    assert_eq!(open.severity, Severity::Critical, "{open:?}");
    assert_eq!(
        open.evidence.get("security").map(String::as_str),
        Some("open"),
        "{open:?}"
    );
    let conf = vm.sh("cat /etc/hostapd.conf").expect("hostapd.conf");
    assert!(
        conf.contains("wpa=2") && conf.contains("wpa_key_mgmt=WPA-PSK"),
        "the provisioned config is back: {conf}"
    );
    wait_associated(vm, "the client re-associates with WPA2-PSK");
    times
}

/// Step 5: the SSID changed at runtime → the provisioned file applied again.
fn ssid_drift(stack: &Stack<'_>, vm: &mut Vm, n: usize) -> Timing {
    let t = Instant::now();
    vm.sh(&format!(
        "{HOSTAPD_CLI} set ssid evil-twin && {HOSTAPD_CLI} disable && {HOSTAPD_CLI} enable"
    ))
    .expect("change the SSID at runtime");
    let (times, healed) = measure(
        stack,
        vm,
        t,
        "ssid_mismatch",
        n,
        ActionId::ReapplyWifiConfig,
    );
    assert_eq!(
        healed.evidence.get("ssid").map(String::as_str),
        Some("evil-twin"),
        "{healed:?}"
    );
    wait_associated(vm, "the client re-associates after the SSID drift");
    times
}

/// Median and worst of each column, as a markdown table (printed by the test, copied into
/// `docs/wifi.md`).
fn timing_table(times: &[(&str, Timing)]) -> String {
    let secs = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        format!("{:.1} / {:.1} s", v[v.len() / 2], v[v.len() - 1])
    };
    let mut out = String::from(
        "| fault | runs | detected, median / worst | healed | resolved at the collector |\n\
         |---|---|---|---|---|\n",
    );
    for kind in ["killed", "frozen", "open", "ssid", "chan_switch"] {
        let runs: Vec<Timing> = times
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
            .collect();
        if runs.is_empty() {
            continue;
        }
        let col =
            |f: fn(&Timing) -> Duration| secs(runs.iter().map(|t| f(t).as_secs_f64()).collect());
        out.push_str(&format!(
            "| {kind} | {} | {} | {} | {} |\n",
            runs.len(),
            col(|t| t.detected),
            col(|t| t.healed),
            col(|t| t.resolved)
        ));
    }
    out
}

/// One `STATUS` key of hostapd's reply (`None` when hostapd does not answer).
fn hostapd_status(vm: &mut Vm, key: &str) -> Option<String> {
    let o = vm
        .run_timeout(
            &format!("{HOSTAPD_CLI} raw STATUS"),
            Duration::from_secs(10),
        )
        .ok()?;
    o.output
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

/// Waits until the agent's log, after its first `from_line` lines, shows a run of each check
/// in `checks` with status `Ok`.
///
/// Only the runs of the agent that started after `from_line` count: the process being replaced
/// may still log an Ok run between `from_line` and its end, and that run says nothing about
/// the new process (its event monitor may not be attached yet).
fn wait_checks_ok(vm: &mut Vm, what: &str, from_line: usize, checks: &[&str]) {
    vm.wait(what, Duration::from_secs(120), |vm| {
        let o = vm
            .run_timeout(
                &format!(
                    "tail -n +{} /data/log/agent.log | sed -n '/ running in .* mode with checks/,$p' \
                     | grep ' check wifi_'",
                    from_line + 1
                ),
                Duration::from_secs(10),
            )
            .map_err(|e| e.to_string())?;
        let missing: Vec<&&str> = checks
            .iter()
            .filter(|c| !o.output.contains(&format!("check {c}: Ok")))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("no Ok run of {missing:?} yet"))
        }
    })
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(vm)));
}

/// Step 7: `chan_switch` on the radios. `mac80211_hwsim` reports a fixed 12.5 % busy share, and
/// only for channels the radio has left (the operating channel's time stays 0), so no real
/// `channel_busy` can be made: the action is forced by a playbook for `channel_mismatch`. The
/// AP is moved to channel 1 by hand (`CHAN_SWITCH`); provisioned 6, alternates 6 and 11 →
/// `chan_switch` announces channel 6, verified through `STATUS` and by `wifi_ap`, auto-healed;
/// the same hostapd process, the client still associated. The survey dump is an artifact.
fn chan_switch(stack: &Stack<'_>, vm: &mut Vm) -> Timing {
    let survey = vm
        .sh("iw dev wlan0 survey dump > /tmp/survey-dump.txt; cat /tmp/survey-dump.txt")
        .expect("iw survey dump");
    vm.save_artifact("/tmp/survey-dump.txt", "iw-survey-dump.txt");
    eprintln!("wifi: hwsim's channel survey:\n{survey}");
    let extra = Extra {
        wifi_ap: "busy_share_max_pct = 90\nchan_switch_channels = [6, 11]\nchan_switch_cs_count = 3",
        healing: "maintenance_windows = [\"00:00-23:59\"]",
        tail: "[[playbook]]\ncheck = \"wifi_ap\"\ncauses = [\"channel_mismatch\"]\n\
               actions = [\"chan_switch\"]\nmode = \"enforce\"",
    };
    restart_agent(vm, &agent_config(6, &extra));
    let pid = vm.sh("pidof hostapd").expect("hostapd's pid");
    let t = Instant::now();
    vm.sh(&format!("{HOSTAPD_CLI} chan_switch 3 2412"))
        .expect("move the AP to channel 1");
    let (times, healed) = measure(stack, vm, t, "channel_mismatch", 1, ActionId::ChanSwitch);
    let detail: Vec<&str> = healed
        .actions
        .iter()
        .filter(|a| a.action == ActionId::ChanSwitch)
        .map(|a| a.detail.as_str())
        .collect();
    eprintln!(
        "wifi chan_switch: {detail:?}, evidence {:?}",
        healed.evidence
    );
    assert!(
        detail.iter().any(|d| d.contains("1 → 6")),
        "switched from 1 to 6: {healed:?}"
    );
    assert_eq!(hostapd_status(vm, "channel").as_deref(), Some("6"));
    assert_eq!(
        vm.sh("pidof hostapd").expect("hostapd's pid"),
        pid,
        "a channel switch, not a restart"
    );
    wait_associated(vm, "the client follows the channel switch");
    let after = vm
        .sh("iw dev wlan0 survey dump > /tmp/survey-after.txt; cat /tmp/survey-after.txt")
        .expect("iw survey dump");
    vm.save_artifact("/tmp/survey-after.txt", "iw-survey-dump-after.txt");
    eprintln!("wifi: hwsim's channel survey after the switches:\n{after}");
    let survey_log = vm
        .sh("grep -c 'no channel survey' /data/log/agent.log; true")
        .unwrap_or_default();
    eprintln!("wifi: agent runs without a survey: {}", survey_log.trim());
    times
}

/// How many lines the agent's log has now (what comes after is a later run's).
fn agent_log_len(vm: &mut Vm) -> usize {
    vm.sh("wc -l < /data/log/agent.log")
        .expect("agent log length")
        .trim()
        .parse()
        .expect("a line count")
}

/// Installs `config` and restarts the agent (busybox init respawns it); waits until it ran
/// `wifi_ap` and `wifi_events` with status Ok.
fn restart_agent(vm: &mut Vm, config: &str) {
    let log_lines = agent_log_len(vm);
    vm.copy_in("/data/etc/agent.toml", config.as_bytes(), 0o600)
        .expect("copy the agent config in");
    vm.sh("killall netmedic-agent 2>/dev/null; true")
        .expect("restart the agent");
    wait_checks_ok(
        vm,
        "the restarted agent finds the AP ok",
        log_lines,
        &["wifi_ap", "wifi_events"],
    );
}

/// Step 8: the AP on a 5 GHz DFS channel (52, Germany): one channel availability check, then a
/// radar simulated by `mac80211_hwsim` → hostapd's DFS logic moves the AP to channel 36 → a
/// `radar_detected` incident with the radar's and the new frequency; `wifi_ap` sees the AP off
/// its provisioned channel (`channel_mismatch`) and nothing acts: the same hostapd process
/// stays on channel 36.
fn radar(stack: &Stack<'_>, vm: &mut Vm) {
    // Only the incidents of this step count below (the forced chan_switch came before).
    let earlier: Vec<String> = stack
        .incidents()
        .expect("incidents")
        .incidents
        .into_iter()
        .map(|i| i.incident_id)
        .collect();
    vm.copy_in(
        "/data/etc/agent.toml",
        agent_config(52, &Extra::default()).as_bytes(),
        0o600,
    )
    .expect("the agent config with the DFS channel provisioned");
    let log_lines = agent_log_len(vm);
    let t = Instant::now();
    vm.sh(
        "cp /etc/hostapd-dfs.conf /etc/hostapd.conf && /etc/init.d/wifi restart && \
         { killall netmedic-agent 2>/dev/null; true; }",
    )
    .expect("the AP on the DFS channel, the agent restarted");
    vm.wait(
        "the AP passes the channel availability check on channel 52",
        Duration::from_secs(300),
        |vm| match (hostapd_status(vm, "state"), hostapd_status(vm, "channel")) {
            (Some(s), Some(c)) if s == "ENABLED" && c == "52" => Ok(()),
            other => Err(format!("state, channel: {other:?}")),
        },
    )
    .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", agent_log_tail(vm)));
    let cac = t.elapsed();
    eprintln!(
        "wifi DFS: channel 52 usable after {:.1} s (channel availability check)",
        cac.as_secs_f64()
    );
    wait_checks_ok(
        vm,
        "the agent finds the AP ok on channel 52 and follows its events",
        log_lines,
        &["wifi_ap", "wifi_events"],
    );
    let pid = vm.sh("pidof hostapd").expect("hostapd's pid");

    let t = Instant::now();
    vm.sh(
        "echo 1 > /sys/kernel/debug/ieee80211/$(cat /sys/class/net/wlan0/phy80211/name)/hwsim/dfs_simulate_radar",
    )
    .expect("simulate a radar");
    let incident = wait_events_incident(stack, vm, "radar_detected", Duration::from_secs(120));
    eprintln!(
        "wifi radar: detected after {:.1} s (host clock, radar → collector)",
        t.elapsed().as_secs_f64()
    );
    vm.save_artifact("/run/hostapd.log", "hostapd-dfs.log");
    let ev = |k: &str| incident.evidence.get(k).map(String::as_str);
    assert_eq!(ev("radar_freq"), Some("5260 MHz"), "{incident:?}");
    assert_eq!(ev("moved_to"), Some("5180 MHz"), "{incident:?}");
    assert_eq!(
        (ev("radar_channel"), ev("moved_to_channel")),
        (Some("52"), Some("36")),
        "{incident:?}"
    );
    assert_eq!(incident.category, netmedic_proto::Category::WifiDegraded);
    assert_eq!(
        (hostapd_status(vm, "state"), hostapd_status(vm, "channel")),
        (Some("ENABLED".into()), Some("36".into())),
        "DFS moved the AP to channel 36"
    );
    // The agent sees the AP off its provisioned channel (two runs) and must leave it there.
    wait_nth(
        stack,
        vm,
        "channel_mismatch incident after the radar",
        "channel_mismatch",
        1,
        |i| i.evidence.get("channel").map(String::as_str) == Some("36"),
    );
    let page = stack.incidents().expect("incidents");
    let dfs: Vec<&IncidentView> = page
        .incidents
        .iter()
        .filter(|i| {
            i.agent_id == AGENT_ID
                && !earlier.contains(&i.incident_id)
                && ["radar_detected", "channel_mismatch", "ap_dfs_wait"].contains(&i.cause.as_str())
        })
        .collect();
    assert_eq!(
        dfs.len(),
        3,
        "ap_dfs_wait, radar_detected, channel_mismatch: {dfs:?}"
    );
    assert!(
        dfs.iter().all(|i| i.actions.is_empty()),
        "no action fights DFS: {dfs:?}"
    );
    assert_eq!(
        vm.sh("pidof hostapd").expect("hostapd's pid"),
        pid,
        "hostapd was not restarted"
    );
    assert_eq!(
        hostapd_status(vm, "channel").as_deref(),
        Some("36"),
        "the AP stays where DFS moved it"
    );
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
    let token = netmedic_lab::vm::device_token(&stack, AGENT_ID).expect("device add");

    step("boot", t0);
    let mut vm = Vm::boot_named(&lab.isp().ns, "vm_wifi").expect("boot the guest");

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
    vm.copy_in("/data/etc/agent.token", &token, 0o600)
        .expect("copy the token in");
    vm.copy_in(
        "/data/etc/agent.toml",
        agent_config(6, &Extra::default()).as_bytes(),
        0o600,
    )
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
    eprintln!(
        "wifi timings, host clock from the fault (median / worst):\n{}",
        timing_table(&times)
    );

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
    let mismatch = wait_events_incident(&stack, &mut vm, "psk_mismatch", Duration::from_secs(180));
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

    // ---- 7. A channel switch by the agent, forced (hwsim reports no busy operating channel).
    step("chan_switch", t0);
    let switched = chan_switch(&stack, &mut vm);
    eprintln!(
        "wifi timings, channel switch (one run):\n{}",
        timing_table(&[("chan_switch", switched)])
    );

    // ---- 8. A radar on a DFS channel: reported, nothing acts (the AP stays on 5 GHz).
    step("radar", t0);
    radar(&stack, &mut vm);

    step("done", t0);
    vm.save_artifact("/data/log/agent.log", "agent.log");
    vm.save_artifact("/run/hostapd.log", "hostapd.log");
}
