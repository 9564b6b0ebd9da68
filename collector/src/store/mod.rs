//! Storage behind a trait: what the HTTP API and the CLI need from a database, independent of
//! the backend (SQLite or PostgreSQL, chosen by the storage URL), plus the backend-neutral pieces
//! (cursor, errors, write groups, device and fleet records).

pub mod assemble;
mod cx;
mod diag;
mod noc;
pub mod noc_types;
pub mod postgres;
mod shared;
pub mod sqlite;

use crate::analytics::{NetworkEventView, Report, ReportParams};
use crate::auth::Role;
use crate::config::{StorageConfig, StorageUrl};
use crate::correlate::{OutageParams, PassOutcome};
use crate::import::{ImportError, ImportReport, RowSource};
use netmedic_proto::{
    Advisory, Category, CheckId, Heartbeat, IncidentPage, IncidentStatus, IncidentView, ReportAck,
    ReportBatch, Severity, Timestamp,
};
use noc_types::{
    ContactRecord, IncidentAck, IncidentNote, NocUser, Overview, SessionRecord, SubscriberRecord,
    SurveyRecord,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use diag::{CompleteOutcome, DiagnosticsRecord, DiagnosticsState};

/// A boxed, `Send` future: keeps [`Store`] object-safe so the backend can be chosen at run time
/// from the storage URL (`Arc<dyn Store>`).
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
    Report(ReportBatch),
    Heartbeat(Heartbeat),
}

impl WriteKind {
    pub fn agent_id(&self) -> &str {
        match self {
            WriteKind::Report(b) => &b.agent_id,
            WriteKind::Heartbeat(h) => &h.agent_id,
        }
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
    /// Advisories for the heartbeat reply (pending diagnostics are now marked delivered).
    Heartbeat(Vec<Advisory>),
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

/// The collector's storage. Writes arrive in groups ([`Store::write_group`]): one transaction,
/// durable before returning, idempotent by `event_id`, device tokens checked inside the same
/// transaction so a revocation takes effect at once on every process sharing the database.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Applies every item in one transaction and returns one result per item, in order. A
    /// refused item (bad token, another device's id) stores nothing and does not affect the
    /// others. An `Err` means nothing of the group was stored.
    fn write_group<'a>(&'a self, items: &'a [WriteItem]) -> BoxFuture<'a, Result<Vec<ItemResult>>>;

    /// Incidents matching `filter`, newest first, at most `limit` (clamped to 1..=500).
    fn list_incidents<'a>(
        &'a self,
        filter: &'a IncidentFilter,
        limit: u32,
        cursor: Option<&'a Cursor>,
    ) -> BoxFuture<'a, Result<IncidentPage>>;

    fn get_incident<'a>(
        &'a self,
        agent_id: &'a str,
        incident_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<IncidentDetail>>>;

    /// Enrols a device with the SHA-256 (hex) of its new token. A revoked device is re-enrolled;
    /// an active one is a [`StoreError::Conflict`].
    fn enrol_device<'a>(
        &'a self,
        agent_id: &'a str,
        region: Option<&'a str>,
        token_sha256: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// Enrols many devices (id, token hash) in one transaction (load tests, bulk provisioning).
    fn enrol_devices<'a>(
        &'a self,
        devices: &'a [(String, String)],
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// Revokes a device's token; `Ok(false)` when no such enrolled, active device exists.
    fn revoke_device<'a>(
        &'a self,
        agent_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>>;

    fn list_devices<'a>(
        &'a self,
        filter: &'a DeviceFilter,
    ) -> BoxFuture<'a, Result<Vec<DeviceRecord>>>;

    fn get_device<'a>(&'a self, agent_id: &'a str) -> BoxFuture<'a, Result<Option<DeviceRecord>>>;

    fn set_killswitch<'a>(
        &'a self,
        scope: &'a KillScope,
        reason: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// `Ok(false)` when no such switch was set.
    fn clear_killswitch<'a>(&'a self, scope: &'a KillScope) -> BoxFuture<'a, Result<bool>>;

    fn list_killswitches(&self) -> BoxFuture<'_, Result<Vec<KillSwitch>>>;

    /// Queues on-demand diagnostics for a device's next heartbeat reply.
    /// [`StoreError::NoSuchDevice`] when the device is not enrolled.
    fn request_diagnostics<'a>(
        &'a self,
        agent_id: &'a str,
        checks: &'a [CheckId],
        request_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// Stores a device's diagnostics result on its request (`received_at`: the collector's
    /// clock, kept as the request's `completed_at`). The token is checked in the same
    /// transaction: unknown, revoked or another device's token → [`CompleteOutcome::Denied`];
    /// a request id unknown or queued for another device → [`CompleteOutcome::NotFound`]; a
    /// request that already has a result keeps it → [`CompleteOutcome::AlreadyCompleted`].
    fn complete_diagnostics<'a>(
        &'a self,
        token_sha256: &'a str,
        result: &'a netmedic_proto::DiagnosticsResult,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<CompleteOutcome>>;

    /// A device's diagnostics requests with their results, newest first, at most `limit`
    /// (clamped to 1..=500).
    fn list_diagnostics<'a>(
        &'a self,
        agent_id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<DiagnosticsRecord>>>;

    /// Creates an API token (a person's or a tool's) with the SHA-256 (hex) of its text. A
    /// revoked token of that name is replaced; an active one is a [`StoreError::Conflict`].
    fn api_token_add<'a>(
        &'a self,
        name: &'a str,
        role: Role,
        token_sha256: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// `Ok(false)` when no active token has this name.
    fn api_token_revoke<'a>(&'a self, name: &'a str, now: Timestamp)
    -> BoxFuture<'a, Result<bool>>;

    fn api_token_list(&self) -> BoxFuture<'_, Result<Vec<ApiTokenRecord>>>;

    /// The name and role of the active API token with this hash.
    fn api_token_lookup<'a>(
        &'a self,
        token_sha256: &'a str,
    ) -> BoxFuture<'a, Result<Option<(String, Role)>>>;

    /// Streams a source into the database, upserting by id: batches of
    /// [`crate::import::IMPORT_BATCH_ROWS`] rows per transaction, or (strict) one transaction
    /// rolled back if any row is bad.
    fn import<'a>(
        &'a self,
        source: &'a mut dyn RowSource,
        strict: bool,
    ) -> BoxFuture<'a, std::result::Result<ImportReport, ImportError>>;

    /// The customer-experience report (links computed from the data as stored now).
    fn report<'a>(&'a self, params: &'a ReportParams) -> BoxFuture<'a, Result<Report>>;

    /// Refreshes the query planner's statistics where the backend does not do it by itself
    /// (SQLite: `PRAGMA optimize`, a no-op when little changed; PostgreSQL's autovacuum analyses
    /// on its own, so nothing). The server runs it at start and then every hour.
    fn maintain(&self) -> BoxFuture<'_, Result<()>>;

    /// One mass-outage correlation pass (idempotent; safe from several processes at once).
    fn correlate<'a>(
        &'a self,
        params: &'a OutageParams,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<PassOutcome>>;

    fn network_events<'a>(
        &'a self,
        filter: &'a NetworkEventFilter,
        with_members: bool,
    ) -> BoxFuture<'a, Result<Vec<NetworkEventView>>>;

    // ---- NOC console (store/noc.rs) ----

    /// Adds a NOC user; an existing name is a [`StoreError::Conflict`].
    fn noc_user_add<'a>(
        &'a self,
        name: &'a str,
        role: Role,
        password_phc: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    fn noc_user_get<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<NocUser>>>;

    fn noc_user_list(&self) -> BoxFuture<'_, Result<Vec<NocUser>>>;

    /// Sets a user's password and ends all their sessions; `Ok(false)`: no such user.
    fn noc_user_set_password<'a>(
        &'a self,
        name: &'a str,
        password_phc: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Removes a user and their sessions; `Ok(false)`: no such user.
    fn noc_user_remove<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<bool>>;

    /// Stores a new session under the SHA-256 (hex) of its cookie value (and sweeps expired ones).
    fn session_create<'a>(
        &'a self,
        session_sha256: &'a str,
        session: &'a SessionRecord,
    ) -> BoxFuture<'a, Result<()>>;

    /// The live session with this hash (not expired, not idle longer than `idle_ms`).
    fn session_get<'a>(
        &'a self,
        session_sha256: &'a str,
        now: Timestamp,
        idle_ms: i64,
    ) -> BoxFuture<'a, Result<Option<SessionRecord>>>;

    fn session_delete<'a>(&'a self, session_sha256: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Acknowledges an incident (the first acknowledgement stays) and returns the one in force;
    /// [`StoreError::NoSuchIncident`] when it does not exist.
    fn incident_ack<'a>(
        &'a self,
        agent_id: &'a str,
        incident_id: &'a str,
        by: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<IncidentAck>>;

    fn incident_note_add<'a>(
        &'a self,
        agent_id: &'a str,
        incident_id: &'a str,
        author: &'a str,
        now: Timestamp,
        body: &'a str,
    ) -> BoxFuture<'a, Result<()>>;

    /// An incident's acknowledgement and notes (oldest note first).
    fn incident_notes<'a>(
        &'a self,
        agent_id: &'a str,
        incident_id: &'a str,
    ) -> BoxFuture<'a, Result<(Option<IncidentAck>, Vec<IncidentNote>)>>;

    /// Acknowledgements of the given (agent, incident) pairs.
    fn incident_acks<'a>(
        &'a self,
        keys: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<BTreeMap<(String, String), IncidentAck>>>;

    /// The console overview: device states (offline = last seen before `offline_before_ms`),
    /// open incidents, and incidents started since `since_ms`.
    fn overview<'a>(
        &'a self,
        now: Timestamp,
        offline_before_ms: i64,
        since_ms: i64,
    ) -> BoxFuture<'a, Result<Overview>>;

    fn subscribers_of_customer<'a>(
        &'a self,
        customer_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<SubscriberRecord>>>;

    fn subscriber_of_device<'a>(
        &'a self,
        agent_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<SubscriberRecord>>>;

    /// A customer's contacts and survey answers in `[from_ms, to_ms)`, newest first, at most
    /// `limit` of each.
    fn customer_records<'a>(
        &'a self,
        customer_id: &'a str,
        from_ms: i64,
        to_ms: i64,
        limit: u32,
    ) -> BoxFuture<'a, Result<(Vec<ContactRecord>, Vec<SurveyRecord>)>>;

    /// Cheap round trip to the database, for `/readyz`.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// Flushes and closes connections (on shutdown).
    fn close(&self) -> BoxFuture<'_, ()>;

    /// Stores one batch without a token (local tools, tests): a group of one trusted item.
    fn ingest_report<'a>(
        &'a self,
        batch: &'a ReportBatch,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<ReportAck>> {
        Box::pin(async move {
            let item = WriteItem {
                auth: Auth::Trusted,
                kind: WriteKind::Report(batch.clone()),
                received_at,
            };
            let mut out = self.write_group(std::slice::from_ref(&item)).await?;
            match out.pop() {
                Some(Ok(WriteOk::Report(ack))) => Ok(ack),
                other => Err(StoreError::Corrupt(format!("trusted report got {other:?}"))),
            }
        })
    }
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
}
