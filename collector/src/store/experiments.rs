//! The holdout-experiment SQL of the backends: start, end and list experiments; the active ones
//! for heartbeat replies. `experiments_sql!()` expands the functions over the backend's `Conn`;
//! `experiments_methods!()` the matching [`super::FleetStore`] methods.

use netmedic_proto::{Experiment, Timestamp};
use serde::Serialize;

/// An experiment as stored: the definition agents receive, and its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExperimentRecord {
    #[serde(flatten)]
    pub experiment: Experiment,
    pub started_at: Timestamp,
    /// Set when the experiment was stopped: kept for the report, no longer delivered.
    pub ended_at: Option<Timestamp>,
    /// Who started it: the API token's or console user's name, or `cli`.
    pub created_by: String,
}

impl ExperimentRecord {
    pub fn is_active(&self) -> bool {
        self.ended_at.is_none()
    }
}

macro_rules! experiments_sql {
    () => {
        use $crate::store::experiments::ExperimentRecord;

        async fn start_experiment_in(
            conn: &mut Conn,
            e: &netmedic_proto::Experiment,
            created_by: &str,
            now: i64,
        ) -> Result<()> {
            let (kind, name, cause) = match &e.scope {
                netmedic_proto::ExperimentScope::Playbook { name } => {
                    ("playbook", name.clone(), None)
                }
                netmedic_proto::ExperimentScope::Check { check, cause } => {
                    ("check", check.as_str().to_owned(), cause.clone())
                }
            };
            let inserted: Option<(String,)> = sqlx::query_as(
                "INSERT INTO experiments
                    (id, scope_kind, scope_name, scope_cause, control_permille, salt, started_at,
                     created_by)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO NOTHING RETURNING id",
            )
            .bind(&e.id)
            .bind(kind)
            .bind(name)
            .bind(cause)
            .bind(i32::from(e.control_permille))
            .bind(&e.salt)
            .bind(now)
            .bind(created_by)
            .fetch_optional(&mut *conn)
            .await?;
            match inserted {
                Some(_) => Ok(()),
                None => Err(StoreError::Conflict(format!(
                    "experiment {:?} exists (ids are never reused: arms are recorded under them)",
                    e.id
                ))),
            }
        }

        async fn end_experiment_in(conn: &mut Conn, id: &str, now: i64) -> Result<bool> {
            let n = sqlx::query(
                "UPDATE experiments SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(n > 0)
        }

        /// Every experiment (active first, then newest first), or only the active ones.
        async fn load_experiments(
            conn: &mut Conn,
            active_only: bool,
        ) -> Result<Vec<ExperimentRecord>> {
            type Row = (
                String,
                String,
                String,
                Option<String>,
                i32,
                String,
                i64,
                Option<i64>,
                String,
            );
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT id, scope_kind, scope_name, scope_cause, control_permille, salt,
                        started_at, ended_at, created_by
                 FROM experiments
                 WHERE ($1 = 0 OR ended_at IS NULL)
                 ORDER BY ended_at IS NOT NULL, started_at DESC, id",
            )
            .bind(i32::from(active_only))
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map(|r| {
                    let scope = match r.1.as_str() {
                        "playbook" => netmedic_proto::ExperimentScope::Playbook { name: r.2 },
                        "check" => netmedic_proto::ExperimentScope::Check {
                            check: parse_enum(&r.2, CheckId::parse, "experiment check")?,
                            cause: r.3,
                        },
                        other => {
                            return Err(StoreError::Corrupt(format!(
                                "experiment scope kind {other:?}"
                            )));
                        }
                    };
                    Ok(ExperimentRecord {
                        experiment: netmedic_proto::Experiment {
                            id: r.0,
                            scope,
                            control_permille: u16::try_from(r.4).map_err(|_| {
                                StoreError::Corrupt("control_permille out of range".into())
                            })?,
                            salt: r.5,
                        },
                        started_at: timestamp(r.6, "started_at")?,
                        ended_at: r.7.map(|ms| timestamp(ms, "ended_at")).transpose()?,
                        created_by: r.8,
                    })
                })
                .collect()
        }
    };
}

/// The [`super::FleetStore`] methods of this module, expanded inside its `impl`.
macro_rules! experiments_methods {
    () => {
        fn start_experiment<'a>(
            &'a self,
            experiment: &'a netmedic_proto::Experiment,
            created_by: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<()>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                let started =
                    start_experiment_in(&mut conn, experiment, created_by, now.unix_millis()).await;
                self.hb.advice_changed();
                started
            })
        }

        fn end_experiment<'a>(
            &'a self,
            id: &'a str,
            now: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<bool>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                let ended = end_experiment_in(&mut conn, id, now.unix_millis()).await;
                self.hb.advice_changed();
                ended
            })
        }

        fn list_experiments(&self) -> $crate::store::BoxFuture<'_, Result<Vec<ExperimentRecord>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                load_experiments(&mut conn, false).await
            })
        }
    };
}

pub(crate) use {experiments_methods, experiments_sql};
