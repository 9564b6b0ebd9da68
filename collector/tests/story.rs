//! The story suite: the same test bodies on SQLite and on a real PostgreSQL server the test
//! starts itself — enrol, report, replay, out-of-order events, bad tokens and other devices' ids,
//! revoke, offline detection, advisories, queries.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Backend, TestServer, action, backend_stories, batch, beat, detail, event, expect_error,
    expect_invalid_query, gzip, heartbeat, ok_json, report, ts,
};
use netmedic_collector::fleet::{DevicePage, DeviceView};
use netmedic_proto::{
    ActionId, ActionOutcome, Advisory, Category, CheckId, EventKind, HeartbeatReply, IncidentPage,
    IncidentStatus, ReportAck, SCHEMA_VERSION, Severity, paths,
};
use reqwest::StatusCode;

async fn start(backend: Backend) -> TestServer {
    backend.start(|_| {}).await
}

// Each story runs once per backend.
backend_stories!(
    enrol_report_replay_and_out_of_order_events,
    bad_tokens_other_devices_and_bad_bodies_store_nothing,
    revocation_takes_effect_at_once,
    devices_go_offline_after_three_silent_intervals_and_come_back,
    heartbeat_replies_carry_kill_switches_and_diagnostics_once,
    incidents_filter_by_subscriber_time_and_kind,
    incidents_list_in_each_order_and_page_through_it,
    one_group_isolates_a_bad_token_from_its_neighbours,
);

async fn list(s: &TestServer, query: &str) -> IncidentPage {
    ok_json(s.get(&format!("{}{query}", paths::INCIDENTS)).await).await
}

async fn enrol_report_replay_and_out_of_order_events(b: Backend) {
    let s = start(b).await;
    let token = s.enrol("cpe-0100").await;
    let mut opened = event("ev-1", "inc-1", 1, EventKind::Opened);
    opened.actions = vec![
        action(ActionId::RestoreRoute, ActionOutcome::Planned, 1),
        action(ActionId::RestoreRoute, ActionOutcome::Done, 2),
    ];
    let mut updated = event("ev-2", "inc-1", 2, EventKind::Updated);
    updated.actions = vec![action(ActionId::RestoreRoute, ActionOutcome::Verified, 3)];
    let resolved = event("ev-3", "inc-1", 3, EventKind::Resolved);

    // The resolution arrives first (the agent's spool replays out of order).
    let ack = report(&s, &token, &batch("cpe-0100", vec![resolved.clone()])).await;
    assert_eq!((ack.accepted, ack.duplicates), (1, 0));
    let d = detail(&s, "cpe-0100", "inc-1").await;
    assert_eq!(d.incident.status, IncidentStatus::Resolved);
    assert_eq!(d.incident.event_count, 1);

    let ack = report(
        &s,
        &token,
        &batch("cpe-0100", vec![updated.clone(), opened.clone()]),
    )
    .await;
    assert_eq!((ack.accepted, ack.duplicates), (2, 0));
    let d = detail(&s, "cpe-0100", "inc-1").await;
    assert_eq!(d.incident.status, IncidentStatus::Resolved);
    assert_eq!(d.incident.event_count, 3);
    assert_eq!(d.incident.auto_healed, Some(true));
    assert_eq!(d.incident.summary, "no default route (event 3)");
    let outcomes: Vec<ActionOutcome> = d.incident.actions.iter().map(|a| a.outcome).collect();
    assert_eq!(
        outcomes,
        [
            ActionOutcome::Planned,
            ActionOutcome::Done,
            ActionOutcome::Verified
        ]
    );
    let timeline: Vec<(u64, EventKind)> = d.events.iter().map(|e| (e.seq, e.kind)).collect();
    assert_eq!(
        timeline,
        [
            (1, EventKind::Opened),
            (2, EventKind::Updated),
            (3, EventKind::Resolved)
        ]
    );
    assert_eq!(d.events[1].at, ts(20));
    assert_eq!(d.events[0].action_count, 2);

    // A replay of everything changes nothing and gets the same acked ids.
    let rows = s.total_rows().await;
    let page = list(&s, "").await;
    let replay = batch("cpe-0100", vec![opened, updated, resolved]);
    let first = report(&s, &token, &replay).await;
    let second = report(&s, &token, &replay).await;
    assert_eq!((first.accepted, first.duplicates), (0, 3));
    assert_eq!(first, second);
    assert_eq!(first.acked_event_ids, ["ev-1", "ev-2", "ev-3"]);
    assert_eq!(s.total_rows().await, rows);
    assert_eq!(list(&s, "").await, page);
    assert_eq!(s.count("incidents").await, 1);
    s.stop().await;
}

async fn bad_tokens_other_devices_and_bad_bodies_store_nothing(b: Backend) {
    let s = start(b).await;
    let token_a = s.enrol("cpe-a").await;
    let _token_b = s.enrol("cpe-b").await;
    let rows = s.total_rows().await;
    let good_b = batch("cpe-b", vec![event("ev-1", "inc-1", 1, EventKind::Opened)]);

    // Another device's id: 403 naming both.
    let e = expect_error(
        s.post_as(paths::REPORTS, &good_b, Some(&token_a)).await,
        StatusCode::FORBIDDEN,
        "wrong_device",
    )
    .await;
    assert!(
        e.reason.contains("cpe-a") && e.reason.contains("cpe-b"),
        "{}",
        e.reason
    );
    expect_error(
        s.post_as(paths::HEARTBEATS, &heartbeat("cpe-b"), Some(&token_a))
            .await,
        StatusCode::FORBIDDEN,
        "wrong_device",
    )
    .await;
    // No token, a malformed one, an unknown one.
    expect_error(
        s.post_as(paths::REPORTS, &good_b, None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    expect_error(
        s.post_as(paths::REPORTS, &good_b, Some("xyz")).await,
        StatusCode::UNAUTHORIZED,
        "malformed_token",
    )
    .await;
    let unknown = netmedic_collector::auth::new_token().unwrap();
    expect_error(
        s.post_as(paths::HEARTBEATS, &heartbeat("cpe-a"), Some(&unknown))
            .await,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;

    // A wrong schema version and a missing field, with a valid token.
    let mut v = serde_json::to_value(batch(
        "cpe-a",
        vec![event("ev-2", "inc-2", 1, EventKind::Opened)],
    ))
    .unwrap();
    v["schema_version"] = 99.into();
    let e = expect_error(
        s.post_as(paths::REPORTS, &v, Some(&token_a)).await,
        StatusCode::BAD_REQUEST,
        "unsupported_schema_version",
    )
    .await;
    assert!(e.reason.contains("99"), "{}", e.reason);
    v["schema_version"] = SCHEMA_VERSION.into();
    v["events"][0]
        .as_object_mut()
        .unwrap()
        .remove("incident_id");
    let e = expect_error(
        s.post_as(paths::REPORTS, &v, Some(&token_a)).await,
        StatusCode::BAD_REQUEST,
        "invalid_report",
    )
    .await;
    assert!(e.reason.contains("incident_id"), "{}", e.reason);

    // A 10 MB body, plain and as a gzip bomb (10 MB of zeros inflating past the limit).
    let mut big = batch("cpe-a", vec![event("ev-3", "inc-3", 1, EventKind::Opened)]);
    big.events[0]
        .evidence
        .insert("blob".into(), "x".repeat(10_000_000));
    expect_error(
        s.post_as(paths::REPORTS, &big, Some(&token_a)).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
    )
    .await;
    let bomb = gzip(&big, flate2::Compression::best());
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let resp = s.post_encoded(paths::REPORTS, &token_a, "gzip", bomb).await;
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;

    assert_eq!(s.total_rows().await, rows, "nothing may be stored");

    // A good gzip body is accepted.
    let good_a = batch("cpe-a", vec![event("ev-4", "inc-4", 1, EventKind::Opened)]);
    let body = gzip(&good_a, flate2::Compression::default());
    let resp = s.post_encoded(paths::REPORTS, &token_a, "gzip", body).await;
    let ack: ReportAck = ok_json(resp).await;
    assert_eq!(ack.accepted, 1);
    s.stop().await;
}

async fn revocation_takes_effect_at_once(b: Backend) {
    let s = start(b).await;
    let old = s.enrol("cpe-r").await;
    beat(&s, "cpe-r", &old).await;
    assert!(
        s.store()
            .revoke_device("cpe-r", netmedic_collector::now())
            .await
            .unwrap()
    );
    let e = expect_error(
        s.post_as(paths::HEARTBEATS, &heartbeat("cpe-r"), Some(&old))
            .await,
        StatusCode::UNAUTHORIZED,
        "revoked_token",
    )
    .await;
    assert!(e.reason.contains("cpe-r"), "{}", e.reason);
    expect_error(
        s.post_as(
            paths::REPORTS,
            &batch("cpe-r", vec![event("ev-1", "inc-1", 1, EventKind::Opened)]),
            Some(&old),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "revoked_token",
    )
    .await;
    assert_eq!(s.count("events").await, 0);
    // Re-enrolment issues a new token; the old one stays refused.
    let new = s.enrol("cpe-r").await;
    assert_ne!(new, old);
    beat(&s, "cpe-r", &new).await;
    expect_error(
        s.post_as(paths::HEARTBEATS, &heartbeat("cpe-r"), Some(&old))
            .await,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    s.stop().await;
}

async fn devices(s: &TestServer, query: &str) -> Vec<(String, String)> {
    let page: DevicePage = ok_json(s.get(&format!("/api/v1/devices{query}")).await).await;
    page.devices
        .into_iter()
        .map(|d| (d.agent_id, d.state))
        .collect()
}

async fn devices_go_offline_after_three_silent_intervals_and_come_back(b: Backend) {
    let s = start(b).await; // heartbeat interval 60 s (tests/common)
    let on = s.enrol("cpe-on").await;
    let off = s.enrol("cpe-off").await;
    s.enrol("cpe-never").await;
    beat(&s, "cpe-on", &on).await;
    let reply = beat(&s, "cpe-off", &off).await;
    assert_eq!(reply.heartbeat_interval_secs, 60);
    let all = devices(&s, "").await;
    assert!(all.contains(&("cpe-on".into(), "online".into())), "{all:?}");
    assert!(
        all.contains(&("cpe-off".into(), "online".into())),
        "{all:?}"
    );
    assert!(
        all.contains(&("cpe-never".into(), "never_seen".into())),
        "{all:?}"
    );

    // Just under 3 intervals of silence: still online. Just over: offline.
    s.exec("UPDATE devices SET last_seen_at = last_seen_at - 170000 WHERE agent_id = 'cpe-off'")
        .await;
    assert_eq!(
        devices(&s, "?state=offline").await,
        Vec::<(String, String)>::new()
    );
    s.exec("UPDATE devices SET last_seen_at = last_seen_at - 20000 WHERE agent_id = 'cpe-off'")
        .await;
    assert_eq!(
        devices(&s, "?state=offline").await,
        [("cpe-off".to_string(), "offline".to_string())]
    );
    let one: DeviceView = ok_json(s.get("/api/v1/devices/cpe-off").await).await;
    assert_eq!(one.state, "offline");
    assert_eq!(
        one.last_heartbeat.map(|h| h.agent_version).as_deref(),
        Some("0.1.0")
    );

    // It comes back.
    beat(&s, "cpe-off", &off).await;
    assert_eq!(
        devices(&s, "?state=offline").await,
        Vec::<(String, String)>::new()
    );
    let online: Vec<String> = devices(&s, "?state=online")
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    assert_eq!(online, ["cpe-off", "cpe-on"]);
    s.store()
        .revoke_device("cpe-never", netmedic_collector::now())
        .await
        .unwrap();
    assert_eq!(
        devices(&s, "?state=revoked").await,
        [("cpe-never".to_string(), "revoked".to_string())]
    );
    expect_invalid_query(&s, "/api/v1/devices?state=sleepy").await;
    s.stop().await;
}

fn kill_reason(r: &HeartbeatReply) -> Option<&str> {
    r.advisories.iter().find_map(|a| match a {
        Advisory::KillSwitch { reason } => Some(reason.as_str()),
        _ => None,
    })
}

async fn put_kill(s: &TestServer, scope: &str, target: Option<&str>, reason: &str) {
    let resp = s
        .client
        .put(s.url("/api/v1/killswitches"))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({"scope": scope, "target": target, "reason": reason}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK, "{:?}", resp.text().await);
}

async fn delete_kill(s: &TestServer, query: &str) -> StatusCode {
    s.client
        .delete(s.url(&format!("/api/v1/killswitches?{query}")))
        .bearer_auth(&s.admin_token)
        .send()
        .await
        .unwrap()
        .status()
}

async fn heartbeat_replies_carry_kill_switches_and_diagnostics_once(b: Backend) {
    let s = start(b).await;
    let k1 = s.enrol_in("cpe-k1", Some("north")).await;
    let k2 = s.enrol_in("cpe-k2", Some("south")).await;
    assert!(beat(&s, "cpe-k1", &k1).await.advisories.is_empty());

    put_kill(&s, "device", Some("cpe-k1"), "line work").await;
    assert_eq!(
        kill_reason(&beat(&s, "cpe-k1", &k1).await),
        Some("line work")
    );
    assert_eq!(kill_reason(&beat(&s, "cpe-k2", &k2).await), None);

    put_kill(&s, "region", Some("south"), "storm").await;
    assert_eq!(kill_reason(&beat(&s, "cpe-k2", &k2).await), Some("storm"));
    put_kill(&s, "fleet", None, "bad release").await;
    // The most specific switch gives the reason.
    assert_eq!(
        kill_reason(&beat(&s, "cpe-k1", &k1).await),
        Some("line work")
    );
    assert_eq!(
        delete_kill(&s, "scope=device&target=cpe-k1").await,
        StatusCode::OK
    );
    assert_eq!(
        delete_kill(&s, "scope=device&target=cpe-k1").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        kill_reason(&beat(&s, "cpe-k1", &k1).await),
        Some("bad release")
    );
    assert_eq!(delete_kill(&s, "scope=fleet").await, StatusCode::OK);
    assert_eq!(kill_reason(&beat(&s, "cpe-k1", &k1).await), None);
    // The subscribers table's region wins over the enrolment region.
    s.exec(
        "INSERT INTO subscribers (agent_id, customer_id, region) VALUES ('cpe-k1', 'c-1', 'south')",
    )
    .await;
    assert_eq!(kill_reason(&beat(&s, "cpe-k1", &k1).await), Some("storm"));
    // An empty selector never means "all".
    let resp = s
        .client
        .put(s.url("/api/v1/killswitches"))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({"scope": "region", "reason": "x"}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_body").await;

    // Diagnostics: queued, delivered in exactly one reply.
    let resp = s
        .client
        .post(s.url("/api/v1/devices/cpe-k2/diagnostics"))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({"checks": ["dns", "icmp"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let queued: serde_json::Value = resp.json().await.unwrap();
    let request_id = queued["request_id"].as_str().unwrap().to_owned();
    let reply = beat(&s, "cpe-k2", &k2).await;
    assert!(
        reply.advisories.contains(&Advisory::Diagnostics {
            request_id: request_id.clone(),
            checks: vec![CheckId::Icmp, CheckId::Dns],
        }),
        "{reply:?}"
    );
    let again = beat(&s, "cpe-k2", &k2).await;
    assert!(
        !again
            .advisories
            .iter()
            .any(|a| matches!(a, Advisory::Diagnostics { .. })),
        "{again:?}"
    );
    let resp = s
        .client
        .post(s.url("/api/v1/devices/cpe-nobody/diagnostics"))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({"checks": ["dns"]}))
        .send()
        .await
        .unwrap();
    expect_error(resp, StatusCode::NOT_FOUND, "no_such_device").await;
    s.stop().await;
}

async fn incidents_filter_by_subscriber_time_and_kind(b: Backend) {
    let s = start(b).await;
    s.exec(
        "INSERT INTO subscribers (agent_id, customer_id, region, access_node, plan, cpe_model, firmware)
         VALUES ('cpe-d1', 'cust-1', 'north', 'olt-1', 'fiber-500', 'X1', '24.10'),
                ('cpe-d2', 'cust-2', 'south', 'olt-2', 'dsl-50', 'X2', '23.05')",
    )
    .await;
    s.enrol("cpe-d1").await;
    s.enrol("cpe-d2").await;
    s.enrol_in("cpe-d3", Some("north")).await;
    let mk = |id: &str, inc: &str, check: CheckId, cat: Category, start: i64, kind: EventKind| {
        let mut e = event(id, inc, 1, kind);
        e.check = check;
        e.category = cat;
        e.started_at = ts(start);
        e.at = ts(start + 5);
        e
    };
    let reports = [
        (
            "cpe-d1",
            mk(
                "e1",
                "inc-a",
                CheckId::Dns,
                Category::DnsFailure,
                0,
                EventKind::Opened,
            ),
        ),
        (
            "cpe-d1",
            mk(
                "e2",
                "inc-b",
                CheckId::DefaultRoute,
                Category::NoInternet,
                100,
                EventKind::Resolved,
            ),
        ),
        (
            "cpe-d2",
            mk(
                "e3",
                "inc-c",
                CheckId::Dns,
                Category::DnsFailure,
                200,
                EventKind::Opened,
            ),
        ),
        (
            "cpe-d3",
            mk(
                "e4",
                "inc-d",
                CheckId::Icmp,
                Category::SlowOrLossy,
                300,
                EventKind::Opened,
            ),
        ),
    ];
    for (agent, e) in reports {
        let resp = s.post_json(paths::REPORTS, &batch(agent, vec![e])).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let ids = |p: IncidentPage| -> Vec<String> {
        p.incidents.into_iter().map(|i| i.incident_id).collect()
    };
    assert_eq!(
        ids(list(&s, "").await),
        ["inc-d", "inc-c", "inc-b", "inc-a"]
    );
    assert_eq!(
        ids(list(&s, "?customer_id=cust-1").await),
        ["inc-b", "inc-a"]
    );
    assert_eq!(
        ids(list(&s, "?region=north").await),
        ["inc-d", "inc-b", "inc-a"]
    );
    assert_eq!(ids(list(&s, "?access_node=olt-2").await), ["inc-c"]);
    assert_eq!(
        ids(list(&s, "?category=dns_failure").await),
        ["inc-c", "inc-a"]
    );
    assert_eq!(ids(list(&s, "?check=icmp").await), ["inc-d"]);
    assert_eq!(ids(list(&s, "?status=resolved").await), ["inc-b"]);
    assert_eq!(ids(list(&s, "?agent_id=cpe-d2").await), ["inc-c"]);
    let q = format!("?from={}&to={}", ts(100), ts(300));
    assert_eq!(ids(list(&s, &q).await), ["inc-c", "inc-b"]);
    let q = format!("?from={}&category=dns_failure&region=south", ts(1));
    assert_eq!(ids(list(&s, &q).await), ["inc-c"]);
    // Pagination walks every incident once.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = list(&s, &format!("?limit=1&cursor={cursor}")).await;
        seen.extend(page.incidents.iter().map(|i| i.incident_id.clone()));
        match page.next_cursor {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(seen, ["inc-d", "inc-c", "inc-b", "inc-a"]);
    let e = expect_invalid_query(&s, "/api/v1/incidents?category=sad&from=yesterday").await;
    assert_eq!(e.violations.len(), 2, "{e:?}");
    s.stop().await;
}

/// Every order (newest, oldest, most severe first) pages through every incident exactly once,
/// with ties on the sort key broken the same way on both backends; a cursor of one order is
/// refused in another.
async fn incidents_list_in_each_order_and_page_through_it(b: Backend) {
    let s = start(b).await;
    let rows = [
        ("cpe-s1", "inc-1", Severity::Minor, 0),
        ("cpe-s1", "inc-2", Severity::Critical, 100),
        ("cpe-s2", "inc-3", Severity::Major, 200),
        ("cpe-s2", "inc-4", Severity::Critical, 300),
        ("cpe-s1", "inc-5", Severity::Minor, 400),
        // Same severity and start on two devices: the device id breaks the tie.
        ("cpe-s1", "inc-6", Severity::Major, 200),
    ];
    for (n, (agent, inc, sev, start)) in rows.into_iter().enumerate() {
        s.enrol(agent).await;
        let mut e = event(&format!("e{n}"), inc, 1, EventKind::Opened);
        e.severity = sev;
        e.started_at = ts(start);
        e.at = ts(start + 5);
        let resp = s.post_json(paths::REPORTS, &batch(agent, vec![e])).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let walk = |order: &'static str, limit: u32| {
        let s = &s;
        async move {
            let mut seen = Vec::new();
            let mut cursor = String::new();
            loop {
                let page = list(s, &format!("?order={order}&limit={limit}&cursor={cursor}")).await;
                seen.extend(page.incidents.iter().map(|i| i.incident_id.clone()));
                match page.next_cursor {
                    Some(c) => cursor = c,
                    None => break seen,
                }
            }
        }
    };
    let newest = ["inc-5", "inc-4", "inc-3", "inc-6", "inc-2", "inc-1"];
    let severity = ["inc-4", "inc-2", "inc-3", "inc-6", "inc-5", "inc-1"];
    let mut oldest = newest;
    oldest.reverse();
    for limit in [1, 2, 500] {
        assert_eq!(
            walk("newest", limit).await,
            newest,
            "newest, {limit} a page"
        );
        assert_eq!(
            walk("oldest", limit).await,
            oldest,
            "oldest, {limit} a page"
        );
        assert_eq!(
            walk("severity", limit).await,
            severity,
            "severity, {limit} a page"
        );
    }
    // Filters apply in severity order too.
    let page = list(&s, "?order=severity&agent_id=cpe-s1").await;
    let ids: Vec<_> = page
        .incidents
        .iter()
        .map(|i| i.incident_id.as_str())
        .collect();
    assert_eq!(ids, ["inc-2", "inc-6", "inc-5", "inc-1"]);

    // A cursor belongs to its order.
    let first = list(&s, "?order=severity&limit=2").await;
    let cursor = first.next_cursor.expect("more than 2 incidents");
    let e = expect_invalid_query(
        &s,
        &format!("/api/v1/incidents?order=newest&cursor={cursor}"),
    )
    .await;
    assert_eq!(e.violations.len(), 1, "{e:?}");
    assert_eq!(e.violations[0].field, "cursor", "{e:?}");
    let e = expect_invalid_query(&s, "/api/v1/incidents?order=loudest").await;
    assert_eq!(e.violations[0].field, "order", "{e:?}");
    assert!(e.violations[0].problem.contains("severity"), "{e:?}");
    s.stop().await;
}

/// Group commit must not let one request's good token vouch for another's bad one: the same
/// device twice in one write group, once with its token and once with a wrong one.
async fn one_group_isolates_a_bad_token_from_its_neighbours(b: Backend) {
    use netmedic_collector::store::{Auth, Denied, WriteItem, WriteKind, WriteOk};
    let s = start(b).await;
    let good = s.enrol("cpe-g").await;
    let other = s.enrol("cpe-h").await;
    let hash = |t: &str| Auth::TokenSha256(netmedic_collector::auth::token_sha256(t));
    let item = |auth: Auth, kind: WriteKind| WriteItem {
        auth,
        kind,
        received_at: netmedic_collector::now(),
    };
    let items = vec![
        item(hash(&good), WriteKind::Heartbeat(heartbeat("cpe-g"))),
        item(hash(&other), WriteKind::Heartbeat(heartbeat("cpe-g"))),
        item(
            hash(&other),
            WriteKind::report(batch(
                "cpe-g",
                vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
            ))
            .expect("encodes"),
        ),
        item(
            hash(&good),
            WriteKind::report(batch(
                "cpe-g",
                vec![event("ev-2", "inc-2", 1, EventKind::Opened)],
            ))
            .expect("encodes"),
        ),
    ];
    let results = s.store().write_group(&items).await.unwrap();
    assert!(
        matches!(results[0], Ok(WriteOk::Heartbeat(_))),
        "{results:?}"
    );
    assert!(
        matches!(&results[1], Err(Denied::WrongDevice { token_device, .. }) if token_device == "cpe-h"),
        "{results:?}"
    );
    assert!(
        matches!(results[2], Err(Denied::WrongDevice { .. })),
        "{results:?}"
    );
    assert!(
        matches!(&results[3], Ok(WriteOk::Report(a)) if a.accepted == 1),
        "{results:?}"
    );
    assert_eq!(s.count("events").await, 1);
    s.stop().await;
}
