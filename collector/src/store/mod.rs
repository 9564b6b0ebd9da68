//! Storage behind a trait: what the HTTP API and the CLI need from a database, independent of
//! the backend (SQLite now, PostgreSQL later), plus the backend-neutral pieces (cursor, errors).

pub mod assemble;
pub mod sqlite;

use crate::config::{StorageConfig, StorageUrl};
use netmedic_proto::{
    CheckId, Heartbeat, IncidentPage, IncidentStatus, IncidentView, ReportAck, ReportBatch,
    Timestamp,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

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

/// Which incidents to list. Every `None` means "any".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IncidentFilter {
    pub status: Option<IncidentStatus>,
    pub check: Option<CheckId>,
    pub agent_id: Option<String>,
}

/// Position after the last incident of a page, in the listing order (newest `started_at` first,
/// then `agent_id` and `incident_id` descending). Serialized opaquely (hex) on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub started_at_ms: i64,
    pub agent_id: String,
    pub incident_id: String,
}

impl Cursor {
    pub fn after(v: &IncidentView) -> Self {
        Self {
            started_at_ms: v.started_at.unix_millis(),
            agent_id: v.agent_id.clone(),
            incident_id: v.incident_id.clone(),
        }
    }

    /// Opaque text form: hex of `started_ms/agent_id/incident_id` (`/` never occurs in ids).
    pub fn encode(&self) -> String {
        let raw = format!(
            "{}/{}/{}",
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
        let mut parts = raw.splitn(3, '/');
        let (Some(ms), Some(agent), Some(incident)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(StoreError::InvalidCursor);
        };
        Ok(Self {
            started_at_ms: ms.parse().map_err(|_| StoreError::InvalidCursor)?,
            agent_id: agent.to_owned(),
            incident_id: incident.to_owned(),
        })
    }
}

/// The collector's storage. Implementations must make `ingest_report` atomic and durable before
/// returning (the ack lets the agent delete its spool), and idempotent by `event_id`.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Stores a validated batch in one transaction and updates the incidents it touches.
    /// Events already stored (by `event_id`) are counted as duplicates and change nothing; every
    /// event of the batch is acked.
    fn ingest_report<'a>(
        &'a self,
        batch: &'a ReportBatch,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<ReportAck>>;

    /// Records a validated heartbeat as the device's latest state.
    fn record_heartbeat<'a>(
        &'a self,
        heartbeat: &'a Heartbeat,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<()>>;

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
    ) -> BoxFuture<'a, Result<Option<IncidentView>>>;

    /// Cheap round trip to the database, for `/readyz`.
    fn ping(&self) -> BoxFuture<'_, Result<()>>;

    /// Flushes and closes connections (on shutdown).
    fn close(&self) -> BoxFuture<'_, ()>;
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
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursor_roundtrip_and_garbage() {
        let c = Cursor {
            started_at_ms: 1_700_000_000_000,
            agent_id: "cpe:0001".into(),
            incident_id: "inc-1".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        for bad in ["", "zz", "abc", "2f2f", "61"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }
}
