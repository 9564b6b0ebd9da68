//! Records of the NOC console as the store returns them: users, sessions, acknowledgements and
//! notes, the overview's aggregates, a customer's subscriptions, contacts and survey answers.

use crate::auth::Role;
use netmedic_proto::{Category, Timestamp};
use serde::Serialize;

/// Upper bounds (exclusive, seconds) of the time-to-heal buckets of the overview; one more
/// bucket holds everything longer.
pub const HEAL_BUCKET_SECS: &[i64] = &[5, 15, 30, 60, 300, 900, 3600];

/// A NOC user (a person with a password, unlike API tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NocUser {
    pub name: String,
    pub role: Role,
    /// Argon2id PHC string.
    pub password_phc: String,
    pub created_at: Timestamp,
}

/// A live browser session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub user: String,
    /// The user's role now (not at login).
    pub role: Role,
    /// The per-session CSRF token every form must send back.
    pub csrf_token: String,
    pub created_at_ms: i64,
    /// Absolute end of the session.
    pub expires_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentAck {
    pub acked_by: String,
    pub acked_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IncidentNote {
    pub author: String,
    pub written_at: Timestamp,
    pub body: String,
}

/// What the console's first page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overview {
    pub at: Timestamp,
    /// Start of the recent window (incidents per hour, time to heal).
    pub since: Timestamp,
    pub devices_never_seen: u64,
    pub devices_online: u64,
    pub devices_offline: u64,
    pub devices_revoked: u64,
    /// Online devices with at least one open incident.
    pub devices_degraded: u64,
    pub open_by_category: Vec<(Category, u64)>,
    /// Incidents started since `since`, of them resolved and auto-healed.
    pub started: u64,
    pub resolved: u64,
    pub auto_healed: u64,
    /// (hour index since `since`, category, incidents started).
    pub per_hour: Vec<(i64, Category, u64)>,
    /// Auto-healed incidents by time to heal ([`HEAL_BUCKET_SECS`] + one overflow bucket).
    pub heal_buckets: Vec<u64>,
    pub open_network_events: u64,
}

/// A row of the subscribers table (device ↔ customer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriberRecord {
    pub agent_id: String,
    pub customer_id: String,
    pub region: Option<String>,
    pub access_node: Option<String>,
    pub plan: Option<String>,
    pub cpe_model: Option<String>,
    pub firmware: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContactRecord {
    pub contact_id: String,
    pub created_at: Timestamp,
    pub channel: Option<String>,
    pub reason: Option<String>,
    pub resolved_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SurveyRecord {
    pub survey_id: String,
    pub answered_at: Timestamp,
    pub nps: Option<i64>,
    pub csat: Option<i64>,
    pub channel: Option<String>,
    pub verbatim: Option<String>,
}
