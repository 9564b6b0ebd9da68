//! Storage: what the HTTP API, the console and the CLI need from a database, independent of the
//! backend (SQLite or PostgreSQL, chosen by the storage URL), plus the backend-neutral pieces
//! (cursor, errors, write groups, device and fleet records).
//!
//! # Capabilities
//!
//! The store is split by what its callers do, one trait each (`capabilities.rs`):
//! [`IngestStore`] (agents' write groups and diagnostics results), [`IncidentStore`] (incident
//! lists and timelines, acknowledgements, notes, the overview, mass-outage correlation),
//! [`FleetStore`] (devices, kill switches, diagnostics requests), [`AccessStore`] (API tokens,
//! NOC users, sessions), [`CxStore`] (customer-experience imports and report) and
//! [`LifecycleStore`] (ping, maintenance, close). [`Store`] is all of them, implemented for
//! every type that implements them all, so the server keeps one `Arc<dyn Store>`. Calling a
//! method on it needs the method's trait in scope: `use crate::store::prelude::*;`.
//!
//! # Backends
//!
//! Both backends are one generic SQL store, [`shared::SqlStore<D>`], over a [`Dialect`] `D`
//! that carries everything the backends really differ in: the driver (`Dialect::Db`), how a
//! write transaction starts (`BEGIN_WRITE_SQL`), the locks a write group takes and whether a
//! failed group is retried (`lock_write_group`, `retry_reason`, `WRITE_ATTEMPTS`), the severity
//! rank as the backend's index spells it (`SEVERITY_RANK_SQL`), how correlation passes
//! serialise (`CORRELATE_LOCK_SQL`), planner maintenance (`MAINTAIN_SQL`) and the migrations
//! (`migrator`). The SQL text is one for all backends (`$N` placeholders, `ON CONFLICT`,
//! `RETURNING`, row values), written once in `write.rs`, `incidents.rs`, `devices.rs`,
//! `diag.rs`, `access.rs`, `cx.rs` and `noc.rs`, and compiled per backend by `sql_store!(D)`
//! over the backend's concrete connection type (see `shared.rs` for why it is not generic over
//! sqlx's `Database`).
//!
//! # Adding a backend
//!
//! 1. One file, `store/<backend>.rs`: a zero-sized dialect type with `impl Dialect`, a
//!    `pub type <Backend>Store = shared::SqlStore<ThatDialect>;` with an `open` that builds the
//!    sqlx pool and returns `Self::migrated(pool).await`, and the line
//!    `super::shared::sql_store!(ThatDialect);` (`sqlite.rs` is the smallest example).
//! 2. Wiring: `pub mod <backend>;` below, a `StorageUrl` variant in `config.rs`, its arm in
//!    [`open`], the sqlx driver feature in `Cargo.toml`, and its migrations in
//!    `collector/migrations/<backend>/` (the same tables as the others; append-only).
//! 3. Run the story tests against it (`collector/tests/`), as they run on SQLite and
//!    PostgreSQL.
//!
//! A query that the new backend cannot run as written becomes a new `Dialect` item used by the
//! shared SQL, never a per-backend copy of the query.

mod access;
pub mod assemble;
mod capabilities;
mod cx;
mod devices;
mod diag;
pub mod dialect;
mod experiments;
pub mod hbcache;
mod incidents;
mod noc;
pub mod noc_types;
pub mod postgres;
pub mod records;
pub mod shared;
pub mod sqlite;
mod write;

use crate::auth::Role;
use crate::config::{StorageConfig, StorageUrl};
use netmedic_proto::{
    Advisory, Category, CheckId, Heartbeat, IncidentStatus, IncidentView, ReportAck, ReportBatch,
    Severity, Timestamp,
};
use serde::Serialize;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use capabilities::{
    AccessStore, CxStore, FleetStore, IncidentStore, IngestStore, LifecycleStore, Store,
};
pub use dialect::Dialect;

/// The store traits, for `use crate::store::prelude::*;` where a store's methods are called.
pub mod prelude {
    pub use super::{
        AccessStore, CxStore, FleetStore, IncidentStore, IngestStore, LifecycleStore, Store,
    };
}

pub use diag::{CompleteOutcome, DiagnosticsRecord, DiagnosticsState};
pub use experiments::ExperimentRecord;

/// A boxed, `Send` future: keeps the store traits object-safe so the backend can be chosen at
/// run time from the storage URL (`Arc<dyn Store>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Largest page the query API hands out.
pub const MAX_PAGE_LIMIT: u32 = 500;
/// Page size when none is asked for.
pub const DEFAULT_PAGE_LIMIT: u32 = 50;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or is busy/locked: retry later (HTTP 503).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Schema migration failed when opening the database.
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database must already exist (read-only commands) but does not.
    #[error("database file {} does not exist", .0.display())]
    NotFound(std::path::PathBuf),
    /// A stored row could not be turned back into wire types (a bug or a tampered database).
    #[error("corrupt data in the database: {0}")]
    Corrupt(String),
    /// The caller's pagination cursor is not one we issued.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A value does not fit the storage representation (e.g. seq above 2^63-1).
    #[error("value out of range: {0}")]
    OutOfRange(String),
    /// The request conflicts with what is stored (e.g. enrolling an enrolled device).
    #[error("{0}")]
    Conflict(String),
    /// The named device does not exist.
    #[error("no device {0:?}")]
    NoSuchDevice(String),
    /// The named incident (`agent/incident`) does not exist.
    #[error("no incident {0:?}")]
    NoSuchIncident(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::Decode(_) => StoreError::Corrupt(e.to_string()),
            other => StoreError::Unavailable(other),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Which incidents to list. Every `None` means "any". Customer, region and access node come
/// from the `subscribers` table (region falls back to the device's enrolment region).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    pub category: Option<Category>,
    pub check: Option<CheckId>,
    pub agent_id: Option<String>,
    pub customer_id: Option<String>,
    pub region: Option<String>,
    pub access_node: Option<String>,
    /// Incidents that started at or after this instant.
    pub from: Option<Timestamp>,
    /// Incidents that started strictly before this instant.
    pub to: Option<Timestamp>,
    /// The subscriber's CPE model (subscribers table).
    pub cpe_model: Option<String>,
    /// The firmware (subscribers table, else the device's last heartbeat).
    pub firmware: Option<String>,
    /// The listing order (the cursor belongs to it).
    pub order: ListOrder,
}

/// The order of an incident list. Every order ends on `(agent_id, incident_id)`, so it is total
/// and a cursor resumes exactly where the page ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ListOrder {
    /// Latest `started_at` first (the default).
    #[default]
    Newest,
    /// Earliest `started_at` first.
    Oldest,
    /// Critical, then major, then minor; newest first within a severity.
    Severity,
}

impl ListOrder {
    pub const ALL: [ListOrder; 3] = [ListOrder::Newest, ListOrder::Oldest, ListOrder::Severity];

    /// The wire and query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            ListOrder::Newest => "newest",
            ListOrder::Oldest => "oldest",
            ListOrder::Severity => "severity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

/// A severity's place in [`ListOrder::Severity`] (higher first); the backends' list SQL and
/// index (migrations sqlite 0007, postgres 0006) compute the same numbers.
pub fn severity_rank(s: Severity) -> i64 {
    match s {
        Severity::Minor => 1,
        Severity::Major => 2,
        Severity::Critical => 3,
    }
}

/// Position after the last incident of a page, in the listing order ([`ListOrder`]: its key,
/// then `agent_id` and `incident_id`). Serialized opaquely (hex) on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// [`severity_rank`] of the last incident, in (and only in) [`ListOrder::Severity`].
    pub severity_rank: Option<i64>,
    pub started_at_ms: i64,
    pub agent_id: String,
    pub incident_id: String,
}

impl Cursor {
    pub fn after(v: &IncidentView, order: ListOrder) -> Self {
        Self {
            severity_rank: (order == ListOrder::Severity).then(|| severity_rank(v.severity)),
            started_at_ms: v.started_at.unix_millis(),
            agent_id: v.agent_id.clone(),
            incident_id: v.incident_id.clone(),
        }
    }

    /// Whether this cursor was issued for a list in `order` (newest and oldest share a form).
    pub fn fits(&self, order: ListOrder) -> bool {
        self.severity_rank.is_some() == (order == ListOrder::Severity)
    }

    /// Opaque text form: hex of `started_ms/agent_id/incident_id` (`/` never occurs in ids),
    /// prefixed by `S<rank>/` in the severity order.
    pub fn encode(&self) -> String {
        let rank = self
            .severity_rank
            .map_or_else(String::new, |r| format!("S{r}/"));
        let raw = format!(
            "{rank}{}/{}/{}",
            self.started_at_ms, self.agent_id, self.incident_id
        );
        raw.bytes().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(s: &str) -> Result<Self> {
        if !s.len().is_multiple_of(2) || s.len() > 600 {
            return Err(StoreError::InvalidCursor);
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()
            .ok_or(StoreError::InvalidCursor)?;
        let raw = String::from_utf8(bytes).map_err(|_| StoreError::InvalidCursor)?;
        let (severity_rank, raw) = match raw.strip_prefix('S') {
            Some(rest) => {
                let (rank, rest) = rest.split_once('/').ok_or(StoreError::InvalidCursor)?;
                let rank: i64 = rank.parse().map_err(|_| StoreError::InvalidCursor)?;
                (Some(rank), rest)
            }
            None => (None, raw.as_str()),
        };
        let mut parts = raw.splitn(3, '/');
        let (Some(ms), Some(agent), Some(incident)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(StoreError::InvalidCursor);
        };
        Ok(Self {
            severity_rank,
            started_at_ms: ms.parse().map_err(|_| StoreError::InvalidCursor)?,
            agent_id: agent.to_owned(),
            incident_id: incident.to_owned(),
        })
    }
}

/// How a write proves which device it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// Hex SHA-256 of the bearer token the request carried.
    TokenSha256(String),
    /// Local tools and tests writing straight to the store: no token, the device row is created
    /// when missing.
    Trusted,
}

/// One request's share of a group-committed write.
#[derive(Debug, Clone)]
pub enum WriteKind {
    Report(Report),
    Heartbeat(Heartbeat),
}

impl WriteKind {
    /// A report batch, its events encoded for storage (see [`Report`]).
    pub fn report(batch: ReportBatch) -> Result<Self> {
        Report::new(batch).map(WriteKind::Report)
    }

    pub fn agent_id(&self) -> &str {
        match self {
            WriteKind::Report(r) => &r.batch.agent_id,
            WriteKind::Heartbeat(h) => &h.agent_id,
        }
    }
}

/// A report batch with each event's stored form (its JSON) encoded by the request's own task.
/// The writer that stores it is serial (SQLite has one writer), the request handlers run in
/// parallel: encoding here takes about 1 µs per event off the serial path.
#[derive(Debug, Clone)]
pub struct Report {
    pub batch: ReportBatch,
    /// Every event's JSON, one after the other; event `k` ends at `ends[k]`.
    json: String,
    ends: Vec<usize>,
}

impl Report {
    pub fn new(batch: ReportBatch) -> Result<Self> {
        let mut buf: Vec<u8> = Vec::with_capacity(batch.events.len() * 512);
        let mut ends = Vec::with_capacity(batch.events.len());
        for e in &batch.events {
            serde_json::to_writer(&mut buf, e)
                .map_err(|e| StoreError::Corrupt(format!("cannot encode event: {e}")))?;
            ends.push(buf.len());
        }
        let json = String::from_utf8(buf)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode event: {e}")))?;
        Ok(Self { batch, json, ends })
    }

    /// The stored JSON of event `k` of the batch (empty past the end).
    pub fn payload(&self, k: usize) -> &str {
        let start = match k.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(self.json.len()),
            None => 0,
        };
        let end = self.ends.get(k).copied().unwrap_or(start);
        self.json.get(start..end).unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct WriteItem {
    pub auth: Auth,
    pub kind: WriteKind,
    pub received_at: Timestamp,
}

/// The durable outcome of one write item.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOk {
    Report(ReportAck),
    /// What the heartbeat reply carries (pending diagnostics are now marked delivered).
    Heartbeat(HeartbeatOk),
}

/// The stored answer to a heartbeat: its advisories and the fleet's active experiments.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeartbeatOk {
    pub advisories: Vec<Advisory>,
    pub experiments: Vec<netmedic_proto::Experiment>,
}

/// Why a write item was refused (nothing of it was stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    /// No enrolled device has this token.
    UnknownToken,
    /// The token's device was revoked.
    Revoked { agent_id: String },
    /// The token belongs to another device than the document names.
    WrongDevice {
        token_device: String,
        claimed: String,
    },
}

pub type ItemResult = std::result::Result<WriteOk, Denied>;

/// What to do when a token did not match on the fast path: find out why.
pub fn denial(found: Option<(String, Option<i64>)>, claimed: &str) -> Denied {
    match found {
        None => Denied::UnknownToken,
        Some((agent_id, Some(_))) => Denied::Revoked { agent_id },
        Some((token_device, None)) => Denied::WrongDevice {
            token_device,
            claimed: claimed.to_owned(),
        },
    }
}

/// Scope of a kill switch. An empty selector never means "all": the fleet is named explicitly.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KillScope {
    Fleet,
    Region(String),
    Device(String),
}

impl KillScope {
    /// (scope, target) as stored: `("fleet", "")`, `("region", R)`, `("device", ID)`.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            KillScope::Fleet => ("fleet", ""),
            KillScope::Region(r) => ("region", r),
            KillScope::Device(d) => ("device", d),
        }
    }

    pub fn from_parts(scope: &str, target: String) -> Option<Self> {
        match scope {
            "fleet" => Some(KillScope::Fleet),
            "region" => Some(KillScope::Region(target)),
            "device" => Some(KillScope::Device(target)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KillSwitch {
    pub scope: &'static str,
    /// Region or device id; empty for the fleet.
    pub target: String,
    pub reason: String,
    pub set_at: Timestamp,
}

/// The kill-switch advisory for a device, if any switch covers it (device first, then region,
/// then fleet: the most specific reason wins).
pub fn kill_advisory(
    switches: &[KillSwitch],
    agent_id: &str,
    region: Option<&str>,
) -> Option<Advisory> {
    let pick = |scope: &str, target: &str| {
        switches
            .iter()
            .find(|k| k.scope == scope && k.target == target)
    };
    pick("device", agent_id)
        .or_else(|| region.and_then(|r| pick("region", r)))
        .or_else(|| pick("fleet", ""))
        .map(|k| Advisory::KillSwitch {
            reason: k.reason.clone(),
        })
}

/// Builds the diagnostics advisory from a stored request (checks stored comma-separated).
pub fn diag_advisory(request_id: String, checks: &str) -> Result<Advisory> {
    let checks = checks
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| {
            CheckId::parse(c).ok_or_else(|| StoreError::Corrupt(format!("diagnostics check {c:?}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Advisory::Diagnostics { request_id, checks })
}

/// A device as stored: enrolment and the latest heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    pub agent_id: String,
    /// Enrolment region (`device add --region`); the subscribers table may say better.
    pub region: Option<String>,
    pub enrolled_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub first_seen_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    pub agent_version: Option<String>,
    pub firmware_version: Option<String>,
    /// The latest heartbeat as JSON.
    pub last_heartbeat: Option<String>,
    pub customer_id: Option<String>,
    pub access_node: Option<String>,
}

/// Devices by state, computed at query time from `last_seen_at` (so every collector process
/// sharing one database agrees without a sweeper).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Enrolled, no heartbeat yet.
    NeverSeen,
    Online,
    /// Silent for more than 3 heartbeat intervals.
    Offline,
    Revoked,
}

impl DeviceState {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never_seen" => Some(Self::NeverSeen),
            "online" => Some(Self::Online),
            "offline" => Some(Self::Offline),
            "revoked" => Some(Self::Revoked),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverSeen => "never_seen",
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Revoked => "revoked",
        }
    }

    /// State of a device given the instant before which a last heartbeat means "offline".
    pub fn of(d: &DeviceRecord, offline_before_ms: i64) -> Self {
        match (d.revoked_at, d.last_seen_at) {
            (Some(_), _) => Self::Revoked,
            (None, None) => Self::NeverSeen,
            (None, Some(t)) if t < offline_before_ms => Self::Offline,
            (None, Some(_)) => Self::Online,
        }
    }
}

/// Which devices to list, ordered by `agent_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFilter {
    pub state: Option<DeviceState>,
    pub region: Option<String>,
    /// Keyset cursor: devices with an id greater than this.
    pub after: Option<String>,
    pub limit: u32,
    /// A device last seen before this instant (Unix ms) is offline.
    pub offline_before_ms: i64,
}

/// One event of an incident's timeline (`GET /api/v1/incidents/{agent}/{incident}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TimelineEvent {
    pub event_id: String,
    pub seq: u64,
    pub kind: netmedic_proto::EventKind,
    pub at: Timestamp,
    pub received_at: Timestamp,
    /// Number of action records this event carried (the records are in `actions`).
    pub action_count: u32,
}

/// An incident with its event timeline, oldest event (by seq) first.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct IncidentDetail {
    #[serde(flatten)]
    pub incident: IncidentView,
    pub events: Vec<TimelineEvent>,
}

/// An API token as listed (never its text or hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct ApiTokenRecord {
    pub name: String,
    pub role: Role,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// Which network events to list, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkEventFilter {
    /// Only unresolved events.
    pub active_only: bool,
    /// Events that started at or after / before these instants (Unix ms).
    pub from_ms: Option<i64>,
    pub to_ms: Option<i64>,
    pub limit: u32,
}

/// How a store is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database when missing and migrate it (the server).
    CreateAndMigrate,
    /// The database must exist; migrate it if needed (the CLI's read commands).
    MustExist,
}

/// Opens the backend named by `config.url`.
pub async fn open(config: &StorageConfig, mode: OpenMode) -> Result<Arc<dyn Store>> {
    let busy_timeout = std::time::Duration::from_millis(u64::from(config.busy_timeout_ms));
    match &config.url {
        StorageUrl::Sqlite { path } => Ok(Arc::new(
            sqlite::SqliteStore::open(path, mode, busy_timeout).await?,
        )),
        StorageUrl::Postgres { url } => Ok(Arc::new(
            postgres::PgStore::open(url, busy_timeout, config.max_connections).await?,
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_garbage() {
        let mut c = Cursor {
            severity_rank: None,
            started_at_ms: 1_700_000_000_000,
            agent_id: "cpe:0001".into(),
            incident_id: "inc-1".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(c.fits(ListOrder::Newest) && c.fits(ListOrder::Oldest));
        assert!(!c.fits(ListOrder::Severity));
        c.severity_rank = Some(3);
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(c.fits(ListOrder::Severity) && !c.fits(ListOrder::Newest));
        let hex = |s: &str| s.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        for bad in ["", "zz", "abc", "2f2f", "61"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
        for bad in ["S/1/a/b", "Sx/1/a/b", "S3", "S3/x/a/b", "S3/1/a"] {
            assert!(Cursor::decode(&hex(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_report_holds_each_event_as_serde_json_encodes_it() {
        use netmedic_proto::{IncidentEvent, SCHEMA_VERSION};
        // As an agent sends it (the wire form), with text that needs escaping.
        let event = |id: &str, summary: &str| -> IncidentEvent {
            serde_json::from_value(serde_json::json!({
                "event_id": id, "incident_id": "inc-1", "seq": 1, "kind": "opened",
                "check": "dns", "cause": "resolver_timeout", "category": "dns_failure",
                "severity": "major", "started_at": "2026-12-04T10:00:00Z",
                "at": "2026-12-04T10:00:01.5Z", "summary": summary,
                "evidence": {"k\"ey": "v\u{e9}"}, "actions": [],
            }))
            .unwrap()
        };
        let events = vec![
            event("ev-1", "first"),
            event("ev-2", "second, \"quoted\" \u{1f4e1}"),
            event("ev-3", ""),
        ];
        let report = Report::new(ReportBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-1".into(),
            events: events.clone(),
        })
        .unwrap();
        for (k, e) in events.iter().enumerate() {
            assert_eq!(
                report.payload(k),
                serde_json::to_string(e).unwrap(),
                "event {k}"
            );
        }
        assert_eq!(report.payload(3), "");
        assert_eq!(report.payload(usize::MAX), "");
        let empty = Report::new(ReportBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-1".into(),
            events: vec![],
        })
        .unwrap();
        assert_eq!(empty.payload(0), "");
    }
}
