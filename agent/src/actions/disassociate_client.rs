//! `disassociate_client`: the second rung for a sticky Wi-Fi client that ignored
//! `steer_client`: hostapd disassociates it (`DISASSOCIATE <mac>`), so that it scans again and
//! picks the best access point (a mesh node, the other band) instead of clinging to a weak one.
//!
//! Disruptive: that client loses its connection for a moment, so it runs only in a maintenance
//! window (a sticky client is a degraded service, never a down one). The MACs are validated as
//! in `steer_client`.

use super::Settings;
use super::{ActionError, ActionInput, Limit};

/// Disruptive: the client is disconnected.
pub const DISRUPTIVE: bool = true;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 2,
    window_secs: 3600,
};

pub async fn run(s: &Settings, input: &ActionInput) -> Result<String, ActionError> {
    super::steer_client::per_client(s, input, "DISASSOCIATE", "disassociated").await
}
