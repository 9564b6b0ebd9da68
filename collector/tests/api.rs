//! The HTTP API end to end: the real server on 127.0.0.1:0 with a SQLite file in a tempdir.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestServer, action, batch, event, expect_error, expect_invalid_query, heartbeat, ts};
use netmedic_proto::{
    ActionId, ActionOutcome, ErrorBody, EventKind, HeartbeatReply, IncidentPage, IncidentStatus,
    IncidentView, ReportAck, SCHEMA_VERSION, paths,
};
use reqwest::StatusCode;

async fn list(s: &TestServer, query: &str) -> IncidentPage {
    let resp = s.get(&format!("{}{query}", paths::INCIDENTS)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn ack(s: &TestServer, b: &netmedic_proto::ReportBatch) -> ReportAck {
    let resp = s.post_json(paths::REPORTS, b).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

#[tokio::test]
async fn a_report_is_stored_and_listed() {
    let s = TestServer::start().await;
    let mut opened = event("ev-1", "inc-1", 1, EventKind::Opened);
    opened.evidence.insert("gateway".into(), "192.0.2.1".into());
    opened.actions = vec![
        action(ActionId::RestoreRoute, ActionOutcome::Planned, 1),
        action(ActionId::RestoreRoute, ActionOutcome::Done, 2),
    ];
    let a = ack(&s, &batch("cpe-0001", vec![opened])).await;
    assert_eq!(a.accepted, 1);
    assert_eq!(a.duplicates, 0);
    assert_eq!(a.acked_event_ids, vec!["ev-1".to_string()]);

    let page = list(&s, "").await;
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(page.next_cursor, None);
    let v = &page.incidents[0];
    assert_eq!(v.agent_id, "cpe-0001");
    assert_eq!(v.incident_id, "inc-1");
    assert_eq!(v.status, IncidentStatus::Open);
    assert_eq!(v.started_at, ts(0));
    assert_eq!(v.auto_healed, None);
    assert_eq!(v.event_count, 1);
    assert_eq!(v.actions.len(), 2);
    assert_eq!(
        v.evidence.get("gateway").map(String::as_str),
        Some("192.0.2.1")
    );

    let one: IncidentView = s
        .get("/api/v1/incidents/cpe-0001/inc-1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(&one, v);

    assert_eq!(list(&s, "?status=open").await.incidents.len(), 1);
    assert_eq!(list(&s, "?status=resolved").await.incidents.len(), 0);
    assert_eq!(
        list(&s, "?check=default_route&agent_id=cpe-0001")
            .await
            .incidents
            .len(),
        1
    );
    assert_eq!(list(&s, "?check=dns").await.incidents.len(), 0);
    assert_eq!(list(&s, "?agent_id=cpe-0002").await.incidents.len(), 0);
    s.stop().await;
}

#[tokio::test]
async fn a_replayed_batch_changes_nothing_and_is_acked_again() {
    let s = TestServer::start().await;
    let mut opened = event("ev-1", "inc-1", 1, EventKind::Opened);
    opened.actions = vec![action(ActionId::RenewDhcp, ActionOutcome::Done, 1)];
    let b = batch(
        "cpe-0001",
        vec![opened, event("ev-2", "inc-1", 2, EventKind::Updated)],
    );
    let first = ack(&s, &b).await;
    assert_eq!((first.accepted, first.duplicates), (2, 0));
    let before = list(&s, "").await;
    let rows_before = s.total_rows().await;

    let second = ack(&s, &b).await;
    assert_eq!((second.accepted, second.duplicates), (0, 2));
    assert_eq!(second.acked_event_ids, first.acked_event_ids);
    assert_eq!(list(&s, "").await, before);
    assert_eq!(before.incidents[0].event_count, 2);
    assert_eq!(s.total_rows().await, rows_before);
    assert_eq!(s.count("events").await, 2);
    assert_eq!(s.count("incident_actions").await, 1);

    // A batch mixing an old and a new event stores only the new one, and acks both.
    let mixed = batch(
        "cpe-0001",
        vec![
            event("ev-2", "inc-1", 2, EventKind::Updated),
            event("ev-3", "inc-1", 3, EventKind::Resolved),
        ],
    );
    let third = ack(&s, &mixed).await;
    assert_eq!((third.accepted, third.duplicates), (1, 1));
    assert_eq!(third.acked_event_ids, vec!["ev-2", "ev-3"]);
    let v = &list(&s, "").await.incidents[0];
    assert_eq!(v.event_count, 3);
    assert_eq!(v.status, IncidentStatus::Resolved);
    s.stop().await;
}

#[tokio::test]
async fn events_arriving_out_of_order_assemble_the_same_incident() {
    let s = TestServer::start().await;
    let mut resolved = event("ev-3", "inc-9", 3, EventKind::Resolved);
    resolved.auto_healed = Some(true);
    resolved.summary = "default route restored".into();
    resolved.actions = vec![action(ActionId::RestoreRoute, ActionOutcome::Verified, 25)];
    ack(&s, &batch("cpe-0007", vec![resolved])).await;

    let v = &list(&s, "").await.incidents[0];
    assert_eq!(v.status, IncidentStatus::Resolved);
    assert_eq!(v.started_at, ts(0));
    assert_eq!(v.resolved_at, Some(ts(30)));
    assert_eq!(v.auto_healed, Some(true));

    let mut opened = event("ev-1", "inc-9", 1, EventKind::Opened);
    opened.evidence.insert("gateway".into(), "192.0.2.1".into());
    opened.actions = vec![action(ActionId::RestoreRoute, ActionOutcome::Done, 5)];
    ack(&s, &batch("cpe-0007", vec![opened])).await;

    let v: IncidentView = s
        .get("/api/v1/incidents/cpe-0007/inc-9")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v.status,
        IncidentStatus::Resolved,
        "a late `opened` must not reopen it"
    );
    assert_eq!(
        v.summary, "default route restored",
        "summary of the highest seq"
    );
    assert_eq!(
        v.evidence.get("gateway").map(String::as_str),
        Some("192.0.2.1")
    );
    assert_eq!(v.auto_healed, Some(true));
    assert_eq!(v.resolved_at, Some(ts(30)));
    assert_eq!(v.event_count, 2);
    let trail: Vec<_> = v.actions.iter().map(|a| a.outcome).collect();
    assert_eq!(
        trail,
        vec![ActionOutcome::Done, ActionOutcome::Verified],
        "ordered by seq"
    );
    s.stop().await;
}

#[tokio::test]
async fn pages_cover_every_incident_once() {
    let s = TestServer::start().await;
    let mut events = Vec::new();
    for i in 0..5u64 {
        let mut e = event(
            &format!("ev-{i}"),
            &format!("inc-{i}"),
            i + 1,
            EventKind::Opened,
        );
        e.started_at = ts(i as i64);
        e.at = ts(100);
        events.push(e);
    }
    ack(&s, &batch("cpe-0001", events)).await;
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_string();
    loop {
        let page = list(&s, &query).await;
        assert!(page.incidents.len() <= 2);
        seen.extend(page.incidents.iter().map(|v| v.incident_id.clone()));
        match page.next_cursor {
            Some(c) => query = format!("?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(
        seen,
        vec!["inc-4", "inc-3", "inc-2", "inc-1", "inc-0"],
        "newest first"
    );
    s.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_4xx_with_a_reason_and_stores_nothing() {
    let s = TestServer::start().await;
    let json = Some("application/json");
    let good = serde_json::to_value(batch(
        "cpe-0001",
        vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
    ))
    .unwrap();

    // Invalid JSON: serde's message with line and column.
    let resp = s
        .post_raw(
            paths::REPORTS,
            json,
            "{\"schema_version\": 1,\n \"agent_id\": }",
        )
        .await;
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_json").await;
    assert!(e.reason.contains("line 2 column"), "{}", e.reason);

    // Unknown field.
    let mut v = good.clone();
    v["extra"] = 1.into();
    let resp = s.post_raw(paths::REPORTS, json, v.to_string()).await;
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_report").await;
    assert!(e.reason.contains("unknown field `extra`"), "{}", e.reason);

    // Unknown field inside an event, and an unknown check name.
    let mut v = good.clone();
    v["events"][0]["check"] = "telepathy".into();
    let resp = s.post_raw(paths::REPORTS, json, v.to_string()).await;
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_report").await;
    assert!(e.reason.contains("telepathy"), "{}", e.reason);

    // Wrong or missing content type.
    let resp = s
        .post_raw(paths::REPORTS, Some("text/plain"), good.to_string())
        .await;
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let resp = s.post_raw(paths::REPORTS, None, good.to_string()).await;
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;

    // A compression this collector does not decode, and a body that claims gzip but is not.
    let token = s.tokens.lock().unwrap()[common::DEFAULT_DEVICE].clone();
    let resp = s
        .post_encoded(paths::REPORTS, &token, "gzip", good.to_string())
        .await;
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_gzip").await;
    let resp = s
        .post_encoded(paths::REPORTS, &token, "br", good.to_string())
        .await;
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_content_encoding",
    )
    .await;

    // A newer schema version, even with fields this version does not know.
    let mut v = good.clone();
    v["schema_version"] = 2.into();
    v["new_field"] = true.into();
    let resp = s.post_raw(paths::REPORTS, json, v.to_string()).await;
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "unsupported_schema_version").await;
    assert!(e.reason.contains('2'), "{}", e.reason);

    // Validation failures: all of them, each with its field.
    let mut bad = batch("", vec![event("ev-1", "inc-1", 1, EventKind::Resolved)]);
    bad.events[0].auto_healed = None;
    bad.events[0].cause = "not a cause!".into();
    bad.events[0].summary = "bell\u{7}".into();
    let resp = s.post_json(paths::REPORTS, &bad).await;
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_report").await;
    let fields: Vec<&str> = e.violations.iter().map(|v| v.field.as_str()).collect();
    for want in [
        "agent_id",
        "events[0].cause",
        "events[0].summary",
        "events[0].auto_healed",
    ] {
        assert!(fields.contains(&want), "{want} missing from {fields:?}");
    }

    // An empty batch, and a seq the database cannot hold.
    let resp = s
        .post_json(paths::REPORTS, &batch("cpe-0001", vec![]))
        .await;
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_report").await;
    let resp = s
        .post_json(
            paths::REPORTS,
            &batch(
                "cpe-0001",
                vec![event("ev-9", "inc-9", u64::MAX, EventKind::Opened)],
            ),
        )
        .await;
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_report").await;
    assert!(
        e.violations.iter().any(|v| v.field == "events[0].seq"),
        "{e:?}"
    );

    // A heartbeat that fails validation.
    let mut hb = heartbeat("cpe-0001");
    hb.agent_id = "bad id".into();
    let resp = s.post_json(paths::HEARTBEATS, &hb).await;
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_heartbeat").await;
    let resp = s.post_raw(paths::HEARTBEATS, json, "[]").await;
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_heartbeat").await;

    assert_eq!(
        s.total_rows().await,
        0,
        "nothing may be stored from bad input"
    );

    // The good batch is still accepted afterwards.
    let resp = s.post_raw(paths::REPORTS, json, good.to_string()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.count("events").await, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_stores_nothing() {
    let s = TestServer::start().await;
    let mut b = batch(
        "cpe-0001",
        vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
    );
    // 2 MB of evidence: valid JSON, far above max_body_bytes (1 MiB).
    b.events[0]
        .evidence
        .insert("blob".into(), "x".repeat(2_000_000));
    let body = serde_json::to_vec(&b).unwrap();
    assert!(body.len() > 2_000_000);
    let resp = s
        .post_raw(paths::REPORTS, Some("application/json"), body)
        .await;
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    assert_eq!(s.total_rows().await, 0);
    s.stop().await;
}

#[tokio::test]
async fn the_body_limit_comes_from_the_config() {
    let s = TestServer::start_with(|c| c.server.max_body_bytes = 2048).await;
    let mut b = batch(
        "cpe-0001",
        vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
    );
    b.events[0].evidence.insert("v".into(), "y".repeat(1000));
    assert_eq!(
        s.post_json(paths::REPORTS, &b).await.status(),
        StatusCode::OK
    );
    b.events[0].evidence.insert("w".into(), "y".repeat(1000));
    let resp = s.post_json(paths::REPORTS, &b).await;
    expect_error(resp, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large").await;
    s.stop().await;
}

#[tokio::test]
async fn a_heartbeat_gets_a_reply_and_records_the_device() {
    let s = TestServer::start().await;
    let before = netmedic_collector::now();
    let resp = s.post_json(paths::HEARTBEATS, &heartbeat("cpe-0001")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let reply: HeartbeatReply = resp.json().await.unwrap();
    assert_eq!(reply.schema_version, SCHEMA_VERSION);
    assert_eq!(reply.heartbeat_interval_secs, 60, "from the config");
    assert!(reply.advisories.is_empty());
    assert!(reply.server_time >= before);
    // A second heartbeat updates the same device.
    let resp = s.post_json(paths::HEARTBEATS, &heartbeat("cpe-0001")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(s.count("devices").await, 1);
    s.stop().await;
}

#[tokio::test]
async fn probes_and_unknown_routes() {
    let s = TestServer::start().await;
    let resp = s.get("/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.unwrap(), "ok");
    assert_eq!(s.get("/readyz").await.status(), StatusCode::OK);

    expect_error(s.get("/nope").await, StatusCode::NOT_FOUND, "not_found").await;
    expect_error(
        s.get("/api/v1/incidents/cpe-1/missing").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    expect_error(
        s.get(paths::REPORTS).await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    let e = expect_invalid_query(
        &s,
        "/api/v1/incidents?status=maybe&limit=0&check=x&cursor=zz",
    )
    .await;
    assert_eq!(e.violations.len(), 4, "{e:?}");
    expect_invalid_query(&s, "/api/v1/incidents?colour=red").await;
    s.stop().await;
}

#[tokio::test]
async fn data_survives_a_restart() {
    let s = TestServer::start().await;
    ack(
        &s,
        &batch(
            "cpe-0001",
            vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
        ),
    )
    .await;
    let dir = s.stop().await;
    let s = TestServer::start_in(dir, |_| {}).await;
    let page = list(&s, "").await;
    assert_eq!(page.incidents.len(), 1);
    assert_eq!(page.incidents[0].event_count, 1);
    // Replaying after the restart is still recognised as a duplicate.
    let again = ack(
        &s,
        &batch(
            "cpe-0001",
            vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
        ),
    )
    .await;
    assert_eq!((again.accepted, again.duplicates), (0, 1));
    s.stop().await;
}

#[tokio::test]
async fn a_locked_database_gets_503_with_retry_after_and_nothing_is_acked() {
    use sqlx::Connection;
    let s = TestServer::start_with(|c| c.storage.busy_timeout_ms = 50).await;
    // Another writer holds the write lock.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&s.db_path);
    let mut other = sqlx::sqlite::SqliteConnection::connect_with(&opts)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    let b = batch(
        "cpe-0001",
        vec![event("ev-1", "inc-1", 1, EventKind::Opened)],
    );
    let resp = s.post_json(paths::REPORTS, &b).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "5");
    let e: ErrorBody = resp.json().await.unwrap();
    assert_eq!(e.error, "storage_unavailable");

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    assert_eq!(s.count("events").await, 0);
    // Once the lock is gone the agent's retry succeeds.
    assert_eq!(ack(&s, &b).await.accepted, 1);
    s.stop().await;
}

#[tokio::test]
async fn a_full_write_queue_gets_429_with_retry_after_never_500() {
    use sqlx::Connection;
    let s = TestServer::start_with(|c| {
        c.ingest.queue_capacity = 1;
        c.ingest.retry_after_secs = 7;
        c.storage.busy_timeout_ms = 60_000;
    })
    .await;
    let token = s.tokens.lock().unwrap()[common::DEFAULT_DEVICE].clone();
    // Another writer holds the database: the collector's writer blocks, its queue fills.
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&s.db_path);
    let mut other = sqlx::sqlite::SqliteConnection::connect_with(&opts)
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let (client, url, token) = (s.client.clone(), s.url(paths::HEARTBEATS), token.clone());
        tasks.spawn(async move {
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&heartbeat(common::DEFAULT_DEVICE))
                .send()
                .await
                .unwrap();
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status(), retry)
        });
    }
    // The refused ones answer at once, while the lock is still held; stop collecting once the
    // client has seen every refusal the server counted (admitted ones are blocked meanwhile).
    let mut refused = 0u32;
    while let Some(r) = tasks.join_next().await {
        let (status, retry) = r.unwrap();
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(retry.as_deref(), Some("7"));
        refused += 1;
        let metrics = s.get("/metrics").await.text().await.unwrap();
        if metrics.contains(&format!(
            "netmedic_collector_write_queue_rejected_total {refused}\n"
        )) {
            break;
        }
    }
    assert!(refused >= 1);
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    // The admitted ones complete once the database is free; nothing is a 500.
    while let Some(r) = tasks.join_next().await {
        let (status, _) = r.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::TOO_MANY_REQUESTS,
            "{status}"
        );
    }
    let metrics = s.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("netmedic_collector_write_queue_rejected_total "),
        "{metrics}"
    );
    s.stop().await;
}

#[tokio::test]
async fn metrics_count_requests_without_device_ids_and_openapi_lists_every_route() {
    let s = TestServer::start().await;
    let resp = s
        .post_json(paths::HEARTBEATS, &heartbeat(common::DEFAULT_DEVICE))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = s.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for want in [
        "netmedic_collector_heartbeats_total 1\n",
        "netmedic_collector_http_requests_total{route=\"/api/v1/heartbeats\",status=\"200\"} 1\n",
        "netmedic_collector_http_request_duration_seconds_bucket{route=\"/api/v1/heartbeats\",le=\"+Inf\"} 1\n",
        "# TYPE netmedic_collector_write_group_duration_seconds histogram\n",
    ] {
        assert!(text.contains(want), "{want} missing from\n{text}");
    }
    assert!(!text.contains(common::DEFAULT_DEVICE), "{text}");

    let doc: serde_json::Value = s.get("/api/openapi.json").await.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for p in netmedic_collector::openapi::PATHS {
        assert!(doc["paths"].get(p).is_some(), "{p} undocumented");
        // Every documented path is served (a path parameter is filled in).
        let concrete = p
            .replace("{agent_id}", "cpe-0001")
            .replace("{incident_id}", "inc-x");
        let resp = s.get(&concrete).await;
        if resp.status() == StatusCode::NOT_FOUND {
            let e: ErrorBody = resp.json().await.unwrap();
            assert_ne!(e.reason, "no such endpoint", "{p} is not routed");
        }
    }
    assert_eq!(
        doc["paths"].as_object().unwrap().len(),
        netmedic_collector::openapi::PATHS.len()
    );
    s.stop().await;
}
