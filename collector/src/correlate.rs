//! Mass-outage correlation (docs/design.md, "Customer-experience model"): incidents of at least K devices behind one access node
//! that start within T minutes become one **network event**; later incidents of that node join
//! it while it lasts; it resolves when fewer than K of its devices still have an open member
//! incident (at the latest member's resolution): the stragglers' faults are then local, and
//! the advisory that held their healing is lifted.
//! While it lasts, heartbeat replies to every agent behind the node carry
//! `Advisory::UpstreamOutage` so they take no local action.
//!
//! Leader-free and idempotent: every collector process runs a pass every `interval_secs` in one
//! write transaction (SQLite `BEGIN IMMEDIATE`; PostgreSQL a transaction-scoped advisory lock, so
//! passes of several processes serialise). A pass derives everything from the database: an
//! event's id is a hash of (access node, first member's start), so two processes seeing the same
//! incidents create the same event, and inserts are `ON CONFLICT DO NOTHING`. The advisory's
//! `until` is refreshed by each pass: if every collector stops correlating, advisories expire on
//! their own instead of muting the fleet forever.

use netmedic_proto::Category;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};

/// Tuning of the correlation (`[outage]` in collector.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageParams {
    /// K: distinct devices behind one access node.
    pub min_devices: u32,
    /// T: their incidents start within this many milliseconds.
    pub window_ms: i64,
    /// How long an advisory stays valid after the pass that issued it.
    pub advisory_ms: i64,
    /// Incidents of these categories count (connectivity, not a full disk).
    pub categories: Vec<Category>,
}

impl OutageParams {
    pub fn from_config(c: &crate::config::OutageConfig) -> Self {
        Self {
            min_devices: c.min_devices,
            window_ms: i64::from(c.window_mins) * 60_000,
            advisory_ms: i64::from(c.advisory_secs) * 1000,
            categories: c.categories.clone(),
        }
    }

    /// Incidents that started before `now − lookback` are not considered any more.
    pub fn lookback_ms(&self) -> i64 {
        (self.window_ms * 6).max(3_600_000)
    }
}

/// An incident not yet in any network event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub agent_id: String,
    pub incident_id: String,
    pub access_node: String,
    pub started_at_ms: i64,
}

/// An unresolved network event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveEvent {
    pub event_id: String,
    pub access_node: String,
    pub started_at_ms: i64,
}

/// What one pass writes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// (event id, access node, started_at).
    pub new_events: Vec<(String, String, i64)>,
    /// (agent id, incident id, event id).
    pub members: Vec<(String, String, String)>,
}

/// What a pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PassOutcome {
    pub events_created: u64,
    pub members_added: u64,
    pub events_resolved: u64,
}

/// The deterministic id of the event anchored at an incident start.
pub fn event_id(access_node: &str, started_at_ms: i64) -> String {
    let mut h = Sha256::new();
    h.update(access_node.as_bytes());
    h.update(b"/");
    h.update(started_at_ms.to_be_bytes());
    let d = h.finalize();
    let hex: String = d.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("ne-{hex}")
}

/// Decides new events and members from the unassigned candidates and the active events.
pub fn plan(candidates: &[Candidate], active: &[ActiveEvent], p: &OutageParams) -> Plan {
    let mut out = Plan::default();
    let mut by_node: HashMap<&str, Vec<&Candidate>> = HashMap::new();
    for c in candidates {
        by_node.entry(c.access_node.as_str()).or_default().push(c);
    }
    let mut nodes: Vec<&str> = by_node.keys().copied().collect();
    nodes.sort_unstable();
    for node in nodes {
        let mut list = by_node.remove(node).unwrap_or_default();
        list.sort_by(|a, b| {
            (a.started_at_ms, &a.agent_id, &a.incident_id).cmp(&(
                b.started_at_ms,
                &b.agent_id,
                &b.incident_id,
            ))
        });
        // Join the node's active event (the latest, if several).
        let ev = active
            .iter()
            .filter(|e| e.access_node == node)
            .max_by_key(|e| e.started_at_ms);
        let mut pending = Vec::new();
        for c in list {
            match ev {
                Some(e) if c.started_at_ms >= e.started_at_ms - p.window_ms => out.members.push((
                    c.agent_id.clone(),
                    c.incident_id.clone(),
                    e.event_id.clone(),
                )),
                _ => pending.push(c),
            }
        }
        // The first window of T holding K distinct devices anchors a new event.
        let anchor = (0..pending.len()).find(|&i| {
            let start = pending[i].started_at_ms;
            let devices: BTreeSet<&str> = pending[i..]
                .iter()
                .take_while(|c| c.started_at_ms < start + p.window_ms)
                .map(|c| c.agent_id.as_str())
                .collect();
            devices.len() >= p.min_devices as usize
        });
        if let Some(i) = anchor {
            let start = pending[i].started_at_ms;
            let id = event_id(node, start);
            out.new_events.push((id.clone(), node.to_owned(), start));
            for c in pending
                .iter()
                .filter(|c| c.started_at_ms >= start - p.window_ms)
            {
                out.members
                    .push((c.agent_id.clone(), c.incident_id.clone(), id.clone()));
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn c(agent: &str, node: &str, min: i64) -> Candidate {
        Candidate {
            agent_id: agent.into(),
            incident_id: format!("i-{agent}-{min}"),
            access_node: node.into(),
            started_at_ms: min * 60_000,
        }
    }

    fn params() -> OutageParams {
        OutageParams {
            min_devices: 3,
            window_ms: 10 * 60_000,
            advisory_ms: 900_000,
            categories: vec![Category::NoInternet],
        }
    }

    #[test]
    fn k_devices_within_t_make_one_event_and_late_ones_join() {
        let cands = vec![
            c("a", "olt-1", 0),
            c("b", "olt-1", 3),
            c("a", "olt-1", 4),
            c("c", "olt-1", 9),
            c("d", "olt-2", 0),
            c("e", "olt-2", 30),
            c("f", "olt-2", 45),
        ];
        let plan1 = plan(&cands, &[], &params());
        assert_eq!(plan1.new_events.len(), 1);
        assert_eq!(plan1.new_events[0].1, "olt-1");
        assert_eq!(plan1.members.len(), 4);
        // Same input, same id: idempotent across processes.
        assert_eq!(plan(&cands, &[], &params()), plan1);
        let active = vec![ActiveEvent {
            event_id: plan1.new_events[0].0.clone(),
            access_node: "olt-1".into(),
            started_at_ms: 0,
        }];
        let later = plan(&[c("z", "olt-1", 20)], &active, &params());
        assert!(later.new_events.is_empty());
        assert_eq!(later.members[0].2, plan1.new_events[0].0);
    }

    #[test]
    fn two_devices_or_a_spread_out_burst_are_no_event() {
        let cands = vec![
            c("a", "n", 0),
            c("b", "n", 5),
            c("a", "n", 6),
            c("c", "n", 16),
        ];
        assert_eq!(plan(&cands, &[], &params()), Plan::default());
    }
}
