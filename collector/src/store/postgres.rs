//! PostgreSQL backend of [`Store`]: several stateless collector processes share one database.
//! A write group is one transaction; before touching any incident it takes a transaction-scoped
//! advisory lock per incident (in a fixed order, so two processes never deadlock on them), which
//! serialises the "insert events, re-read all events, re-assemble" step per incident across
//! processes: under READ COMMITTED the re-read then sees every committed event, so no process
//! overwrites the incident with a partial assembly. Events are deduplicated by the primary key
//! (`ON CONFLICT DO NOTHING` waits for a concurrent insert of the same id to commit or roll back).

use super::Store;
use super::shared::{shared_sql, store_impl};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

type Conn = PgConnection;
type Db = sqlx::Postgres;
shared_sql!();
super::cx::cx_sql!();
super::diag::diag_sql!();
super::noc::noc_sql!();

/// Correlation passes of several processes serialise on this transaction-scoped advisory lock.
const CORRELATE_LOCK_SQL: Option<&str> = Some("SELECT pg_advisory_xact_lock(7305731101)");

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Attempts of a write group that hit a deadlock or serialization failure (SQLSTATE 40P01 /
/// 40001) before the requests get a 503.
const WRITE_ATTEMPTS: u32 = 3;

/// `store::severity_rank` of an incident row `i`, written exactly as migration 0006's expression
/// index so the planner uses it.
const SEVERITY_RANK_SQL: &str =
    "(CASE i.severity WHEN 'critical' THEN 3 WHEN 'major' THEN 2 ELSE 1 END)";

/// Autovacuum keeps PostgreSQL's planner statistics: nothing to do.
const MAINTAIN_SQL: Option<&str> = None;

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
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
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        Ok(self.pool.begin().await?)
    }

    async fn write(&self, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write_once(items).await {
                Err(StoreError::Unavailable(sqlx::Error::Database(e)))
                    if attempt < WRITE_ATTEMPTS
                        && matches!(e.code().as_deref(), Some("40P01" | "40001")) =>
                {
                    log::debug!("write group retried after {}", e.message());
                }
                other => return other,
            }
        }
    }

    async fn write_once(&self, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
        let mut tx = self.begin_write().await?;
        let mut keys: Vec<i64> = items
            .iter()
            .filter_map(|i| match &i.kind {
                WriteKind::Report(b) => Some(b),
                WriteKind::Heartbeat(_) => None,
            })
            .flat_map(|b| {
                b.events
                    .iter()
                    .map(|e| lock_key(&b.agent_id, &e.incident_id))
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        if !keys.is_empty() {
            // One round trip; unnest keeps the array's (sorted) order.
            sqlx::query("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k")
                .bind(&keys)
                .execute(&mut *tx)
                .await?;
        }
        let results = apply_group(&mut tx, items).await?;
        tx.commit().await?;
        Ok(results)
    }
}

/// The advisory-lock key of an incident: 64 bits of SHA-256 of `agent_id/incident_id` (a
/// collision only serialises two unrelated incidents).
fn lock_key(agent_id: &str, incident_id: &str) -> i64 {
    let mut h = Sha256::new();
    h.update(agent_id.as_bytes());
    h.update(b"/");
    h.update(incident_id.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

store_impl!(PgStore);

const _: Option<&dyn Store> = None;
