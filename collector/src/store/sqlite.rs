//! SQLite backend: one database file in WAL mode, `synchronous=FULL` so that an acked group
//! survives a power cut, checkpoints every ~32 MiB of WAL, one `BEGIN IMMEDIATE` transaction
//! per write group, embedded migrations.
//! The SQL itself is shared with PostgreSQL (`shared.rs`); this file is the [`Dialect`] and the
//! connection options.

use super::OpenMode;
use super::dialect::{Dialect, EventRow, INCIDENT_UPSERT_COLUMNS, IncidentSet, IncidentUpsert};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// SQLite's choices for the shared SQL store.
#[derive(Debug, Clone, Copy)]
pub struct SqliteDialect;

/// The collector's store on SQLite.
pub type SqliteStore = super::shared::SqlStore<SqliteDialect>;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for SqliteDialect {
    type Db = sqlx::Sqlite;

    const NAME: &'static str = "sqlite";

    /// IMMEDIATE takes the write lock up front, so the busy timeout applies instead of a
    /// deadlock-avoiding SQLITE_BUSY when a read transaction would have to be upgraded.
    const BEGIN_WRITE_SQL: Option<&'static str> = Some("BEGIN IMMEDIATE");

    /// One writer at a time: a write group never deadlocks, so it is never retried.
    const WRITE_ATTEMPTS: u32 = 1;

    /// The generated column that migration 0007 indexes (SQLite seeks a row-value cursor on a
    /// column, not on an indexed expression).
    const SEVERITY_RANK_SQL: &'static str = "i.severity_rank";

    /// Correlation passes serialise on SQLite's write lock (`BEGIN IMMEDIATE`).
    const CORRELATE_LOCK_SQL: Option<&'static str> = None;

    /// Statistics for the planner (without them it may pick a worse index, e.g. for the
    /// overview's open-incident counts): 0x10000 checks every table, not only those this
    /// connection used; 0x0002 analyses where useful, with SQLite's own time-bounding analysis
    /// limit.
    const MAINTAIN_SQL: Option<&'static str> = Some("PRAGMA optimize=0x10002");

    /// A narrower `SET` leaves the entries of the indexes it does not name alone.
    const NARROW_INCIDENT_UPDATES: bool = true;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    /// `BEGIN IMMEDIATE` already holds the database's only write lock.
    fn lock_write_group<'a>(
        _conn: &'a mut SqliteConnection,
        _items: &'a [super::WriteItem],
    ) -> super::BoxFuture<'a, super::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Multi-row `INSERT … VALUES` of at most [`EVENT_CHUNK_ROWS`] rows: full chunks share one
    /// cached prepared statement. No `RETURNING` in the usual case: the driver hands every
    /// returned row from its worker thread over a channel, one message and often a thread
    /// wake-up each. Under the write lock nobody else inserts, so a chunk whose row count
    /// equals its length inserted every row; otherwise (duplicates) the chunk is undone to its
    /// savepoint and inserted again with `RETURNING event_id`.
    fn insert_events<'a>(
        conn: &'a mut SqliteConnection,
        rows: &'a [EventRow<'a>],
    ) -> super::BoxFuture<'a, super::Result<Vec<bool>>> {
        Box::pin(async move {
            let mut inserted = Vec::with_capacity(rows.len());
            for chunk in rows.chunks(EVENT_CHUNK_ROWS) {
                sqlx::query("SAVEPOINT insert_events")
                    .execute(&mut *conn)
                    .await?;
                let mut qb = insert_events_query(chunk, "");
                let n = qb.build().execute(&mut *conn).await?;
                if usize::try_from(n.rows_affected()).ok() == Some(chunk.len()) {
                    sqlx::query("RELEASE insert_events")
                        .execute(&mut *conn)
                        .await?;
                    inserted.resize(inserted.len() + chunk.len(), true);
                    continue;
                }
                sqlx::query("ROLLBACK TO insert_events")
                    .execute(&mut *conn)
                    .await?;
                sqlx::query("RELEASE insert_events")
                    .execute(&mut *conn)
                    .await?;
                let mut qb = insert_events_query(chunk, " RETURNING event_id");
                let ids: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                let ids: std::collections::HashSet<String> =
                    ids.into_iter().map(|(id,)| id).collect();
                inserted.extend(chunk.iter().map(|r| ids.contains(r.event_id)));
            }
            Ok(inserted)
        })
    }

    /// Multi-row `INSERT … VALUES … ON CONFLICT DO UPDATE` of at most [`EVENT_CHUNK_ROWS`] rows.
    fn upsert_incidents<'a>(
        conn: &'a mut SqliteConnection,
        rows: &'a [IncidentUpsert<'a>],
        set: IncidentSet,
    ) -> super::BoxFuture<'a, super::Result<()>> {
        Box::pin(async move {
            for chunk in rows.chunks(EVENT_CHUNK_ROWS) {
                let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO incidents ");
                qb.push(INCIDENT_UPSERT_COLUMNS).push(" ");
                let mut shared = SharedText::default();
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(shared.get(r.agent_id))
                        .push_bind(r.incident_id)
                        .push_bind(shared.get(r.check_id))
                        .push_bind(shared.get(r.cause))
                        .push_bind(shared.get(r.category))
                        .push_bind(shared.get(r.severity))
                        .push_bind(shared.get(r.status))
                        .push_bind(r.started_at)
                        .push_bind(r.resolved_at)
                        .push_bind(r.auto_healed)
                        .push_bind(r.summary)
                        .push_bind(r.evidence)
                        .push_bind(r.event_count)
                        .push_bind(r.last_seq)
                        .push_bind(r.now_ms)
                        .push_bind(r.now_ms)
                        .push_bind(r.experiment_id)
                        .push_bind(r.experiment_arm);
                });
                qb.push(set.conflict_sql());
                qb.build().execute(&mut *conn).await?;
            }
            Ok(())
        })
    }

    /// A multi-row `VALUES`: the bundled SQLite searches the `(agent_id, incident_id)` index
    /// once per key (checked by `incident_keys_are_searched_through_an_index`; the Debian
    /// 3.40 shell plans the same text as a scan of the whole table).
    fn push_key_pairs(qb: &mut sqlx::QueryBuilder<sqlx::Sqlite>, keys: &[(&str, &str)]) {
        let mut shared = SharedText::default();
        qb.push_values(keys, |mut b, (agent, incident)| {
            b.push_bind(shared.get(agent))
                .push_bind(Arc::<str>::from(*incident));
        });
    }

    fn retry_reason(_error: &super::StoreError) -> Option<String> {
        None
    }
}

/// The multi-row events INSERT of `chunk`, skipping stored ids, `tail` appended.
fn insert_events_query<'a>(
    chunk: &'a [EventRow<'a>],
    tail: &'static str,
) -> sqlx::QueryBuilder<sqlx::Sqlite> {
    let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO events (event_id, agent_id, incident_id, seq, kind, payload, received_at) ",
    );
    let mut shared = SharedText::default();
    // The per-row texts as `Arc<str>` too: one allocation and copy each, where a `&str`
    // parameter costs the driver two allocations and a copy.
    qb.push_values(chunk, |mut b, r| {
        b.push_bind(Arc::<str>::from(r.event_id))
            .push_bind(shared.get(r.agent_id))
            .push_bind(Arc::<str>::from(r.incident_id))
            .push_bind(r.seq)
            .push_bind(shared.get(r.kind))
            .push_bind(Arc::<str>::from(r.payload))
            .push_bind(r.received_at);
    });
    qb.push(" ON CONFLICT (event_id) DO NOTHING");
    qb.push(tail);
    qb
}

/// Text parameters that repeat across the rows of one statement (the device of a batch, enum
/// words, causes) bound as one shared `Arc<str>` each: the driver copies every `&str` parameter
/// into two allocations of its own for its worker thread, per row.
#[derive(Debug, Default)]
struct SharedText(Vec<Arc<str>>);

impl SharedText {
    /// Distinct values kept per statement (a linear search; past it values are not shared).
    const MAX: usize = 16;

    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.0.iter().find(|a| ***a == *s) {
            return a.clone();
        }
        let a: Arc<str> = Arc::from(s);
        if self.0.len() < Self::MAX {
            self.0.push(a.clone());
        }
        a
    }
}

/// Rows per multi-row events INSERT or incidents upsert (7 and 18 parameters each, below
/// SQLite's 32,766).
const EVENT_CHUNK_ROWS: usize = 500;

/// Pool size: SQLite has one writer at a time; a few connections serve concurrent readers.
const MAX_CONNECTIONS: u32 = 4;

/// WAL pages (4 KiB each) after which a commit checkpoints them into the database file
/// (SQLite's default is 1,000). The checkpoint runs inside the committing write group, on the
/// single writer's path: with 8,000 pages (~32 MiB of WAL) a page rewritten by many groups —
/// an index's hot leaves, the newest incident rows — is copied once instead of once per 4 MiB.
/// Measured in `docs/perf-events.md` (round 7): 4,000 and 8,000 pages equal, both ahead of
/// 1,000; 32,000 no better (the WAL index readers search grows).
const WAL_AUTOCHECKPOINT_PAGES: u32 = 8_000;

/// The WAL file is truncated back to this size when it restarts after a checkpoint. It only
/// grows past ~`WAL_AUTOCHECKPOINT_PAGES` when a long read holds a checkpoint back; this gives
/// the disk space back afterwards.
const WAL_SIZE_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

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
            .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES.to_string())
            .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string())
            .busy_timeout(busy_timeout)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(busy_timeout)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }
}

super::shared::sql_store!(SqliteDialect);

#[cfg(test)]
mod tests {
    use super::{
        Dialect, INCIDENT_UPSERT_COLUMNS, IncidentSet, OpenMode, SqliteDialect, SqliteStore,
    };
    use sqlx::Row;
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    async fn migrated_store(dir: &tempfile::TempDir) -> SqliteStore {
        SqliteStore::open(
            &dir.path().join("plan.sqlite"),
            OpenMode::CreateAndMigrate,
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }

    /// Every pooled connection checkpoints at the WAL size chosen for the single writer, and
    /// bounds the WAL file (each connection's own setting: any of them may commit or reset it).
    #[tokio::test]
    async fn every_connection_checkpoints_at_the_chosen_wal_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_store(&dir).await;
        let mut held = Vec::new();
        for _ in 0..super::MAX_CONNECTIONS {
            let mut conn = store.pool.acquire().await.unwrap();
            let (pages,): (i64,) = sqlx::query_as("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(pages, i64::from(super::WAL_AUTOCHECKPOINT_PAGES));
            let (limit,): (i64,) = sqlx::query_as("PRAGMA journal_size_limit")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(limit, i64::try_from(super::WAL_SIZE_LIMIT_BYTES).unwrap());
            // Held, so the next acquire opens or takes another connection.
            held.push(conn);
        }
    }

    /// Every table the write path reads by `(agent_id, incident_id)` keys is searched through
    /// an index, never scanned whole (the scan grew with the history on every write group).
    #[tokio::test]
    async fn incident_keys_are_searched_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_store(&dir).await;
        let mut conn = store.pool.acquire().await.unwrap();
        for table in ["incidents", "events", "incident_actions"] {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "EXPLAIN QUERY PLAN SELECT 1 FROM {table} WHERE (agent_id, incident_id) IN ("
            ));
            SqliteDialect::push_key_pairs(&mut qb, &[("cpe-1", "i-1"), ("cpe-1", "i-2")]);
            qb.push(")");
            let rows: Vec<(i64, i64, i64, String)> =
                qb.build_query_as().fetch_all(&mut *conn).await.unwrap();
            let plan: Vec<&str> = rows.iter().map(|r| r.3.as_str()).collect();
            assert!(
                plan.iter()
                    .any(|d| d.starts_with(&format!("SEARCH {table} USING"))),
                "{table}: {plan:?}"
            );
            assert!(
                !plan.iter().any(|d| d.starts_with(&format!("SCAN {table}"))),
                "{table}: {plan:?}"
            );
        }
    }

    /// The incidents indexes whose entries the `DO UPDATE` branch of an upsert of form `set`
    /// deletes (and inserts again), read from the statement's bytecode: `OpenWrite` names a
    /// cursor's root page, `IdxDelete` the cursor (the `INSERT` branch deletes nothing).
    async fn indexes_rewritten(
        conn: &mut sqlx::SqliteConnection,
        set: IncidentSet,
    ) -> BTreeSet<String> {
        let roots: BTreeMap<i64, String> = sqlx::query_as::<_, (i64, String)>(
            "SELECT rootpage, name FROM sqlite_schema
             WHERE type = 'index' AND tbl_name = 'incidents'",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
        let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new("EXPLAIN INSERT INTO incidents ");
        qb.push(INCIDENT_UPSERT_COLUMNS).push(" VALUES (");
        let mut values = qb.separated(", ");
        for text in ["cpe-1", "i-1", "dns", "cause", "dns", "major", "resolved"] {
            values.push_bind(text);
        }
        values.push_bind(1_i64).push_bind(2_i64).push_bind(true);
        values.push_bind("summary").push_bind("{}");
        for n in [2_i64, 2, 3, 3] {
            values.push_bind(n);
        }
        values.push_bind(None::<String>).push_bind(None::<String>);
        qb.push(")").push(set.conflict_sql());
        let mut cursors: BTreeMap<i64, String> = BTreeMap::new();
        let mut rewritten = BTreeSet::new();
        for row in qb.build().fetch_all(&mut *conn).await.unwrap() {
            let opcode: String = row.get("opcode");
            let cursor: i64 = row.get("p1");
            match opcode.as_str() {
                "OpenWrite" => {
                    if let Some(name) = roots.get(&row.get::<i64, _>("p2")) {
                        cursors.insert(cursor, name.clone());
                    }
                }
                "IdxDelete" => {
                    rewritten.insert(cursors[&cursor].clone());
                }
                _ => {}
            }
        }
        rewritten
    }

    /// An incident update that changes no indexed value names no indexed column in its `SET`,
    /// so SQLite leaves the row's index entries alone (it rewrites the entries of every index
    /// holding a column the `SET` names, whether or not the value changed): resolving writes
    /// only the open-incident indexes, whose condition is the status; counting an event or
    /// replacing the summary writes none.
    #[tokio::test]
    async fn unchanged_indexed_values_rewrite_no_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated_store(&dir).await;
        let mut conn = store.pool.acquire().await.unwrap();
        let all = indexes_rewritten(&mut conn, IncidentSet::All).await;
        // The probe sees the rewrites: the full form rewrites every index but the key.
        for full in [
            "incidents_newest",
            "incidents_by_category",
            "incidents_by_agent",
            "incidents_by_severity",
            "incidents_open_newest",
        ] {
            assert!(all.contains(full), "{full} not in {all:?}");
        }
        let open: BTreeSet<String> = [
            "incidents_open_by_agent",
            "incidents_open_by_category",
            "incidents_open_newest",
        ]
        .map(String::from)
        .into();
        assert_eq!(
            indexes_rewritten(&mut conn, IncidentSet::StatusAndUnindexed).await,
            open
        );
        assert_eq!(
            indexes_rewritten(&mut conn, IncidentSet::Unindexed).await,
            BTreeSet::new()
        );
    }
}
