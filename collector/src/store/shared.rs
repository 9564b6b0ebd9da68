//! The SQL store: one implementation of every capability trait for every SQL backend.
//!
//! SQLite accepts PostgreSQL's `$N` placeholders (sqlx binds them by number on both), and both
//! speak `ON CONFLICT`, `RETURNING` and row-value comparison, so one SQL text serves both. What
//! the backends really differ in is the backend's [`Dialect`]; [`SqlStore`] is generic over it.
//!
//! The SQL functions themselves are written once but compiled per backend: `sql_store!(D)`,
//! invoked once in each backend's file, expands them (from `write.rs`, `incidents.rs`,
//! `devices.rs`, `diag.rs`, `access.rs`, `cx.rs`, `noc.rs`) over that backend's concrete
//! connection type and implements the capability traits for `SqlStore<D>`. Functions generic
//! over `sqlx::Database` instead would carry a where-clause per capability they use, repeated
//! on every impl block (`Database` implies neither `Executor` for `&mut Connection` nor
//! `Encode`/`Decode`/`Type` for `i64`, `String`, `bool`, `Option<_>`...), and sqlx 0.9's generic
//! `QueryResult` has no `rows_affected`, which eight statements here need; expanding over the
//! concrete types keeps the SQL plain and lets the compiler check each backend fully.

use super::dialect::Dialect;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Longest a heartbeat's last-seen update waits in [`SeenBuffer`] before it is written: the
/// bound on how stale `last_seen_at` (hence the online/offline state, whose threshold is
/// minutes) can be — in this process's own device queries none at all, they write the buffer
/// first; in another collector process's (PostgreSQL) at most this plus one write.
pub const SEEN_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// What a heartbeat answered on the read path leaves to write: the device row's last-seen
/// columns, from the heartbeat itself (kept as it is: encoded when written, once per device
/// and flush, not per heartbeat).
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) token_sha256: String,
    pub(super) seen_ms: i64,
    pub(super) heartbeat: netmedic_proto::Heartbeat,
}

/// Last-seen updates of answered heartbeats, coalesced per device (the newest wins) and written
/// in batches: every [`SEEN_FLUSH_INTERVAL`], before this process reads devices, and when the
/// store closes. Writing them per heartbeat costs a write transaction, an fsync and a page of
/// WAL per device for nothing an agent would miss: a heartbeat carries no data to lose.
#[derive(Debug, Default)]
pub(super) struct SeenBuffer {
    pending: Mutex<HashMap<String, Seen>>,
}

impl SeenBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Seen>> {
        // The map stays consistent whatever panicked while holding it.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds updates; per device the newest stays.
    pub(super) fn record(&self, updates: impl IntoIterator<Item = (String, Seen)>) {
        let mut pending = self.lock();
        for (id, s) in updates {
            match pending.get(&id) {
                Some(old) if old.seen_ms > s.seen_ms => {}
                _ => {
                    pending.insert(id, s);
                }
            }
        }
    }

    /// Takes everything pending (to write it), oldest device id first.
    pub(super) fn take(&self) -> Vec<(String, Seen)> {
        let mut rows: Vec<(String, Seen)> = std::mem::take(&mut *self.lock()).into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// A store over one SQL backend `D`: a connection pool and the dialect's choices. Implements
/// every capability trait (hence [`super::Store`]) through `sql_store!(D)`.
pub struct SqlStore<D: Dialect> {
    pub(super) pool: sqlx::Pool<D::Db>,
    /// Shared by the store's clones.
    pub(super) seen: Arc<SeenBuffer>,
    /// Tokens and advice that answer heartbeats without a read; shared by the clones.
    pub(super) hb: Arc<super::hbcache::HbCache>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> SqlStore<D> {
    /// A store over an open (and migrated) pool.
    pub(super) fn from_pool(pool: sqlx::Pool<D::Db>) -> Self {
        Self {
            pool,
            seen: Arc::default(),
            hb: Arc::default(),
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> SqlStore<D> {
    /// A store over `pool` that shares the last-seen buffer `seen` and the heartbeat cache `hb`.
    pub(super) fn sharing(
        pool: sqlx::Pool<D::Db>,
        seen: Arc<SeenBuffer>,
        hb: Arc<super::hbcache::HbCache>,
    ) -> Self {
        Self {
            pool,
            seen,
            hb,
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self::sharing(self.pool.clone(), self.seen.clone(), self.hb.clone())
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlStore")
            .field("backend", &D::NAME)
            .field("pool", &self.pool)
            .finish()
    }
}

/// Implements the store for `SqlStore<$d>` (see the module documentation): invoked once, at the
/// top level of a backend's module, with the backend's [`Dialect`] type.
macro_rules! sql_store {
    ($d:ty) => {
        use netmedic_proto::{
            ActionId, ActionOutcome, ActionRecord, Category, CheckId, Heartbeat, IncidentEvent,
            IncidentPage, IncidentStatus, IncidentView, ReportAck, ReportBatch, Severity,
            Timestamp,
        };
        use std::collections::{BTreeMap, BTreeSet};
        use $crate::store::assemble::assemble;
        use $crate::store::shared::SqlStore;
        use $crate::store::{
            AccessStore, BoxFuture, CxStore, FleetStore, IncidentStore, IngestStore, LifecycleStore,
        };
        use $crate::store::{
            Auth, Cursor, DEFAULT_PAGE_LIMIT, DeviceFilter, DeviceRecord, HeartbeatOk,
            IncidentDetail, IncidentFilter, ItemResult, KillScope, KillSwitch, ListOrder,
            MAX_PAGE_LIMIT, StoreError, TimelineEvent, WriteItem, WriteKind, WriteOk, denial,
            diag_advisory, kill_advisory,
        };

        type Result<T, E = StoreError> = std::result::Result<T, E>;

        /// Rows per multi-row statement (well under SQLite's 32766 and PostgreSQL's 65535
        /// bound parameters).
        const CHUNK_ROWS: usize = 500;

        /// The backend, for the expanded modules (a macro's `$d` does not reach into them).
        type D = $d;
        type Db = <$d as $crate::store::dialect::Dialect>::Db;
        type Conn = <Db as sqlx::Database>::Connection;
        // The dialect's SQL fragments, spelled short for the query builders.
        const SEVERITY_RANK_SQL: &str = <$d as $crate::store::dialect::Dialect>::SEVERITY_RANK_SQL;
        const CORRELATE_LOCK_SQL: Option<&str> =
            <$d as $crate::store::dialect::Dialect>::CORRELATE_LOCK_SQL;

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

        /// The stored (experiment_id, experiment_arm) pair of an incident.
        fn experiment_arm(
            id: Option<String>,
            arm: Option<String>,
        ) -> Result<Option<netmedic_proto::ExperimentArm>> {
            match (id, arm) {
                (None, None) => Ok(None),
                (Some(experiment_id), Some(arm)) => Ok(Some(netmedic_proto::ExperimentArm {
                    experiment_id,
                    arm: parse_enum(&arm, netmedic_proto::Arm::parse, "experiment arm")?,
                })),
                (id, arm) => Err(StoreError::Corrupt(format!(
                    "incident experiment {id:?} with arm {arm:?}"
                ))),
            }
        }

        fn to_i64(v: u64, what: &str) -> Result<i64> {
            i64::try_from(v)
                .map_err(|_| StoreError::OutOfRange(format!("{what} {v} exceeds 2^63-1")))
        }

        $crate::store::write::write_sql!();
        $crate::store::hbcache::hbcache_sql!();
        $crate::store::incidents::incidents_sql!();
        $crate::store::devices::devices_sql!();
        $crate::store::experiments::experiments_sql!();
        $crate::store::access::access_sql!();
        $crate::store::cx::cx_sql!();
        $crate::store::diag::diag_sql!();
        $crate::store::noc::noc_sql!();

        impl SqlStore<$d> {
            /// Applies the pending migrations of the dialect and wraps the pool; starts the
            /// task that writes the buffered last-seen updates every
            /// [`SEEN_FLUSH_INTERVAL`](crate::store::shared::SEEN_FLUSH_INTERVAL) (it ends
            /// when the store is closed or dropped).
            async fn migrated(pool: sqlx::Pool<Db>) -> Result<Self> {
                <$d as $crate::store::dialect::Dialect>::migrator()
                    .run(&pool)
                    .await?;
                let store = Self::from_pool(pool);
                let seen = std::sync::Arc::downgrade(&store.seen);
                let hb = std::sync::Arc::downgrade(&store.hb);
                let pool = store.pool.clone();
                tokio::spawn(async move {
                    let mut tick =
                        tokio::time::interval($crate::store::shared::SEEN_FLUSH_INTERVAL);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        tick.tick().await;
                        let (Some(seen), Some(hb)) = (seen.upgrade(), hb.upgrade()) else {
                            return;
                        };
                        if pool.is_closed() {
                            return;
                        }
                        let store = Self::sharing(pool.clone(), seen, hb);
                        if let Err(e) = store.flush_seen().await {
                            log::warn!(
                                "writing last-seen updates failed (retried): {}",
                                $crate::error_chain(&e)
                            );
                        }
                        if let Err(e) = store.refresh_hb_cache().await {
                            log::warn!(
                                "refreshing the heartbeat cache failed (retried): {}",
                                $crate::error_chain(&e)
                            );
                        }
                    }
                });
                Ok(store)
            }

            /// Writes the buffered last-seen updates in one transaction; on failure they go
            /// back into the buffer (unless newer ones came meanwhile).
            async fn flush_seen(&self) -> Result<()> {
                if self.seen.is_empty() {
                    return Ok(());
                }
                let rows = self.seen.take();
                let written = async {
                    let mut tx = self.begin_write().await?;
                    write_seen(&mut tx, &rows).await?;
                    tx.commit().await?;
                    Ok::<(), StoreError>(())
                }
                .await;
                if written.is_err() {
                    self.seen.record(rows);
                }
                written
            }

            /// Reads again what the heartbeat cache answers from (see
            /// [`HbCache`](crate::store::hbcache::HbCache)).
            async fn refresh_hb_cache(&self) -> Result<()> {
                let mut conn = self.pool.acquire().await?;
                refresh_hb_cache_in(&mut conn, &self.hb).await
            }

            /// A write transaction, opened the dialect's way.
            async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Db>> {
                Ok(
                    match <$d as $crate::store::dialect::Dialect>::BEGIN_WRITE_SQL {
                        Some(sql) => self.pool.begin_with(sql).await?,
                        None => self.pool.begin().await?,
                    },
                )
            }

            /// One write group: heartbeats on the read path when they can be, the rest in a
            /// write transaction, retried as the dialect allows (deadlock, serialization
            /// failure).
            async fn write(&self, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
                let mut results: Vec<Option<ItemResult>> = vec![None; items.len()];
                if items.iter().any(|i| {
                    matches!(i.kind, WriteKind::Heartbeat(_))
                        && matches!(i.auth, Auth::TokenSha256(_))
                }) {
                    let mut conn = self.pool.acquire().await?;
                    if !heartbeats_read(&mut conn, items, &mut results, &self.seen, &self.hb)
                        .await?
                    {
                        results = vec![None; items.len()];
                    }
                }
                if results.iter().all(Option::is_some) {
                    return Ok(results.into_iter().flatten().collect());
                }
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self.write_once(items, results.clone()).await {
                        Err(e)
                            if attempt
                                < <$d as $crate::store::dialect::Dialect>::WRITE_ATTEMPTS =>
                        {
                            match <$d as $crate::store::dialect::Dialect>::retry_reason(&e) {
                                Some(reason) => log::debug!("write group retried after {reason}"),
                                None => return Err(e),
                            }
                        }
                        other => return other,
                    }
                }
            }

            async fn write_once(
                &self,
                items: &[WriteItem],
                answered: Vec<Option<ItemResult>>,
            ) -> Result<Vec<ItemResult>> {
                let mut tx = self.begin_write().await?;
                <$d as $crate::store::dialect::Dialect>::lock_write_group(&mut tx, items).await?;
                let results = apply_group(&mut tx, items, answered).await?;
                tx.commit().await?;
                Ok(results)
            }
        }

        impl IngestStore for SqlStore<$d> {
            fn write_group<'a>(
                &'a self,
                items: &'a [WriteItem],
            ) -> BoxFuture<'a, Result<Vec<ItemResult>>> {
                Box::pin(self.write(items))
            }

            fn heartbeat_cached(
                &self,
                token_sha256: &str,
                hb: Heartbeat,
                received_at: Timestamp,
            ) -> std::result::Result<HeartbeatOk, Heartbeat> {
                let seen_ms = received_at.unix_millis();
                match self.hb.answer(token_sha256, &hb.agent_id, seen_ms) {
                    Some(ok) => {
                        record_seen(&self.seen, token_sha256, hb, seen_ms);
                        Ok(ok)
                    }
                    None => Err(hb),
                }
            }

            $crate::store::diag::diag_methods!(ingest);
        }

        impl IncidentStore for SqlStore<$d> {
            $crate::store::incidents::incidents_methods!();
            $crate::store::noc::noc_methods!(incidents);
            $crate::store::cx::cx_methods!(incidents);
        }

        impl FleetStore for SqlStore<$d> {
            $crate::store::devices::devices_methods!();
            $crate::store::experiments::experiments_methods!();
            $crate::store::diag::diag_methods!(fleet);
        }

        impl AccessStore for SqlStore<$d> {
            $crate::store::access::access_methods!();
        }

        impl CxStore for SqlStore<$d> {
            $crate::store::cx::cx_methods!(cx);
            $crate::store::noc::noc_methods!(cx);
        }

        impl LifecycleStore for SqlStore<$d> {
            fn ping(&self) -> BoxFuture<'_, Result<()>> {
                Box::pin(async move {
                    sqlx::query("SELECT 1").execute(&self.pool).await?;
                    Ok(())
                })
            }

            fn maintain(&self) -> BoxFuture<'_, Result<()>> {
                Box::pin(async move {
                    if let Some(sql) = <$d as $crate::store::dialect::Dialect>::MAINTAIN_SQL {
                        sqlx::query(sql).execute(&self.pool).await?;
                    }
                    Ok(())
                })
            }

            /// Writes the buffered last-seen updates, then closes the pool.
            fn close(&self) -> BoxFuture<'_, ()> {
                Box::pin(async move {
                    if let Err(e) = self.flush_seen().await {
                        log::warn!(
                            "last-seen updates lost at shutdown: {}",
                            $crate::error_chain(&e)
                        );
                    }
                    self.pool.close().await
                })
            }
        }

        // `Store` must stay object-safe and implemented: the server holds `Arc<dyn Store>`.
        const _: fn(SqlStore<$d>) -> std::sync::Arc<dyn $crate::store::Store> =
            |s| std::sync::Arc::new(s);
    };
}

pub(crate) use sql_store;

#[cfg(test)]
mod tests {
    use super::{Seen, SeenBuffer};
    use netmedic_proto::{Heartbeat, SCHEMA_VERSION, Timestamp};

    fn seen(ms: i64, version: &str) -> Seen {
        Seen {
            token_sha256: "t".into(),
            seen_ms: ms,
            heartbeat: Heartbeat {
                schema_version: SCHEMA_VERSION,
                agent_id: "a".into(),
                agent_version: version.into(),
                firmware_version: "fw".into(),
                uptime_secs: 1,
                sent_at: Timestamp::from_unix_millis(ms).expect("valid time"),
                checks: Default::default(),
                spool_depth: 0,
                dropped_total: 0,
            },
        }
    }

    #[test]
    fn the_buffer_keeps_the_newest_heartbeat_per_device_until_taken() {
        let b = SeenBuffer::default();
        assert!(b.is_empty());
        b.record([
            ("a".to_owned(), seen(20, "new")),
            ("b".to_owned(), seen(5, "b")),
        ]);
        // An older heartbeat (another writer's, or put back after a failed write) loses.
        b.record([("a".to_owned(), seen(10, "old"))]);
        let rows = b.take();
        assert!(b.is_empty());
        let got: Vec<(&str, i64, &str)> = rows
            .iter()
            .map(|(id, s)| (id.as_str(), s.seen_ms, s.heartbeat.agent_version.as_str()))
            .collect();
        assert_eq!(got, [("a", 20, "new"), ("b", 5, "b")]);
    }
}
