//! Fleet state as the API and `device list` show it: a device's state (online, offline after 3
//! silent heartbeat intervals, never seen, revoked) is computed at query time from its last
//! heartbeat, so every collector process sharing one database agrees without a sweeper task.

use crate::store::{DeviceRecord, DeviceState};
use netmedic_proto::{Heartbeat, Timestamp};
use serde::{Deserialize, Serialize};

/// Heartbeat intervals of silence after which a device is offline.
pub const OFFLINE_AFTER_INTERVALS: i64 = 3;

/// The instant before which a last heartbeat means "offline".
pub fn offline_before_ms(now: Timestamp, heartbeat_interval_secs: u32) -> i64 {
    now.unix_millis() - OFFLINE_AFTER_INTERVALS * i64::from(heartbeat_interval_secs) * 1000
}

/// A device as `GET /api/v1/devices[/{id}]` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceView {
    pub agent_id: String,
    pub state: String,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub customer_id: Option<String>,
    #[serde(default)]
    pub access_node: Option<String>,
    #[serde(default)]
    pub enrolled_at: Option<Timestamp>,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
    #[serde(default)]
    pub first_seen_at: Option<Timestamp>,
    #[serde(default)]
    pub last_seen_at: Option<Timestamp>,
    #[serde(default)]
    pub agent_version: Option<String>,
    #[serde(default)]
    pub firmware_version: Option<String>,
    /// The latest heartbeat (device detail only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<Heartbeat>,
}

/// A page of devices, ordered by id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevicePage {
    pub devices: Vec<DeviceView>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(default)]
    pub next_after: Option<String>,
}

impl DeviceView {
    pub fn from_record(d: DeviceRecord, offline_before_ms: i64, with_heartbeat: bool) -> Self {
        let state = DeviceState::of(&d, offline_before_ms).as_str().to_owned();
        let ts = |ms: Option<i64>| ms.and_then(Timestamp::from_unix_millis);
        Self {
            state,
            region: d.region,
            customer_id: d.customer_id,
            access_node: d.access_node,
            enrolled_at: ts(d.enrolled_at),
            revoked_at: ts(d.revoked_at),
            first_seen_at: ts(d.first_seen_at),
            last_seen_at: ts(d.last_seen_at),
            agent_version: d.agent_version,
            firmware_version: d.firmware_version,
            last_heartbeat: if with_heartbeat {
                d.last_heartbeat
                    .as_deref()
                    .and_then(|j| serde_json::from_str(j).ok())
            } else {
                None
            },
            agent_id: d.agent_id,
        }
    }
}

/// Device ids follow the wire rule for identifiers: 1..=64 of `A-Z a-z 0-9 . _ : -`.
pub fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}
