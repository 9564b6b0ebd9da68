//! End-to-end: the real agent binary (`check --json --only X`) in a CPE namespace observes the
//! real faults of the host-health checks — `icmp` (loss injected with nftables, a silent
//! gateway), `mtu` (a path-MTU blackhole, a wrong WAN MTU), `conntrack` (a table filled past
//! its limit), `resources`, `service` (the LAN dnsmasq crashes) and `clock` (a skewed `Date`).

#![allow(clippy::unwrap_used)]

use netmedic_lab::faults::{
    LanDnsmasq, SkewedHttpd, clear_mtu_blackhole, conntrack_count, fill_conntrack, mtu_blackhole,
    restore_gateway_icmp, silence_gateway_icmp,
};
use netmedic_lab::stack::agent_check;
use netmedic_lab::{COLLECTOR_IP, ISP_GATEWAY, Lab, PROBE_IP, PROBE2_IP};
use serde_json::Value;
use std::net::SocketAddr;

fn lab() -> Lab {
    Lab::builder().cpes(1).build().expect("lab")
}

fn check(lab: &Lab, name: &str, toml: &str) -> Value {
    agent_check(lab, 0, name, toml).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn status(o: &Value) -> &str {
    o["status"].as_str().unwrap_or("?")
}

fn ev<'a>(o: &'a Value, key: &str) -> &'a str {
    o["evidence"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no evidence {key:?} in {o:#}"))
}

fn ev_f64(o: &Value, key: &str) -> f64 {
    ev(o, key)
        .parse()
        .unwrap_or_else(|e| panic!("evidence {key}: {e} in {o:#}"))
}

/// Loss: 200 probes per target. At a true loss of 25% the measured loss is 25% ± 3.1% (one
/// sigma), so "≥ 10% (degraded) and < 60% (failed)" fails by chance with p < 1e-6 per target;
/// with no loss injected a veth loses nothing, so the baseline's 0% is exact.
const ICMP: &str = "[checks.icmp]\nenabled = true\ncount = 200\ninterval_ms = 10\ntimeout_ms = 1000\n\
    degraded_loss_percent = 10.0\nfailed_loss_percent = 60.0\ntargets = [\"192.0.2.1\", \"198.51.100.1\"]\n";

#[test]
fn icmp_measures_loss_and_sees_a_silent_gateway() {
    let lab = lab();
    let cpe = lab.cpe(0);
    let gw = ISP_GATEWAY.to_string();

    let o = check(&lab, "icmp", ICMP);
    assert_eq!(status(&o), "ok", "{o:#}");
    for ip in [gw.clone(), PROBE_IP.to_string(), PROBE2_IP.to_string()] {
        assert_eq!(ev_f64(&o, &format!("{ip}.loss_percent")), 0.0, "{o:#}");
        assert!(ev_f64(&o, &format!("{ip}.rtt_avg_ms")) < 50.0, "{o:#}");
    }
    assert_eq!(o["category"], "slow_or_lossy");

    // 25% of what the ISP receives from this CPE is dropped (the echo requests).
    lab.isp().inject_loss_percent(cpe, 25).unwrap();
    let o = check(&lab, "icmp", ICMP);
    lab.isp().clear_loss(cpe).unwrap();
    assert_eq!(status(&o), "degraded", "{o:#}");
    assert_eq!(o["cause"], "packet_loss", "{o:#}");
    for ip in [gw.clone(), PROBE_IP.to_string(), PROBE2_IP.to_string()] {
        let loss = ev_f64(&o, &format!("{ip}.loss_percent"));
        assert!((10.0..40.0).contains(&loss), "{ip}: {loss}% in {o:#}");
    }
    assert!(
        o["summary"].as_str().unwrap().contains("packet loss"),
        "{o:#}"
    );

    // The gateway stops answering pings; the targets beyond it still answer.
    silence_gateway_icmp(lab.isp()).unwrap();
    let o = check(&lab, "icmp", ICMP);
    restore_gateway_icmp(lab.isp()).unwrap();
    assert_eq!(status(&o), "failed", "{o:#}");
    assert_eq!(o["cause"], "gateway_unreachable", "{o:#}");
    assert_eq!(ev_f64(&o, &format!("{gw}.loss_percent")), 100.0, "{o:#}");
    assert_eq!(
        ev_f64(&o, &format!("{PROBE_IP}.loss_percent")),
        0.0,
        "{o:#}"
    );
    assert_eq!(ev(&o, "worst"), gw);

    // And it recovers.
    let o = check(&lab, "icmp", ICMP);
    assert_eq!(status(&o), "ok", "{o:#}");
}

const MTU: &str = "[checks.mtu]\nenabled = true\nexpected_mtu = 1500\ntarget = \"192.0.2.1\"\n\
    probe_timeout_ms = 300\nprobe_attempts = 2\n";

#[test]
fn mtu_finds_a_blackhole_and_a_wrong_wan_mtu() {
    let lab = lab();
    let cpe = lab.cpe(0);

    let o = check(&lab, "mtu", MTU);
    assert_eq!(status(&o), "ok", "{o:#}");
    assert_eq!(ev(&o, "largest_passing_bytes"), "1500", "{o:#}");
    assert_eq!(ev(&o, "wan_mtu"), "1500");

    // Packets above 1400 bytes vanish on the ISP side, without ICMP frag needed.
    mtu_blackhole(lab.isp(), cpe, 1400).unwrap();
    let o = check(&lab, "mtu", MTU);
    clear_mtu_blackhole(lab.isp(), cpe).unwrap();
    assert_eq!(status(&o), "failed", "{o:#}");
    assert_eq!(o["cause"], "pmtu_blackhole", "{o:#}");
    assert_eq!(ev(&o, "largest_passing_bytes"), "1400", "{o:#}");
    assert_eq!(ev(&o, "wan_mtu"), "1500");
    assert!(o["evidence"].get("icmp_frag_needed_mtu").is_none(), "{o:#}");
    assert!(o["hint"].as_str().unwrap().contains("1400"), "{o:#}");

    let o = check(&lab, "mtu", MTU);
    assert_eq!(status(&o), "ok", "blackhole cleared: {o:#}");

    // The WAN MTU is set above what the access network carries.
    cpe.set_wan_mtu(1600).unwrap();
    let o = check(&lab, "mtu", MTU);
    cpe.set_wan_mtu(1500).unwrap();
    assert_eq!(status(&o), "failed", "{o:#}");
    assert_eq!(o["cause"], "mtu_mismatch", "{o:#}");
    assert_eq!(o["category"], "local_misconfig");
    assert_eq!(ev(&o, "wan_mtu"), "1600");
    assert_eq!(ev(&o, "expected_mtu"), "1500");
    // The probe still says what does get through: the ISP's 1500 (a veth forwards up to 4
    // bytes more, room for a VLAN tag), not the CPE's 1600.
    let largest: u32 = ev(&o, "largest_passing_bytes").parse().unwrap();
    assert!((1500..=1504).contains(&largest), "{o:#}");
}

#[test]
fn conntrack_table_filled_past_its_limit_fails() {
    let lab = lab();
    let cpe = lab.cpe(0);

    // Without an override the limit is nf_conntrack_max (the host's global value, read-only
    // in a namespace), and a quiet CPE is far from it.
    let o = check(&lab, "conntrack", "[checks.conntrack]\nenabled = true\n");
    assert_eq!(status(&o), "ok", "{o:#}");
    assert_eq!(ev(&o, "max_source"), "nf_conntrack_max");

    // A LAN device opens 300 flows through the CPE's NAT; the limit is 256.
    let before = conntrack_count(cpe).unwrap();
    let now = fill_conntrack(cpe, PROBE_IP, 300).unwrap();
    assert!(now >= before + 300);
    let o = check(
        &lab,
        "conntrack",
        "[checks.conntrack]\nenabled = true\nmax_entries = 256\n",
    );
    assert_eq!(status(&o), "failed", "{o:#}");
    assert_eq!(o["cause"], "conntrack_table_full", "{o:#}");
    assert_eq!(o["category"], "device_health");
    assert!(ev_f64(&o, "count") >= 300.0, "{o:#}");
    assert_eq!(ev(&o, "max"), "256");
    assert_eq!(ev(&o, "max_source"), "checks.conntrack.max_entries");

    // The same table against a limit it does not approach.
    let o = check(
        &lab,
        "conntrack",
        "[checks.conntrack]\nenabled = true\nmax_entries = 100000\n",
    );
    assert_eq!(status(&o), "ok", "{o:#}");
}

#[test]
fn resources_judge_memory_load_and_state_dir_space() {
    let lab = lab();
    // The machine's own load is not the fault under test (CI shares 2 cores with its builds).
    let o = check(
        &lab,
        "resources",
        "[checks.resources]\nenabled = true\ndegraded_load_per_cpu = 500.0\nfailed_load_per_cpu = 1000.0\n",
    );
    assert_eq!(status(&o), "ok", "{o:#}");
    for key in ["mem_available_percent", "disk_free_percent", "load_per_cpu"] {
        ev_f64(&o, key);
    }
    // Nobody has 100% of memory available.
    let o = check(
        &lab,
        "resources",
        "[checks.resources]\nenabled = true\ndegraded_mem_available_percent = 100.0\n\
         degraded_load_per_cpu = 500.0\nfailed_load_per_cpu = 1000.0\n",
    );
    assert_eq!(status(&o), "degraded", "{o:#}");
    assert_eq!(o["cause"], "low_memory", "{o:#}");
    assert_eq!(o["category"], "device_health");
}

#[test]
fn service_sees_the_lan_dnsmasq_crash() {
    let lab = lab();
    let cpe = lab.cpe(0);
    let mut dnsmasq = LanDnsmasq::start(&lab, cpe).unwrap();
    let pid = dnsmasq.pid().unwrap();
    let toml = format!(
        "[checks.service]\nenabled = true\n\
         [[checks.service.services]]\nname = \"lan-dnsmasq\"\npidfile = \"{}\"\nprocess = \"dnsmasq\"\nsame_netns = true\n\
         [[checks.service.services]]\nname = \"any-dnsmasq-here\"\nprocess = \"dnsmasq\"\nsame_netns = true\n",
        dnsmasq.pidfile().display()
    );
    let o = check(&lab, "service", &toml);
    assert_eq!(status(&o), "ok", "{o:#}");
    assert_eq!(ev(&o, "service.lan-dnsmasq"), format!("running, pid {pid}"));
    assert!(
        ev(&o, "service.any-dnsmasq-here").starts_with("running"),
        "{o:#}"
    );

    dnsmasq.crash().unwrap();
    let o = check(&lab, "service", &toml);
    assert_eq!(status(&o), "failed", "{o:#}");
    assert_eq!(o["cause"], "service_down", "{o:#}");
    assert_eq!(o["severity"], "major");
    assert!(
        ev(&o, "service.lan-dnsmasq").contains(&format!("names pid {pid}, which is not running")),
        "{o:#}"
    );
    // The ISP's dnsmasq (another namespace) does not count.
    assert!(
        ev(&o, "service.any-dnsmasq-here").contains("in others"),
        "{o:#}"
    );
}

#[test]
fn clock_skew_against_a_skewed_date_header() {
    let lab = lab();
    let ns = &lab.isp().ns;
    let good = SkewedHttpd::start(ns, SocketAddr::from((COLLECTOR_IP, 8081)), 0).unwrap();
    let behind = SkewedHttpd::start(ns, SocketAddr::from((COLLECTOR_IP, 8082)), -3600).unwrap();
    let cfg = |url: &str| {
        format!(
            "[checks.clock]\nenabled = true\nmax_skew_secs = 30\ntimeout_ms = 2000\nurl = \"{url}\"\n"
        )
    };

    let o = check(&lab, "clock", &cfg(&good.url()));
    assert_eq!(status(&o), "ok", "{o:#}");
    assert!(ev_f64(&o, "skew_secs").abs() < 2.0, "{o:#}");
    assert_eq!(ev(&o, "source"), good.url());

    // The reference is an hour behind: we are an hour ahead of it.
    let o = check(&lab, "clock", &cfg(&behind.url()));
    assert_eq!(status(&o), "failed", "{o:#}");
    assert_eq!(o["cause"], "clock_skew", "{o:#}");
    let skew = ev_f64(&o, "skew_secs");
    assert!((3598.0..3602.0).contains(&skew), "{o:#}");

    // Nobody answers: unknown, not a false failure.
    let o = check(
        &lab,
        "clock",
        &cfg(&format!("http://{COLLECTOR_IP}:8083/healthz")),
    );
    assert_eq!(status(&o), "unknown", "{o:#}");
    assert_eq!(o["cause"], "no_time_reference", "{o:#}");
}
