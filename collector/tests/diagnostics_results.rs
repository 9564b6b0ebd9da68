//! On-demand diagnostics results, end to end through the collector's HTTP API, on SQLite and on
//! a real PostgreSQL server the test starts itself: queue a request → a heartbeat reply carries
//! it → the device posts its result → the device's listing shows it; another device's token,
//! unknown requests, malformed bodies and replays.
#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Backend, TestServer, backend_stories, beat, expect_error, expect_invalid_query, gzip, ok_json,
};
use netmedic_collector::api::{DiagnosticsList, DiagnosticsResultAck};
use netmedic_collector::store::DiagnosticsState;
use netmedic_proto::{
    Advisory, CheckId, CheckStatus, DiagnosticCheck, DiagnosticsResult, SCHEMA_VERSION, Timestamp,
    paths,
};
use reqwest::StatusCode;

async fn start(backend: Backend) -> TestServer {
    backend.start(|_| {}).await
}

// Each story runs once per backend.
backend_stories!(
    queued_delivered_completed_and_listed,
    other_devices_unknown_requests_and_bad_bodies_store_nothing,
    a_replayed_result_is_idempotent_and_the_first_stays,
);

fn result(agent_id: &str, request_id: &str) -> DiagnosticsResult {
    DiagnosticsResult {
        schema_version: SCHEMA_VERSION,
        agent_id: agent_id.into(),
        request_id: request_id.into(),
        completed_at: common::ts(30),
        results: vec![
            DiagnosticCheck {
                check: CheckId::DefaultRoute,
                status: CheckStatus::Ok,
                cause: "ok".into(),
                summary: "default route via 100.64.0.1 dev wan".into(),
                value: "via 100.64.0.1 dev wan, 0.4 ms".into(),
                threshold: "present; gateway answers".into(),
                hint: String::new(),
                evidence: [("gateway".to_string(), "100.64.0.1".to_string())].into(),
            },
            DiagnosticCheck {
                check: CheckId::Dns,
                status: CheckStatus::Failed,
                cause: "dns_timeout".into(),
                summary: "no resolver answers <script>".into(),
                value: "0 of 2 resolvers answered".into(),
                threshold: "every resolver answers within 2000 ms".into(),
                hint: "check the provisioned resolvers".into(),
                evidence: [("resolver_192.0.2.53".to_string(), "timeout".to_string())].into(),
            },
        ],
    }
}

/// Queues diagnostics through the API as an operator; returns the request id.
async fn queue(s: &TestServer, agent_id: &str, checks: &[&str]) -> String {
    let resp = s
        .client
        .post(s.url(&format!("/api/v1/devices/{agent_id}/diagnostics")))
        .bearer_auth(&s.admin_token)
        .json(&serde_json::json!({ "checks": checks }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let v: serde_json::Value = resp.json().await.unwrap();
    v["request_id"].as_str().unwrap().to_owned()
}

/// The device's listing as a viewer (the NOC's read role).
async fn listing(s: &TestServer, agent_id: &str) -> DiagnosticsList {
    ok_json(
        s.get_as(
            &format!("/api/v1/devices/{agent_id}/diagnostics"),
            Some(&s.viewer_token),
        )
        .await,
    )
    .await
}

/// POSTs a result gzip'd, as the agent does.
async fn post_gzip(s: &TestServer, doc: &DiagnosticsResult, token: &str) -> reqwest::Response {
    let body = gzip(doc, flate2::Compression::default());
    s.post_encoded(paths::DIAGNOSTICS_RESULTS, token, "gzip", body)
        .await
}

async fn queued_delivered_completed_and_listed(b: Backend) {
    let s = start(b).await;
    let token = s.enrol("cpe-d1").await;
    let request_id = queue(&s, "cpe-d1", &["dns", "default_route"]).await;

    // Queued: listed without a result.
    let l = listing(&s, "cpe-d1").await;
    assert_eq!(l.agent_id, "cpe-d1");
    assert_eq!(l.diagnostics.len(), 1);
    let r = &l.diagnostics[0];
    assert_eq!(r.request_id, request_id);
    assert_eq!(r.state, DiagnosticsState::Queued);
    assert_eq!(r.checks, [CheckId::DefaultRoute, CheckId::Dns]);
    assert!(r.delivered_at.is_none() && r.completed_at.is_none() && r.result.is_none());

    // The next heartbeat reply carries it.
    let reply = beat(&s, "cpe-d1", &token).await;
    assert!(
        reply.advisories.contains(&Advisory::Diagnostics {
            request_id: request_id.clone(),
            checks: vec![CheckId::DefaultRoute, CheckId::Dns],
        }),
        "{reply:?}"
    );
    let l = listing(&s, "cpe-d1").await;
    assert_eq!(l.diagnostics[0].state, DiagnosticsState::Delivered);
    assert!(l.diagnostics[0].delivered_at.is_some());

    // The device posts its result (gzip'd, with its own token).
    let doc = result("cpe-d1", &request_id);
    let ack: DiagnosticsResultAck = ok_json(post_gzip(&s, &doc, &token).await).await;
    assert_eq!(ack.request_id, request_id);
    assert!(!ack.duplicate);

    let l = listing(&s, "cpe-d1").await;
    let r = &l.diagnostics[0];
    assert_eq!(r.state, DiagnosticsState::Completed);
    let completed = r.completed_at.unwrap();
    assert!(completed >= r.delivered_at.unwrap());
    assert!(r.delivered_at.unwrap() >= r.requested_at);
    assert_eq!(r.result.as_ref(), Some(&doc), "stored as sent");
    // Device-supplied text is stored as given; escaping is the pages' business.
    assert_eq!(
        r.result.as_ref().unwrap().results[1].summary,
        "no resolver answers <script>"
    );

    // A newer request is listed first; `limit` bounds the listing.
    let newer = queue(&s, "cpe-d1", &["icmp"]).await;
    let l = listing(&s, "cpe-d1").await;
    let ids: Vec<&str> = l
        .diagnostics
        .iter()
        .map(|r| r.request_id.as_str())
        .collect();
    assert_eq!(ids, [newer.as_str(), request_id.as_str()]);
    assert_eq!(l.diagnostics[0].state, DiagnosticsState::Queued);
    let one: DiagnosticsList =
        ok_json(s.get("/api/v1/devices/cpe-d1/diagnostics?limit=1").await).await;
    assert_eq!(one.diagnostics.len(), 1);
    assert_eq!(one.diagnostics[0].request_id, newer);

    // The listing needs an API token, names unknown devices and refuses bad limits.
    expect_error(
        s.get_as("/api/v1/devices/cpe-d1/diagnostics", None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    expect_error(
        s.get_as("/api/v1/devices/cpe-d1/diagnostics", Some(&token))
            .await,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    expect_error(
        s.get("/api/v1/devices/cpe-nobody/diagnostics").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let e = expect_invalid_query(&s, "/api/v1/devices/cpe-d1/diagnostics?limit=0").await;
    assert_eq!(e.violations[0].field, "limit");
    // An enrolled device without requests has an empty listing.
    s.enrol("cpe-quiet").await;
    assert!(listing(&s, "cpe-quiet").await.diagnostics.is_empty());

    // The API document lists both routes.
    let doc: serde_json::Value = s.get("/api/openapi.json").await.json().await.unwrap();
    assert!(doc["paths"][paths::DIAGNOSTICS_RESULTS]["post"].is_object());
    assert!(doc["paths"]["/api/v1/devices/{agent_id}/diagnostics"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/devices/{agent_id}/diagnostics"]["post"].is_object());
    s.stop().await;
}

/// Whether the request has a result, read straight from the listing.
async fn completed(s: &TestServer, agent_id: &str, request_id: &str) -> bool {
    listing(s, agent_id)
        .await
        .diagnostics
        .iter()
        .any(|r| r.request_id == request_id && r.result.is_some())
}

async fn other_devices_unknown_requests_and_bad_bodies_store_nothing(b: Backend) {
    let s = start(b).await;
    let token_a = s.enrol("cpe-a").await;
    let token_b = s.enrol("cpe-b").await;
    let id_a = queue(&s, "cpe-a", &["default_route", "dns"]).await;
    beat(&s, "cpe-a", &token_a).await;
    let doc = result("cpe-a", &id_a);

    // No token, a made-up token: 401.
    expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &doc, None).await,
        StatusCode::UNAUTHORIZED,
        "missing_token",
    )
    .await;
    expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &doc, Some(&"ab".repeat(32)))
            .await,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    // Another device's token for A's result: 403 naming both.
    let e = expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &doc, Some(&token_b))
            .await,
        StatusCode::FORBIDDEN,
        "wrong_device",
    )
    .await;
    assert!(
        e.reason.contains("cpe-a") && e.reason.contains("cpe-b"),
        "{e:?}"
    );
    // B, with its own token, answering A's request: not B's request, so 404.
    expect_error(
        s.post_as(
            paths::DIAGNOSTICS_RESULTS,
            &result("cpe-b", &id_a),
            Some(&token_b),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown_request",
    )
    .await;
    // A request id nobody queued: 404.
    expect_error(
        s.post_as(
            paths::DIAGNOSTICS_RESULTS,
            &result("cpe-a", "diag-0000000000000000"),
            Some(&token_a),
        )
        .await,
        StatusCode::NOT_FOUND,
        "unknown_request",
    )
    .await;

    // Malformed JSON, a wrong content type, unknown fields: 4xx with a reason.
    let resp = s
        .client
        .post(s.url(paths::DIAGNOSTICS_RESULTS))
        .bearer_auth(&token_a)
        .header("content-type", "application/json")
        .body("{\"schema_version\": 1, \"agent_id\": ")
        .send()
        .await
        .unwrap();
    let e = expect_error(resp, StatusCode::BAD_REQUEST, "invalid_json").await;
    assert!(e.reason.contains("malformed JSON"), "{e:?}");
    let resp = s
        .client
        .post(s.url(paths::DIAGNOSTICS_RESULTS))
        .bearer_auth(&token_a)
        .header("content-type", "text/plain")
        .body(serde_json::to_vec(&doc).unwrap())
        .send()
        .await
        .unwrap();
    expect_error(
        resp,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    let mut v = serde_json::to_value(&doc).unwrap();
    v["results"][0]["color"] = serde_json::json!("red");
    let e = expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &v, Some(&token_a))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_diagnostics_result",
    )
    .await;
    assert!(e.reason.contains("color"), "{e:?}");
    let mut v = serde_json::to_value(&doc).unwrap();
    v["schema_version"] = serde_json::json!(99);
    expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &v, Some(&token_a))
            .await,
        StatusCode::BAD_REQUEST,
        "unsupported_schema_version",
    )
    .await;

    // Well-formed but invalid: every violation listed with its field.
    let mut bad = doc.clone();
    bad.results[0].cause = "not an id!".into();
    bad.results[1].summary = String::new();
    bad.results[1]
        .evidence
        .insert("bad key".into(), "x".repeat(2000));
    bad.results.push(bad.results[0].clone());
    let e = expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &bad, Some(&token_a))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_diagnostics_result",
    )
    .await;
    let fields: Vec<&str> = e.violations.iter().map(|v| v.field.as_str()).collect();
    for want in [
        "results[0].cause",
        "results[1].summary",
        "results[1].evidence key",
        "results[1].evidence.bad key",
        "results[2].check",
    ] {
        assert!(fields.contains(&want), "missing {want} in {fields:?}");
    }
    let mut empty = doc.clone();
    empty.results.clear();
    let e = expect_error(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &empty, Some(&token_a))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_diagnostics_result",
    )
    .await;
    assert_eq!(e.violations[0].field, "results");

    // None of that stored anything.
    assert!(!completed(&s, "cpe-a", &id_a).await);

    // A revoked device's token is refused too, even for its own request.
    let now = netmedic_collector::now();
    let id_b = queue(&s, "cpe-b", &["dns"]).await;
    s.store().revoke_device("cpe-b", now).await.unwrap();
    expect_error(
        s.post_as(
            paths::DIAGNOSTICS_RESULTS,
            &result("cpe-b", &id_b),
            Some(&token_b),
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "revoked_token",
    )
    .await;

    // The right device with its own token is accepted.
    let ack: DiagnosticsResultAck = ok_json(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &doc, Some(&token_a))
            .await,
    )
    .await;
    assert!(!ack.duplicate);
    assert!(completed(&s, "cpe-a", &id_a).await);
    s.stop().await;
}

async fn a_replayed_result_is_idempotent_and_the_first_stays(b: Backend) {
    let s = start(b).await;
    let token = s.enrol("cpe-r").await;
    let id = queue(&s, "cpe-r", &["default_route", "dns"]).await;
    beat(&s, "cpe-r", &token).await;
    let first = result("cpe-r", &id);
    let ack: DiagnosticsResultAck = ok_json(post_gzip(&s, &first, &token).await).await;
    assert!(!ack.duplicate);
    let before = listing(&s, "cpe-r").await;

    // The agent retries after a lost answer: same result, same answer, nothing changes.
    for _ in 0..2 {
        let ack: DiagnosticsResultAck = ok_json(post_gzip(&s, &first, &token).await).await;
        assert_eq!(ack.request_id, id);
        assert!(ack.duplicate);
    }
    // A different result for a completed request does not overwrite the first.
    let mut second = first.clone();
    second.completed_at =
        Timestamp::from_unix_millis(first.completed_at.unix_millis() + 60_000).unwrap();
    second.results[1].status = CheckStatus::Ok;
    let ack: DiagnosticsResultAck = ok_json(
        s.post_as(paths::DIAGNOSTICS_RESULTS, &second, Some(&token))
            .await,
    )
    .await;
    assert!(ack.duplicate);
    assert_eq!(listing(&s, "cpe-r").await, before);
    assert_eq!(
        before.diagnostics[0].result.as_ref().unwrap().results[1].status,
        CheckStatus::Failed
    );
    assert_eq!(s.count("diagnostics_requests").await, 1);
    s.stop().await;
}
