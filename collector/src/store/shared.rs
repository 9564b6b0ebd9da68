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
use std::marker::PhantomData;

/// A store over one SQL backend `D`: a connection pool and the dialect's choices. Implements
/// every capability trait (hence [`super::Store`]) through `sql_store!(D)`.
pub struct SqlStore<D: Dialect> {
    pub(super) pool: sqlx::Pool<D::Db>,
    dialect: PhantomData<D>,
}

impl<D: Dialect> SqlStore<D> {
    /// A store over an open (and migrated) pool.
    pub(super) fn from_pool(pool: sqlx::Pool<D::Db>) -> Self {
        Self {
            pool,
            dialect: PhantomData,
        }
    }
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self::from_pool(self.pool.clone())
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
        $crate::store::incidents::incidents_sql!();
        $crate::store::devices::devices_sql!();
        $crate::store::experiments::experiments_sql!();
        $crate::store::access::access_sql!();
        $crate::store::cx::cx_sql!();
        $crate::store::diag::diag_sql!();
        $crate::store::noc::noc_sql!();

        impl SqlStore<$d> {
            /// Applies the pending migrations of the dialect and wraps the pool.
            async fn migrated(pool: sqlx::Pool<Db>) -> Result<Self> {
                <$d as $crate::store::dialect::Dialect>::migrator()
                    .run(&pool)
                    .await?;
                Ok(Self::from_pool(pool))
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

            /// One write group, retried as the dialect allows (deadlock, serialization failure).
            async fn write(&self, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match self.write_once(items).await {
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

            async fn write_once(&self, items: &[WriteItem]) -> Result<Vec<ItemResult>> {
                let mut tx = self.begin_write().await?;
                <$d as $crate::store::dialect::Dialect>::lock_write_group(&mut tx, items).await?;
                let results = apply_group(&mut tx, items).await?;
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

            fn close(&self) -> BoxFuture<'_, ()> {
                Box::pin(self.pool.close())
            }
        }

        // `Store` must stay object-safe and implemented: the server holds `Arc<dyn Store>`.
        const _: fn(SqlStore<$d>) -> std::sync::Arc<dyn $crate::store::Store> =
            |s| std::sync::Arc::new(s);
    };
}

pub(crate) use sql_store;
