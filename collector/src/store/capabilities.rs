//! The capability traits of the store: each caller names what it needs (ingest, incidents,
//! fleet, access, customer experience, lifecycle), and [`Store`] is all of them, so the server
//! can still hold one `Arc<dyn Store>`. Calling a method through `dyn Store` needs its trait in
//! scope: `use crate::store::prelude::*;`.

use super::noc_types::{
    ContactRecord, IncidentAck, IncidentNote, NocUser, Overview, SessionRecord, SubscriberRecord,
    SurveyRecord,
};
use super::records::{ImportError, ImportReport, RowSource};
use super::{
    ApiTokenRecord, Auth, BoxFuture, CompleteOutcome, Cursor, DeviceFilter, DeviceRecord,
    DiagnosticsRecord, IncidentDetail, IncidentFilter, ItemResult, KillScope, KillSwitch,
    NetworkEventFilter, Result, StoreError, WriteItem, WriteKind, WriteOk,
};
use crate::analytics::{NetworkEventView, Report, ReportParams};
use crate::auth::Role;
use crate::correlate::{OutageParams, PassOutcome};
use netmedic_proto::{CheckId, IncidentPage, ReportAck, ReportBatch, Timestamp};
use std::collections::BTreeMap;
use std::fmt::Debug;

/// What the agents write: report batches and heartbeats in group-committed transactions, and
/// the results of on-demand diagnostics. Every write is durable before it returns, idempotent by
/// `event_id`, and checks the device token inside the same transaction, so a revocation takes
/// effect at once on every process sharing the database.
pub trait IngestStore: Send + Sync + Debug {
    /// Applies every item in one transaction and returns one result per item, in order. A
    /// refused item (bad token, another device's id) stores nothing and does not affect the
    /// others. An `Err` means nothing of the group was stored.
    fn write_group<'a>(&'a self, items: &'a [WriteItem]) -> BoxFuture<'a, Result<Vec<ItemResult>>>;

    /// Answers a token-authenticated heartbeat from memory when the store can (token verified
    /// recently, advice unchanged, nothing to deliver), recording its last-seen update (the
    /// heartbeat is kept for that, not copied); `Err` gives the heartbeat back: it goes through
    /// [`Self::write_group`], which checks against the database.
    #[allow(
        clippy::result_large_err,
        reason = "the heartbeat is handed back by move: boxing it would cost the allocation this saves"
    )]
    fn heartbeat_cached(
        &self,
        _token_sha256: &str,
        hb: netmedic_proto::Heartbeat,
        _received_at: Timestamp,
    ) -> std::result::Result<super::HeartbeatOk, netmedic_proto::Heartbeat> {
        Err(hb)
    }

    /// Stores one batch without a token (local tools, tests): a group of one trusted item.
    fn ingest_report<'a>(
        &'a self,
        batch: &'a ReportBatch,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<ReportAck>> {
        Box::pin(async move {
            let item = WriteItem {
                auth: Auth::Trusted,
                kind: WriteKind::report(batch.clone())?,
                received_at,
            };
            let mut out = self.write_group(std::slice::from_ref(&item)).await?;
            match out.pop() {
                Some(Ok(WriteOk::Report(ack))) => Ok(ack),
                other => Err(StoreError::Corrupt(format!("trusted report got {other:?}"))),
            }
        })
    }

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
}

/// Incidents as the NOC reads and handles them: lists and timelines, acknowledgements and notes,
/// the console overview, and mass-outage correlation into network events.
pub trait IncidentStore: Send + Sync + Debug {
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
}

/// The fleet of devices: enrolment and revocation, device records, kill switches and on-demand
/// diagnostics requests.
pub trait FleetStore: Send + Sync + Debug {
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

    /// Starts a holdout experiment (validated by the caller); [`StoreError::Conflict`] when an
    /// experiment of this id exists, active or ended (ids are never reused).
    fn start_experiment<'a>(
        &'a self,
        experiment: &'a netmedic_proto::Experiment,
        created_by: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// Ends an active experiment (kept for the report); `Ok(false)` when no active experiment
    /// has this id.
    fn end_experiment<'a>(&'a self, id: &'a str, now: Timestamp) -> BoxFuture<'a, Result<bool>>;

    /// Every experiment, active first, then newest first.
    fn list_experiments(&self) -> BoxFuture<'_, Result<Vec<super::ExperimentRecord>>>;

    /// Queues on-demand diagnostics for a device's next heartbeat reply.
    /// [`StoreError::NoSuchDevice`] when the device is not enrolled.
    fn request_diagnostics<'a>(
        &'a self,
        agent_id: &'a str,
        checks: &'a [CheckId],
        request_id: &'a str,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

    /// A device's diagnostics requests with their results, newest first, at most `limit`
    /// (clamped to 1..=500).
    fn list_diagnostics<'a>(
        &'a self,
        agent_id: &'a str,
        limit: u32,
    ) -> BoxFuture<'a, Result<Vec<DiagnosticsRecord>>>;
}

/// Who may use the collector: API tokens, NOC console users and their sessions.
pub trait AccessStore: Send + Sync + Debug {
    /// Bulk enrolment (`device import`): devices as (id, SHA-256 hex of its new token, optional
    /// customer) in one transaction, all or nothing. A revoked device is re-enrolled; an
    /// active one is a [`StoreError::Conflict`] naming it. A customer maps the device in
    /// `subscribers` (its other attributes are kept). Returns the devices enrolled.
    fn enrol_fleet<'a>(
        &'a self,
        devices: &'a [(String, String, Option<String>)],
        now: Timestamp,
    ) -> BoxFuture<'a, Result<u64>>;

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
}

/// Customer experience: imported subscribers, surveys and contacts, and the report over them.
pub trait CxStore: Send + Sync + Debug {
    /// Streams a source into the database, upserting by id: batches of
    /// [`super::records::IMPORT_BATCH_ROWS`] rows per transaction, or (strict) one transaction
    /// rolled back if any row is bad.
    fn import<'a>(
        &'a self,
        source: &'a mut dyn RowSource,
        strict: bool,
    ) -> BoxFuture<'a, std::result::Result<ImportReport, ImportError>>;

    /// The customer-experience report (links computed from the data as stored now).
    fn report<'a>(&'a self, params: &'a ReportParams) -> BoxFuture<'a, Result<Report>>;

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
}

/// The database connection itself: readiness, planner maintenance and shutdown.
pub trait LifecycleStore: Send + Sync + Debug {
    /// Cheap round trip to the database, for `/readyz`.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// Refreshes the query planner's statistics where the backend does not do it by itself
    /// (SQLite: `PRAGMA optimize`, a no-op when little changed; PostgreSQL's autovacuum analyses
    /// on its own, so nothing). The server runs it at start and then every hour.
    fn maintain(&self) -> BoxFuture<'_, Result<()>>;

    /// Flushes and closes connections (on shutdown).
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// The collector's storage: every capability. Implemented for every type that has them all, so
/// a backend implements the capability traits and is a `Store` (and `Arc<dyn Store>`) at once.
pub trait Store:
    IngestStore + IncidentStore + FleetStore + AccessStore + CxStore + LifecycleStore
{
}

impl<T> Store for T where
    T: IngestStore + IncidentStore + FleetStore + AccessStore + CxStore + LifecycleStore + ?Sized
{
}

// `Store` must stay object-safe: the server holds `Arc<dyn Store>`.
const _: Option<&dyn Store> = None;
