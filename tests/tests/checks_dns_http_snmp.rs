//! End-to-end: the real agent binary (`netmedic-agent check --json --only X`) inside a CPE
//! namespace judges the `dns`, `http` and `modem_snmp` checks against real servers in the lab —
//! a healthy baseline, then each real fault: a dead resolver, a resolver answering NXDOMAIN for
//! everything, a resolv.conf that is not the provisioned one; a probe answering 204, a captive
//! portal (302 and a 200 login page), a dead probe server; a modem (net-snmp `snmpd`) whose SNR
//! margin drops below the threshold, over SNMP v2c and over v3 authPriv.

#![allow(clippy::unwrap_used)]

use netmedic_lab::dns::{DEAD_RESOLVER_IP, NXDOMAIN_RESOLVER_IP, NxdomainResolver};
use netmedic_lab::httpd::{CannedResponse, HttpServer};
use netmedic_lab::snmpd::{
    MODEM_COMMUNITY, MODEM_IP, MODEM_V3_AUTH_PASSWORD, MODEM_V3_PRIV_PASSWORD, MODEM_V3_USER,
    Modem, ModemLine,
};
use netmedic_lab::stack::agent_check;
use netmedic_lab::{ISP_GATEWAY, Lab, PROBE_IP, PROBE_NAME, PROBE2_NAME};
use serde_json::Value;
use std::net::IpAddr;

fn status_cause(o: &Value) -> (&str, &str) {
    (
        o["status"].as_str().unwrap_or("?"),
        o["cause"].as_str().unwrap_or("?"),
    )
}

fn dns_toml(provisioned: &[std::net::Ipv4Addr]) -> String {
    let prov: Vec<String> = provisioned.iter().map(|p| format!("\"{p}\"")).collect();
    format!(
        "[checks.dns]\nenabled = true\ntest_names = [\"{PROBE_NAME}\", \"{PROBE2_NAME}\"]\n\
         provisioned_resolvers = [{}]\ntimeout_ms = 700\nretries = 1\n",
        prov.join(", ")
    )
}

#[test]
fn dns_detects_dead_nxdomain_and_unprovisioned_resolvers() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let cpe = lab.cpe(0);
    let diag = |o: &Value| format!("{o:#}\nresolv.conf: {:?}", cpe.resolv_conf());

    // Baseline: resolv.conf (from DHCP) names the ISP's resolver, which is the provisioned one.
    let o = agent_check(&lab, 0, "dns", &dns_toml(&[ISP_GATEWAY])).unwrap();
    assert_eq!(status_cause(&o), ("ok", "ok"), "{}", diag(&o));
    let key = format!("resolver {ISP_GATEWAY}");
    assert!(
        o["evidence"][&key]
            .as_str()
            .unwrap()
            .contains(&PROBE_IP.to_string()),
        "{}",
        diag(&o)
    );
    assert!(o["evidence"][format!("{key} latency_ms")].is_string());
    assert_eq!(o["evidence"]["resolv_conf_matches_provisioned"], "true");

    // Fault 1: resolv.conf points at a dead resolver (nothing listens; no provisioned list).
    cpe.point_resolv_conf_at(DEAD_RESOLVER_IP).unwrap();
    let o = agent_check(&lab, 0, "dns", &dns_toml(&[])).unwrap();
    assert_eq!(
        status_cause(&o),
        ("failed", "resolver_timeout"),
        "{}",
        diag(&o)
    );
    assert_eq!(o["category"], "dns_failure");
    assert!(
        o["evidence"][format!("resolver {DEAD_RESOLVER_IP}")]
            .as_str()
            .unwrap()
            .contains("timeout"),
        "{}",
        diag(&o)
    );

    // Fault 2: a resolver answering NXDOMAIN for names that must exist.
    let _nx = NxdomainResolver::start(&lab).unwrap();
    cpe.point_resolv_conf_at(NXDOMAIN_RESOLVER_IP).unwrap();
    let o = agent_check(&lab, 0, "dns", &dns_toml(&[])).unwrap();
    assert_eq!(
        status_cause(&o),
        ("failed", "resolver_nxdomain"),
        "{}",
        diag(&o)
    );
    assert!(
        o["summary"].as_str().unwrap().contains("NXDOMAIN"),
        "{}",
        diag(&o)
    );

    // One good and one hijacking resolver: degraded, the bad one named.
    cpe.write_resolv_conf(&format!(
        "nameserver {ISP_GATEWAY}\nnameserver {NXDOMAIN_RESOLVER_IP}\n"
    ))
    .unwrap();
    let o = agent_check(&lab, 0, "dns", &dns_toml(&[])).unwrap();
    assert_eq!(
        status_cause(&o),
        ("degraded", "resolver_nxdomain"),
        "{}",
        diag(&o)
    );
    assert!(
        o["summary"]
            .as_str()
            .unwrap()
            .contains(&NXDOMAIN_RESOLVER_IP.to_string())
    );

    // Fault 3: resolv.conf is not the provisioned resolver (which still works): misconfiguration.
    cpe.point_resolv_conf_at(NXDOMAIN_RESOLVER_IP).unwrap();
    let o = agent_check(&lab, 0, "dns", &dns_toml(&[ISP_GATEWAY])).unwrap();
    assert_eq!(
        status_cause(&o),
        ("failed", "resolv_conf_not_provisioned"),
        "{}",
        diag(&o)
    );
    assert_eq!(o["category"], "local_misconfig");
    assert_eq!(o["evidence"]["resolv_conf_matches_provisioned"], "false");
    cpe.point_resolv_conf_at(DEAD_RESOLVER_IP).unwrap();
    let o = agent_check(&lab, 0, "dns", &dns_toml(&[ISP_GATEWAY])).unwrap();
    assert_eq!(
        status_cause(&o),
        ("failed", "resolv_conf_not_provisioned"),
        "{}",
        diag(&o)
    );
}

fn http_toml(url: &str) -> String {
    format!(
        "[checks.http]\nenabled = true\nurl = \"{url}\"\nexpected_status = 204\ntimeout_ms = 3000\nttfb_degraded_ms = 2000\n"
    )
}

#[test]
fn http_detects_captive_portals_and_dead_probes() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let mut server = HttpServer::start(
        &lab.isp().ns,
        IpAddr::V4(PROBE_IP),
        CannedResponse::no_content(),
    )
    .unwrap();
    let url = server.url("/generate_204");

    let o = agent_check(&lab, 0, "http", &http_toml(&url)).unwrap();
    assert_eq!(status_cause(&o), ("ok", "ok"), "{o:#}");
    assert_eq!(o["evidence"]["status"], "204");
    assert!(
        o["evidence"]["ttfb_ms"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 0.0
    );
    assert_eq!(server.requests(), 1);

    // A portal redirecting to its login page: reported with its Location, not followed.
    let login = "http://portal.isp.example/login?orig=probe";
    server.set_response(CannedResponse::redirect(login));
    let o = agent_check(&lab, 0, "http", &http_toml(&url)).unwrap();
    assert_eq!(status_cause(&o), ("failed", "captive_portal"), "{o:#}");
    assert_eq!(o["evidence"]["location"], login);
    assert_eq!(o["evidence"]["status"], "302");
    assert_eq!(server.requests(), 2, "the redirect must not be followed");

    // A portal answering the probe itself with a 200 login page.
    server.set_response(CannedResponse::page(
        200,
        "<html><title>Welcome</title><form>Log in to continue</form></html>",
    ));
    let o = agent_check(&lab, 0, "http", &http_toml(&url)).unwrap();
    assert_eq!(status_cause(&o), ("failed", "captive_portal"), "{o:#}");
    assert!(
        o["evidence"]["body_start"]
            .as_str()
            .unwrap()
            .contains("Log in"),
        "{o:#}"
    );

    // Back to normal, then the probe server dies: connection refused.
    server.set_response(CannedResponse::no_content());
    assert_eq!(
        status_cause(&agent_check(&lab, 0, "http", &http_toml(&url)).unwrap()),
        ("ok", "ok")
    );
    server.stop().unwrap();
    let o = agent_check(&lab, 0, "http", &http_toml(&url)).unwrap();
    assert_eq!(status_cause(&o), ("failed", "http_unreachable"), "{o:#}");
    assert_eq!(o["category"], "no_internet");
}

fn snmp_toml(version: &str) -> String {
    let creds = if version == "v2c" {
        format!("community = \"{MODEM_COMMUNITY}\"\n")
    } else {
        format!(
            "user = \"{MODEM_V3_USER}\"\nsecurity_level = \"auth_priv\"\nauth_protocol = \"sha\"\n\
             auth_password = \"{MODEM_V3_AUTH_PASSWORD}\"\npriv_protocol = \"aes\"\n\
             priv_password = \"{MODEM_V3_PRIV_PASSWORD}\"\n"
        )
    };
    format!(
        "[checks.modem_snmp]\nenabled = true\ntarget = \"{MODEM_IP}:161\"\nversion = \"{version}\"\n{creds}\
         line_type = \"adsl\"\nmin_snr_margin_db = 6.0\ncritical_snr_margin_db = 3.0\ntimeout_ms = 1000\nretries = 1\n"
    )
}

fn modem_snr_drop(version: &str) {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let modem = Modem::start(&lab, 0, &ModemLine::default()).unwrap();
    let check = || agent_check(&lab, 0, "modem_snmp", &snmp_toml(version)).unwrap();

    let o = check();
    assert_eq!(
        status_cause(&o),
        ("ok", "ok"),
        "{o:#}\nsnmpd: {}",
        modem.log_tail(20)
    );
    assert_eq!(o["evidence"]["if1000_snr_margin_db"], "12.0");
    assert_eq!(o["evidence"]["if1000_attenuation_db"], "25.5");
    assert_eq!(o["evidence"]["downstream_sync_kbps"], "16000");
    assert_eq!(o["evidence"]["if1000_oper_status"], "up");
    assert_eq!(o["evidence"]["snmp_version"], version);

    // The SNR margin sags to 4.5 dB: degraded.
    modem
        .set_line(&ModemLine {
            snr_margin_tenth_db: 45,
            ..ModemLine::default()
        })
        .unwrap();
    let o = check();
    assert_eq!(status_cause(&o), ("degraded", "snr_margin_low"), "{o:#}");
    assert_eq!(o["category"], "line_degraded");
    assert_eq!(o["evidence"]["if1000_snr_margin_db"], "4.5");

    // ... and drops to 1.0 dB: failed.
    modem
        .set_line(&ModemLine {
            snr_margin_tenth_db: 10,
            ..ModemLine::default()
        })
        .unwrap();
    let o = check();
    assert_eq!(status_cause(&o), ("failed", "snr_margin_low"), "{o:#}");

    // The line loses sync.
    modem
        .set_line(&ModemLine {
            oper_up: false,
            ..ModemLine::default()
        })
        .unwrap();
    assert_eq!(status_cause(&check()), ("failed", "line_down"));
}

#[test]
fn modem_snmp_v2c_sees_the_snr_margin_drop() {
    modem_snr_drop("v2c");
}

#[test]
fn modem_snmp_v3_auth_priv_sees_the_snr_margin_drop() {
    modem_snr_drop("v3");
}

#[test]
fn modem_snmp_names_a_dead_modem_and_wrong_credentials() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let mut modem = Modem::start(&lab, 0, &ModemLine::default()).unwrap();
    let wrong = snmp_toml("v3").replace(MODEM_V3_AUTH_PASSWORD, "not-the-password");
    let o = agent_check(&lab, 0, "modem_snmp", &wrong).unwrap();
    assert_eq!(status_cause(&o), ("unknown", "snmp_auth_failed"), "{o:#}");
    assert_eq!(o["category"], "local_misconfig");
    let text = o.to_string();
    assert!(!text.contains("not-the-password"), "a secret leaked: {o:#}");
    assert!(
        !text.contains(MODEM_V3_PRIV_PASSWORD),
        "a secret leaked: {o:#}"
    );

    // Secrets read from files (as on a CPE: mode 0600, never inline in agent.toml).
    let auth = lab.dir().join("modem-auth.secret");
    let privf = lab.dir().join("modem-priv.secret");
    std::fs::write(&auth, format!("{MODEM_V3_AUTH_PASSWORD}\n")).unwrap();
    std::fs::write(&privf, format!("{MODEM_V3_PRIV_PASSWORD}\n")).unwrap();
    let from_files = snmp_toml("v3")
        .replace(
            &format!("auth_password = \"{MODEM_V3_AUTH_PASSWORD}\""),
            &format!("auth_password_file = \"{}\"", auth.display()),
        )
        .replace(
            &format!("priv_password = \"{MODEM_V3_PRIV_PASSWORD}\""),
            &format!("priv_password_file = \"{}\"", privf.display()),
        );
    assert!(!from_files.contains(MODEM_V3_AUTH_PASSWORD));
    let o = agent_check(&lab, 0, "modem_snmp", &from_files).unwrap();
    assert_eq!(status_cause(&o), ("ok", "ok"), "{o:#}");

    modem.stop().unwrap();
    let o = agent_check(&lab, 0, "modem_snmp", &snmp_toml("v2c")).unwrap();
    assert_eq!(status_cause(&o), ("failed", "modem_unreachable"), "{o:#}");
    assert!(!o.to_string().contains(MODEM_COMMUNITY));
}
