//! The NOC console in headless Chromium against a collector filled by the lab: a real agent heals
//! a deleted default route, a hostile "device" reports script and HTML, subscribers and contacts
//! are imported; then a NOC operator logs in, filters incidents, opens one and sees its action
//! trail and linked contact, acknowledges it, sets and clears a kill switch; a viewer is refused
//! actions; hostile strings show as text and never run. Screenshots of every page are saved to
//! the artifacts directory (target/artifacts/screenshots by default).

#![allow(clippy::unwrap_used)]

use netmedic_lab::Lab;
use netmedic_lab::browser::Browser;
use netmedic_lab::console;
use netmedic_lab::stack::{Stack, StackOptions};
use netmedic_proto::{CheckId, IncidentStatus};
use serde_json::{Value, json};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);
const OP_PASSWORD: &str = "operator password 1";
const VIEWER_PASSWORD: &str = "viewer password 12";
const HOSTILE_SUMMARY: &str = "<script>window.__xss=1;alert('xss')</script>\tx\u{202e}y";
const HOSTILE_EVIDENCE: &str = "\"><img src=x onerror=\"window.__xss=2;alert('img')\">";
const HOSTILE_DETAIL: &str = "</td><svg onload=\"window.__xss=3\"><b>bold</b>";

fn collector_cli(stack: &Stack, args: &[&str], stdin: &str) -> String {
    console::collector_cli(stack, args, stdin).unwrap()
}

fn import(stack: &Stack, kind: &str, csv: &str) {
    let path = format!("/api/v1/import/{kind}?format=csv");
    let resp = console::post(stack, &path, &stack.api_token, "text/csv", csv).unwrap();
    assert_eq!(resp.status, 200, "import {kind}: {}", resp.body);
}

/// A device that reports hostile strings (enrolled like any other).
fn hostile_report(stack: &Stack) {
    let token = collector_cli(stack, &["device", "add", "evil-1"], "");
    let now = netmedic_proto::Timestamp::from_unix_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    )
    .unwrap();
    let batch = json!({
        "schema_version": netmedic_proto::SCHEMA_VERSION,
        "agent_id": "evil-1",
        "events": [{
            "event_id": "evil-event-1",
            "incident_id": "evil-inc-1",
            "seq": 1,
            "kind": "opened",
            "check": "dns",
            "cause": "dns_timeout",
            "category": "dns_failure",
            "severity": "major",
            "started_at": now.to_string(),
            "at": now.to_string(),
            "summary": HOSTILE_SUMMARY,
            "evidence": { "resolver": HOSTILE_EVIDENCE },
            "actions": [{ "action": "reset_dns", "outcome": "failed", "at": now.to_string(),
                          "detail": HOSTILE_DETAIL }]
        }]
    })
    .to_string();
    let resp = console::post(stack, "/api/v1/reports", &token, "application/json", &batch).unwrap();
    assert_eq!(resp.status, 200, "hostile report: {}", resp.body);
}

fn login(b: &Browser, base: &str, user: &str, password: &str) {
    console::login(b, base, user, password, WAIT).unwrap();
}

/// No XSS payload ran: no dialog open and the marker variable unset.
fn assert_no_script_ran(b: &Browser, page: &str) {
    assert_eq!(b.alert_text().unwrap(), None, "an alert opened on {page}");
    let marker = b
        .execute(
            "return typeof window.__xss === 'undefined' ? null : window.__xss;",
            &[],
        )
        .unwrap();
    assert_eq!(marker, Value::Null, "a payload ran on {page}");
}

#[test]
fn noc_console_in_chromium() {
    let lab = Lab::builder().cpes(1).build().expect("lab");
    let stack = Stack::start(&lab, StackOptions::default()).expect("stack");
    let base = format!("http://{}", stack.collector_addr);

    // A real fault healed by the real agent: an incident with its action trail.
    lab.cpe(0).delete_default_route().unwrap();
    let inc = stack
        .wait_incident(
            "healed default_route incident",
            Duration::from_secs(60),
            |i| i.check == CheckId::DefaultRoute && i.status == IncidentStatus::Resolved,
        )
        .unwrap_or_else(|e| panic!("{e}\nagent log:\n{}", stack.agent_log(0)));

    // The customer behind the CPE, and a call two minutes after the outage began.
    import(
        &stack,
        "subscribers",
        "agent_id,customer_id,region,access_node,plan,cpe_model,firmware\n\
         lab-cpe-0,cust-lab-1,lab-north,olt-lab-1,fiber-100,LabCPE-1,1.0.0\n\
         evil-1,cust-evil,lab-north,olt-lab-1,fiber-100,LabCPE-1,1.0.0\n",
    );
    let call_at =
        netmedic_proto::Timestamp::from_unix_millis(inc.started_at.unix_millis() + 120_000)
            .unwrap();
    import(
        &stack,
        "contacts",
        &format!(
            "contact_id,customer_id,created_at,channel,reason,resolved_at\n\
             call-777,cust-lab-1,{call_at},phone,no internet,\n"
        ),
    );
    hostile_report(&stack);
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
    );
    collector_cli(
        &stack,
        &[
            "user",
            "add",
            "noc-viewer",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        &format!("{VIEWER_PASSWORD}\n"),
    );

    // The browser runs in the ISP namespace, next to the collector.
    let b = Browser::start(&lab.isp().ns, None).expect("browser");
    eprintln!("screenshots: {}", b.artifacts_dir().display());

    // Log in as the operator: the overview.
    login(&b, &base, "noc-op", OP_PASSWORD);
    b.wait_for("#device-tiles", WAIT).unwrap();
    assert!(b.find("#chart-hourly").is_ok(), "the hourly chart is drawn");
    b.screenshot("01-overview").unwrap();

    // Filter the incident list (the select submits the form by itself).
    b.goto(&format!("{base}/incidents")).unwrap();
    b.wait_for("#incident-list", WAIT).unwrap();
    assert!(b.find_all(".incident-row").unwrap().len() >= 2);
    b.find("#f-category option[value=no_internet]")
        .unwrap()
        .click()
        .unwrap();
    b.wait_until("the list filtered by category", WAIT, |b| {
        b.current_url()
            .ok()
            .filter(|u| u.contains("category=no_internet"))
    })
    .unwrap();
    let rows = b.find_all(".incident-row").unwrap();
    assert!(!rows.is_empty());
    for r in &rows {
        let text = r.text().unwrap();
        assert!(text.contains("no_internet"), "{text}");
        assert!(!text.contains("evil-1"), "{text}");
    }
    b.screenshot("02-incidents-filtered").unwrap();

    // Open the healed incident: the action trail and the linked call.
    b.find(".incident-link").unwrap().click().unwrap();
    b.wait_for("#timeline", WAIT).unwrap();
    let timeline = b.find("#timeline").unwrap().text().unwrap();
    for want in [
        "restore_route",
        "planned",
        "done",
        "verified",
        "incident opened",
        "incident resolved",
    ] {
        assert!(timeline.contains(want), "timeline lacks {want}: {timeline}");
    }
    assert_eq!(
        b.find("#incident-status").unwrap().text().unwrap(),
        "auto-healed"
    );
    let contacts = b.find("#linked-contacts").unwrap().text().unwrap();
    assert!(
        contacts.contains("call-777") && contacts.contains("reason matches"),
        "{contacts}"
    );
    assert_eq!(
        b.find("#customer-link").unwrap().text().unwrap(),
        "cust-lab-1"
    );
    b.screenshot("03-incident").unwrap();

    // Acknowledge it and leave a note.
    b.find("#ack").unwrap().click().unwrap();
    let acked = b.wait_for("#acked", WAIT).unwrap().text().unwrap();
    assert!(acked.contains("noc-op"), "{acked}");
    b.find("#note-body")
        .unwrap()
        .send_keys("customer called, line fine now")
        .unwrap();
    b.find("#add-note").unwrap().click().unwrap();
    b.wait_for_text("#notes", "customer called", WAIT).unwrap();
    b.screenshot("04-incident-acknowledged").unwrap();

    // The customer's timeline.
    b.find("#customer-link").unwrap().click().unwrap();
    let tl = b
        .wait_for("#customer-timeline", WAIT)
        .unwrap()
        .text()
        .unwrap();
    assert!(tl.contains("incident") && tl.contains("contact"), "{tl}");
    b.screenshot("05-customer").unwrap();

    // Kill switch for the device: set, delivered to the API, cleared.
    b.goto(&format!("{base}/devices/lab-cpe-0")).unwrap();
    b.wait_for("#kill-set-form", WAIT).unwrap();
    b.find("#kill-reason")
        .unwrap()
        .send_keys("line work tonight")
        .unwrap();
    b.find("#kill-set").unwrap().click().unwrap();
    b.wait_for_text("#kill-state", "Remediation stopped", WAIT)
        .unwrap();
    let api = stack.api("GET", "/api/v1/killswitches", None).unwrap();
    assert!(api.body.contains("line work tonight"), "{}", api.body);
    b.screenshot("06-device-killswitch").unwrap();
    b.find("#kill-clear").unwrap().click().unwrap();
    b.wait_for_text("#kill-state", "No kill switch", WAIT)
        .unwrap();
    let api = stack.api("GET", "/api/v1/killswitches", None).unwrap();
    assert!(!api.body.contains("line work tonight"), "{}", api.body);

    // Hostile device strings: shown as text, never run.
    b.goto(&format!("{base}/incidents?agent_id=evil-1"))
        .unwrap();
    b.wait_for(".incident-link", WAIT).unwrap();
    assert_no_script_ran(&b, "the incident list");
    let summary = b.find(".incident-row td.summary").unwrap().text().unwrap();
    assert!(
        summary.contains("<script>window.__xss=1;alert('xss')</script>"),
        "{summary}"
    );
    assert!(
        summary.contains("␉x⟨U+202E⟩y"),
        "control and bidi characters visible: {summary}"
    );
    b.screenshot("07-hostile-list").unwrap();
    b.find(".incident-link").unwrap().click().unwrap();
    b.wait_for("#evidence", WAIT).unwrap();
    assert_no_script_ran(&b, "the hostile incident");
    assert!(
        b.find_all("#evidence img").unwrap().is_empty(),
        "no <img> element was created"
    );
    assert!(
        b.find_all("#timeline svg, #timeline b").unwrap().is_empty(),
        "no markup from the detail"
    );
    assert!(
        b.find("#evidence")
            .unwrap()
            .text()
            .unwrap()
            .contains(HOSTILE_EVIDENCE)
    );
    assert!(
        b.find("#timeline")
            .unwrap()
            .text()
            .unwrap()
            .contains("<b>bold</b>")
    );
    b.screenshot("08-hostile-incident").unwrap();

    // The other pages render.
    for (path, css, shot) in [
        ("/experience", "#report-note", "09-experience"),
        ("/network-events", "main h1", "10-network-events"),
        ("/killswitches", "#killswitch-list", "11-killswitches"),
        ("/devices", "#device-list", "12-devices"),
    ] {
        b.goto(&format!("{base}{path}")).unwrap();
        b.wait_for(css, WAIT).unwrap();
        assert_no_script_ran(&b, path);
        b.screenshot(shot).unwrap();
    }

    // The Experience page's charts are inline SVG, drawn with no script (a computed range).
    b.goto(&format!("{base}/experience?from=2026-01-01"))
        .unwrap();
    b.wait_for("#satisfaction-charts svg#chart-nps", WAIT)
        .unwrap();
    assert_eq!(b.find_all("svg#chart-csat").unwrap().len(), 1);
    assert_no_script_ran(&b, "/experience charts");

    // A viewer sees everything and can change nothing.
    b.delete_all_cookies().unwrap();
    login(&b, &base, "noc-viewer", VIEWER_PASSWORD);
    let detail = format!(
        "/incidents/{}/{}",
        netmedic_collector_enc(&inc.agent_id),
        netmedic_collector_enc(&inc.incident_id)
    );
    b.goto(&format!("{base}{detail}")).unwrap();
    b.wait_for("#timeline", WAIT).unwrap();
    assert!(
        b.find_all("#ack, #note-form").unwrap().is_empty(),
        "no action forms for a viewer"
    );
    let status = b
        .execute(
            "var x = new XMLHttpRequest(); x.open('POST', arguments[0], false);\
             x.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded');\
             x.send('csrf=' + encodeURIComponent(document.querySelector('input[name=csrf]').value));\
             return x.status;",
            &[json!(format!("{detail}/ack"))],
        )
        .unwrap();
    assert_eq!(status, json!(403), "a forged acknowledgement by a viewer");
    b.goto(&format!("{base}/devices/lab-cpe-0")).unwrap();
    b.wait_for("#device-facts", WAIT).unwrap();
    assert!(b.find_all("#kill-set-form, #diag-form").unwrap().is_empty());
    b.screenshot("13-viewer-device").unwrap();
    // The acknowledgement is still the operator's.
    b.goto(&format!("{base}{detail}")).unwrap();
    assert!(
        b.wait_for("#acked", WAIT)
            .unwrap()
            .text()
            .unwrap()
            .contains("noc-op")
    );
}

/// Percent-encodes a path segment (ids here are plain, but stay correct).
fn netmedic_collector_enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
