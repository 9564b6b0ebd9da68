//! `/metrics` against the real server: every family the collector registers is exported once
//! the request that counts it has been made, denied requests included, and nothing names a device.
#![allow(clippy::unwrap_used)]

mod common;

use common::{DEFAULT_DEVICE, TestServer, heartbeat};
use netmedic_collector::metrics::{FAMILIES, Kind, QUEUE_DEPTH};
use netmedic_proto::paths;
use reqwest::StatusCode;

#[tokio::test]
async fn every_counted_family_is_exported_denials_included() {
    let s = TestServer::start().await;
    // One accepted heartbeat, one heartbeat with a device token nobody issued, one API request
    // without a token, one with a viewer token on an operator endpoint.
    let resp = s
        .post_json(paths::HEARTBEATS, &heartbeat(DEFAULT_DEVICE))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let bogus = "ab".repeat(32);
    let resp = s
        .post_as(paths::HEARTBEATS, &heartbeat(DEFAULT_DEVICE), Some(&bogus))
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = s.get_as(paths::INCIDENTS, None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = s
        .client
        .post(s.url("/api/v1/devices/cpe-0002/diagnostics"))
        .bearer_auth(&s.viewer_token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);

    let resp = s.get("/metrics").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        netmedic_collector::metrics::CONTENT_TYPE
    );
    let text = resp.text().await.unwrap();
    for spec in FAMILIES {
        let kind = match spec.kind {
            Kind::Counter => "counter",
            Kind::Histogram(_) => "histogram",
        };
        let name = spec.name;
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} not exported:\n{text}"
        );
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} not exported as a {kind}:\n{text}"
        );
    }
    for want in [
        format!("# TYPE {QUEUE_DEPTH} gauge\n"),
        "netmedic_collector_heartbeats_total 1\n".into(),
        "netmedic_collector_events_total{result=\"accepted\"} 0\n".into(),
        "netmedic_collector_write_errors_total 0\n".into(),
        "netmedic_collector_auth_denied_total{reason=\"unknown_token\"} 1\n".into(),
        "netmedic_collector_api_auth_denied_total{reason=\"missing_token\"} 1\n".into(),
        "netmedic_collector_api_auth_denied_total{reason=\"forbidden\"} 1\n".into(),
        "netmedic_collector_http_requests_total{route=\"/api/v1/heartbeats\",status=\"401\"} 1\n"
            .into(),
        "netmedic_collector_http_request_duration_seconds_count{route=\"/api/v1/heartbeats\"} 2\n"
            .into(),
    ] {
        assert!(text.contains(&want), "{want:?} missing from\n{text}");
    }
    // The heartbeat went through the write queue (the group histograms start at 0).
    assert!(text.contains("netmedic_collector_write_group_requests_count "));
    assert!(
        !text.contains("netmedic_collector_write_group_requests_count 0\n"),
        "{text}"
    );
    // Every sample line is `name{labels} value` or `name value` of a known family.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            FAMILIES.iter().any(|f| name.starts_with(f.name)) || name == QUEUE_DEPTH,
            "{line}"
        );
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
    assert!(!text.contains(DEFAULT_DEVICE), "{text}");
    assert!(!text.contains("cpe-0002"), "{text}");
    s.stop().await;
}
