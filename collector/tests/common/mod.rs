//! Test support: a real collector on 127.0.0.1:0 backed by a SQLite file in a tempdir, an HTTP
//! client, and builders for wire documents.
#![allow(dead_code, clippy::unwrap_used)]

use netmedic_collector::config::{CollectorConfig, StorageUrl};
use netmedic_collector::{Server, serve};
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, EventKind, IncidentEvent,
    ReportBatch, SCHEMA_VERSION, Severity, Timestamp,
};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::path::PathBuf;
use tempfile::TempDir;
use tokio::sync::oneshot;

pub struct TestServer {
    pub dir: TempDir,
    pub db_path: PathBuf,
    pub base: String,
    pub client: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<Server>,
}

pub fn test_config(dir: &TempDir) -> CollectorConfig {
    let mut config = CollectorConfig::default();
    config.server.listen_addr = "127.0.0.1:0".parse().unwrap();
    config.storage.url = StorageUrl::Sqlite {
        path: dir.path().join("collector.sqlite"),
    };
    config.fleet.heartbeat_interval_secs = 60;
    config
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut CollectorConfig)) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), tweak).await
    }

    /// Starts a server on the database in `dir` (e.g. one a stopped server left behind).
    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut CollectorConfig)) -> Self {
        let mut config = test_config(&dir);
        tweak(&mut config);
        let (tx, rx) = oneshot::channel::<()>();
        let server = serve(&config, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback());
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        Self {
            db_path: dir.path().join("collector.sqlite"),
            dir,
            base: format!("http://{addr}"),
            client,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// POSTs raw bytes with the given content type (None: no Content-Type header).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap()
    }

    pub async fn post_json<T: serde::Serialize>(&self, path: &str, doc: &T) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(doc)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    /// Row count of one of the collector's tables, read straight from the SQLite file.
    pub async fn count(&self, table: &str) -> i64 {
        count_rows(&self.db_path, table).await
    }

    pub async fn total_rows(&self) -> i64 {
        let mut n = 0;
        for t in ["events", "incidents", "incident_actions", "devices"] {
            n += self.count(t).await;
        }
        n
    }

    /// Graceful shutdown; fails the test if the server reports an error. Returns the tempdir
    /// holding the database (deleted when dropped).
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.wait().await.unwrap();
        }
        self.dir
    }
}

pub async fn count_rows(db: &std::path::Path, table: &str) -> i64 {
    let sql = match table {
        "events" => "SELECT COUNT(*) FROM events",
        "incidents" => "SELECT COUNT(*) FROM incidents",
        "incident_actions" => "SELECT COUNT(*) FROM incident_actions",
        "devices" => "SELECT COUNT(*) FROM devices",
        other => panic!("unknown table {other}"),
    };
    let opts = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    n
}

pub fn ts(secs: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_424_000_000 + secs * 1000).unwrap()
}

pub fn event(event_id: &str, incident_id: &str, seq: u64, kind: EventKind) -> IncidentEvent {
    IncidentEvent {
        event_id: event_id.into(),
        incident_id: incident_id.into(),
        seq,
        kind,
        check: CheckId::DefaultRoute,
        cause: "default_route_missing".into(),
        category: Category::NoInternet,
        severity: Severity::Critical,
        started_at: ts(0),
        at: ts(seq as i64 * 10),
        summary: format!("no default route (event {seq})"),
        evidence: Default::default(),
        actions: vec![],
        auto_healed: (kind == EventKind::Resolved).then_some(true),
    }
}

pub fn action(action: ActionId, outcome: ActionOutcome, at: i64) -> ActionRecord {
    ActionRecord {
        action,
        outcome,
        at: ts(at),
        detail: String::new(),
    }
}

pub fn batch(agent_id: &str, events: Vec<IncidentEvent>) -> ReportBatch {
    ReportBatch {
        schema_version: SCHEMA_VERSION,
        agent_id: agent_id.into(),
        events,
    }
}
