//! Wire types shared by the netmedic agent and collector: report batches, heartbeats and their
//! replies, the closed vocabularies (checks, actions, experience categories) and validation.
//!
//! **Architecture invariant:** this crate does no I/O. It is serde types and pure functions only,
//! so both sides agree on the protocol by construction and it can be fuzzed in isolation.

mod experiment;
mod time;
mod validate;

pub mod experiment_hash {
    //! The arm-assignment rule of holdout experiments (see [`crate::Experiment`]).
    pub use crate::experiment::{
        MAX_CONTROL_PERMILLE, MAX_EXPERIMENT_ID_LEN, TEST_VECTOR_BUCKET, TEST_VECTOR_DIGEST,
        arm_from_sha256, bucket_from_sha256, hash_input,
    };
}
pub use experiment::{Arm, Experiment, ExperimentArm, ExperimentScope};
pub use time::{Timestamp, TimestampError};
pub use validate::{Limits, TimeWindow, ValidationError, Violation};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// Version of the JSON documents below. A collector refuses versions it does not know with a 400.
pub const SCHEMA_VERSION: u32 = 1;

/// HTTP paths, relative to the collector's base URL.
pub mod paths {
    pub const REPORTS: &str = "/api/v1/reports";
    pub const HEARTBEATS: &str = "/api/v1/heartbeats";
    pub const INCIDENTS: &str = "/api/v1/incidents";
    pub const DIAGNOSTICS_RESULTS: &str = "/api/v1/diagnostics-results";
}

macro_rules! closed_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The identifier used on the wire, in config, logs and metrics.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire identifier.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}
pub(crate) use closed_enum;

closed_enum!(
    /// The agent's checks (docs/design.md, "Checks"). Shared identifiers for config, API, metrics and logs.
    CheckId {
        Link => "link",
        WanAddress => "wan_address",
        DefaultRoute => "default_route",
        Icmp => "icmp",
        Dns => "dns",
        Mtu => "mtu",
        Http => "http",
        Conntrack => "conntrack",
        Resources => "resources",
        Service => "service",
        Clock => "clock",
        ModemSnmp => "modem_snmp",
        LanDhcp => "lan_dhcp",
        LanArp => "lan_arp",
        Wan6 => "wan6",
        Icmp6 => "icmp6",
        Dns6 => "dns6",
        /// Path-MTU blackholes over IPv6 (DF probes; a filtered Packet Too Big).
        Mtu6 => "mtu6",
        /// The Wi-Fi access point: hostapd alive and answering, BSS enabled, provisioned
        /// SSID/security/channel, clients.
        WifiAp => "wifi_ap",
        /// hostapd's unsolicited events: repeated authentication failures (wrong password),
        /// DFS radar detections and the channel moves that follow.
        WifiEvents => "wifi_events",
    }
);

closed_enum!(
    /// Remediation actions the agent may take.
    ActionId {
        RenewDhcp => "renew_dhcp",
        RestoreRoute => "restore_route",
        ResetDns => "reset_dns",
        SetMtu => "set_mtu",
        BounceIface => "bounce_iface",
        FlushConntrack => "flush_conntrack",
        RestartService => "restart_service",
        Reboot => "reboot",
        RenewDhcp6 => "renew_dhcp6",
        RestoreRoute6 => "restore_route6",
        ReapplyLanPrefix => "reapply_lan_prefix",
        /// Restart hostapd through an allow-listed command.
        RestartHostapd => "restart_hostapd",
        /// Put the provisioned access point config back and restart hostapd.
        ReapplyWifiConfig => "reapply_wifi_config",
        /// Ask a sticky Wi-Fi client to roam (802.11v BSS transition request).
        SteerClient => "steer_client",
        /// Disassociate a sticky Wi-Fi client that ignored the request.
        DisassociateClient => "disassociate_client",
        /// Move the access point off a busy channel (channel switch announcement).
        ChanSwitch => "chan_switch",
    }
);

closed_enum!(
    /// How the subscriber experiences a fault; the axis the NOC and the CX analytics group by.
    Category {
        NoInternet => "no_internet",
        DnsFailure => "dns_failure",
        SlowOrLossy => "slow_or_lossy",
        Intermittent => "intermittent",
        LocalMisconfig => "local_misconfig",
        LineDegraded => "line_degraded",
        DeviceHealth => "device_health",
        /// The home network behind the router: a rogue DHCP server, an address conflict.
        LanDegraded => "lan_degraded",
        /// IPv4 works, IPv6 does not (RA, default route, address, delegated prefix, IPv6 path):
        /// dual-stack services fall back or break while the IPv4 checks stay green.
        Ipv6Degraded => "ipv6_degraded",
        /// The home Wi-Fi is down or degraded (access point, radio, clients).
        WifiDegraded => "wifi_degraded",
    }
);

closed_enum!(
    /// How badly an incident spoils the service.
    Severity {
        /// Degraded but usable.
        Minor => "minor",
        /// A service (DNS, a LAN daemon) is down.
        Major => "major",
        /// No internet at all.
        Critical => "critical",
    }
);

closed_enum!(
    /// What happened to an incident in one event.
    EventKind {
        Opened => "opened",
        Updated => "updated",
        Resolved => "resolved",
    }
);

closed_enum!(
    /// One step of an action's life, as recorded on the incident.
    ActionOutcome {
        /// The healer chose this action as the next rung of the ladder.
        Planned => "planned",
        /// Not taken; `detail` says why (dry run, budget, kill switch, upstream fault, busy line...).
        Skipped => "skipped",
        /// Carried out without error; not yet verified.
        Done => "done",
        /// Carrying it out failed; `detail` has the error.
        Failed => "failed",
        /// The check passed again after the action.
        Verified => "verified",
        /// The check still failed after the action.
        NotEffective => "not_effective",
        /// A config change that did not help was undone.
        RolledBack => "rolled_back",
        /// The ladder is exhausted: the NOC must act.
        Escalated => "escalated",
    }
);

closed_enum!(
    /// State of one check as summarised in a heartbeat.
    CheckStatus {
        Ok => "ok",
        Degraded => "degraded",
        Failed => "failed",
        Unknown => "unknown",
    }
);

/// One entry of an incident's action trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionRecord {
    pub action: ActionId,
    pub outcome: ActionOutcome,
    pub at: Timestamp,
    /// Human-readable detail: what was changed, why it was skipped, the error.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One change in an incident's life. Events are idempotent by `event_id` and may arrive in any
/// order; the collector assembles the incident from all of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentEvent {
    /// Random, globally unique id of this event (the collector deduplicates on it).
    pub event_id: String,
    /// Agent-chosen id of the incident this event belongs to (unique per agent).
    pub incident_id: String,
    /// Per-agent monotonically increasing sequence number (ordering within one agent).
    pub seq: u64,
    pub kind: EventKind,
    /// The check whose failure is the incident's root cause.
    pub check: CheckId,
    /// Machine-readable cause within the check, e.g. `default_route_missing`.
    pub cause: String,
    pub category: Category,
    pub severity: Severity,
    /// When the incident started (same in every event of an incident).
    pub started_at: Timestamp,
    /// When this event happened.
    pub at: Timestamp,
    /// One line for the NOC.
    pub summary: String,
    /// What the check measured, keyed by name (e.g. `gateway`, `rtt_ms`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
    /// Actions recorded since the previous event of this incident.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<ActionRecord>,
    /// On `resolved`: true when the agent's own action fixed it, false when it cleared by itself
    /// or by someone else. Absent on other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_healed: Option<bool>,
    /// The holdout experiment that covered this incident and the device's arm in it; absent when
    /// no active experiment covers the incident. Every event of an incident carries the same value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentArm>,
}

/// What an agent POSTs to [`paths::REPORTS`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportBatch {
    pub schema_version: u32,
    pub agent_id: String,
    pub events: Vec<IncidentEvent>,
}

/// The collector's answer to a report batch: every listed event is durably stored (now or
/// earlier) and may be deleted from the agent's spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportAck {
    pub accepted: u32,
    pub duplicates: u32,
    pub acked_event_ids: Vec<String>,
}

/// What an agent POSTs to [`paths::HEARTBEATS`]. Kept small: ≤ 600 bytes on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub schema_version: u32,
    pub agent_id: String,
    pub agent_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub firmware_version: String,
    pub uptime_secs: u64,
    pub sent_at: Timestamp,
    /// State of each enabled check.
    #[serde(default)]
    pub checks: BTreeMap<CheckId, CheckStatus>,
    pub spool_depth: u32,
    pub dropped_total: u64,
}

/// Something the collector asks of an agent in a heartbeat reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Advisory {
    /// Many devices behind the same access node are failing: the fault is upstream, take no
    /// local remediation until `until`.
    UpstreamOutage {
        network_event_id: String,
        until: Timestamp,
    },
    /// Stop all remediation (per device, region or fleet) until cleared.
    KillSwitch { reason: String },
    /// Run these checks now and report the result.
    Diagnostics {
        request_id: String,
        checks: Vec<CheckId>,
    },
}

/// The outcome of one check run for an on-demand diagnostics request: what the agent's check
/// observed, with everything a NOC operator needs to read it without the agent's logs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticCheck {
    pub check: CheckId,
    pub status: CheckStatus,
    /// Machine-readable cause (`ok` when healthy), e.g. `default_route_missing`;
    /// `check_not_enabled` when the device does not run this check.
    pub cause: String,
    /// One line for the NOC.
    pub summary: String,
    /// The headline measured value, e.g. `via 100.64.0.1 dev wan, 0.4 ms`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// The threshold the value was judged against.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub threshold: String,
    /// What to do about it, when not ok.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hint: String,
    /// What the check measured, keyed by name (e.g. `gateway`, `rtt_ms`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub evidence: BTreeMap<String, String>,
}

/// What an agent POSTs to [`paths::DIAGNOSTICS_RESULTS`] once it has run the checks of an
/// [`Advisory::Diagnostics`] request: one entry per requested check, in the request's order.
/// Idempotent by `request_id`: the first result stored for a request is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsResult {
    pub schema_version: u32,
    pub agent_id: String,
    /// The id of the request, as the advisory carried it.
    pub request_id: String,
    /// When the agent finished running the checks (agent clock).
    pub completed_at: Timestamp,
    pub results: Vec<DiagnosticCheck>,
}

/// The collector's reply to a heartbeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    pub schema_version: u32,
    pub server_time: Timestamp,
    /// The interval the collector expects; devices silent for 3 intervals are marked offline.
    pub heartbeat_interval_secs: u32,
    #[serde(default)]
    pub advisories: Vec<Advisory>,
    /// Active holdout experiments. The agent computes its arm in each and runs the covered
    /// playbooks in `dry_run` where it is in the control arm. The kill switch and an upstream
    /// outage still win. Absent from older collectors (= none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<Experiment>,
}

/// Body of every 4xx/5xx answer from the collector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `invalid_report`, `unsupported_schema_version`.
    pub error: String,
    /// What is wrong, for a human.
    pub reason: String,
    /// Field-level problems, when the body was well-formed JSON but invalid.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

/// Status of an incident as the collector assembled it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    Open,
    Resolved,
}

/// An incident as the collector's query API returns it (`GET /api/v1/incidents[/{id}]`),
/// assembled from all the events received for it, whatever their arrival order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentView {
    pub agent_id: String,
    pub incident_id: String,
    pub check: CheckId,
    pub cause: String,
    pub category: Category,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub started_at: Timestamp,
    #[serde(default)]
    pub resolved_at: Option<Timestamp>,
    /// `Some(true)` when the agent's own action healed it; `None` while open.
    #[serde(default)]
    pub auto_healed: Option<bool>,
    pub summary: String,
    /// Evidence of the latest event that carried any.
    #[serde(default)]
    pub evidence: BTreeMap<String, String>,
    /// The whole action trail, in the order the agent recorded it (by event seq, then position).
    #[serde(default)]
    pub actions: Vec<ActionRecord>,
    /// Number of distinct events stored for this incident.
    pub event_count: u32,
    /// The holdout experiment arm the agent recorded, if an experiment covered the incident.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<ExperimentArm>,
}

/// A page of incidents (`GET /api/v1/incidents`), newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentView>,
    /// Opaque cursor for the next page; absent on the last page.
    #[serde(default)]
    pub next_cursor: Option<String>,
}

impl Category {
    /// The default category of a check's failure when the check does not say better.
    pub fn default_for(check: CheckId) -> Category {
        match check {
            CheckId::Link | CheckId::WanAddress | CheckId::DefaultRoute => Category::NoInternet,
            CheckId::Icmp | CheckId::Http => Category::SlowOrLossy,
            CheckId::Dns => Category::DnsFailure,
            CheckId::Mtu => Category::LocalMisconfig,
            CheckId::ModemSnmp => Category::LineDegraded,
            CheckId::LanDhcp | CheckId::LanArp => Category::LanDegraded,
            CheckId::Wan6 | CheckId::Icmp6 | CheckId::Dns6 | CheckId::Mtu6 => {
                Category::Ipv6Degraded
            }
            CheckId::WifiAp | CheckId::WifiEvents => Category::WifiDegraded,
            CheckId::Conntrack | CheckId::Resources | CheckId::Service | CheckId::Clock => {
                Category::DeviceHealth
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_roundtrip_through_their_wire_names() {
        for c in CheckId::ALL {
            let json = serde_json::to_string(c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
            assert_eq!(CheckId::parse(c.as_str()), Some(*c));
        }
        for c in Category::ALL {
            assert_eq!(
                serde_json::from_str::<Category>(&format!("\"{c}\"")).unwrap(),
                *c
            );
        }
        assert_eq!(
            ActionId::parse("restore_route"),
            Some(ActionId::RestoreRoute)
        );
        assert_eq!(ActionId::parse("Restore_Route"), None);
    }

    #[test]
    fn advisory_is_tagged() {
        let a = Advisory::KillSwitch {
            reason: "maintenance".into(),
        };
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"type":"kill_switch","reason":"maintenance"}"#
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<ReportBatch>(
            r#"{"schema_version":1,"agent_id":"a","events":[],"extra":1}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }
}
