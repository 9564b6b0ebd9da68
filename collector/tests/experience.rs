//! Customer-experience stories (issue 7), each on SQLite and on a real PostgreSQL: API tokens and
//! roles, imports (line-numbered bad rows, idempotent re-import, `strict`), links that follow late
//! data, a generated population with planted effects that the report must recover within its
//! confidence intervals (and a population without effects where it must find none), and
//! mass-outage correlation with the upstream-outage advisory in heartbeat replies.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, Rng, TestServer, backend_stories, batch, event, heartbeat, ts};
use netmedic_collector::analytics::Report;
use netmedic_collector::api::NetworkEventList;
use netmedic_collector::correlate::OutageParams;
use netmedic_collector::import::ImportReport;
use netmedic_collector::store::{Auth, WriteItem, WriteKind};
use netmedic_proto::{
    Advisory, Category, ErrorBody, EventKind, HeartbeatReply, IncidentEvent, Timestamp, paths,
};
use reqwest::StatusCode;
use std::fmt::Write as _;

async fn start(backend: Backend) -> TestServer {
    let tweak = |c: &mut netmedic_collector::config::CollectorConfig| {
        c.server.max_body_bytes = 16 * 1024 * 1024;
        // Passes are run by the tests themselves.
        c.outage.interval_secs = 3600;
    };
    backend.start(tweak).await
}

// Each story runs once per backend.
backend_stories!(
    api_tokens_guard_every_query_and_admin_route,
    imports_report_bad_lines_reimport_changes_nothing_and_strict_writes_nothing,
    links_follow_late_data,
    planted_effects_are_recovered_within_their_intervals,
    a_population_without_effects_reports_none,
    mass_outage_becomes_one_network_event_with_advisories,
    churn_baseline_rules_and_small_groups,
    bulk_enrolment_of_a_fleet,
);

// ---- helpers ----------------------------------------------------------------------------------

async fn expect_error(resp: reqwest::Response, status: StatusCode, code: &str) -> ErrorBody {
    let got = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "for expected error {code}: {text}");
    let body: ErrorBody = serde_json::from_str(&text).unwrap();
    assert_eq!(body.error, code, "{body:?}");
    assert!(!body.reason.is_empty());
    body
}

async fn ok_json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> T {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn import(s: &TestServer, kind: &str, query: &str, body: String) -> ImportReport {
    ok_json(
        s.client
            .post(s.url(&format!("/api/v1/import/{kind}{query}")))
            .bearer_auth(&s.admin_token)
            .header("content-type", "text/csv")
            .body(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn report(s: &TestServer, query: &str) -> Report {
    ok_json(s.get(&format!("/api/v1/report{query}")).await).await
}

fn rfc(ms: i64) -> String {
    Timestamp::from_unix_millis(ms).unwrap().to_string()
}

/// An incident as stored: opened (and resolved, when `resolved` says how) events, written as a
/// trusted group straight to the store (the report reads the database; ingest is tested
/// elsewhere).
struct Inc {
    agent: String,
    id: String,
    category: Category,
    started_ms: i64,
    /// None: still open; Some(auto_healed).
    resolved: Option<bool>,
}

fn events_of(i: &Inc) -> Vec<IncidentEvent> {
    let start = Timestamp::from_unix_millis(i.started_ms).unwrap();
    let mut opened = event(
        &format!("{}-{}-o", i.agent, i.id),
        &i.id,
        1,
        EventKind::Opened,
    );
    opened.category = i.category;
    opened.started_at = start;
    opened.at = start;
    let mut out = vec![opened];
    if let Some(healed) = i.resolved {
        let mut r = event(
            &format!("{}-{}-r", i.agent, i.id),
            &i.id,
            2,
            EventKind::Resolved,
        );
        r.category = i.category;
        r.started_at = start;
        r.at = Timestamp::from_unix_millis(i.started_ms + 60_000).unwrap();
        r.auto_healed = Some(healed);
        out.push(r);
    }
    out
}

async fn store_incidents(s: &TestServer, incs: &[Inc]) {
    let items: Vec<WriteItem> = incs
        .iter()
        .map(|i| WriteItem {
            auth: Auth::Trusted,
            kind: WriteKind::report(batch(&i.agent, events_of(i))).expect("encodes"),
            received_at: netmedic_collector::now(),
        })
        .collect();
    for chunk in items.chunks(500) {
        for r in s.store().write_group(chunk).await.unwrap() {
            assert!(r.is_ok(), "{r:?}");
        }
    }
}

// ---- Part 0: API tokens ------------------------------------------------------------------------

async fn api_tokens_guard_every_query_and_admin_route(b: Backend) {
    let s = start(b).await;
    let device = s.enrol("cpe-auth").await;
    // No token, a malformed one, a device token: 401, with a reason.
    expect_error(
        s.get_as(paths::INCIDENTS, None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    expect_error(
        s.get_as("/api/v1/devices", Some("short")).await,
        StatusCode::UNAUTHORIZED,
        "malformed_token",
    )
    .await;
    expect_error(
        s.get_as("/api/v1/killswitches", Some(&device)).await,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    for path in [
        paths::INCIDENTS,
        "/api/v1/devices",
        "/api/v1/killswitches",
        "/api/v1/report",
        "/api/v1/network-events",
    ] {
        expect_error(
            s.get_as(path, None).await,
            StatusCode::UNAUTHORIZED,
            "missing_token",
        )
        .await;
        let resp = s.get_as(path, Some(&s.viewer_token)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
    }
    // A viewer reads but may not change anything.
    let kill = serde_json::json!({"scope": "fleet", "reason": "maintenance"});
    let put = |token: &str| {
        s.client
            .put(s.url("/api/v1/killswitches"))
            .bearer_auth(token)
            .json(&kill)
            .send()
    };
    expect_error(
        put(&s.viewer_token).await.unwrap(),
        StatusCode::FORBIDDEN,
        "forbidden",
    )
    .await;
    let resp = s
        .client
        .post(s.url("/api/v1/devices/cpe-auth/diagnostics"))
        .bearer_auth(&s.viewer_token)
        .json(&serde_json::json!({"checks": ["dns"]}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    let resp = s
        .client
        .post(s.url("/api/v1/import/surveys"))
        .bearer_auth(&s.viewer_token)
        .body("survey_id,customer_id,answered_at,nps\n")
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::FORBIDDEN, "forbidden").await;
    assert_eq!(s.count("diagnostics_requests").await, 0);
    // An operator may; nothing was stored by the refused requests.
    assert_eq!(put(&s.admin_token).await.unwrap().status(), StatusCode::OK);
    // Ingest still takes device tokens only.
    let resp = s
        .post_as(
            paths::HEARTBEATS,
            &heartbeat("cpe-auth"),
            Some(&s.admin_token),
        )
        .await;
    expect_error(resp, StatusCode::UNAUTHORIZED, "unknown_token").await;
    assert_eq!(
        s.post_as(paths::HEARTBEATS, &heartbeat("cpe-auth"), Some(&device))
            .await
            .status(),
        StatusCode::OK
    );
    // Revocation takes effect at once; health and metrics stay open.
    assert!(
        s.store()
            .api_token_revoke("test-viewer", netmedic_collector::now())
            .await
            .unwrap()
    );
    expect_error(
        s.get_as(paths::INCIDENTS, Some(&s.viewer_token)).await,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            s.get_as(path, None).await.status(),
            StatusCode::OK,
            "{path}"
        );
    }
    let tokens = s.store().api_token_list().await.unwrap();
    assert!(
        tokens
            .iter()
            .any(|t| t.name == "test-viewer" && t.revoked_at.is_some())
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let s = TestServer::start_with(|c| c.server.metrics_requires_token = true).await;
    expect_error(
        s.get_as("/metrics", None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    assert_eq!(
        s.get_as("/metrics", Some(&s.viewer_token)).await.status(),
        StatusCode::OK
    );
    assert_eq!(s.get_as("/healthz", None).await.status(), StatusCode::OK);
    s.stop().await;
}

// ---- imports -----------------------------------------------------------------------------------

async fn imports_report_bad_lines_reimport_changes_nothing_and_strict_writes_nothing(b: Backend) {
    let s = start(b).await;
    let csv = "survey_id,customer_id,answered_at,nps,csat,channel,verbatim\n\
               s1,c1,2026-01-02T03:04:05Z,9,,email,\"fast, friendly\"\n\
               s2,c1,not-a-time,9,,email,\n\
               s3,c2,2026-01-02T03:04:05Z,,5,sms,\n\
               s4,c2,2026-01-02T03:04:05Z,12,,,\n\
               s5,c3,2026-01-03T00:00:00Z,3,2,phone,\"line one\nline two\"\n\
               s6,c3\n\
               s7,c4,2026-01-03T00:00:00Z,10,,,\n"
        .to_owned();
    let r = import(&s, "surveys", "", csv.clone()).await;
    assert_eq!((r.rows, r.taken, r.skipped), (7, 4, 3), "{r:?}");
    assert!(r.committed);
    let lines: Vec<u64> = r.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!(lines, vec![3, 5, 8], "{r:?}");
    assert!(r.bad_rows[0].reason.contains("answered_at"), "{r:?}");
    assert!(r.bad_rows[1].reason.contains("nps"), "{r:?}");
    assert!(r.bad_rows[2].reason.contains("fields"), "{r:?}");
    assert_eq!(s.count("surveys").await, 4);
    // Re-importing the same file changes nothing.
    let again = import(&s, "surveys", "", csv).await;
    assert_eq!((again.taken, again.skipped), (4, 3));
    assert_eq!(s.count("surveys").await, 4);
    // Strict: a bad row anywhere (here after 6000 good ones, past one batch) writes nothing.
    let mut big = String::from("survey_id,customer_id,answered_at,nps\n");
    for i in 0..6000 {
        writeln!(big, "x{i},c{i},2026-02-01T00:00:00Z,{}", i % 11).unwrap();
    }
    big.push_str("x-bad,c-bad,2026-02-01T00:00:00Z,eleven\n");
    let strict = import(&s, "surveys", "?strict=true", big.clone()).await;
    assert!(!strict.committed);
    assert_eq!((strict.rows, strict.taken, strict.skipped), (6001, 0, 1));
    assert_eq!(strict.bad_rows[0].line, 6002);
    assert_eq!(s.count("surveys").await, 4, "strict import wrote rows");
    // Without --strict the good rows are taken in batches.
    let lenient = import(&s, "surveys", "", big).await;
    assert_eq!((lenient.taken, lenient.skipped), (6000, 1));
    assert_eq!(s.count("surveys").await, 6004);
    // JSON Lines, and a header problem is refused whole.
    let jsonl = "{\"contact_id\":\"k1\",\"customer_id\":\"c1\",\"created_at\":\"2026-01-02T00:00:00Z\",\"reason\":\"dns\"}\n\
                 {\"contact_id\":\"k2\",\"customer_id\":\"c1\"}\n";
    let r: ImportReport = ok_json(
        s.client
            .post(s.url("/api/v1/import/contacts?format=jsonl"))
            .bearer_auth(&s.admin_token)
            .body(jsonl)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((r.taken, r.skipped, r.bad_rows[0].line), (1, 1, 2));
    let resp = s
        .client
        .post(s.url("/api/v1/import/contacts"))
        .bearer_auth(&s.admin_token)
        .body("contact_id,customer_id,colour\n")
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_import").await;
    let resp = s
        .client
        .post(s.url("/api/v1/import/pets"))
        .bearer_auth(&s.admin_token)
        .body("a\n")
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(s.count("contacts").await, 1);
    s.stop().await;
}

// ---- linking -----------------------------------------------------------------------------------

async fn links_follow_late_data(b: Backend) {
    let s = start(b).await;
    let t = ts(0).unix_millis();
    let hour = 3_600_000;
    // An incident arrives before anything is known about its customer.
    store_incidents(
        &s,
        &[Inc {
            agent: "cpe-l1".into(),
            id: "i1".into(),
            category: Category::DnsFailure,
            started_ms: t,
            resolved: Some(false),
        }],
    )
    .await;
    let r = report(&s, "").await;
    assert_eq!((r.incidents, r.customers_with_incidents), (1, 0));
    // A survey of customer c1, two days later: no mapping yet, so it is a baseline answer.
    import(
        &s,
        "surveys",
        "",
        format!(
            "survey_id,customer_id,answered_at,nps\nsv1,c1,{},2\n",
            rfc(t + 48 * hour)
        ),
    )
    .await;
    let r = report(&s, "").await;
    assert_eq!(r.satisfaction.without_incident.nps.unwrap().n, 1);
    assert!(r.satisfaction.with_incident.satisfaction.nps.is_none());
    // The subscriber mapping arrives late: the survey is now linked to the incident.
    import(
        &s,
        "subscribers",
        "",
        "device_id,customer_id,region,access_node\ncpe-l1,c1,north,olt-1\n".into(),
    )
    .await;
    let r = report(&s, "").await;
    assert!(r.satisfaction.without_incident.nps.is_none());
    assert_eq!(r.satisfaction.with_incident.satisfaction.nps.unwrap().n, 1);
    assert_eq!(r.satisfaction.by_category[0].group, "dns_failure");
    assert_eq!(r.satisfaction.escalated.satisfaction.nps.unwrap().n, 1);
    // A contact about DNS an hour after the start: a strong link. One 4 days later: no link.
    import(
        &s,
        "contacts",
        "",
        format!(
            "contact_id,customer_id,created_at,reason\nk1,c1,{},DNS\nk2,c1,{},dns\n",
            rfc(t + hour),
            rfc(t + 96 * hour)
        ),
    )
    .await;
    let r = report(&s, "").await;
    let dns = &r.contacts.by_category[0];
    assert_eq!(dns.category, Category::DnsFailure);
    assert_eq!(
        (dns.contact_rate.unwrap().k, dns.contact_rate.unwrap().n),
        (1, 1)
    );
    assert_eq!(dns.strong_links, 1);
    // The device changes hands: the links move with the mapping.
    import(
        &s,
        "subscribers",
        "",
        "device_id,customer_id\ncpe-l1,c2\n".into(),
    )
    .await;
    let r = report(&s, "").await;
    assert_eq!(r.satisfaction.without_incident.nps.unwrap().n, 1);
    assert_eq!(r.contacts.by_category[0].contact_rate.unwrap().k, 0);
    // A late survey (imported after the incident) answered 10 days after it is linked; one 40
    // days after is not.
    import(
        &s,
        "surveys",
        "",
        format!(
            "survey_id,customer_id,answered_at,nps\nsv2,c2,{},4\nsv3,c2,{},10\n",
            rfc(t + 240 * hour),
            rfc(t + 960 * hour)
        ),
    )
    .await;
    let r = report(&s, "").await;
    assert_eq!(r.satisfaction.with_incident.satisfaction.nps.unwrap().n, 1);
    assert_eq!(r.satisfaction.without_incident.nps.unwrap().n, 2);
    // An incident that arrives after its customer's contact is linked to it.
    import(
        &s,
        "subscribers",
        "",
        "device_id,customer_id\ncpe-l3,c3\n".into(),
    )
    .await;
    import(
        &s,
        "contacts",
        "",
        format!(
            "contact_id,customer_id,created_at,reason\nk3,c3,{},slow\n",
            rfc(t + 2 * hour)
        ),
    )
    .await;
    store_incidents(
        &s,
        &[Inc {
            agent: "cpe-l3".into(),
            id: "i3".into(),
            category: Category::NoInternet,
            started_ms: t + hour,
            resolved: Some(true),
        }],
    )
    .await;
    let r = report(&s, "").await;
    let ni = r
        .contacts
        .by_category
        .iter()
        .find(|c| c.category == Category::NoInternet)
        .unwrap();
    assert_eq!(ni.contact_rate.unwrap().k, 1);
    assert_eq!(
        ni.strong_links, 0,
        "a 'slow' contact is a weak link to no_internet"
    );
    // The window applies: nothing in a report of a later period.
    let later = report(&s, &format!("?from={}", rfc(t + 1000 * hour))).await;
    assert_eq!((later.incidents, later.surveys), (0, 0));
    s.stop().await;
}

// ---- planted effects ---------------------------------------------------------------------------

/// What a generated population looks like.
struct Planted {
    /// NPS answer distribution (promoter, detractor share) of customers after a DNS incident.
    dns_promoters: f64,
    dns_detractors: f64,
    /// Contact probability after an auto-healed / an escalated incident.
    contact_auto: f64,
    contact_escalated: f64,
}

const BASE_PROMOTERS: f64 = 0.5;
const BASE_DETRACTORS: f64 = 0.2;
const CUSTOMERS: usize = 6000;

/// Generates and loads a population: every customer has one device and answers one survey; 40 %
/// had an incident (half DNS, half no-internet; half auto-healed) within 20 days before it.
/// Returns the number of auto-healed incidents.
async fn load_population(s: &TestServer, seed: u64, p: &Planted) -> u64 {
    let mut rng = Rng(seed);
    let t0 = ts(0).unix_millis();
    let day = 86_400_000;
    let mut subs = String::from("device_id,customer_id,region,access_node,cpe_model,firmware\n");
    let mut surveys = String::from("survey_id,customer_id,answered_at,nps,csat\n");
    let mut contacts = String::from("contact_id,customer_id,created_at,reason\n");
    let mut incs = Vec::new();
    let mut auto = 0;
    for c in 0..CUSTOMERS {
        let region = ["north", "south", "east"][c % 3];
        writeln!(
            subs,
            "cpe-{c:05},cust-{c:05},{region},olt-{},model-{},fw-{}",
            c % 20,
            c % 2,
            c % 4
        )
        .unwrap();
        let start = t0 + rng.below(60) as i64 * day + rng.below(day as u64) as i64;
        let survey_at = start + (1 + rng.below(19)) as i64 * day;
        let incident = c % 10 < 4;
        let (pp, dd) = if incident && c % 2 == 0 {
            (p.dns_promoters, p.dns_detractors)
        } else {
            (BASE_PROMOTERS, BASE_DETRACTORS)
        };
        let nps = rng.nps(pp, dd);
        let csat = if nps >= 9 {
            5
        } else if nps >= 7 {
            4
        } else {
            2
        };
        writeln!(
            surveys,
            "sv-{c:05},cust-{c:05},{},{nps},{csat}",
            rfc(survey_at)
        )
        .unwrap();
        if incident {
            let category = if c % 2 == 0 {
                Category::DnsFailure
            } else {
                Category::NoInternet
            };
            let healed = rng.unit() < 0.5;
            auto += u64::from(healed);
            incs.push(Inc {
                agent: format!("cpe-{c:05}"),
                id: "inc-1".into(),
                category,
                started_ms: start,
                resolved: Some(healed),
            });
            let prob = if healed {
                p.contact_auto
            } else {
                p.contact_escalated
            };
            if rng.unit() < prob {
                let reason = if category == Category::DnsFailure {
                    "dns"
                } else {
                    "outage"
                };
                writeln!(
                    contacts,
                    "k-{c:05},cust-{c:05},{},{reason}",
                    rfc(start + rng.below(48) as i64 * 3_600_000)
                )
                .unwrap();
            }
        } else if rng.unit() < 0.1 {
            // Background contacts of customers without incidents (never linked).
            writeln!(contacts, "k-{c:05},cust-{c:05},{},billing", rfc(start)).unwrap();
        }
    }
    // Churn risk: five customers with a repeat incident, a detractor answer and two contacts.
    for c in 0..5 {
        incs.push(Inc {
            agent: format!("cpe-{c:05}"),
            id: "inc-2".into(),
            category: Category::Intermittent,
            started_ms: t0 + 70 * day,
            resolved: Some(false),
        });
        incs.push(Inc {
            agent: format!("cpe-{c:05}"),
            id: "inc-3".into(),
            category: Category::Intermittent,
            started_ms: t0 + 71 * day,
            resolved: Some(false),
        });
        writeln!(
            surveys,
            "sv-churn-{c},cust-{c:05},{},0,1",
            rfc(t0 + 72 * day)
        )
        .unwrap();
        for k in 0..2 {
            writeln!(
                contacts,
                "k-churn-{c}-{k},cust-{c:05},{},disconnects",
                rfc(t0 + (70 + k) * day + 3_600_000)
            )
            .unwrap();
        }
    }
    for (kind, body) in [
        ("subscribers", subs),
        ("surveys", surveys),
        ("contacts", contacts),
    ] {
        let r = import(s, kind, "?strict=true", body).await;
        assert!(r.committed && r.skipped == 0, "{kind}: {r:?}");
    }
    store_incidents(s, &incs).await;
    auto
}

fn group<'a>(r: &'a Report, name: &str) -> &'a netmedic_collector::analytics::SatGroup {
    r.satisfaction
        .by_category
        .iter()
        .find(|g| g.group == name)
        .unwrap_or_else(|| panic!("no group {name}"))
}

async fn planted_effects_are_recovered_within_their_intervals(b: Backend) {
    let s = start(b).await;
    // DNS incidents: 30 % promoters / 40 % detractors instead of 50 / 20: NPS −10 instead of
    // +30, a planted effect of −40 points. Escalated incidents: 3x the contact rate.
    let planted = Planted {
        dns_promoters: 0.3,
        dns_detractors: 0.4,
        contact_auto: 0.1,
        contact_escalated: 0.3,
    };
    let auto = load_population(&s, 7, &planted).await;
    let r = report(&s, "").await;
    let text = netmedic_collector::analytics::render(&r);
    let base = r.satisfaction.without_incident.nps.unwrap();
    assert!(base.ci_low <= 30.0 && 30.0 <= base.ci_high, "{text}");
    let dns = group(&r, "dns_failure");
    let effect = dns.nps_effect.unwrap();
    assert!(
        effect.covers(-40.0),
        "DNS effect {effect:?} misses −40\n{text}"
    );
    assert!(effect.significant(), "{text}");
    assert!(dns.satisfaction.nps.unwrap().n >= 1000);
    // No-internet incidents were planted without an effect.
    assert!(
        group(&r, "no_internet").nps_effect.unwrap().covers(0.0),
        "{text}"
    );
    // CSAT follows NPS here (4-5 for answers 7-10): the DNS group is less satisfied.
    assert!(dns.csat_effect.unwrap().ci_high < 0.0, "{text}");
    // Contacts: 10 % after auto-healed incidents, 30 % after escalated ones.
    let c = &r.contacts;
    let (a, e) = (c.auto_healed.unwrap(), c.escalated.unwrap());
    assert!(a.ci_low <= 0.1 && 0.1 <= a.ci_high, "{text}");
    assert!(e.ci_low <= 0.3 && 0.3 <= e.ci_high, "{text}");
    let ratio = c.escalated_to_auto_ratio.unwrap();
    assert!((2.0..4.5).contains(&ratio), "{ratio}\n{text}");
    // Contacts avoided: (0.3 − 0.1) × the auto-healed incidents, valued at 15.00 EUR each.
    let planted_avoided = 0.2 * auto as f64;
    let avoided = c.avoided.unwrap();
    assert!(
        avoided.covers(planted_avoided),
        "{avoided:?} vs {planted_avoided}\n{text}"
    );
    assert!(avoided.significant());
    let value = c.avoided_value.unwrap();
    assert!((value.estimate - avoided.estimate * 15.0).abs() < 1e-6);
    // DNS contacts are strong links (reason "dns" → dns_failure).
    let dns_contacts = c
        .by_category
        .iter()
        .find(|x| x.category == Category::DnsFailure)
        .unwrap();
    assert_eq!(
        dns_contacts.strong_links,
        dns_contacts.contact_rate.unwrap().k
    );
    // The five repeat-incident detractors lead the churn list.
    let top: Vec<&str> = r
        .churn_risk
        .iter()
        .take(5)
        .map(|x| x.customer_id.as_str())
        .collect();
    for c in 0..5 {
        assert!(top.contains(&format!("cust-{c:05}").as_str()), "{text}");
    }
    assert!(r.churn_risk[0].detractor && r.churn_risk[0].incidents >= 3);
    // Breakdowns cover every dimension and add up.
    for dim in ["region", "access_node", "cpe_model", "firmware"] {
        let rows = &r.breakdowns[dim];
        assert_eq!(
            rows.iter().map(|b| b.subscribers).sum::<u64>(),
            CUSTOMERS as u64
        );
        assert_eq!(rows.iter().map(|b| b.incidents).sum::<u64>(), r.incidents);
    }
    assert_eq!(r.breakdowns["access_node"].len(), 20);
    // The CLI prints the same report as a table and as JSON.
    assert!(text.contains("dns_failure") && text.contains("CHURN RISK"));
    s.stop().await;
}

async fn a_population_without_effects_reports_none(b: Backend) {
    let s = start(b).await;
    let none = Planted {
        dns_promoters: BASE_PROMOTERS,
        dns_detractors: BASE_DETRACTORS,
        contact_auto: 0.2,
        contact_escalated: 0.2,
    };
    load_population(&s, 11, &none).await;
    let r = report(&s, "").await;
    let text = netmedic_collector::analytics::render(&r);
    for g in ["dns_failure", "no_internet"] {
        let e = group(&r, g).nps_effect.unwrap();
        assert!(e.covers(0.0), "{g}: {e:?}\n{text}");
    }
    assert!(
        r.satisfaction.auto_healed.nps_effect.unwrap().covers(0.0),
        "{text}"
    );
    let avoided = r.contacts.avoided.unwrap();
    assert!(avoided.covers(0.0), "{avoided:?}\n{text}");
    s.stop().await;
}

// ---- mass outages ------------------------------------------------------------------------------

fn upstream(reply: &HeartbeatReply) -> Option<&str> {
    reply.advisories.iter().find_map(|a| match a {
        Advisory::UpstreamOutage {
            network_event_id, ..
        } => Some(network_event_id.as_str()),
        _ => None,
    })
}

async fn beat(s: &TestServer, id: &str, token: &str) -> HeartbeatReply {
    ok_json(
        s.post_as(paths::HEARTBEATS, &heartbeat(id), Some(token))
            .await,
    )
    .await
}

async fn mass_outage_becomes_one_network_event_with_advisories(b: Backend) {
    let s = start(b).await;
    let mut tokens = Vec::new();
    for i in 1..=6 {
        tokens.push(s.enrol(&format!("cpe-m{i}")).await);
    }
    import(
        &s,
        "subscribers",
        "",
        "device_id,customer_id,access_node\n\
         cpe-m1,c1,olt-7\ncpe-m2,c2,olt-7\ncpe-m3,c3,olt-7\ncpe-m4,c4,olt-7\n\
         cpe-m5,c5,olt-8\ncpe-m6,c6,olt-8\n"
            .into(),
    )
    .await;
    let now = netmedic_collector::now().unix_millis();
    let params = OutageParams {
        min_devices: 3,
        window_ms: 10 * 60_000,
        advisory_ms: 600_000,
        categories: vec![Category::NoInternet, Category::DnsFailure],
    };
    let open = |agent: &str, offset_ms: i64, category| Inc {
        agent: agent.into(),
        id: "down".into(),
        category,
        started_ms: now - 180_000 + offset_ms,
        resolved: None,
    };
    // Two devices behind olt-7 fail: not yet an outage. Two behind olt-8: neither.
    store_incidents(
        &s,
        &[
            open("cpe-m1", 0, Category::NoInternet),
            open("cpe-m2", 20_000, Category::DnsFailure),
            open("cpe-m5", 0, Category::NoInternet),
            open("cpe-m6", 0, Category::NoInternet),
        ],
    )
    .await;
    let o = s
        .store()
        .correlate(&params, netmedic_collector::now())
        .await
        .unwrap();
    assert_eq!(o.events_created, 0);
    assert_eq!(upstream(&beat(&s, "cpe-m1", &tokens[0]).await), None);
    // A third one within T: one network event. Two processes correlating at once (a second
    // store on the same database) still make exactly one.
    store_incidents(&s, &[open("cpe-m3", 40_000, Category::NoInternet)]).await;
    let other = netmedic_collector::store::open(
        &netmedic_collector::config::StorageConfig::with_url(s.storage.clone()),
        netmedic_collector::store::OpenMode::MustExist,
    )
    .await
    .unwrap();
    let t = netmedic_collector::now();
    let (a, b2) = tokio::join!(s.store().correlate(&params, t), other.correlate(&params, t));
    let (a, b2) = (a.unwrap(), b2.unwrap());
    // The server's own correlation loop may have made the event first; either way, exactly
    // one exists (checked on the list below) and no pass made a second.
    assert!(a.events_created + b2.events_created <= 1, "{a:?} {b2:?}");
    other.close().await;
    let list: NetworkEventList = ok_json(s.get("/api/v1/network-events?members=true").await).await;
    assert_eq!(list.network_events.len(), 1, "{list:?}");
    let ev = &list.network_events[0];
    assert_eq!(
        (ev.access_node.as_str(), ev.devices, ev.incidents),
        ("olt-7", 3, 3)
    );
    assert!(ev.resolved_at.is_none());
    assert_eq!(ev.members.len(), 3);
    // Every agent behind olt-7 gets the advisory, also one without an incident; olt-8 does not.
    // When the second store (another process) made the event, a device this process answers
    // from its token cache sees it within the cache's documented 3-s bound, not at once: wait
    // for it with a deadline.
    for (i, token) in tokens.iter().enumerate() {
        let id = format!("cpe-m{}", i + 1);
        let want = (i < 4).then_some(ev.event_id.as_str());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let reply = beat(&s, &id, token).await;
            let got = upstream(&reply);
            if got == want || want.is_none() || std::time::Instant::now() > deadline {
                assert_eq!(got, want, "{id}");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    // A later incident behind the node joins the event; passes are idempotent.
    store_incidents(&s, &[open("cpe-m4", 60_000, Category::NoInternet)]).await;
    let o = s
        .store()
        .correlate(&params, netmedic_collector::now())
        .await
        .unwrap();
    assert_eq!((o.events_created, o.members_added), (0, 1));
    let o = s
        .store()
        .correlate(&params, netmedic_collector::now())
        .await
        .unwrap();
    assert_eq!(
        (o.events_created, o.members_added, o.events_resolved),
        (0, 0, 0)
    );
    assert_eq!(s.count("network_events").await, 1);
    // The event lasts while K = 3 of its devices still fail, and ends when fewer do: a device
    // whose own local fault keeps its incident open must not hold the advisory (and with it
    // its own healing) forever.
    let resolved: Vec<Inc> = ["cpe-m1", "cpe-m2", "cpe-m3", "cpe-m4"]
        .iter()
        .enumerate()
        .map(|(k, a)| Inc {
            resolved: Some(false),
            ..open(a, 20_000 * k as i64, Category::NoInternet)
        })
        .collect();
    store_incidents(&s, &resolved[..1]).await;
    let o = s
        .store()
        .correlate(&params, netmedic_collector::now())
        .await
        .unwrap();
    assert_eq!(o.events_resolved, 0, "three devices still fail");
    store_incidents(&s, &resolved[1..2]).await;
    let o = s
        .store()
        .correlate(&params, netmedic_collector::now())
        .await
        .unwrap();
    assert_eq!(o.events_resolved, 1, "two devices still fail: fewer than K");
    assert_eq!(upstream(&beat(&s, "cpe-m1", &tokens[0]).await), None);
    assert_eq!(
        upstream(&beat(&s, "cpe-m4", &tokens[3]).await),
        None,
        "a straggler still failing gets no advisory: its fault is local"
    );
    let active: NetworkEventList = ok_json(s.get("/api/v1/network-events?active=true").await).await;
    assert!(active.network_events.is_empty());
    // The report lists it.
    let r = report(&s, "").await;
    assert_eq!(r.network_events.len(), 1);
    assert!(r.network_events[0].resolved_at.is_some());
    s.stop().await;
}

// ---- fixes -------------------------------------------------------------------------------------

/// A customer with one contact shows it on the churn list; customers without incidents give the
/// baseline contact rate by the same window rule; a free-text reason is a strong link by the
/// shipped rules; groups under `min_group_n` have an in-range interval, no effect and show "too
/// few"; auto-healed vs escalated per category.
async fn churn_baseline_rules_and_small_groups(b: Backend) {
    let s = start(b).await;
    let t = ts(0).unix_millis();
    let hour = 3_600_000;
    import(
        &s,
        "subscribers",
        "",
        "device_id,customer_id\ncpe-f1,c1\ncpe-f2,c2\ncpe-f3,c3\n".into(),
    )
    .await;
    store_incidents(
        &s,
        &[
            Inc {
                agent: "cpe-f1".into(),
                id: "i1".into(),
                category: Category::DnsFailure,
                started_ms: t,
                resolved: Some(false),
            },
            Inc {
                agent: "cpe-f1".into(),
                id: "i2".into(),
                category: Category::DnsFailure,
                started_ms: t + 100 * hour,
                resolved: Some(true),
            },
        ],
    )
    .await;
    // c1: one contact in free text; c2 (no incident): contacts in slots 0, 0 and 1 of 72 h.
    import(
        &s,
        "contacts",
        "",
        format!(
            "contact_id,customer_id,created_at,reason\n\
             k1,c1,{},Websites do not load\n\
             k2,c2,{},billing\nk3,c2,{},billing\nk4,c2,{},billing\n",
            rfc(t + hour),
            rfc(t + 10 * hour),
            rfc(t + 20 * hour),
            rfc(t + 80 * hour),
        ),
    )
    .await;
    import(
        &s,
        "surveys",
        "",
        format!(
            "survey_id,customer_id,answered_at,nps\nsv1,c1,{},3\nsv2,c2,{},10\n",
            rfc(t + 2 * hour),
            rfc(t + 3 * hour)
        ),
    )
    .await;
    let r = report(&s, &format!("?from={}&to={}", rfc(t), rfc(t + 144 * hour))).await;
    // Churn: c1 has 2 incidents, a detractor answer and exactly one contact.
    assert_eq!(r.churn_risk.len(), 1, "{:?}", r.churn_risk);
    let c1 = &r.churn_risk[0];
    assert_eq!((c1.customer_id.as_str(), c1.contacts), ("c1", 1));
    assert_eq!(c1.score, 2 + 1 + 3);
    // Baseline: c2 and c3 × two 72 h slots of the 144 h period; c2 contacted in both.
    let base = r.contacts.baseline.unwrap();
    assert_eq!((base.k, base.n), (2, 4));
    let dns = &r.contacts.by_category[0];
    assert_eq!(dns.category, Category::DnsFailure);
    assert_eq!(
        (dns.contact_rate.unwrap().k, dns.contact_rate.unwrap().n),
        (1, 2)
    );
    assert!(dns.vs_baseline.is_some());
    // "Websites do not load" speaks about DNS.
    assert_eq!(dns.strong_links, 1);
    // Per category: the escalated DNS incident was followed by the contact, the healed one not.
    let (a, e) = (dns.auto_healed.unwrap(), dns.escalated.unwrap());
    assert_eq!(((a.k, a.n), (e.k, e.n)), ((0, 1), (1, 1)));
    let names: Vec<&str> = r
        .satisfaction
        .by_category_outcome
        .iter()
        .map(|g| g.group.as_str())
        .collect();
    assert_eq!(names, ["dns_failure escalated"]);
    // Small groups: one answer each side; the interval stays in range, no effect, "too few".
    let w = r.satisfaction.with_incident.satisfaction.nps.unwrap();
    assert_eq!((w.n, w.nps), (1, -100.0));
    assert!(
        w.ci_low >= -100.0 && w.ci_high <= 100.0 && w.ci_high > w.ci_low,
        "{w:?}"
    );
    assert!(r.satisfaction.with_incident.nps_effect.is_none());
    assert_eq!(r.min_group_n, 10);
    let text = netmedic_collector::analytics::render(&r);
    assert!(text.contains("too few (n=1)"), "{text}");
    assert!(text.contains("STRONG: incidents with a linked contact whose reason matches"));
    s.stop().await;
}

// ---- bulk enrolment ----------------------------------------------------------------------------

/// Runs the collector binary (on a blocking thread: the server shares this test's runtime).
async fn run_cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_netmedic-collector"))
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// `device import` enrols 30,000 devices from a file in one go (the figure is printed, never
/// asserted), writes their tokens to a new 0600 file, maps customers, and refuses a bad file or
/// an active device without writing anything.
async fn bulk_enrolment_of_a_fleet(b: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let s = start(b).await;
    let db = match &s.storage {
        netmedic_collector::config::StorageUrl::Postgres { url } => url.clone(),
        netmedic_collector::config::StorageUrl::Sqlite { .. } => {
            format!("sqlite://{}", s.db_path.display())
        }
    };
    let dir = s.dir.path();
    let fleet = dir.join("fleet.csv");
    let mut text = String::from("device_id,customer_id\n");
    for i in 0..30_000 {
        if i % 2 == 0 {
            writeln!(text, "bulk-{i:05},cust-{i:05}").unwrap();
        } else {
            writeln!(text, "bulk-{i:05}").unwrap();
        }
    }
    std::fs::write(&fleet, &text).unwrap();
    let tokens = dir.join("tokens.csv");
    let args = |file: &std::path::Path, out: &std::path::Path| -> Vec<String> {
        vec![
            "device".into(),
            "import".into(),
            file.display().to_string(),
            "--tokens-out".into(),
            out.display().to_string(),
            "--db".into(),
            db.clone(),
        ]
    };
    let out = run_cli(args(&fleet, &tokens)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The measured figure, for the record.
    println!("bulk enrolment ({b:?}): {}", stderr.trim());
    assert!(stderr.contains("enrolled 30000 devices"), "{stderr}");
    let meta = std::fs::metadata(&tokens).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let written = std::fs::read_to_string(&tokens).unwrap();
    let lines: Vec<&str> = written.lines().skip(1).collect();
    assert_eq!(lines.len(), 30_000);
    let (id, token) = lines[0].split_once(',').unwrap();
    assert_eq!(id, "bulk-00000");
    // The token works; the customer mapping is there.
    let reply = beat(&s, id, token).await;
    assert!(upstream(&reply).is_none());
    store_incidents(
        &s,
        &[Inc {
            agent: id.into(),
            id: "i-bulk".into(),
            category: Category::NoInternet,
            started_ms: ts(0).unix_millis(),
            resolved: None,
        }],
    )
    .await;
    assert_eq!(report(&s, "").await.customers_with_incidents, 1);
    // A bad line refuses the whole file and writes no tokens file.
    let bad = dir.join("bad.csv");
    std::fs::write(&bad, "fresh-1\nno spaces allowed\nfresh-2\nfresh-1\n").unwrap();
    let bad_tokens = dir.join("bad-tokens.csv");
    let out = run_cli(args(&bad, &bad_tokens)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("line 2:") && stderr.contains("line 4: device fresh-1 already on line 1"),
        "{stderr}"
    );
    assert!(!bad_tokens.exists());
    // An active device among new ones: nothing enrolled, the tokens file removed.
    std::fs::write(&bad, "fresh-3\nbulk-00007\n").unwrap();
    let out = run_cli(args(&bad, &bad_tokens)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("bulk-00007"), "{stderr}");
    assert!(!bad_tokens.exists());
    let out = run_cli(vec![
        "device".into(),
        "list".into(),
        "--json".into(),
        "--db".into(),
        db.clone(),
        "-n".into(),
        "10".into(),
    ])
    .await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("fresh-3"));
    // The tokens file is never overwritten.
    let out = run_cli(args(&fleet, &tokens)).await;
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&tokens).unwrap(), written);
    s.stop().await;
}
