//! Heartbeats answered from the store's cache stay true: a revocation refuses the very next
//! heartbeat in the same process, a kill switch or diagnostics request reaches the very next
//! reply, another device's token stays refused, and a revocation or kill switch made through
//! another store on the same database (another collector process) is seen within the cache's
//! documented bound.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestServer, backend_stories, beat, expect_error, heartbeat, ok_json};
use netmedic_collector::config::StorageConfig;
use netmedic_collector::fleet::DeviceView;
use netmedic_collector::store::hbcache::HB_CACHE_MAX_AGE;
use netmedic_collector::store::{self, KillScope, OpenMode};
use netmedic_collector::{auth, now};
use netmedic_proto::{Advisory, CheckId, CheckStatus, HeartbeatReply, paths};
use reqwest::StatusCode;
use std::time::{Duration, Instant};

backend_stories!(
    revocation_refuses_the_very_next_heartbeat,
    kill_switch_and_diagnostics_reach_the_very_next_reply,
    another_device_s_token_stays_refused,
    a_cache_miss_keeps_every_reason_and_delivers_diagnostics_once,
    a_cached_reply_is_whole_and_the_device_keeps_the_heartbeat_it_answered,
);

/// How long a test waits for the cache to be filled (the store's refresh runs every second).
const WARM_DEADLINE: Duration = Duration::from_secs(30);

/// Sends heartbeats of `id` until the store answers the next one from its cache.
async fn warm(s: &TestServer, id: &str, token: &str) {
    let hash = auth::token_sha256(token);
    let deadline = Instant::now() + WARM_DEADLINE;
    loop {
        beat(s, id, token).await;
        if s.store()
            .heartbeat_cached(&hash, heartbeat(id), now())
            .is_ok()
        {
            return;
        }
        assert!(Instant::now() < deadline, "heartbeats of {id} never cached");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many diagnostics requests a reply delivers.
fn diag_count(r: &HeartbeatReply) -> usize {
    r.advisories
        .iter()
        .filter(|a| matches!(a, Advisory::Diagnostics { .. }))
        .count()
}

/// Sends a heartbeat of `id` with `token` and expects it refused with `status` and `code`.
async fn expect_refused(s: &TestServer, id: &str, token: &str, status: StatusCode, code: &str) {
    expect_error(
        s.post_as(paths::HEARTBEATS, &heartbeat(id), Some(token))
            .await,
        status,
        code,
    )
    .await;
}

fn kill_reason(r: &HeartbeatReply) -> Option<&str> {
    r.advisories.iter().find_map(|a| match a {
        Advisory::KillSwitch { reason } => Some(reason.as_str()),
        _ => None,
    })
}

async fn revocation_refuses_the_very_next_heartbeat(b: Backend) {
    let s = b.start(|_| {}).await;
    let token = s.enrol("cpe-r1").await;
    warm(&s, "cpe-r1", &token).await;
    s.store().revoke_device("cpe-r1", now()).await.unwrap();
    expect_refused(
        &s,
        "cpe-r1",
        &token,
        StatusCode::UNAUTHORIZED,
        "revoked_token",
    )
    .await;
    s.stop().await;
}

async fn kill_switch_and_diagnostics_reach_the_very_next_reply(b: Backend) {
    let s = b.start(|_| {}).await;
    let token = s.enrol("cpe-k1").await;
    warm(&s, "cpe-k1", &token).await;
    assert_eq!(kill_reason(&beat(&s, "cpe-k1", &token).await), None);
    s.store()
        .set_killswitch(&KillScope::Fleet, "bad release", now())
        .await
        .unwrap();
    assert_eq!(
        kill_reason(&beat(&s, "cpe-k1", &token).await),
        Some("bad release")
    );
    warm(&s, "cpe-k1", &token).await;
    assert_eq!(
        kill_reason(&beat(&s, "cpe-k1", &token).await),
        Some("bad release"),
        "answered from the cache too"
    );
    s.store().clear_killswitch(&KillScope::Fleet).await.unwrap();
    assert_eq!(kill_reason(&beat(&s, "cpe-k1", &token).await), None);

    // Diagnostics queued while the cache is warm: delivered in exactly the next reply.
    warm(&s, "cpe-k1", &token).await;
    s.store()
        .request_diagnostics("cpe-k1", &[CheckId::Dns], "req-1", now())
        .await
        .unwrap();
    assert_eq!(diag_count(&beat(&s, "cpe-k1", &token).await), 1);
    assert_eq!(diag_count(&beat(&s, "cpe-k1", &token).await), 0);
    s.stop().await;
}

async fn another_device_s_token_stays_refused(b: Backend) {
    let s = b.start(|_| {}).await;
    let token = s.enrol("cpe-w1").await;
    s.enrol("cpe-w2").await;
    warm(&s, "cpe-w1", &token).await;
    expect_refused(&s, "cpe-w2", &token, StatusCode::FORBIDDEN, "wrong_device").await;
    let stranger = auth::new_token().unwrap();
    expect_refused(
        &s,
        "cpe-w1",
        &stranger,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    s.stop().await;
}

/// A heartbeat the cache cannot answer (its device never heartbeated) is checked by a writer,
/// answered from the advice snapshot when that holds nothing for the device, and refused with
/// the same reasons as ever; a device with diagnostics pending gets them exactly once.
async fn a_cache_miss_keeps_every_reason_and_delivers_diagnostics_once(b: Backend) {
    let s = b.start(|_| {}).await;
    let t1 = s.enrol("cpe-m1").await;
    let t2 = s.enrol("cpe-m2").await;
    let t3 = s.enrol("cpe-m3").await;
    s.store().revoke_device("cpe-m3", now()).await.unwrap();
    let h1 = auth::token_sha256(&t1);
    assert!(
        s.store()
            .heartbeat_cached(&h1, heartbeat("cpe-m1"), now())
            .is_err(),
        "never verified: not cached"
    );
    assert_eq!(kill_reason(&beat(&s, "cpe-m1", &t1).await), None);
    // The verified token answers from the cache once the advice snapshot, dropped by the
    // revocation above, has been read again (within a second): waited for with a deadline.
    warm(&s, "cpe-m1", &t1).await;
    expect_refused(&s, "cpe-m2", &t3, StatusCode::UNAUTHORIZED, "revoked_token").await;
    expect_refused(&s, "cpe-m1", &t2, StatusCode::FORBIDDEN, "wrong_device").await;
    let stranger = auth::new_token().unwrap();
    expect_refused(
        &s,
        "cpe-m2",
        &stranger,
        StatusCode::UNAUTHORIZED,
        "unknown_token",
    )
    .await;
    assert!(
        s.store()
            .heartbeat_cached(&auth::token_sha256(&t3), heartbeat("cpe-m3"), now())
            .is_err(),
        "a refused token is not cached"
    );
    // A fleet kill switch, once the snapshot holds it again, reaches a device never cached
    // (answered by a writer from the snapshot).
    let t4 = s.enrol("cpe-m4").await;
    s.store()
        .set_killswitch(&KillScope::Fleet, "halt", now())
        .await
        .unwrap();
    let deadline = Instant::now() + WARM_DEADLINE;
    while s
        .store()
        .heartbeat_cached(&h1, heartbeat("cpe-m1"), now())
        .is_err()
    {
        assert!(Instant::now() < deadline, "the snapshot never came back");
        beat(&s, "cpe-m1", &t1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(kill_reason(&beat(&s, "cpe-m4", &t4).await), Some("halt"));
    s.store().clear_killswitch(&KillScope::Fleet).await.unwrap();

    // Diagnostics for a device not yet cached: the next reply delivers them, once.
    s.store()
        .request_diagnostics("cpe-m2", &[CheckId::Dns], "req-m2", now())
        .await
        .unwrap();
    assert_eq!(diag_count(&beat(&s, "cpe-m2", &t2).await), 1);
    assert_eq!(diag_count(&beat(&s, "cpe-m2", &t2).await), 0);
    s.stop().await;
}

/// Waits, up to a few times the documented bound, until `f` holds for a heartbeat reply.
async fn within_bound<F>(what: &str, mut f: F)
where
    F: AsyncFnMut() -> bool,
{
    let deadline = Instant::now() + HB_CACHE_MAX_AGE * 4;
    while !f().await {
        assert!(
            Instant::now() < deadline,
            "{what} not seen within the bound"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn postgres_another_process_s_revocation_and_kill_switch_are_seen_within_the_bound() {
    let s = Backend::Postgres.start(|_| {}).await;
    let token = s.enrol("cpe-p1").await;
    warm(&s, "cpe-p1", &token).await;
    // The other process: its own store (its own cache) on the same database.
    let other = store::open(
        &StorageConfig::with_url(s.storage.clone()),
        OpenMode::MustExist,
    )
    .await
    .unwrap();

    other
        .set_killswitch(&KillScope::Device("cpe-p1".into()), "hold", now())
        .await
        .unwrap();
    within_bound("the other process's kill switch", async || {
        kill_reason(&beat(&s, "cpe-p1", &token).await) == Some("hold")
    })
    .await;

    warm(&s, "cpe-p1", &token).await;
    other.revoke_device("cpe-p1", now()).await.unwrap();
    within_bound("the other process's revocation", async || {
        let resp = s
            .post_as(paths::HEARTBEATS, &heartbeat("cpe-p1"), Some(&token))
            .await;
        match resp.status() {
            StatusCode::OK => false,
            _ => {
                expect_error(resp, StatusCode::UNAUTHORIZED, "revoked_token").await;
                true
            }
        }
    })
    .await;
    other.close().await;
    s.stop().await;
}

/// A heartbeat answered from the cache gets the whole reply (the pre-encoded one: JSON with
/// the server's time and interval), and the heartbeat itself is what the device row keeps as
/// its last heartbeat (encoded when the buffer is written, not when it was received).
async fn a_cached_reply_is_whole_and_the_device_keeps_the_heartbeat_it_answered(b: Backend) {
    let s = b.start(|_| {}).await;
    let token = s.enrol("cpe-p1").await;
    let before = now();
    warm(&s, "cpe-p1", &token).await;
    let mut hb = heartbeat("cpe-p1");
    hb.agent_version = "0.2.0-cached".into();
    hb.checks.insert(CheckId::DefaultRoute, CheckStatus::Failed);
    // Warmed right before: answered from the cache (were it not, the database path must give
    // the same reply and row, which this checks just as well).
    let resp = s.post_as(paths::HEARTBEATS, &hb, Some(&token)).await;
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(ct.as_deref(), Some("application/json"));
    let reply: HeartbeatReply = ok_json(resp).await;
    assert_eq!(reply.heartbeat_interval_secs, 60);
    assert!(reply.advisories.is_empty() && reply.experiments.is_empty());
    assert!(reply.server_time >= before, "{reply:?}");
    let one: DeviceView = ok_json(s.get("/api/v1/devices/cpe-p1").await).await;
    let last = one.last_heartbeat.expect("a last heartbeat");
    assert_eq!(last.agent_version, "0.2.0-cached");
    assert_eq!(
        last.checks.get(&CheckId::DefaultRoute),
        Some(&CheckStatus::Failed)
    );
    s.stop().await;
}
