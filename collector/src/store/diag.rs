//! Results of on-demand diagnostics: the SQL that stores an agent's [`DiagnosticsResult`] on its
//! request row (device token checked in the same transaction, idempotent by request id) and
//! lists a device's requests with their results. Shared by both backends the way `cx.rs` is:
//! `diag_sql!()` expands the functions over the backend's `Conn` inside `sql_store!`
//! (`shared.rs`), `diag_methods!(ingest | fleet)` the matching methods of [`super::IngestStore`]
//! and [`super::FleetStore`].

use super::{Denied, StoreError};
use netmedic_proto::{CheckId, DiagnosticsResult, Timestamp};
use serde::{Deserialize, Serialize};

/// What became of an agent's diagnostics result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompleteOutcome {
    /// Stored on its request now.
    Stored,
    /// The request already had a result: nothing changed (a replay is idempotent; the first
    /// result stays).
    AlreadyCompleted,
    /// The token may not report for this device (nothing stored).
    Denied(Denied),
    /// No request with this id was queued for this device.
    NotFound,
}

/// Where a diagnostics request is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticsState {
    /// Waiting for the device's next heartbeat.
    Queued,
    /// Handed to the device in a heartbeat reply; no result yet.
    Delivered,
    /// The device sent its result.
    Completed,
}

/// A diagnostics request as stored, with its result once the device sent it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DiagnosticsRecord {
    pub request_id: String,
    pub state: DiagnosticsState,
    /// The checks asked for.
    pub checks: Vec<CheckId>,
    pub requested_at: Timestamp,
    /// When a heartbeat reply carried the request to the device.
    pub delivered_at: Option<Timestamp>,
    /// When the collector received the result (its own clock; the result's `completed_at` is
    /// the agent's).
    pub completed_at: Option<Timestamp>,
    pub result: Option<DiagnosticsResult>,
}

/// A stored row: request id, checks (comma-separated), requested, delivered and completed
/// (Unix ms), the result as JSON.
pub(crate) type DiagRow = (
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

fn millis(ms: i64, what: &str) -> Result<Timestamp, StoreError> {
    Timestamp::from_unix_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("diagnostics {what} {ms} out of range")))
}

/// Turns a stored row back into a record.
pub(crate) fn record(row: DiagRow) -> Result<DiagnosticsRecord, StoreError> {
    let (request_id, checks, requested, delivered, completed, result) = row;
    let checks = checks
        .split(',')
        .filter(|c| !c.is_empty())
        .map(|c| {
            CheckId::parse(c).ok_or_else(|| StoreError::Corrupt(format!("diagnostics check {c:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let result = result
        .map(|json| {
            serde_json::from_str::<DiagnosticsResult>(&json).map_err(|e| {
                StoreError::Corrupt(format!("diagnostics result of {request_id}: {e}"))
            })
        })
        .transpose()?;
    let state = match (delivered, completed) {
        (_, Some(_)) => DiagnosticsState::Completed,
        (Some(_), None) => DiagnosticsState::Delivered,
        (None, None) => DiagnosticsState::Queued,
    };
    Ok(DiagnosticsRecord {
        state,
        checks,
        requested_at: millis(requested, "requested_at")?,
        delivered_at: delivered.map(|t| millis(t, "delivered_at")).transpose()?,
        completed_at: completed.map(|t| millis(t, "completed_at")).transpose()?,
        result,
        request_id,
    })
}

macro_rules! diag_sql {
    () => {
        /// Stores a device's diagnostics result on its request, inside the caller's write
        /// transaction: the token is checked first (as for reports), then the request must
        /// exist and belong to the token's device; a request that already has a result keeps it.
        async fn diag_complete_in(
            conn: &mut Conn,
            token_sha256: &str,
            result: &netmedic_proto::DiagnosticsResult,
            received_at: i64,
        ) -> Result<$crate::store::diag::CompleteOutcome> {
            use $crate::store::diag::CompleteOutcome as Outcome;
            let auth = $crate::store::Auth::TokenSha256(token_sha256.to_owned());
            if let Err(d) = authenticate(conn, &auth, &result.agent_id).await? {
                return Ok(Outcome::Denied(d));
            }
            let row: Option<(String, Option<i64>)> = sqlx::query_as(
                "SELECT agent_id, completed_at FROM diagnostics_requests WHERE request_id = $1",
            )
            .bind(&result.request_id)
            .fetch_optional(&mut *conn)
            .await?;
            match row {
                None => return Ok(Outcome::NotFound),
                // Another device's request is none of this device's business: not found.
                Some((agent, _)) if agent != result.agent_id => return Ok(Outcome::NotFound),
                Some((_, Some(_))) => return Ok(Outcome::AlreadyCompleted),
                Some((_, None)) => {}
            }
            let json = serde_json::to_string(result).map_err(|e| {
                $crate::store::StoreError::Corrupt(format!("cannot encode diagnostics result: {e}"))
            })?;
            // `completed_at IS NULL` again: a concurrent writer (another collector process)
            // may have stored a result since the SELECT; the first one stays.
            let n = sqlx::query(
                "UPDATE diagnostics_requests
                 SET completed_at = $2, result = $3, delivered_at = COALESCE(delivered_at, $2)
                 WHERE request_id = $1 AND completed_at IS NULL",
            )
            .bind(&result.request_id)
            .bind(received_at)
            .bind(json)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            Ok(if n == 0 {
                Outcome::AlreadyCompleted
            } else {
                Outcome::Stored
            })
        }

        /// A device's diagnostics requests, newest first, at most `limit` (1..=500).
        async fn diag_list_in(
            conn: &mut Conn,
            agent_id: &str,
            limit: u32,
        ) -> Result<Vec<$crate::store::diag::DiagnosticsRecord>> {
            let limit = i64::from(limit.clamp(1, $crate::store::MAX_PAGE_LIMIT));
            let rows: Vec<$crate::store::diag::DiagRow> = sqlx::query_as(
                "SELECT request_id, checks, requested_at, delivered_at, completed_at, result
                 FROM diagnostics_requests
                 WHERE agent_id = $1
                 ORDER BY requested_at DESC, request_id DESC
                 LIMIT $2",
            )
            .bind(agent_id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
            rows.into_iter()
                .map($crate::store::diag::record)
                .collect()
        }
    };
}

/// The store methods of this module, one arm per capability trait, expanded inside its `impl`.
macro_rules! diag_methods {
    (ingest) => {
        fn complete_diagnostics<'a>(
            &'a self,
            token_sha256: &'a str,
            result: &'a netmedic_proto::DiagnosticsResult,
            received_at: Timestamp,
        ) -> $crate::store::BoxFuture<'a, Result<$crate::store::diag::CompleteOutcome>> {
            Box::pin(async move {
                let mut tx = self.begin_write().await?;
                let out =
                    diag_complete_in(&mut tx, token_sha256, result, received_at.unix_millis())
                        .await?;
                tx.commit().await?;
                Ok(out)
            })
        }
    };
    (fleet) => {
        fn list_diagnostics<'a>(
            &'a self,
            agent_id: &'a str,
            limit: u32,
        ) -> $crate::store::BoxFuture<'a, Result<Vec<$crate::store::diag::DiagnosticsRecord>>> {
            Box::pin(async move {
                let mut conn = self.pool.acquire().await?;
                diag_list_in(&mut conn, agent_id, limit).await
            })
        }
    };
}

pub(crate) use {diag_methods, diag_sql};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn rows_become_records_with_their_state() {
        let r = record((
            "diag-1".into(),
            "default_route,dns".into(),
            1_700_000_000_000,
            None,
            None,
            None,
        ))
        .unwrap();
        assert_eq!(r.state, DiagnosticsState::Queued);
        assert_eq!(r.checks, [CheckId::DefaultRoute, CheckId::Dns]);
        let r = record((
            "diag-1".into(),
            "dns".into(),
            1_700_000_000_000,
            Some(1_700_000_001_000),
            None,
            None,
        ))
        .unwrap();
        assert_eq!(r.state, DiagnosticsState::Delivered);
        for bad in [
            ("diag-1", "nope", None),
            ("diag-1", "dns", Some("{not json".to_string())),
        ] {
            let e = record((
                bad.0.into(),
                bad.1.into(),
                0,
                Some(0),
                Some(0),
                bad.2.clone(),
            ))
            .unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
        }
    }
}
