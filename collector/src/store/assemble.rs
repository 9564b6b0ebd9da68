//! Assembles an incident from all of its stored events, whatever order they arrived in. Pure and
//! backend-neutral: the result depends only on the set of events, never on arrival order. When
//! new events all come after the stored ones (the usual case), [`merge`] folds them into the
//! stored incident without re-reading its events; the bounds below keep the rare full re-read,
//! and the incident's API answer, small.

/// Most events stored for one incident. Past it, further `opened`/`updated` events are
/// acknowledged but not stored (folded: the incident keeps its first events); one `resolved`
/// event is still stored, so a runaway incident can always be closed.
pub const MAX_EVENTS_PER_INCIDENT: u32 = 1000;
/// Most action records stored for one incident; later actions are acknowledged, not stored.
pub const MAX_ACTIONS_PER_INCIDENT: u32 = 2000;

use netmedic_proto::{
    Category, CheckId, EventKind, ExperimentArm, IncidentEvent, IncidentStatus, Severity, Timestamp,
};
use std::borrow::Borrow;
use std::collections::BTreeMap;

/// The incident-level fields derived from a set of events (the action trail is stored
/// separately, one row per record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub check: CheckId,
    pub cause: String,
    pub category: Category,
    pub severity: Severity,
    pub status: IncidentStatus,
    pub started_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    pub auto_healed: Option<bool>,
    pub summary: String,
    pub evidence: BTreeMap<String, String>,
    pub event_count: u32,
    pub last_seq: u64,
    /// The holdout arm, from the highest-seq event that carries one.
    pub experiment: Option<ExperimentArm>,
}

/// Rules:
/// - descriptive fields (check, cause, category, severity, summary) come from the highest-seq
///   event; evidence from the highest-seq event that carries any;
/// - `started_at` is the earliest `started_at` of any event (they should all agree);
/// - the incident is resolved as soon as any `resolved` event is stored; `resolved_at` and
///   `auto_healed` come from the highest-seq resolved event;
/// - the experiment arm from the highest-seq event that carries one (the agent puts the same arm
///   on every event of an incident).
///
/// Ties on `seq` (an agent bug) are broken by `event_id` so the result stays deterministic.
/// Returns `None` for an empty slice.
pub fn assemble<E: Borrow<IncidentEvent>>(events: &[E]) -> Option<Assembled> {
    let all = || events.iter().map(|e| -> &IncidentEvent { e.borrow() });
    let latest = all().max_by(newer)?;
    let evidence = all()
        .filter(|e| !e.evidence.is_empty())
        .max_by(newer)
        .map(|e| e.evidence.clone())
        .unwrap_or_default();
    let resolved = all()
        .filter(|e| e.kind == EventKind::Resolved)
        .max_by(newer);
    let started_at = all().map(|e| e.started_at).min()?;
    let experiment = all()
        .filter(|e| e.experiment.is_some())
        .max_by(newer)
        .and_then(|e| e.experiment.clone());
    Some(Assembled {
        check: latest.check,
        cause: latest.cause.clone(),
        category: latest.category,
        severity: latest.severity,
        status: if resolved.is_some() {
            IncidentStatus::Resolved
        } else {
            IncidentStatus::Open
        },
        started_at,
        resolved_at: resolved.map(|e| e.at),
        // A resolved event without the flag is refused by validation; default to "not healed".
        auto_healed: resolved.map(|e| e.auto_healed.unwrap_or(false)),
        summary: latest.summary.clone(),
        evidence,
        event_count: u32::try_from(events.len()).unwrap_or(u32::MAX),
        last_seq: latest.seq,
        experiment,
    })
}

/// Seq order, ties broken by event id (compared in place: this runs for every stored event).
fn newer(a: &&IncidentEvent, b: &&IncidentEvent) -> std::cmp::Ordering {
    (a.seq, a.event_id.as_str()).cmp(&(b.seq, b.event_id.as_str()))
}

/// Folds `new` events into `prev` (assembled from the stored events) without re-reading them.
/// Exact when every new event has a higher `seq` than `prev.last_seq`: then the result equals
/// [`assemble`] over all events. Returns `None` otherwise (the caller re-reads the incident).
pub fn merge<E: Borrow<IncidentEvent>>(prev: &Assembled, new: &[E]) -> Option<Assembled> {
    if new.iter().any(|e| e.borrow().seq <= prev.last_seq) {
        return None;
    }
    let next = assemble(new)?;
    let count = u32::try_from(new.len()).unwrap_or(u32::MAX);
    Some(Assembled {
        status: if next.status == IncidentStatus::Resolved {
            IncidentStatus::Resolved
        } else {
            prev.status
        },
        started_at: prev.started_at.min(next.started_at),
        resolved_at: next.resolved_at.or(prev.resolved_at),
        auto_healed: next.auto_healed.or(prev.auto_healed),
        evidence: if next.evidence.is_empty() {
            prev.evidence.clone()
        } else {
            next.evidence
        },
        event_count: prev.event_count.saturating_add(count),
        experiment: next.experiment.or_else(|| prev.experiment.clone()),
        ..next
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netmedic_proto::{ActionId, ActionOutcome, ActionRecord};

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_700_000_000_000 + s * 1000).unwrap()
    }

    fn ev(id: &str, seq: u64, kind: EventKind, at: i64) -> IncidentEvent {
        IncidentEvent {
            event_id: id.into(),
            incident_id: "i1".into(),
            seq,
            kind,
            check: CheckId::DefaultRoute,
            cause: "default_route_missing".into(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            started_at: ts(0),
            at: ts(at),
            summary: format!("summary {seq}"),
            evidence: BTreeMap::new(),
            actions: vec![],
            auto_healed: (kind == EventKind::Resolved).then_some(true),
            experiment: None,
        }
    }

    #[test]
    fn order_does_not_matter() {
        let mut opened = ev("a", 1, EventKind::Opened, 0);
        opened.evidence.insert("gateway".into(), "192.0.2.1".into());
        let mut updated = ev("b", 2, EventKind::Updated, 5);
        updated.severity = Severity::Major;
        updated.actions.push(ActionRecord {
            action: ActionId::RestoreRoute,
            outcome: ActionOutcome::Verified,
            at: ts(4),
            detail: String::new(),
        });
        let resolved = ev("c", 3, EventKind::Resolved, 10);
        let forward = assemble(&[opened.clone(), updated.clone(), resolved.clone()]).unwrap();
        let backward = assemble(&[resolved, updated, opened]).unwrap();
        assert_eq!(forward, backward);
        assert_eq!(forward.status, IncidentStatus::Resolved);
        assert_eq!(forward.resolved_at, Some(ts(10)));
        assert_eq!(forward.auto_healed, Some(true));
        assert_eq!(forward.summary, "summary 3");
        assert_eq!(forward.evidence.get("gateway").unwrap(), "192.0.2.1");
        assert_eq!(forward.event_count, 3);
        assert_eq!(forward.last_seq, 3);
        assert_eq!(forward.experiment, None);
    }

    #[test]
    fn the_arm_comes_from_the_latest_event_that_carries_one() {
        use netmedic_proto::Arm;
        let arm = ExperimentArm {
            experiment_id: "dns-holdout".into(),
            arm: Arm::Control,
        };
        let mut opened = ev("a", 1, EventKind::Opened, 0);
        opened.experiment = Some(arm.clone());
        let resolved = ev("b", 2, EventKind::Resolved, 5);
        let all = assemble(&[resolved.clone(), opened.clone()]).unwrap();
        assert_eq!(all.experiment, Some(arm.clone()));
        let merged = merge(&assemble(&[opened]).unwrap(), &[resolved]).unwrap();
        assert_eq!(merged.experiment, Some(arm));
    }

    #[test]
    fn resolved_alone_is_a_resolved_incident() {
        let mut r = ev("c", 7, EventKind::Resolved, 10);
        r.auto_healed = Some(false);
        let a = assemble(&[r]).unwrap();
        assert_eq!(a.status, IncidentStatus::Resolved);
        assert_eq!(a.started_at, ts(0));
        assert_eq!(a.auto_healed, Some(false));
    }

    #[test]
    fn an_update_after_resolve_keeps_it_resolved() {
        let a = assemble(&[
            ev("a", 1, EventKind::Opened, 0),
            ev("c", 2, EventKind::Resolved, 3),
            ev("d", 3, EventKind::Updated, 4),
        ])
        .unwrap();
        assert_eq!(a.status, IncidentStatus::Resolved);
        assert_eq!(a.summary, "summary 3");
        assert!(assemble::<IncidentEvent>(&[]).is_none());
    }

    #[test]
    fn merge_equals_assembling_everything() {
        let mut opened = ev("a", 1, EventKind::Opened, 0);
        opened.evidence.insert("gateway".into(), "192.0.2.1".into());
        let mut upd = ev("b", 2, EventKind::Updated, 5);
        upd.started_at = ts(-3);
        let resolved = ev("c", 3, EventKind::Resolved, 10);
        let after = ev("d", 4, EventKind::Updated, 11);
        let all = [opened.clone(), upd.clone(), resolved.clone(), after.clone()];
        for split in 1..all.len() {
            let prev = assemble(&all[..split]).unwrap();
            let merged = merge(&prev, &all[split..]).unwrap();
            assert_eq!(merged, assemble(&all).unwrap(), "split at {split}");
        }
        // An older event cannot be folded in: the caller must re-read.
        let prev = assemble(&[opened, resolved]).unwrap();
        assert!(merge(&prev, &[upd]).is_none());
    }
}
