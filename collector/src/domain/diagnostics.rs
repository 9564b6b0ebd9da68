//! Queuing on-demand diagnostics for a device (API, console and CLI alike).

use crate::now;
use crate::store::{Store, StoreError};
use netmedic_proto::CheckId;

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// The request itself is wrong (no checks); the text says why.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Queues diagnostics (each check once, in a stable order); returns the new request id.
pub async fn queue_diagnostics(
    store: &dyn Store,
    agent_id: &str,
    checks: &[CheckId],
) -> Result<String, DiagError> {
    if checks.is_empty() {
        return Err(DiagError::Invalid("name at least one check".into()));
    }
    let mut checks = checks.to_vec();
    checks.sort();
    checks.dedup();
    let request_id = crate::auth::random_hex(8)
        .map(|h| format!("diag-{h}"))
        .map_err(|e| DiagError::Invalid(e.to_string()))?;
    store
        .request_diagnostics(agent_id, &checks, &request_id, now())
        .await?;
    Ok(request_id)
}
