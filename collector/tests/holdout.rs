//! Holdout experiments against the real server on SQLite and PostgreSQL: the experiments API
//! (auth, validation, 409, ended experiments kept), delivery of the active ones in heartbeat
//! replies, the arm stored with each incident, and the report's causal section on a generated
//! population with a planted effect of self-healing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Backend, DEFAULT_DEVICE, Rng, TestServer, backend_stories, batch, beat, event, expect_error,
    ok_json, ts,
};
use netmedic_collector::analytics::{CausalExperiment, Report};
use netmedic_collector::domain::arm_of;
use netmedic_collector::store::{Auth, WriteItem, WriteKind};
use netmedic_proto::{
    Arm, Category, CheckId, EventKind, Experiment, ExperimentArm, ExperimentScope, IncidentView,
    Timestamp, paths,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::fmt::Write as _;

backend_stories!(
    experiments_are_started_listed_delivered_and_stopped,
    incidents_keep_the_arm_their_agent_recorded,
    a_planted_effect_of_self_healing_is_recovered_by_the_holdout,
);

async fn start(b: Backend) -> TestServer {
    b.start(|c| {
        c.server.max_body_bytes = 16 * 1024 * 1024;
        c.outage.interval_secs = 3600;
    })
    .await
}

async fn post_experiment(s: &TestServer, body: &Value, token: Option<&str>) -> reqwest::Response {
    s.post_as("/api/v1/experiments", body, token).await
}

async fn delete_experiment(s: &TestServer, id: &str, token: &str) -> reqwest::Response {
    s.client
        .delete(s.url(&format!("/api/v1/experiments/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn created(resp: reqwest::Response) -> Value {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn experiments_are_started_listed_delivered_and_stopped(b: Backend) {
    let s = start(b).await;
    let device = s.enrol("cpe-hb").await;
    let dns = json!({"id": "dns-holdout", "scope": {"kind": "playbook", "name": "dns"},
                     "control_permille": 50, "salt": "salt-1"});
    // Operators only.
    expect_error(
        post_experiment(&s, &dns, None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    expect_error(
        post_experiment(&s, &dns, Some(&s.viewer_token)).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let got = created(post_experiment(&s, &dns, Some(&s.admin_token)).await).await;
    assert_eq!(got["id"], "dns-holdout");
    assert_eq!(got["salt"], "salt-1");
    assert_eq!(got["scope"], json!({"kind": "playbook", "name": "dns"}));
    assert_eq!(got["control_permille"], 50);
    assert_eq!(got["created_by"], "test-admin");
    assert!(
        got["ended_at"].is_null() && got["started_at"].is_string(),
        "{got}"
    );
    // A second one on a check and cause, with a generated salt.
    let link = json!({"id": "link.carrier_2026", "scope": {"kind": "check", "check": "link",
                      "cause": "carrier_down"}, "control_permille": 500});
    let got = created(post_experiment(&s, &link, Some(&s.admin_token)).await).await;
    let salt = got["salt"].as_str().unwrap();
    assert_eq!(salt.len(), 32, "{salt}");
    assert!(salt.bytes().all(|b| b.is_ascii_hexdigit()), "{salt}");
    // The id is taken.
    expect_error(
        post_experiment(&s, &dns, Some(&s.admin_token)).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    // Validation: every problem with its field.
    let bad = json!({"id": "dns holdout", "scope": {"kind": "playbook", "name": ""},
                     "control_permille": 501, "salt": "a:b"});
    let err = expect_error(
        post_experiment(&s, &bad, Some(&s.admin_token)).await,
        StatusCode::BAD_REQUEST,
        "invalid_body",
    )
    .await;
    let fields: Vec<&str> = err.violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        ["id", "salt", "control_permille", "scope.name"],
        "{err:?}"
    );
    for (body, why) in [
        (
            json!({"id": "x", "scope": {"kind": "playbook", "name": "dns"}, "control_permille": 0}),
            "no control arm",
        ),
        (
            json!({"id": "x".repeat(65), "scope": {"kind": "playbook", "name": "dns"}, "control_permille": 5}),
            "id too long",
        ),
    ] {
        let r = post_experiment(&s, &body, Some(&s.admin_token)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{why}");
    }
    for (body, why) in [
        (
            json!({"id": "x", "scope": {"kind": "check", "check": "nope"}, "control_permille": 5}),
            "unknown check",
        ),
        (
            json!({"id": "x", "scope": {"kind": "fleet"}, "control_permille": 5}),
            "unknown scope",
        ),
        (
            json!({"id": "x", "scope": {"kind": "playbook", "name": "dns"}, "control_permille": 5, "extra": 1}),
            "unknown field",
        ),
    ] {
        let r = post_experiment(&s, &body, Some(&s.admin_token)).await;
        assert!(r.status().is_client_error(), "{why}: {}", r.status());
    }
    // Listed (viewers read), and delivered to every device in the heartbeat reply.
    let list: Value = ok_json(s.get_as("/api/v1/experiments", Some(&s.viewer_token)).await).await;
    assert_eq!(list["experiments"].as_array().unwrap().len(), 2, "{list}");
    let reply = beat(&s, "cpe-hb", &device).await;
    let mut ids: Vec<&str> = reply.experiments.iter().map(|e| e.id.as_str()).collect();
    ids.sort();
    assert_eq!(ids, ["dns-holdout", "link.carrier_2026"]);
    let delivered = reply
        .experiments
        .iter()
        .find(|e| e.id == "dns-holdout")
        .unwrap();
    assert_eq!(
        delivered,
        &Experiment {
            id: "dns-holdout".into(),
            scope: ExperimentScope::Playbook { name: "dns".into() },
            control_permille: 50,
            salt: "salt-1".into(),
        }
    );
    // Stop: viewers cannot; an operator can, once.
    let r = delete_experiment(&s, "dns-holdout", &s.viewer_token).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let after: Value = ok_json(delete_experiment(&s, "dns-holdout", &s.admin_token).await).await;
    let ended = after["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "dns-holdout")
        .unwrap();
    assert!(ended["ended_at"].is_string(), "kept, with its end: {after}");
    expect_error(
        delete_experiment(&s, "dns-holdout", &s.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        delete_experiment(&s, "never-was", &s.admin_token).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    // Only the active one is delivered now; an ended id is never reused.
    let reply = beat(&s, "cpe-hb", &device).await;
    let ids: Vec<&str> = reply.experiments.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["link.carrier_2026"]);
    expect_error(
        post_experiment(&s, &dns, Some(&s.admin_token)).await,
        StatusCode::CONFLICT,
        "conflict",
    )
    .await;
    s.stop().await;
}

async fn incidents_keep_the_arm_their_agent_recorded(b: Backend) {
    let s = start(b).await;
    let token = s.tokens.lock().unwrap()[DEFAULT_DEVICE].clone();
    let arm = ExperimentArm {
        experiment_id: "dns-holdout".into(),
        arm: Arm::Control,
    };
    let mut opened = event("e-1", "inc-1", 1, EventKind::Opened);
    opened.experiment = Some(arm.clone());
    common::report(&s, &token, &batch(DEFAULT_DEVICE, vec![opened])).await;
    let path = format!("{}/{DEFAULT_DEVICE}/inc-1", paths::INCIDENTS);
    let v: IncidentView = ok_json(s.get(&path).await).await;
    assert_eq!(v.experiment.as_ref(), Some(&arm));
    // A later event keeps it (merged without re-reading), an older one too (re-read).
    let mut resolved = event("e-3", "inc-1", 3, EventKind::Resolved);
    resolved.experiment = Some(arm.clone());
    common::report(&s, &token, &batch(DEFAULT_DEVICE, vec![resolved])).await;
    let mut middle = event("e-2", "inc-1", 2, EventKind::Updated);
    middle.experiment = Some(arm.clone());
    common::report(&s, &token, &batch(DEFAULT_DEVICE, vec![middle])).await;
    let v: IncidentView = ok_json(s.get(&path).await).await;
    assert_eq!(v.experiment.as_ref(), Some(&arm));
    assert_eq!(v.event_count, 3);
    // Listed with the arm too; an incident outside any experiment has none.
    common::report(
        &s,
        &token,
        &batch(
            DEFAULT_DEVICE,
            vec![event("e-9", "inc-2", 1, EventKind::Opened)],
        ),
    )
    .await;
    let page: netmedic_proto::IncidentPage = ok_json(s.get(paths::INCIDENTS).await).await;
    for i in &page.incidents {
        let want = (i.incident_id == "inc-1").then_some(&arm);
        assert_eq!(i.experiment.as_ref(), want, "{}", i.incident_id);
    }
    // A hostile experiment id is refused with its field, and nothing is stored.
    let mut bad = event("e-bad", "inc-3", 1, EventKind::Opened);
    bad.experiment = Some(ExperimentArm {
        experiment_id: "x".repeat(65),
        arm: Arm::Treated,
    });
    let err = expect_error(
        s.post_as(
            paths::REPORTS,
            &batch(DEFAULT_DEVICE, vec![bad]),
            Some(&token),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_report",
    )
    .await;
    assert_eq!(
        err.violations[0].field,
        "events[0].experiment.experiment_id"
    );
    s.stop().await;
}

// ---- planted effect ---------------------------------------------------------------------------

/// A holdout population: every customer has one device and one DNS incident covered by the
/// experiment, in the arm the real hash gives its device; the contact and NPS behaviour of each
/// arm is planted.
struct Holdout {
    devices: usize,
    control_permille: u16,
    /// Probability of a contact within the window after an incident, per arm.
    contact_treated: f64,
    contact_control: f64,
    /// NPS answer distribution (promoters, detractors) after an incident, per arm.
    nps_treated: (f64, f64),
    nps_control: (f64, f64),
}

const SALT: &str = "planted-effect";

async fn import(s: &TestServer, kind: &str, body: String) {
    let r = s
        .client
        .post(s.url(&format!("/api/v1/import/{kind}?strict=true")))
        .bearer_auth(&s.admin_token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
}

fn rfc(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).unwrap().to_string()
}

/// Starts the experiment through the API, generates and loads the population; returns the
/// number of control and treated devices.
async fn load_holdout(s: &TestServer, id: &str, seed: u64, h: &Holdout) -> (u64, u64) {
    let e = created(
        post_experiment(
            s,
            &json!({"id": id, "scope": {"kind": "playbook", "name": "dns"},
                    "control_permille": h.control_permille, "salt": SALT}),
            Some(&s.admin_token),
        )
        .await,
    )
    .await;
    let experiment = Experiment {
        id: id.into(),
        scope: ExperimentScope::Playbook { name: "dns".into() },
        control_permille: h.control_permille,
        salt: e["salt"].as_str().unwrap().into(),
    };
    let mut rng = Rng(seed);
    let t0 = ts(0).unix_millis();
    let day = 86_400_000;
    let mut subs = String::from("device_id,customer_id,region,access_node,cpe_model,firmware\n");
    let mut surveys = String::from("survey_id,customer_id,answered_at,nps,csat\n");
    let mut contacts = String::from("contact_id,customer_id,created_at,reason\n");
    let mut items = Vec::new();
    let mut arms = (0, 0);
    for c in 0..h.devices {
        let agent = format!("hx-{c:05}");
        writeln!(subs, "{agent},cust-{c:05},north,olt-{},m,fw", c % 10).unwrap();
        let arm = arm_of(&experiment, &agent);
        let control = arm == Arm::Control;
        if control {
            arms.0 += 1;
        } else {
            arms.1 += 1;
        }
        let start = t0 + rng.below(60) as i64 * day + rng.below(day as u64) as i64;
        let recorded = Some(ExperimentArm {
            experiment_id: id.into(),
            arm,
        });
        let mut opened = event(&format!("{agent}-o"), "inc-1", 1, EventKind::Opened);
        let mut resolved = event(&format!("{agent}-r"), "inc-1", 2, EventKind::Resolved);
        for (e, at) in [(&mut opened, start), (&mut resolved, start + 600_000)] {
            e.check = CheckId::Dns;
            e.cause = "resolver_timeout".into();
            e.category = Category::DnsFailure;
            e.started_at = Timestamp::from_unix_millis(start).unwrap();
            e.at = Timestamp::from_unix_millis(at).unwrap();
            e.experiment = recorded.clone();
        }
        // Control: the plan was only reported; the fault went away on its own (or not at all
        // within the window) — never auto-healed. Treated: healed.
        resolved.auto_healed = Some(!control);
        items.push(WriteItem {
            auth: Auth::Trusted,
            kind: WriteKind::report(batch(&agent, vec![opened, resolved])).expect("encodes"),
            received_at: netmedic_collector::now(),
        });
        let p = if control {
            h.contact_control
        } else {
            h.contact_treated
        };
        if rng.unit() < p {
            let at = start + rng.below(48) as i64 * 3_600_000;
            writeln!(contacts, "k-{c:05},cust-{c:05},{},dns", rfc(at)).unwrap();
        }
        let (pp, dd) = if control {
            h.nps_control
        } else {
            h.nps_treated
        };
        let nps = rng.nps(pp, dd);
        let csat = if nps >= 9 {
            5
        } else if nps >= 7 {
            4
        } else {
            2
        };
        let answered = start + (1 + rng.below(19)) as i64 * day;
        writeln!(
            surveys,
            "sv-{c:05},cust-{c:05},{},{nps},{csat}",
            rfc(answered)
        )
        .unwrap();
    }
    import(s, "subscribers", subs).await;
    import(s, "surveys", surveys).await;
    import(s, "contacts", contacts).await;
    for chunk in items.chunks(500) {
        for r in s.store().write_group(chunk).await.unwrap() {
            assert!(r.is_ok(), "{r:?}");
        }
    }
    arms
}

fn causal<'a>(r: &'a Report, id: &str) -> &'a CausalExperiment {
    r.causal
        .iter()
        .find(|x| x.experiment_id == id)
        .unwrap_or_else(|| panic!("no causal entry for {id}"))
}

async fn a_planted_effect_of_self_healing_is_recovered_by_the_holdout(b: Backend) {
    let s = start(b).await;
    // 5 % control: contacts after 30 % of control incidents, 12 % of treated ones (18 points,
    // 180 contacts avoided per 1,000 incidents); NPS −10 in control, +30 when healed.
    let planted = Holdout {
        devices: 8000,
        control_permille: 50,
        contact_treated: 0.12,
        contact_control: 0.30,
        nps_treated: (0.5, 0.2),
        nps_control: (0.3, 0.4),
    };
    let (n_control, n_treated) = load_holdout(&s, "dns-holdout", 42, &planted).await;
    // The real hash puts about 5 % of devices in control.
    assert!(
        (300..500).contains(&n_control),
        "{n_control} control devices"
    );
    let r: Report = ok_json(s.get("/api/v1/report").await).await;
    let text = netmedic_collector::analytics::render(&r);
    let x = causal(&r, "dns-holdout");
    println!(
        "---- causal section (planted: control 30 %, treated 12 %, 180 avoided per 1,000) ----\n{}",
        netmedic_collector::analytics::causal_text(x, r.min_group_n, 15.0, "EUR")
    );
    assert_eq!(x.design, "randomized (holdout)");
    assert_eq!(
        (x.control.incidents, x.control.devices),
        (n_control, n_control)
    );
    assert_eq!(
        (x.treated.incidents, x.treated.devices),
        (n_treated, n_treated)
    );
    let per_1000 = x.avoided_per_1000.unwrap();
    assert!(per_1000.covers(180.0), "{per_1000:?} misses 180\n{text}");
    assert!(per_1000.significant(), "{text}");
    let reduction = x.contact_rate_reduction.unwrap();
    assert!(reduction.covers(18.0), "{reduction:?}\n{text}");
    let value = x.avoided_value_per_1000.unwrap();
    assert!((value.estimate - per_1000.estimate * 15.0).abs() < 1e-6);
    let nps = x.nps_difference.unwrap();
    assert!(nps.covers(40.0) && nps.significant(), "{nps:?}\n{text}");
    assert!(x.warnings.is_empty(), "{:?}", x.warnings);
    assert!(x.minimal_detectable_difference.unwrap() < 18.0);
    // Beside it, the observational figure keeps its place with its assumption.
    assert!(text.contains("randomized (holdout)"), "{text}");
    assert!(
        text.contains("not randomized") && !r.contacts.assumption.is_empty(),
        "{text}"
    );
    s.stop().await;
}
