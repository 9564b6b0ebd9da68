//! An incident as the agent tracks it, and the wire events it produces.

use crate::checks::Observation;
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, EventKind, IncidentEvent, Severity,
    Timestamp,
};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub id: String,
    pub check: CheckId,
    pub cause: String,
    pub category: Category,
    pub severity: Severity,
    pub started_at: Timestamp,
    pub summary: String,
    pub evidence: BTreeMap<String, String>,
    /// Action records not yet carried by an event.
    pub pending_actions: Vec<ActionRecord>,
    /// Rungs of the playbook ladder already attempted, in order.
    pub tried: Vec<ActionId>,
    /// The action whose verification passed, if any.
    pub healed_by: Option<ActionId>,
    /// The ladder was exhausted and the NOC was told.
    pub escalated: bool,
    /// Failures of dependent checks explained by this incident (root-cause layering).
    pub consequences: BTreeMap<CheckId, String>,
}

impl Incident {
    pub fn open(obs: &Observation) -> Self {
        Self {
            id: crate::ids::random_id(),
            check: obs.check,
            cause: obs.cause.clone(),
            category: obs.category,
            severity: obs.severity,
            started_at: obs.at,
            summary: obs.summary.clone(),
            evidence: obs.evidence.clone(),
            pending_actions: Vec::new(),
            tried: Vec::new(),
            healed_by: None,
            escalated: false,
            consequences: BTreeMap::new(),
        }
    }

    /// Appends a step to the action trail.
    pub fn record(&mut self, action: ActionId, outcome: ActionOutcome, detail: impl Into<String>) {
        self.pending_actions.push(ActionRecord {
            action,
            outcome,
            at: crate::checks::now(),
            detail: detail.into(),
        });
    }

    /// Builds the next wire event, moving the pending action records into it.
    pub fn take_event(&mut self, kind: EventKind, seq: u64, at: Timestamp) -> IncidentEvent {
        IncidentEvent {
            event_id: crate::ids::random_id(),
            incident_id: self.id.clone(),
            seq,
            kind,
            check: self.check,
            cause: self.cause.clone(),
            category: self.category,
            severity: self.severity,
            started_at: self.started_at,
            at: at.max(self.started_at),
            summary: self.summary.clone(),
            evidence: self
                .evidence
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(
                    self.consequences
                        .iter()
                        .map(|(c, s)| (format!("consequence.{c}"), s.clone())),
                )
                .collect(),
            actions: std::mem::take(&mut self.pending_actions),
            auto_healed: (kind == EventKind::Resolved).then_some(self.healed_by.is_some()),
        }
    }
}
