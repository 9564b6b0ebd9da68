//! Two real `netmedic-collector serve` processes on one PostgreSQL take reports for the same
//! fleet at the same time — the events of each incident split between them and every event also
//! replayed to the other process — and no incident is lost, duplicated or assembled from a
//! partial set of events.
#![allow(clippy::unwrap_used)]

mod common;

use common::batch;
use common::pg::PgServer;
use common::serve::ServeProcess;
use netmedic_collector::config::{StorageConfig, StorageUrl};
use netmedic_collector::store::{self, OpenMode};
use netmedic_proto::{EventKind, IncidentStatus, ReportAck, paths};
use std::sync::Arc;
use std::time::Duration;

const DEVICES: usize = 16;
const INCIDENTS_PER_DEVICE: usize = 8;
const EVENTS_PER_INCIDENT: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_postgres_lose_and_duplicate_nothing() {
    let pg = Arc::new(PgServer::start());
    let url = pg.create_db("fleet").await;
    let storage = StorageConfig::with_url(StorageUrl::Postgres { url: url.clone() });
    let st = store::open(&storage, OpenMode::CreateAndMigrate)
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for d in 0..DEVICES {
        let token = netmedic_collector::auth::new_token().unwrap();
        st.enrol_device(
            &format!("cpe-{d:03}"),
            None,
            &netmedic_collector::auth::token_sha256(&token),
            netmedic_collector::now(),
        )
        .await
        .unwrap();
        tokens.push(token);
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("collector.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten_addr = \"127.0.0.1:0\"\n[storage]\nurl = \"{url}\"\n\
             [ingest]\nwriters = 2\nmax_group_requests = 16\n"
        ),
    )
    .unwrap();
    let a = ServeProcess::spawn(&config);
    let b = ServeProcess::spawn(&config);
    let bases = [format!("http://{}", a.addr), format!("http://{}", b.addr)];
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    // Every event goes to one process and its replay to the other, all at once.
    let mut tasks = tokio::task::JoinSet::new();
    for (d, token) in tokens.iter().enumerate() {
        for i in 0..INCIDENTS_PER_DEVICE {
            for seq in 1..=EVENTS_PER_INCIDENT {
                let kind = match seq {
                    1 => EventKind::Opened,
                    EVENTS_PER_INCIDENT => EventKind::Resolved,
                    _ => EventKind::Updated,
                };
                let agent = format!("cpe-{d:03}");
                let e = common::event(
                    &format!("{agent}-i{i}-e{seq}"),
                    &format!("inc-{i}"),
                    seq,
                    kind,
                );
                let body = batch(&agent, vec![e]);
                for k in 0..2 {
                    let base = bases[(d + i + seq as usize + k) % 2].clone();
                    let (client, body, token) = (client.clone(), body.clone(), token.clone());
                    tasks.spawn(async move {
                        // A 429/503 under load is retried, as the agent does.
                        for _ in 0..100 {
                            let resp = client
                                .post(format!("{base}{}", paths::REPORTS))
                                .bearer_auth(&token)
                                .json(&body)
                                .send()
                                .await
                                .unwrap();
                            if resp.status().is_success() {
                                return resp.json::<ReportAck>().await.unwrap();
                            }
                            assert!(
                                resp.status() == 429 || resp.status() == 503,
                                "{:?}",
                                resp.text().await
                            );
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        panic!("never accepted");
                    });
                }
            }
        }
    }
    let (mut accepted, mut duplicates) = (0u32, 0u32);
    while let Some(ack) = tasks.join_next().await {
        let ack = ack.unwrap();
        accepted += ack.accepted;
        duplicates += ack.duplicates;
    }
    let total = (DEVICES * INCIDENTS_PER_DEVICE) as u32 * EVENTS_PER_INCIDENT as u32;
    assert_eq!(accepted, total, "each event accepted exactly once");
    assert_eq!(duplicates, total, "each replay recognised");

    // Every incident exists once, assembled from all its events.
    let filter = store::IncidentFilter::default();
    let mut n = 0;
    let mut cursor = None;
    loop {
        let page = st
            .list_incidents(&filter, 500, cursor.as_ref())
            .await
            .unwrap();
        for v in &page.incidents {
            assert_eq!(v.event_count, EVENTS_PER_INCIDENT as u32, "{v:?}");
            assert_eq!(v.status, IncidentStatus::Resolved);
            assert_eq!(
                v.summary,
                format!("no default route (event {EVENTS_PER_INCIDENT})")
            );
        }
        n += page.incidents.len();
        match page.next_cursor {
            Some(c) => cursor = Some(store::Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(n, DEVICES * INCIDENTS_PER_DEVICE);
    drop((a, b));
    st.close().await;
}
