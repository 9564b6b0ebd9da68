//! [`Dialect`]: everything one SQL backend does differently from the others. The shared SQL
//! (`shared.rs` and the modules it expands) reads these items and nothing else of a backend.

use super::assemble::Assembled;
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

/// One row of the `incidents` table as an upsert writes it, borrowed from the assembled
/// incident it came from.
#[derive(Debug, Clone, Copy)]
pub struct IncidentUpsert<'a> {
    pub agent_id: &'a str,
    pub incident_id: &'a str,
    pub check_id: &'a str,
    pub cause: &'a str,
    pub category: &'a str,
    pub severity: &'a str,
    pub status: &'a str,
    pub started_at: i64,
    pub resolved_at: Option<i64>,
    pub auto_healed: Option<bool>,
    pub summary: &'a str,
    /// The evidence map as JSON.
    pub evidence: &'a str,
    pub event_count: i64,
    pub last_seq: i64,
    /// `first_received_at` of a new row and `updated_at` of every row.
    pub now_ms: i64,
    pub experiment_id: Option<&'a str>,
    pub experiment_arm: Option<&'a str>,
}

/// The columns an incident upsert writes, in [`IncidentUpsert`]'s order.
pub const INCIDENT_UPSERT_COLUMNS: &str = "(agent_id, incident_id, check_id, cause, category, \
    severity, status, started_at, resolved_at, auto_healed, summary, evidence, event_count, \
    last_seq, first_received_at, updated_at, experiment_id, experiment_arm)";

/// The columns of `incidents` that no index holds (nor a partial index's condition): writing
/// them into a stored row leaves every index entry of the row as it is.
macro_rules! unindexed_set {
    () => {
        "check_id = excluded.check_id,
    cause = excluded.cause,
    resolved_at = excluded.resolved_at,
    auto_healed = excluded.auto_healed,
    summary = excluded.summary,
    evidence = excluded.evidence,
    event_count = excluded.event_count,
    last_seq = excluded.last_seq,
    updated_at = excluded.updated_at"
    };
}

/// What an incident upsert replaces in a row that exists (always everything in a new row). The
/// narrower forms are for rows whose indexed values did not change: SQLite rewrites the entries
/// of every index that holds a column named in `SET` (delete and insert, also when the value is
/// the same), so a merge that only counts an event or resolves the incident should not name
/// `started_at`, `category`, `severity` or the experiment. PostgreSQL compares the old and new
/// values itself and always gets [`IncidentSet::All`] ([`Dialect::NARROW_INCIDENT_UPDATES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentSet {
    /// Everything but the key and `first_received_at`.
    All,
    /// The status (the condition of the open-incident indexes) and the unindexed columns.
    StatusAndUnindexed,
    /// The unindexed columns only: no index entry is touched.
    Unindexed,
}

impl IncidentSet {
    /// Every form, in the order of [`IncidentSet::index`].
    pub const EVERY: [IncidentSet; 3] = [Self::All, Self::StatusAndUnindexed, Self::Unindexed];

    /// This form's `ON CONFLICT (agent_id, incident_id) DO UPDATE SET …` clause.
    pub fn conflict_sql(self) -> &'static str {
        match self {
            Self::All => concat!(
                " ON CONFLICT (agent_id, incident_id) DO UPDATE SET
    category = excluded.category,
    severity = excluded.severity,
    status = excluded.status,
    started_at = excluded.started_at,
    experiment_id = excluded.experiment_id,
    experiment_arm = excluded.experiment_arm,
    ",
                unindexed_set!()
            ),
            Self::StatusAndUnindexed => concat!(
                " ON CONFLICT (agent_id, incident_id) DO UPDATE SET
    status = excluded.status,
    ",
                unindexed_set!()
            ),
            Self::Unindexed => concat!(
                " ON CONFLICT (agent_id, incident_id) DO UPDATE SET
    ",
                unindexed_set!()
            ),
        }
    }

    /// The narrowest form that writes `after` over the stored row `before` (`None`: no row is
    /// stored, so the whole row is inserted).
    pub fn for_update(before: Option<&Assembled>, after: &Assembled) -> Self {
        let Some(b) = before else {
            return Self::All;
        };
        if b.category != after.category
            || b.severity != after.severity
            || b.started_at != after.started_at
            || b.experiment != after.experiment
        {
            Self::All
        } else if b.status != after.status {
            Self::StatusAndUnindexed
        } else {
            Self::Unindexed
        }
    }

    /// The position of this form in [`IncidentSet::EVERY`].
    pub fn index(self) -> usize {
        match self {
            Self::All => 0,
            Self::StatusAndUnindexed => 1,
            Self::Unindexed => 2,
        }
    }
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

    /// Whether an update of a stored incident names only the columns whose kind of value
    /// changed ([`IncidentSet::for_update`]; a write group then has up to three upsert
    /// statements). SQLite: yes, it rewrites the index entries of every column named in `SET`.
    /// PostgreSQL: no, it compares old and new values itself, and the extra statements cost
    /// server CPU (measured in `docs/perf-events.md`, round 6).
    const NARROW_INCIDENT_UPDATES: bool;

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
    /// tells for each row whether it was inserted (`rows.len()` flags, in order). One statement
    /// text whatever the number of rows where the backend can (PostgreSQL: arrays through
    /// `UNNEST`, planned once per connection); multi-row `VALUES` in fixed-size chunks
    /// elsewhere.
    fn insert_events<'a>(
        conn: &'a mut <Self::Db as sqlx::Database>::Connection,
        rows: &'a [EventRow<'a>],
    ) -> BoxFuture<'a, Result<Vec<bool>>>;

    /// Inserts incident rows, or replaces the columns `set` names in those that exist (keys
    /// unique within `rows`). Like [`Dialect::insert_events`]: one statement text for any
    /// number of rows where the backend can, fixed-size multi-row `VALUES` chunks elsewhere.
    fn upsert_incidents<'a>(
        conn: &'a mut <Self::Db as sqlx::Database>::Connection,
        rows: &'a [IncidentUpsert<'a>],
        set: IncidentSet,
    ) -> BoxFuture<'a, Result<()>>;

    /// Pushes the rows `(agent_id, incident_id)` of `keys` as the right-hand side of
    /// `WHERE (agent_id, incident_id) IN (…)`, in a form the backend's planner answers through
    /// the tables' `(agent_id, incident_id)` indexes. PostgreSQL: `SELECT * FROM UNNEST($1, $2)`
    /// (two arrays; one statement text for any number of keys): a `VALUES` list of hundreds
    /// of rows was planned as a hash join over a sequential scan of the whole table. SQLite:
    /// a multi-row `VALUES`, which it searches through the index.
    fn push_key_pairs(qb: &mut sqlx::QueryBuilder<Self::Db>, keys: &[(&str, &str)]);

    /// Why a failed write group may be tried again (deadlock, serialization failure), or `None`
    /// when the error is final.
    fn retry_reason(error: &StoreError) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::{Assembled, IncidentSet};
    use netmedic_proto::{
        Arm, Category, CheckId, ExperimentArm, IncidentStatus, Severity, Timestamp,
    };

    fn stored() -> Assembled {
        Assembled {
            check: CheckId::DefaultRoute,
            cause: "default_route_missing".into(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            status: IncidentStatus::Open,
            started_at: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            resolved_at: None,
            auto_healed: None,
            summary: "no default route".into(),
            evidence: Default::default(),
            event_count: 1,
            last_seq: 1,
            experiment: None,
        }
    }

    /// Only a change of an indexed value takes the full form; the status alone the middle one.
    #[test]
    fn the_narrowest_form_that_writes_every_change() {
        let before = stored();
        assert_eq!(IncidentSet::for_update(None, &before), IncidentSet::All);
        let mut counted = stored();
        counted.event_count = 2;
        counted.last_seq = 2;
        counted.summary = "still no default route".into();
        counted.cause = "other".into();
        assert_eq!(
            IncidentSet::for_update(Some(&before), &counted),
            IncidentSet::Unindexed
        );
        let mut resolved = counted.clone();
        resolved.status = IncidentStatus::Resolved;
        resolved.resolved_at = Some(Timestamp::from_unix_millis(1_700_000_060_000).unwrap());
        assert_eq!(
            IncidentSet::for_update(Some(&before), &resolved),
            IncidentSet::StatusAndUnindexed
        );
        let changes: [fn(&mut Assembled); 4] = [
            |a| a.category = Category::DnsFailure,
            |a| a.severity = Severity::Minor,
            |a| a.started_at = Timestamp::from_unix_millis(1_699_999_990_000).unwrap(),
            |a| {
                a.experiment = Some(ExperimentArm {
                    experiment_id: "x".into(),
                    arm: Arm::Control,
                })
            },
        ];
        for change in changes {
            let mut moved = resolved.clone();
            change(&mut moved);
            assert_eq!(
                IncidentSet::for_update(Some(&before), &moved),
                IncidentSet::All
            );
        }
    }
}
