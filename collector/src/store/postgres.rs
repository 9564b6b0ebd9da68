//! PostgreSQL backend: several stateless collector processes share one database.
//! A write group is one transaction; before touching any incident it takes a transaction-scoped
//! advisory lock per device whose reports it carries (in a fixed order, so two processes never
//! deadlock on them), which serialises the "insert events, re-read all events, re-assemble" step
//! of every incident of that device across processes (an incident belongs to one device): under READ COMMITTED the re-read then sees every committed event, so no process
//! overwrites the incident with a partial assembly. Events are deduplicated by the primary key
//! (`ON CONFLICT DO NOTHING` waits for a concurrent insert of the same id to commit or roll back).
//! The SQL itself is shared with SQLite (`shared.rs`); this file is the [`Dialect`] and the
//! connection options.

use super::dialect::{Dialect, EventRow, INCIDENT_UPSERT_COLUMNS, IncidentSet, IncidentUpsert};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

/// PostgreSQL's choices for the shared SQL store.
#[derive(Debug, Clone, Copy)]
pub struct PgDialect;

/// The collector's store on PostgreSQL.
pub type PgStore = super::shared::SqlStore<PgDialect>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Dialect for PgDialect {
    type Db = sqlx::Postgres;

    const NAME: &'static str = "postgresql";

    /// READ COMMITTED; the write group's advisory locks ([`Dialect::lock_write_group`]) do the
    /// serialising.
    const BEGIN_WRITE_SQL: Option<&'static str> = None;

    /// Attempts of a write group that hit a deadlock or serialization failure (SQLSTATE 40P01 /
    /// 40001) before the requests get a 503.
    const WRITE_ATTEMPTS: u32 = 3;

    /// Written exactly as migration 0006's expression index so the planner uses it.
    const SEVERITY_RANK_SQL: &'static str =
        "(CASE i.severity WHEN 'critical' THEN 3 WHEN 'major' THEN 2 ELSE 1 END)";

    /// Correlation passes of several processes serialise on this transaction-scoped advisory
    /// lock.
    const CORRELATE_LOCK_SQL: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7305731101)");

    /// Autovacuum keeps PostgreSQL's planner statistics: nothing to do.
    const MAINTAIN_SQL: Option<&'static str> = None;

    /// One upsert statement per write group: PostgreSQL's HOT check compares the indexed values,
    /// so naming unchanged ones costs nothing, and a second statement per group cost server CPU.
    const NARROW_INCIDENT_UPDATES: bool = false;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// One transaction-scoped advisory lock per device the group's reports come from, taken in
    /// key order in one round trip. Per device, not per incident: a device's incidents are
    /// only ever written by groups carrying that device's reports, so the device's lock
    /// serialises them all — one lock per batch instead of one per incident (250 for a full
    /// batch of new incidents, each an entry in the server's shared lock table).
    fn lock_write_group<'a>(
        conn: &'a mut PgConnection,
        items: &'a [super::WriteItem],
    ) -> super::BoxFuture<'a, super::Result<()>> {
        Box::pin(async move {
            let mut keys: Vec<i64> = items
                .iter()
                .filter_map(|i| match &i.kind {
                    super::WriteKind::Report(r) if !r.batch.events.is_empty() => {
                        Some(lock_key(&r.batch.agent_id))
                    }
                    _ => None,
                })
                .collect();
            keys.sort_unstable();
            keys.dedup();
            if !keys.is_empty() {
                // One round trip; unnest keeps the array's (sorted) order.
                sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
                    .bind(&keys)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    }

    /// All rows in one statement: seven arrays through `UNNEST`, so the text (and the plan
    /// PostgreSQL caches for the connection's prepared statement) is the same for any number of
    /// rows, and the server parses no per-row `VALUES` list.
    fn insert_events<'a>(
        conn: &'a mut PgConnection,
        rows: &'a [EventRow<'a>],
    ) -> super::BoxFuture<'a, super::Result<Vec<bool>>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let col = |f: fn(&EventRow<'a>) -> &'a str| rows.iter().map(f).collect::<Vec<&str>>();
            let ids: Vec<(String,)> = sqlx::query_as(
                "INSERT INTO events (event_id, agent_id, incident_id, seq, kind, payload, received_at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[],
                                      $5::text[], $6::text[], $7::bigint[])
                 ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            )
            .bind(col(|r| r.event_id))
            .bind(col(|r| r.agent_id))
            .bind(col(|r| r.incident_id))
            .bind(rows.iter().map(|r| r.seq).collect::<Vec<i64>>())
            .bind(col(|r| r.kind))
            .bind(col(|r| r.payload))
            .bind(rows.iter().map(|r| r.received_at).collect::<Vec<i64>>())
            .fetch_all(&mut *conn)
            .await?;
            let ids: std::collections::HashSet<String> = ids.into_iter().map(|(id,)| id).collect();
            Ok(rows.iter().map(|r| ids.contains(r.event_id)).collect())
        })
    }

    /// All rows in one statement: eighteen arrays through `UNNEST`, like
    /// [`PgDialect::insert_events`] (one plan per connection and form of `set`, no per-row
    /// `VALUES` to parse).
    fn upsert_incidents<'a>(
        conn: &'a mut PgConnection,
        rows: &'a [IncidentUpsert<'a>],
        set: IncidentSet,
    ) -> super::BoxFuture<'a, super::Result<()>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(());
            }
            let text =
                |f: fn(&IncidentUpsert<'a>) -> &'a str| rows.iter().map(f).collect::<Vec<&str>>();
            let opt = |f: fn(&IncidentUpsert<'a>) -> Option<&'a str>| {
                rows.iter().map(f).collect::<Vec<Option<&str>>>()
            };
            let int = |f: fn(&IncidentUpsert<'a>) -> i64| rows.iter().map(f).collect::<Vec<i64>>();
            let sql = UPSERT_INCIDENTS_SQL
                .get(set.index())
                .map_or("", String::as_str);
            sqlx::query(sql)
                .bind(text(|r| r.agent_id))
                .bind(text(|r| r.incident_id))
                .bind(text(|r| r.check_id))
                .bind(text(|r| r.cause))
                .bind(text(|r| r.category))
                .bind(text(|r| r.severity))
                .bind(text(|r| r.status))
                .bind(int(|r| r.started_at))
                .bind(
                    rows.iter()
                        .map(|r| r.resolved_at)
                        .collect::<Vec<Option<i64>>>(),
                )
                .bind(
                    rows.iter()
                        .map(|r| r.auto_healed)
                        .collect::<Vec<Option<bool>>>(),
                )
                .bind(text(|r| r.summary))
                .bind(text(|r| r.evidence))
                .bind(int(|r| r.event_count))
                .bind(int(|r| r.last_seq))
                .bind(int(|r| r.now_ms))
                .bind(int(|r| r.now_ms))
                .bind(opt(|r| r.experiment_id))
                .bind(opt(|r| r.experiment_arm))
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
    }

    /// Two text arrays through `UNNEST`: a nested loop over the primary key (or
    /// `events_by_incident`), whatever the table's size.
    fn push_key_pairs(qb: &mut sqlx::QueryBuilder<sqlx::Postgres>, keys: &[(&str, &str)]) {
        qb.push("SELECT * FROM UNNEST(")
            .push_bind(keys.iter().map(|k| k.0).collect::<Vec<&str>>())
            .push("::text[], ")
            .push_bind(keys.iter().map(|k| k.1).collect::<Vec<&str>>())
            .push("::text[])");
    }

    fn retry_reason(error: &super::StoreError) -> Option<String> {
        match error {
            super::StoreError::Unavailable(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
            {
                Some(e.message().to_owned())
            }
            _ => None,
        }
    }
}

impl PgStore {
    /// Connects and applies pending migrations (sqlx's migrator takes an advisory lock, so
    /// several processes starting at once migrate exactly once).
    pub async fn open(url: &str, busy_timeout: Duration, max_connections: u32) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .map_err(StoreError::Unavailable)?
            // A lock wait longer than the busy timeout fails the statement (→ 503 + Retry-After)
            // instead of holding the request forever.
            .options([("lock_timeout", format!("{}", busy_timeout.as_millis()))]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(busy_timeout)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }
}

/// [`PgDialect::upsert_incidents`]'s statement, per form of [`IncidentSet`] (in
/// [`IncidentSet::EVERY`]'s order).
static UPSERT_INCIDENTS_SQL: LazyLock<Vec<String>> = LazyLock::new(|| {
    IncidentSet::EVERY
        .iter()
        .map(|set| {
            format!(
                "INSERT INTO incidents {INCIDENT_UPSERT_COLUMNS}
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::boolean[], $11::text[],
             $12::text[], $13::bigint[], $14::bigint[], $15::bigint[], $16::bigint[],
             $17::text[], $18::text[])
         {}",
                set.conflict_sql()
            )
        })
        .collect()
});

/// The advisory-lock key of a device's incidents: 64 bits of SHA-256 of `agent_id/` (a
/// collision only serialises two unrelated devices).
fn lock_key(agent_id: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(agent_id.as_bytes());
    h.update(b"/");
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

super::shared::sql_store!(PgDialect);
