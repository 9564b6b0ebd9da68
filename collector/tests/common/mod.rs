//! Test support: a real collector on 127.0.0.1:0 backed by a SQLite file in a tempdir or by a
//! throwaway PostgreSQL server (`pg.rs`), an HTTP client that sends each device's bearer token,
//! and builders for wire documents.
#![allow(dead_code, clippy::unwrap_used)]

pub mod pg;
pub mod serve;

use netmedic_collector::auth::Role;
use netmedic_collector::config::{CollectorConfig, StorageUrl};
use netmedic_collector::{Server, serve};
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, CheckStatus, ErrorBody, EventKind,
    Heartbeat, HeartbeatReply, IncidentEvent, ReportBatch, SCHEMA_VERSION, Severity, Timestamp,
    paths,
};
use reqwest::StatusCode;
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tempfile::TempDir;
use tokio::sync::oneshot;

/// The storage backends every story runs on: SQLite in a tempdir, and a real PostgreSQL server
/// started for the test (stopped and removed when its [`TestServer`] drops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// A test server on a fresh database of this backend, its config changed by `tweak`.
    pub async fn start(self, tweak: impl FnOnce(&mut CollectorConfig)) -> TestServer {
        match self {
            Backend::Sqlite => TestServer::start_with(tweak).await,
            Backend::Postgres => {
                let pg = Arc::new(pg::PgServer::start());
                TestServer::start_pg(pg, "netmedic", tweak).await
            }
        }
    }
}

/// The backend matrix: each named story, an `async fn name(b: Backend)` of the calling test
/// file, becomes two tests, `sqlite::name` and `postgres::name`.
#[allow(unused_macros)]
macro_rules! backend_stories {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                super::$name($crate::common::Backend::Sqlite).await
            })+
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                super::$name($crate::common::Backend::Postgres).await
            })+
        }
    };
}
#[allow(unused_imports)]
pub(crate) use backend_stories;

/// The device every test server enrols at start; raw posts use its token.
pub const DEFAULT_DEVICE: &str = "cpe-0001";

pub struct TestServer {
    pub dir: TempDir,
    pub db_path: PathBuf,
    pub storage: StorageUrl,
    pub pg: Option<Arc<pg::PgServer>>,
    pub base: String,
    pub client: reqwest::Client,
    /// Tokens of the devices enrolled through [`TestServer::enrol`].
    pub tokens: Mutex<HashMap<String, String>>,
    /// API token with the operator role ([`TestServer::get`] sends it).
    pub admin_token: String,
    /// API token with the viewer role.
    pub viewer_token: String,
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

    /// Starts a server on a fresh database of a throwaway PostgreSQL server.
    pub async fn start_pg(
        pg: Arc<pg::PgServer>,
        db: &str,
        tweak: impl FnOnce(&mut CollectorConfig),
    ) -> Self {
        let url = pg.create_db(db).await;
        Self::start_on(
            tempfile::tempdir().unwrap(),
            Some(pg),
            StorageUrl::Postgres { url },
            tweak,
        )
        .await
    }

    /// Starts a server on the database in `dir` (e.g. one a stopped server left behind).
    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut CollectorConfig)) -> Self {
        let url = test_config(&dir).storage.url;
        Self::start_on(dir, None, url, tweak).await
    }

    async fn start_on(
        dir: TempDir,
        pg: Option<Arc<pg::PgServer>>,
        url: StorageUrl,
        tweak: impl FnOnce(&mut CollectorConfig),
    ) -> Self {
        let mut config = test_config(&dir);
        config.storage.url = url;
        tweak(&mut config);
        let (tx, rx) = oneshot::channel::<()>();
        let server = serve(&config, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
        let addr = server.local_addr();
        assert!(addr.ip().is_loopback());
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let s = Self {
            db_path: dir.path().join("collector.sqlite"),
            storage: config.storage.url.clone(),
            pg,
            dir,
            base: format!("http://{addr}"),
            client,
            tokens: Mutex::new(HashMap::new()),
            admin_token: String::new(),
            viewer_token: String::new(),
            shutdown: Some(tx),
            server: Some(server),
        };
        s.enrol(DEFAULT_DEVICE).await;
        let mut s = s;
        s.admin_token = s.api_token("test-admin", Role::Operator).await;
        s.viewer_token = s.api_token("test-viewer", Role::Viewer).await;
        s
    }

    /// Creates (or re-creates) an API token.
    pub async fn api_token(&self, name: &str, role: Role) -> String {
        let token = netmedic_collector::auth::new_token().unwrap();
        let now = netmedic_collector::now();
        let _ = self.store().api_token_revoke(name, now).await.unwrap();
        self.store()
            .api_token_add(
                name,
                role,
                &netmedic_collector::auth::token_sha256(&token),
                now,
            )
            .await
            .unwrap();
        token
    }

    /// GET with an explicit API token (None: no Authorization header).
    pub async fn get_as(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    pub fn store(&self) -> &Arc<dyn netmedic_collector::store::Store> {
        self.server.as_ref().unwrap().store()
    }

    /// Enrols a device (as `device add` does) and remembers its token.
    pub async fn enrol(&self, id: &str) -> String {
        self.enrol_in(id, None).await
    }

    pub async fn enrol_in(&self, id: &str, region: Option<&str>) -> String {
        let token = netmedic_collector::auth::new_token().unwrap();
        let hash = netmedic_collector::auth::token_sha256(&token);
        let now = netmedic_collector::now();
        if let Err(e) = self.store().enrol_device(id, region, &hash, now).await {
            // Enrolled by an earlier server on this database: issue a new token.
            assert!(e.to_string().contains("already enrolled"), "{e}");
            self.store().revoke_device(id, now).await.unwrap();
            self.store()
                .enrol_device(id, region, &hash, now)
                .await
                .unwrap();
        }
        self.tokens
            .lock()
            .unwrap()
            .insert(id.to_owned(), token.clone());
        token
    }

    /// The token to send for a document naming `agent_id`: its own once enrolled (enrolling a
    /// valid, unknown id on first use), else the default device's.
    async fn token_for(&self, agent_id: Option<&str>) -> String {
        let known = |id: &str| self.tokens.lock().unwrap().get(id).cloned();
        match agent_id {
            Some(id) if netmedic_collector::fleet::valid_id(id) => match known(id) {
                Some(t) => t,
                None => self.enrol(id).await,
            },
            _ => known(DEFAULT_DEVICE).unwrap(),
        }
    }

    /// POSTs a document with an explicit token (None: no Authorization header).
    pub async fn post_as<T: serde::Serialize>(
        &self,
        path: &str,
        doc: &T,
        token: Option<&str>,
    ) -> reqwest::Response {
        let mut req = self.client.post(self.url(path)).json(doc);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send().await.unwrap()
    }

    /// Runs one SQL statement on the collector's database (tests seed tables the importers of
    /// a later issue will fill, or age a device's last heartbeat).
    pub async fn exec(&self, sql: &str) {
        match &self.storage {
            StorageUrl::Sqlite { path } => {
                let opts = SqliteConnectOptions::new().filename(path);
                let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
            StorageUrl::Postgres { url } => {
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut conn)
                    .await
                    .unwrap();
                conn.close().await.unwrap();
            }
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
        let token = self.token_for(None).await;
        let mut req = self
            .client
            .post(self.url(path))
            .bearer_auth(token)
            .body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.unwrap()
    }

    /// POSTs a JSON `body` already encoded with `encoding` (e.g. `gzip`) under `token`.
    pub async fn post_encoded(
        &self,
        path: &str,
        token: &str,
        encoding: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .header("content-encoding", encoding)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// POSTs a document with the token of the device it names (see [`Self::token_for`]).
    pub async fn post_json<T: serde::Serialize>(&self, path: &str, doc: &T) -> reqwest::Response {
        let v = serde_json::to_value(doc).unwrap();
        let token = self
            .token_for(v.get("agent_id").and_then(|a| a.as_str()))
            .await;
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(doc)
            .send()
            .await
            .unwrap()
    }

    /// GET with the operator API token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(path, Some(&self.admin_token)).await
    }

    /// Row count of one of the collector's tables, read straight from the database.
    pub async fn count(&self, table: &str) -> i64 {
        match &self.storage {
            StorageUrl::Sqlite { path } => count_rows(path, table).await,
            StorageUrl::Postgres { url } => {
                let sql = count_sql(table);
                let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
                conn.close().await.unwrap();
                n
            }
        }
    }

    /// Rows written by ingest (events, incidents, actions, seen devices).
    pub async fn total_rows(&self) -> i64 {
        let mut n = 0;
        for t in ["events", "incidents", "incident_actions", "seen_devices"] {
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

fn count_sql(table: &str) -> &'static str {
    match table {
        "events" => "SELECT COUNT(*) FROM events",
        "incidents" => "SELECT COUNT(*) FROM incidents",
        "incident_actions" => "SELECT COUNT(*) FROM incident_actions",
        "devices" => "SELECT COUNT(*) FROM devices",
        "seen_devices" => "SELECT COUNT(*) FROM devices WHERE last_seen_at IS NOT NULL",
        "diagnostics_requests" => "SELECT COUNT(*) FROM diagnostics_requests",
        "subscribers" => "SELECT COUNT(*) FROM subscribers",
        "surveys" => "SELECT COUNT(*) FROM surveys",
        "contacts" => "SELECT COUNT(*) FROM contacts",
        "network_events" => "SELECT COUNT(*) FROM network_events",
        other => panic!("unknown table {other}"),
    }
}

pub async fn count_rows(db: &std::path::Path, table: &str) -> i64 {
    let sql = count_sql(table);
    let opts = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    n
}

/// `secs` after a base instant 200 days before the test started (whole seconds): the collector
/// refuses event times more than 366 days old or 1 hour ahead, and stories reach ~70 days on.
pub fn ts(secs: i64) -> Timestamp {
    static BASE_MS: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    let base = *BASE_MS.get_or_init(|| {
        let now = netmedic_collector::now().unix_millis();
        (now - 200 * 86_400_000) / 1000 * 1000
    });
    Timestamp::from_unix_millis(base + secs * 1000).unwrap()
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
        experiment: None,
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

/// A heartbeat of `agent_id` with one check (DNS ok), as a router sends it a minute after boot.
pub fn heartbeat(agent_id: &str) -> Heartbeat {
    Heartbeat {
        schema_version: SCHEMA_VERSION,
        agent_id: agent_id.into(),
        agent_version: "0.1.0".into(),
        firmware_version: "OpenWrt 24.10".into(),
        uptime_secs: 60,
        sent_at: ts(0),
        checks: [(CheckId::Dns, CheckStatus::Ok)].into_iter().collect(),
        spool_depth: 0,
        dropped_total: 0,
    }
}

/// Asserts `resp` is the JSON error `code` with status `status` and a reason; returns its body.
pub async fn expect_error(resp: reqwest::Response, status: StatusCode, code: &str) -> ErrorBody {
    let got = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = resp.text().await.unwrap();
    assert_eq!(got, status, "for expected error {code}: {text}");
    assert!(ct.starts_with("application/json"), "{ct}: {text}");
    let body: ErrorBody = serde_json::from_str(&text).unwrap();
    assert_eq!(body.error, code, "{body:?}");
    assert!(!body.reason.is_empty());
    body
}

/// Asserts `resp` is a 200 and parses its JSON body (the body is in the message when it is not).
pub async fn ok_json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> T {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{text}");
    serde_json::from_str(&text).unwrap()
}

/// One incident's detail as the console's API returns it (asserts a 200).
pub async fn detail(
    s: &TestServer,
    agent: &str,
    incident: &str,
) -> netmedic_collector::store::IncidentDetail {
    ok_json(
        s.get(&format!("/api/v1/incidents/{agent}/{incident}"))
            .await,
    )
    .await
}

/// GETs `path_and_query` as an operator and asserts it is refused as `invalid_query`.
pub async fn expect_invalid_query(s: &TestServer, path_and_query: &str) -> ErrorBody {
    let resp = s.get(path_and_query).await;
    expect_error(resp, StatusCode::BAD_REQUEST, "invalid_query").await
}

/// Sends [`heartbeat`] of `id` with `token`; returns the reply.
pub async fn beat(s: &TestServer, id: &str, token: &str) -> HeartbeatReply {
    ok_json(
        s.post_as(paths::HEARTBEATS, &heartbeat(id), Some(token))
            .await,
    )
    .await
}

/// `doc` as JSON, gzip'd at `level`, as the agent sends it.
pub fn gzip<T: serde::Serialize>(doc: &T, level: flate2::Compression) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), level);
    gz.write_all(&serde_json::to_vec(doc).unwrap()).unwrap();
    gz.finish().unwrap()
}

/// POSTs `b` with `token`; returns the acknowledgement.
pub async fn report(s: &TestServer, token: &str, b: &ReportBatch) -> netmedic_proto::ReportAck {
    ok_json(s.post_as(paths::REPORTS, b, Some(token)).await).await
}

/// A tiny deterministic PRNG (SplitMix64): the populations are the same on every run.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// An NPS answer: promoter with `p`, detractor with `d`, passive otherwise.
    pub fn nps(&mut self, p: f64, d: f64) -> i64 {
        let u = self.unit();
        if u < p {
            9 + self.below(2) as i64
        } else if u < p + d {
            self.below(7) as i64
        } else {
            7 + self.below(2) as i64
        }
    }
}
