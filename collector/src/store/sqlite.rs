//! SQLite backend of [`Store`]: one database file in WAL mode, `synchronous=FULL` so that an acked
//! group survives a power cut, one `BEGIN IMMEDIATE` transaction per write group, embedded
//! migrations. The SQL itself is shared with PostgreSQL (`shared.rs`).

use super::shared::{shared_sql, store_impl};
use super::{OpenMode, Store};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use std::path::Path;
use std::time::Duration;

type Conn = SqliteConnection;
type Db = sqlx::Sqlite;
shared_sql!();
super::cx::cx_sql!();
super::diag::diag_sql!();
super::noc::noc_sql!();

/// Correlation passes serialise on SQLite's write lock (`BEGIN IMMEDIATE`).
const CORRELATE_LOCK_SQL: Option<&str> = None;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Statistics for the planner (without them it may pick a worse index, e.g. for the overview's
/// open-incident counts): 0x10000 checks every table, not only those this connection used;
/// 0x0002 analyses where useful, with SQLite's own time-bounding analysis limit.
const MAINTAIN_SQL: Option<&str> = Some("PRAGMA optimize=0x10002");

/// `store::severity_rank` of an incident row `i`: the generated column that migration 0007
/// indexes (SQLite seeks a row-value cursor on a column, not on an indexed expression).
const SEVERITY_RANK_SQL: &str = "i.severity_rank";

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
        // on every commit. Group commit makes that one fsync per group of requests.
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

    /// IMMEDIATE takes the write lock up front, so the busy timeout applies instead of a
    /// deadlock-avoiding SQLITE_BUSY when a read transaction would have to be upgraded.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn write(&self, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
        let mut tx = self.begin_write().await?;
        let results = apply_group(&mut tx, items).await?;
        tx.commit().await?;
        Ok(results)
    }
}

store_impl!(SqliteStore);

// `Store` must stay object-safe: the server holds `Arc<dyn Store>`.
const _: Option<&dyn Store> = None;
