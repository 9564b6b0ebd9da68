//! [`Dialect`]: everything one SQL backend does differently from the others. The shared SQL
//! (`shared.rs` and the modules it expands) reads these items and nothing else of a backend.

use super::{BoxFuture, Result, StoreError, WriteItem};

/// One row of the `events` table, borrowed from the report batch it came in.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    pub event_id: &'a str,
    pub agent_id: &'a str,
    pub incident_id: &'a str,
    pub seq: i64,
    pub kind: &'a str,
    /// The event as JSON.
    pub payload: &'a str,
    pub received_at: i64,
}

/// The real differences between SQL backends. Implemented by a zero-sized type per backend
/// (`sqlite::SqliteDialect`, `postgres::PgDialect`); [`super::shared::SqlStore`] is generic over
/// it and `sql_store!(TheDialect)` implements the store for it.
///
/// Everything else (tables, queries, placeholders `$N`, `ON CONFLICT`, `RETURNING`, row values)
/// is one SQL text for every backend; a backend whose SQL differs in a query needs a new item
/// here, not a copy of the query.
pub trait Dialect: std::fmt::Debug + Send + Sync + Sized + 'static {
    /// The sqlx driver.
    type Db: sqlx::Database;

    /// The backend's name, for logs and `Debug`.
    const NAME: &'static str;

    /// The statement that opens a write transaction, when the driver's plain `BEGIN` is not the
    /// right one. SQLite: `BEGIN IMMEDIATE`, which takes the write lock up front so the busy
    /// timeout applies instead of a deadlock-avoiding `SQLITE_BUSY` when a read transaction
    /// would have to be upgraded.
    const BEGIN_WRITE_SQL: Option<&'static str>;

    /// Attempts of a write group whose failure [`Dialect::retry_reason`] calls transient, before
    /// the error reaches the caller (1: never retried).
    const WRITE_ATTEMPTS: u32;

    /// `store::severity_rank` of an incident row `i` as SQL, written exactly as the backend's
    /// index on it so the planner uses that index (SQLite: a generated column; PostgreSQL: an
    /// expression index).
    const SEVERITY_RANK_SQL: &'static str;

    /// Run first in a correlation pass's write transaction so that passes of several processes
    /// serialise (`None` when the write transaction already does, as SQLite's does).
    const CORRELATE_LOCK_SQL: Option<&'static str>;

    /// Planner maintenance that the backend does not do by itself, run by
    /// [`super::LifecycleStore::maintain`] (`None`: nothing to do).
    const MAINTAIN_SQL: Option<&'static str>;

    /// The embedded migrations (`collector/migrations/<backend>/`, append-only).
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// Locks a write group takes inside its transaction before it touches any incident, so that
    /// concurrent groups of other processes cannot interleave their "insert events, re-read,
    /// re-assemble" steps on one incident. Nothing when the write transaction is exclusive.
    fn lock_write_group<'a>(
        conn: &'a mut <Self::Db as sqlx::Database>::Connection,
        items: &'a [WriteItem],
    ) -> BoxFuture<'a, Result<()>>;

    /// Inserts new incident events, skipping those whose `event_id` is already stored, and
    /// returns the ids it inserted (in any order). One statement text whatever the number of
    /// rows where the backend can (PostgreSQL: arrays through `UNNEST`, planned once per
    /// connection); multi-row `VALUES` in fixed-size chunks elsewhere.
    fn insert_events<'a>(
        conn: &'a mut <Self::Db as sqlx::Database>::Connection,
        rows: &'a [EventRow<'a>],
    ) -> BoxFuture<'a, Result<Vec<String>>>;

    /// Why a failed write group may be tried again (deadlock, serialization failure), or `None`
    /// when the error is final.
    fn retry_reason(error: &StoreError) -> Option<String>;
}
