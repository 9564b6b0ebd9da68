//! Remediation actions. One file per action; the closed [`ActionId`] enum from the protocol names
//! them. An action changes the system and says what it changed; the healer decides when to run
//! it, verifies it and records it.

pub mod restore_route;

use crate::checks::Context;
use netmedic_proto::ActionId;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    /// The action cannot run here (missing data or configuration); not retried.
    #[error("{0}")]
    NotApplicable(String),
    #[error("{0}")]
    Failed(String),
}

/// Runs an action; `Ok` carries a one-line description of what was changed.
pub async fn run(action: ActionId, ctx: &Context) -> Result<String, ActionError> {
    match action {
        ActionId::RestoreRoute => restore_route::run(ctx).await,
        other => Err(ActionError::NotApplicable(format!(
            "{other} is not available in this build"
        ))),
    }
}
