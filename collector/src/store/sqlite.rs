//! SQLite backend of [`Store`]: one database file in WAL mode, `synchronous=FULL` so that an acked
//! batch survives a power cut, one `BEGIN IMMEDIATE` transaction per batch, embedded migrations.

use super::assemble::assemble;
use super::{
    BoxFuture, Cursor, DEFAULT_PAGE_LIMIT, IncidentFilter, MAX_PAGE_LIMIT, OpenMode, Result, Store,
    StoreError,
};
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, Heartbeat, IncidentEvent,
    IncidentPage, IncidentStatus, IncidentView, ReportAck, ReportBatch, Severity, Timestamp,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Pool size: SQLite has one writer at a time; a few connections serve concurrent readers.
const MAX_CONNECTIONS: u32 = 4;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (and, in [`OpenMode::CreateAndMigrate`], creates) the database and applies pending
    /// migrations.
    /// `busy_timeout` bounds both the wait for another connection's write lock and the wait for
    /// a free pooled connection; past it the caller gets [`StoreError::Unavailable`] (→ 503).
    pub async fn open(path: &Path, mode: OpenMode, busy_timeout: Duration) -> Result<Self> {
        if mode == OpenMode::MustExist && !path.exists() {
            return Err(StoreError::NotFound(path.to_owned()));
        }
        // synchronous=NORMAL in WAL mode may lose the last transactions on power loss; an ack
        // tells the agent to delete its spool, so a commit must be on disk: FULL fsyncs the WAL
        // on every commit. Batches make that one fsync per report, not per event.
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(mode == OpenMode::CreateAndMigrate)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(busy_timeout)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    async fn ingest(&self, batch: &ReportBatch, received_at: Timestamp) -> Result<ReportAck> {
        // IMMEDIATE takes the write lock up front, so the busy timeout applies instead of a
        // deadlock-avoiding SQLITE_BUSY when a read transaction would have to be upgraded.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut accepted = 0u32;
        let mut duplicates = 0u32;
        let mut touched = BTreeSet::new();
        let received_ms = received_at.unix_millis();
        for e in &batch.events {
            let seq = to_i64(e.seq, "seq")?;
            let payload = serde_json::to_string(e)
                .map_err(|err| StoreError::Corrupt(format!("cannot encode event: {err}")))?;
            let inserted = sqlx::query(
                "INSERT INTO events (event_id, agent_id, incident_id, seq, kind, payload, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(&e.event_id)
            .bind(&batch.agent_id)
            .bind(&e.incident_id)
            .bind(seq)
            .bind(e.kind.as_str())
            .bind(payload)
            .bind(received_ms)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                duplicates += 1;
                continue;
            }
            accepted += 1;
            touched.insert(e.incident_id.as_str());
            for (idx, a) in e.actions.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO incident_actions
                        (event_id, agent_id, incident_id, seq, idx, action, outcome, at, detail)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .bind(&e.event_id)
                .bind(&batch.agent_id)
                .bind(&e.incident_id)
                .bind(seq)
                .bind(to_i64(idx as u64, "action index")?)
                .bind(a.action.as_str())
                .bind(a.outcome.as_str())
                .bind(a.at.unix_millis())
                .bind(&a.detail)
                .execute(&mut *tx)
                .await?;
            }
        }
        for incident_id in touched {
            rebuild_incident(&mut tx, &batch.agent_id, incident_id, received_ms).await?;
        }
        tx.commit().await?;
        Ok(ReportAck {
            accepted,
            duplicates,
            acked_event_ids: batch.events.iter().map(|e| e.event_id.clone()).collect(),
        })
    }

    async fn heartbeat(&self, hb: &Heartbeat, received_at: Timestamp) -> Result<()> {
        let json = serde_json::to_string(hb)
            .map_err(|err| StoreError::Corrupt(format!("cannot encode heartbeat: {err}")))?;
        sqlx::query(
            "INSERT INTO devices
                (agent_id, first_seen_at, last_seen_at, agent_version, firmware_version, last_heartbeat)
             VALUES (?1, ?2, ?2, ?3, ?4, ?5)
             ON CONFLICT (agent_id) DO UPDATE SET
                last_seen_at = excluded.last_seen_at,
                agent_version = excluded.agent_version,
                firmware_version = excluded.firmware_version,
                last_heartbeat = excluded.last_heartbeat",
        )
        .bind(&hb.agent_id)
        .bind(received_at.unix_millis())
        .bind(&hb.agent_version)
        .bind(&hb.firmware_version)
        .bind(json)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list(
        &self,
        filter: &IncidentFilter,
        limit: u32,
        cursor: Option<&Cursor>,
    ) -> Result<IncidentPage> {
        let limit = match limit {
            0 => DEFAULT_PAGE_LIMIT,
            n => n.min(MAX_PAGE_LIMIT),
        };
        // One read transaction: the page and its action trails come from one snapshot.
        let mut tx = self.pool.begin().await?;
        let rows: Vec<IncidentRow> = sqlx::query_as(
            "SELECT agent_id, incident_id, check_id, cause, category, severity, status, started_at,
                    resolved_at, auto_healed, summary, evidence, event_count
             FROM incidents
             WHERE (?1 IS NULL OR status = ?1)
               AND (?2 IS NULL OR check_id = ?2)
               AND (?3 IS NULL OR agent_id = ?3)
               AND (?4 IS NULL OR (started_at, agent_id, incident_id) < (?4, ?5, ?6))
             ORDER BY started_at DESC, agent_id DESC, incident_id DESC
             LIMIT ?7",
        )
        .bind(filter.status.map(status_str))
        .bind(filter.check.map(CheckId::as_str))
        .bind(filter.agent_id.as_deref())
        .bind(cursor.map(|c| c.started_at_ms))
        .bind(cursor.map(|c| c.agent_id.as_str()))
        .bind(cursor.map(|c| c.incident_id.as_str()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&mut *tx)
        .await?;
        let more = rows.len() > limit as usize;
        let mut incidents = Vec::with_capacity(rows.len().min(limit as usize));
        for row in rows.into_iter().take(limit as usize) {
            let actions = load_actions(&mut tx, &row.agent_id, &row.incident_id).await?;
            incidents.push(row.into_view(actions)?);
        }
        tx.commit().await?;
        let next_cursor = if more {
            incidents.last().map(|v| Cursor::after(v).encode())
        } else {
            None
        };
        Ok(IncidentPage {
            incidents,
            next_cursor,
        })
    }

    async fn get(&self, agent_id: &str, incident_id: &str) -> Result<Option<IncidentView>> {
        let mut tx = self.pool.begin().await?;
        let row: Option<IncidentRow> = sqlx::query_as(
            "SELECT agent_id, incident_id, check_id, cause, category, severity, status, started_at,
                    resolved_at, auto_healed, summary, evidence, event_count
             FROM incidents WHERE agent_id = ?1 AND incident_id = ?2",
        )
        .bind(agent_id)
        .bind(incident_id)
        .fetch_optional(&mut *tx)
        .await?;
        let view = match row {
            Some(row) => {
                let actions = load_actions(&mut tx, agent_id, incident_id).await?;
                Some(row.into_view(actions)?)
            }
            None => None,
        };
        tx.commit().await?;
        Ok(view)
    }
}

impl Store for SqliteStore {
    fn ingest_report<'a>(
        &'a self,
        batch: &'a ReportBatch,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<ReportAck>> {
        Box::pin(self.ingest(batch, received_at))
    }

    fn record_heartbeat<'a>(
        &'a self,
        heartbeat: &'a Heartbeat,
        received_at: Timestamp,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.heartbeat(heartbeat, received_at))
    }

    fn list_incidents<'a>(
        &'a self,
        filter: &'a IncidentFilter,
        limit: u32,
        cursor: Option<&'a Cursor>,
    ) -> BoxFuture<'a, Result<IncidentPage>> {
        Box::pin(self.list(filter, limit, cursor))
    }

    fn get_incident<'a>(
        &'a self,
        agent_id: &'a str,
        incident_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<IncidentView>>> {
        Box::pin(self.get(agent_id, incident_id))
    }

    fn ping(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.pool.close())
    }
}

/// Recomputes one incident row from all of its stored events (arrival order is irrelevant).
async fn rebuild_incident(
    conn: &mut SqliteConnection,
    agent_id: &str,
    incident_id: &str,
    now_ms: i64,
) -> Result<()> {
    let payloads: Vec<(String,)> =
        sqlx::query_as("SELECT payload FROM events WHERE agent_id = ?1 AND incident_id = ?2")
            .bind(agent_id)
            .bind(incident_id)
            .fetch_all(&mut *conn)
            .await?;
    let events = payloads
        .iter()
        .map(|(p,)| serde_json::from_str::<IncidentEvent>(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("stored event payload: {e}")))?;
    let Some(a) = assemble(&events) else {
        return Ok(());
    };
    let evidence = serde_json::to_string(&a.evidence)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode evidence: {e}")))?;
    sqlx::query(
        "INSERT INTO incidents
            (agent_id, incident_id, check_id, cause, category, severity, status, started_at,
             resolved_at, auto_healed, summary, evidence, event_count, last_seq,
             first_received_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?15)
         ON CONFLICT (agent_id, incident_id) DO UPDATE SET
            check_id = excluded.check_id,
            cause = excluded.cause,
            category = excluded.category,
            severity = excluded.severity,
            status = excluded.status,
            started_at = excluded.started_at,
            resolved_at = excluded.resolved_at,
            auto_healed = excluded.auto_healed,
            summary = excluded.summary,
            evidence = excluded.evidence,
            event_count = excluded.event_count,
            last_seq = excluded.last_seq,
            updated_at = excluded.updated_at",
    )
    .bind(agent_id)
    .bind(incident_id)
    .bind(a.check.as_str())
    .bind(&a.cause)
    .bind(a.category.as_str())
    .bind(a.severity.as_str())
    .bind(status_str(a.status))
    .bind(a.started_at.unix_millis())
    .bind(a.resolved_at.map(Timestamp::unix_millis))
    .bind(a.auto_healed)
    .bind(&a.summary)
    .bind(evidence)
    .bind(i64::from(a.event_count))
    .bind(to_i64(a.last_seq, "seq")?)
    .bind(now_ms)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn load_actions(
    conn: &mut SqliteConnection,
    agent_id: &str,
    incident_id: &str,
) -> Result<Vec<ActionRecord>> {
    let rows: Vec<ActionRow> = sqlx::query_as(
        "SELECT action, outcome, at, detail FROM incident_actions
         WHERE agent_id = ?1 AND incident_id = ?2
         ORDER BY seq, idx, event_id",
    )
    .bind(agent_id)
    .bind(incident_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ActionRecord {
                action: parse_enum(&r.action, ActionId::parse, "action")?,
                outcome: parse_enum(&r.outcome, ActionOutcome::parse, "outcome")?,
                at: timestamp(r.at, "at")?,
                detail: r.detail,
            })
        })
        .collect()
}

#[derive(Debug, sqlx::FromRow)]
struct IncidentRow {
    agent_id: String,
    incident_id: String,
    check_id: String,
    cause: String,
    category: String,
    severity: String,
    status: String,
    started_at: i64,
    resolved_at: Option<i64>,
    auto_healed: Option<bool>,
    summary: String,
    evidence: String,
    event_count: i64,
}

impl IncidentRow {
    fn into_view(self, actions: Vec<ActionRecord>) -> Result<IncidentView> {
        let status = match self.status.as_str() {
            "open" => IncidentStatus::Open,
            "resolved" => IncidentStatus::Resolved,
            other => return Err(StoreError::Corrupt(format!("incident status {other:?}"))),
        };
        let evidence: BTreeMap<String, String> = serde_json::from_str(&self.evidence)
            .map_err(|e| StoreError::Corrupt(format!("incident evidence: {e}")))?;
        Ok(IncidentView {
            check: parse_enum(&self.check_id, CheckId::parse, "check")?,
            category: parse_enum(&self.category, Category::parse, "category")?,
            severity: parse_enum(&self.severity, Severity::parse, "severity")?,
            status,
            started_at: timestamp(self.started_at, "started_at")?,
            resolved_at: self
                .resolved_at
                .map(|ms| timestamp(ms, "resolved_at"))
                .transpose()?,
            auto_healed: self.auto_healed,
            evidence,
            actions,
            event_count: u32::try_from(self.event_count)
                .map_err(|_| StoreError::Corrupt("event_count out of range".into()))?,
            agent_id: self.agent_id,
            incident_id: self.incident_id,
            cause: self.cause,
            summary: self.summary,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct ActionRow {
    action: String,
    outcome: String,
    at: i64,
    detail: String,
}

fn status_str(s: IncidentStatus) -> &'static str {
    match s {
        IncidentStatus::Open => "open",
        IncidentStatus::Resolved => "resolved",
    }
}

fn parse_enum<T>(s: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T> {
    parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {s:?}")))
}

fn timestamp(ms: i64, what: &str) -> Result<Timestamp> {
    Timestamp::from_unix_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("{what} {ms} out of range")))
}

fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| StoreError::OutOfRange(format!("{what} {v} exceeds 2^63-1")))
}
