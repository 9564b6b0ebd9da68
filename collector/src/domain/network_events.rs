//! The list of network events (mass outages) as the API answers it and `network-events --json`
//! prints it.

use crate::analytics::NetworkEventView;
use serde::{Deserialize, Serialize};

/// `GET /api/v1/network-events` and `netmedic-collector network-events --json`.
#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkEventList {
    pub network_events: Vec<NetworkEventView>,
}
