//! Hardening of the ingest and import paths against a real collector (SQLite and PostgreSQL):
//! one incident cannot grow without limit, device times far from the collector clock are
//! refused, and a broken import line costs only its own row.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestServer, backend_stories, batch, event};
use netmedic_collector::import::ImportReport;
use netmedic_collector::store::assemble::{MAX_ACTIONS_PER_INCIDENT, MAX_EVENTS_PER_INCIDENT};
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, ErrorBody, EventKind, IncidentEvent, ReportAck,
    Timestamp, paths,
};
use reqwest::StatusCode;

backend_stories!(
    one_incident_is_bounded_and_can_still_resolve,
    times_far_from_the_collector_clock_are_refused,
    a_broken_import_line_costs_only_its_own_row,
);

async fn post(s: &TestServer, events: Vec<IncidentEvent>) -> reqwest::Response {
    s.post_json(paths::REPORTS, &batch("cpe-0001", events))
        .await
}

async fn ok_ack(resp: reqwest::Response) -> ReportAck {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn one_incident_is_bounded_and_can_still_resolve(b: Backend) {
    let s = b.start(|_| {}).await;
    let cap = u64::from(MAX_EVENTS_PER_INCIDENT);
    // cap + 200 updates in batches of 400: every event is acknowledged (the agent's spool
    // drains), but only `cap` are stored.
    let mut seq = 1;
    let mut acked = 0;
    while seq <= cap + 200 {
        let events: Vec<_> = (seq..(seq + 400).min(cap + 201))
            .map(|n| {
                let kind = if n == 1 {
                    EventKind::Opened
                } else {
                    EventKind::Updated
                };
                event(&format!("e{n}"), "runaway", n, kind)
            })
            .collect();
        seq += events.len() as u64;
        let ack = ok_ack(post(&s, events).await).await;
        acked += ack.acked_event_ids.len();
    }
    assert_eq!(acked as u64, cap + 200);
    assert_eq!(s.count("events").await as u64, cap);
    // The resolution still lands past the limit, once.
    let ack = ok_ack(
        post(
            &s,
            vec![
                event("r1", "runaway", seq, EventKind::Resolved),
                event("u-late", "runaway", seq + 1, EventKind::Updated),
            ],
        )
        .await,
    )
    .await;
    assert_eq!((ack.accepted, ack.duplicates), (1, 1), "{ack:?}");
    let view: serde_json::Value = s
        .get("/api/v1/incidents/cpe-0001/runaway")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["status"], "resolved", "{view}");
    assert_eq!(view["event_count"], cap + 1, "{view}");
    // Action trails are bounded too.
    let mut n = 0;
    for k in 0..(MAX_ACTIONS_PER_INCIDENT / 64 + 2) {
        let mut e = event(
            &format!("a{k}"),
            "noisy",
            u64::from(k) + 1,
            EventKind::Updated,
        );
        e.actions = (0..64)
            .map(|i| ActionRecord {
                action: ActionId::RestoreRoute,
                outcome: ActionOutcome::Failed,
                at: e.at,
                detail: format!("try {i}"),
            })
            .collect();
        n += 64;
        ok_ack(post(&s, vec![e]).await).await;
    }
    assert!(n > MAX_ACTIONS_PER_INCIDENT);
    assert_eq!(
        s.count("incident_actions").await,
        i64::from(MAX_ACTIONS_PER_INCIDENT)
    );
    s.stop().await;
}

async fn times_far_from_the_collector_clock_are_refused(b: Backend) {
    let s = b.start(|_| {}).await;
    let now = netmedic_collector::now();
    let at = |ms: i64| Timestamp::from_unix_millis(ms).unwrap();
    let cases = [
        ("events[0].started_at", at(0), now),
        ("events[0].at", now, at(253_402_300_799_999)),
        ("events[0].at", now, now.add_millis(2 * 3_600_000)),
    ];
    for (i, (field, started, when)) in cases.into_iter().enumerate() {
        let mut e = event(&format!("t{i}"), "clock", 1, EventKind::Opened);
        e.started_at = started;
        e.at = when;
        let resp = post(&s, vec![e]).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let body: ErrorBody = resp.json().await.unwrap();
        assert_eq!(body.error, "invalid_report");
        assert!(
            body.violations.iter().any(|v| v.field == field),
            "{field}: {body:?}"
        );
    }
    assert_eq!(s.count("events").await, 0);
    // Inside the window (a little skew, an event from last month) is accepted.
    let mut e = event("t-ok", "clock", 1, EventKind::Opened);
    e.started_at = now.add_millis(-30 * 86_400_000);
    e.at = now.add_millis(60_000);
    ok_ack(post(&s, vec![e]).await).await;
    assert_eq!(s.count("events").await, 1);
    s.stop().await;
}

async fn import(s: &TestServer, kind: &str, query: &str, body: Vec<u8>) -> ImportReport {
    let resp = s
        .client
        .post(s.url(&format!("/api/v1/import/{kind}{query}")))
        .bearer_auth(&s.admin_token)
        .header("content-type", "text/csv")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn a_broken_import_line_costs_only_its_own_row(b: Backend) {
    let s = b.start(|_| {}).await;
    // JSON Lines: invalid UTF-8 on line 2 must not swallow line 3.
    let mut jsonl = Vec::new();
    for (i, bad) in [(1, false), (2, true), (3, false), (4, false)] {
        jsonl.extend_from_slice(
            format!("{{\"device_id\":\"cpe-{i}\",\"customer_id\":\"c{i}\",\"plan\":\"").as_bytes(),
        );
        if bad {
            jsonl.extend_from_slice(b"\xff\xfe");
        }
        jsonl.extend_from_slice(b"p\"}\n");
    }
    let r = import(&s, "subscribers", "?format=jsonl", jsonl).await;
    let lines: Vec<u64> = r.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!((r.rows, r.taken, lines), (4, 3, vec![2]), "{r:?}");
    assert!(r.bad_rows[0].reason.contains("UTF-8"), "{r:?}");
    assert_eq!(s.count("subscribers").await, 3);
    // CSV: an unterminated quote on line 3 is reported there; lines 4..7 are still read, a
    // legitimate multi-line field included.
    let csv = "survey_id,customer_id,answered_at,nps,csat,channel,verbatim\n\
               s1,c1,2026-01-02T03:04:05Z,9,,email,fine\n\
               s2,c1,2026-01-02T03:04:05Z,9,,email,\"never closed\n\
               s3,c2,2026-01-02T03:04:05Z,7,,sms,\n\
               s4,c2,2026-01-02T03:04:05Z,8,,sms,\"two\nlines\"\n\
               s5,c3,2026-01-02T03:04:05Z,eleven,,,\n\
               s6,c3,2026-01-02T03:04:05Z,10,,,\n";
    let r = import(&s, "surveys", "", csv.as_bytes().to_vec()).await;
    let lines: Vec<u64> = r.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!((r.rows, r.taken, lines), (6, 4, vec![3, 7]), "{r:?}");
    assert!(r.bad_rows[0].reason.contains("unterminated"), "{r:?}");
    assert!(r.bad_rows[1].reason.contains("nps"), "{r:?}");
    assert_eq!(s.count("surveys").await, 4);
    // At the very end of the file too.
    let tail = "survey_id,customer_id,answered_at,nps\n\
                t1,c1,2026-01-02T03:04:05Z,9\n\
                t2,c1,\"2026-01-02T03:04:05Z,9\n";
    let r = import(&s, "surveys", "", tail.as_bytes().to_vec()).await;
    let lines: Vec<u64> = r.bad_rows.iter().map(|b| b.line).collect();
    assert_eq!((r.taken, lines), (1, vec![3]), "{r:?}");
    s.stop().await;
}
