//! The NOC console in headless Chromium shows the home-network incidents (issue 16): an enrolled
//! device reports, through the collector's report API, the Wi-Fi and LAN incidents the agent's
//! `wifi_ap`, `lan_dhcp` and `lan_arp` checks open (their evidence keys and values as those
//! checks and their lab tests produce them: an access point turned open, a client stuck on a weak
//! signal, a rogue DHCP server, two clients on one address). The device is mapped to a customer
//! who called about the Wi-Fi and about the home network. An operator then sees, on the device
//! page, each incident with its category and most telling finding, and on each incident page the
//! findings (security drift shown as a security risk with critical severity, signal in dBm,
//! station and offender MACs) and the contact whose reason matches the incident's category.

#![allow(clippy::unwrap_used)]

use netmedic_lab::Lab;
use netmedic_lab::browser::Browser;
use netmedic_lab::console::{self, collector_cli, login};
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_proto::Timestamp;
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const DEVICE: &str = "home-cpe-1";
const CUSTOMER: &str = "cust-home-1";
const OP_PASSWORD: &str = "operator password 1";
/// The lab's rogue router (`netmedic_lab::lan`), as `lan_dhcp` names it.
const ROGUE_MAC: &str = "02:52:4f:47:55:01";
/// The lab's two clients sharing one address, as `lan_arp` names them.
const CLASH_MACS: &str = "02:43:4c:4e:54:01,02:43:4c:4e:54:02";
/// A station of the lab's access point (the hostapd fixtures' STA).
const STATION_MAC: &str = "02:00:00:00:01:00";

/// POSTs `body` to the collector; it must be taken.
fn post(stack: &Stack, path: &str, token: &str, ctype: &str, body: &str) {
    let resp = console::post(stack, path, token, ctype, body).unwrap();
    assert_eq!(resp.status, 200, "POST {path}: {}", resp.body);
}

/// One incident-opened event as the agent's reporter sends it.
fn opened(n: u32, at: Timestamp, obs: Value) -> Value {
    let mut e = json!({
        "event_id": format!("home-event-{n}"),
        "incident_id": format!("home-inc-{n}"),
        "seq": 1,
        "kind": "opened",
        "started_at": at.to_string(),
        "at": at.to_string(),
        "actions": []
    });
    for (k, v) in obs.as_object().unwrap() {
        e[k] = v.clone();
    }
    e
}

fn ms(t: Timestamp, d: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.unix_millis() + d).unwrap()
}

/// The incidents: the observations of `wifi_ap` (agent/src/checks/wifi_ap.rs: `security_open`
/// with its `with_evidence` keys, `sticky_client`), `lan_dhcp` (`rogue_dhcp_server`, as
/// tests/tests/lan.rs sees it) and `lan_arp` (`lan_client_ip_conflict`).
fn home_incidents(start: Timestamp) -> Vec<Value> {
    let ap = |extra: Value| {
        let mut ev = json!({
            "state": "ENABLED", "ssid": "netmedic-lab", "channel": "6", "freq_mhz": "2437",
            "clients": "1", "stations": "1",
            "client_list": format!("{STATION_MAC} -30 dBm tx 1000 kbit/s"),
        });
        for (k, v) in extra.as_object().unwrap() {
            ev[k] = v.clone();
        }
        ev
    };
    vec![
        opened(
            1,
            start,
            json!({
                "check": "wifi_ap", "cause": "security_open", "category": "wifi_degraded",
                "severity": "critical",
                "summary": "The Wi-Fi is open: anyone nearby can join the subscriber's network",
                "evidence": ap(json!({
                    "security": "open", "weakest_signal_dbm": "-30",
                    "provisioned_security": "wpa2-psk", "security_risk": "open_network"
                })),
            }),
        ),
        opened(
            2,
            ms(start, 60_000),
            json!({
                "check": "wifi_ap", "cause": "sticky_client", "category": "wifi_degraded",
                "severity": "minor",
                "summary": "A Wi-Fi client holds on to a weak signal",
                "evidence": ap(json!({
                    "security": "wpa2-psk", "weakest_signal_dbm": "-82",
                    "sticky_clients": STATION_MAC,
                    "client_list": format!("{STATION_MAC} -82 dBm tx 6500 kbit/s"),
                })),
            }),
        ),
        opened(
            3,
            ms(start, 120_000),
            json!({
                "check": "lan_dhcp", "cause": "rogue_dhcp_server", "category": "lan_degraded",
                "severity": "major",
                "summary": format!("rogue DHCP server 198.51.100.1 ({ROGUE_MAC}) on the LAN offers 198.51.100.50: its clients get the wrong gateway and DNS"),
                "evidence": {
                    "lan_bridge": "br-lan", "server_id": "198.51.100.1",
                    "offender_mac": ROGUE_MAC, "offered_address": "198.51.100.50",
                    "offered_subnet_mask": "255.255.255.0", "offered_router": "198.51.100.1",
                    "offered_dns": "-", "foreign_servers": "1", "own_offers": "0"
                },
            }),
        ),
        opened(
            4,
            ms(start, 180_000),
            json!({
                "check": "lan_arp", "cause": "lan_client_ip_conflict", "category": "lan_degraded",
                "severity": "minor",
                "summary": "2 devices on the LAN use the address 100.100.0.77: they lose their connections by turns",
                "evidence": {
                    "lan_bridge": "br-lan", "ip": "100.100.0.77", "conflict": "client_address",
                    "offender_mac": "02:43:4c:4e:54:01", "offender_macs": CLASH_MACS,
                    "router_mac": "02:6e:6d:01:00:00", "clients_probed": "2"
                },
            }),
        ),
    ]
}

fn text(b: &Browser, css: &str) -> String {
    b.find(css)
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .unwrap()
}

/// Opens incident `n` of the device and returns the text of its findings table.
fn open_incident(b: &Browser, base: &str, n: u32) -> String {
    b.goto(&format!("{base}/incidents/{DEVICE}/home-inc-{n}"))
        .unwrap();
    b.wait_for("#findings", WAIT).unwrap();
    text(b, "#findings")
}

/// The contact rows of the open incident page: `(row text, reason matches)`.
fn contacts(b: &Browser) -> Vec<(String, bool)> {
    b.find_all("#linked-contacts tr.contact")
        .unwrap()
        .iter()
        .map(|r| {
            let t = r.text().unwrap();
            let m = t.contains("reason matches");
            (t, m)
        })
        .collect()
}

#[test]
fn wifi_and_lan_incidents_in_the_console() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let stack = Stack::start(&lab, StackOptions::default()).expect("stack");
    let base = format!("http://{}", stack.collector_addr);

    let token = collector_cli(&stack, &["device", "add", DEVICE], "").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = Timestamp::from_unix_millis(now - 600_000).unwrap();
    let batch = json!({
        "schema_version": netmedic_proto::SCHEMA_VERSION,
        "agent_id": DEVICE,
        "events": home_incidents(start),
    });
    post(
        &stack,
        "/api/v1/reports",
        &token,
        "application/json",
        &batch.to_string(),
    );
    let api = &stack.api_token;
    post(
        &stack,
        "/api/v1/import/subscribers?format=csv",
        api,
        "text/csv",
        &format!(
            "agent_id,customer_id,region,access_node,plan,cpe_model,firmware\n\
             {DEVICE},{CUSTOMER},lab-north,olt-lab-1,fiber-100,LabCPE-1,1.0.0\n"
        ),
    );
    post(
        &stack,
        "/api/v1/import/contacts?format=csv",
        api,
        "text/csv",
        &format!(
            "contact_id,customer_id,created_at,channel,reason,resolved_at\n\
             wifi-call-1,{CUSTOMER},{},phone,wifi keeps dropping,\n\
             lan-call-1,{CUSTOMER},{},chat,local network down,\n",
            ms(start, 240_000),
            ms(start, 300_000)
        ),
    );
    collector_cli(
        &stack,
        &[
            "user",
            "add",
            "noc-op",
            "--role",
            "operator",
            "--password-stdin",
        ],
        &format!("{OP_PASSWORD}\n"),
    )
    .unwrap();

    let b = Browser::start(&lab.isp().ns, None).expect("browser");
    login(&b, &base, "noc-op", OP_PASSWORD, WAIT).unwrap();

    // The device page: every home incident with its category and its telling finding.
    b.goto(&format!("{base}/devices/{DEVICE}")).unwrap();
    b.wait_for("#device-incidents", WAIT).unwrap();
    assert_eq!(text(&b, "#customer-link"), CUSTOMER);
    let rows: Vec<String> = b
        .find_all("#device-incidents tr.device-incident")
        .unwrap()
        .iter()
        .map(|r| r.text().unwrap())
        .collect();
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let row = |check: &str, cause_text: &str| {
        rows.iter()
            .find(|r| r.contains(check) && r.contains(cause_text))
            .unwrap_or_else(|| panic!("no {check} row with {cause_text:?}: {rows:#?}"))
            .clone()
    };
    let open = row("wifi_ap", "The Wi-Fi is open");
    assert!(
        open.contains("wifi_degraded") && open.contains("critical"),
        "{open}"
    );
    assert!(
        open.contains("Security risk: the Wi-Fi is open (provisioned wpa2-psk)"),
        "{open}"
    );
    let sticky = row("wifi_ap", "weak signal");
    assert!(
        sticky.contains("Weakest client signal: -82 dBm (weak)"),
        "{sticky}"
    );
    let rogue = row("lan_dhcp", "rogue DHCP server");
    assert!(rogue.contains("lan_degraded"), "{rogue}");
    assert!(
        rogue.contains(&format!("Rogue DHCP server MAC: {ROGUE_MAC}")),
        "{rogue}"
    );
    let clash = row("lan_arp", "100.100.0.77");
    assert!(
        clash.contains("Client address claimed by two devices: 100.100.0.77"),
        "{clash}"
    );
    b.screenshot("home-01-device").unwrap();

    // The open access point: a security risk, critical, the drift and the station's signal.
    let f = open_incident(&b, &base, 1);
    assert!(
        text(&b, "#security-risk").contains("the Wi-Fi is open (provisioned wpa2-psk)"),
        "{}",
        b.page_source().unwrap()
    );
    assert_eq!(text(&b, "#incident-severity"), "critical");
    assert_eq!(
        text(&b, "#finding-security td"),
        "open (provisioned wpa2-psk)"
    );
    assert_eq!(
        b.find("#finding-security .badge")
            .unwrap()
            .attr("class")
            .unwrap()
            .as_deref(),
        Some("badge bad")
    );
    assert!(f.contains("SSID") && f.contains("netmedic-lab"), "{f}");
    assert!(f.contains("6 (2437 MHz)"), "{f}");
    assert_eq!(text(&b, "#finding-signal td"), "-30 dBm (good)");
    assert!(
        text(&b, "#finding-stations td").contains(STATION_MAC),
        "{f}"
    );
    let c = contacts(&b);
    assert_eq!(c.len(), 2, "both calls follow within the window: {c:?}");
    assert!(
        c.iter().any(|(t, m)| t.contains("wifi-call-1") && *m),
        "the Wi-Fi call is linked by its reason: {c:?}"
    );
    assert!(
        c.iter().any(|(t, m)| t.contains("lan-call-1") && !*m),
        "the LAN call is only in the window: {c:?}"
    );
    b.screenshot("home-02-open-ap").unwrap();

    // The sticky client: its weak signal and MAC.
    let f = open_incident(&b, &base, 2);
    assert_eq!(text(&b, "#finding-signal td"), "-82 dBm (weak)");
    assert_eq!(text(&b, "#finding-sticky td"), STATION_MAC);
    assert!(b.find_all("#security-risk").unwrap().is_empty(), "{f}");
    b.screenshot("home-03-sticky-client").unwrap();

    // The rogue DHCP server: the offender's MAC and what it offers; the LAN call linked.
    let f = open_incident(&b, &base, 3);
    assert_eq!(text(&b, "#finding-offender td"), ROGUE_MAC);
    assert!(
        f.contains("address 198.51.100.50, gateway 198.51.100.1"),
        "{f}"
    );
    let c = contacts(&b);
    assert!(
        c.iter().any(|(t, m)| t.contains("lan-call-1") && *m),
        "the LAN call is linked by its reason: {c:?}"
    );
    assert!(
        c.iter().any(|(t, m)| t.contains("wifi-call-1") && !*m),
        "{c:?}"
    );
    b.screenshot("home-04-rogue-dhcp").unwrap();

    // Two clients on one address: both MACs.
    open_incident(&b, &base, 4);
    assert_eq!(text(&b, "#finding-macs td"), CLASH_MACS.replace(',', ", "));
    assert_eq!(text(&b, "#finding-address td"), "100.100.0.77");
    b.screenshot("home-05-client-clash").unwrap();

    // The customer link leads to the customer's timeline with the calls.
    b.find("#customer-link").unwrap().click().unwrap();
    let tl = b
        .wait_for("#customer-timeline", WAIT)
        .unwrap()
        .text()
        .unwrap();
    assert!(tl.contains("wifi-call-1") || tl.contains("contact"), "{tl}");
}
