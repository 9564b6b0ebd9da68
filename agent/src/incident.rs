//! An incident as the agent tracks it, and the wire events it produces.

use crate::checks::Observation;
use netmedic_proto::{
    ActionId, ActionOutcome, ActionRecord, Category, CheckId, EventKind, ExperimentArm,
    IncidentEvent, Severity, Timestamp,
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
    /// The holdout experiment covering this incident and the device's arm in it, fixed by the
    /// first covering experiment seen (at open, or later when one starts while it is open);
    /// every event from then on carries it.
    pub experiment: Option<ExperimentArm>,
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
            experiment: None,
        }
    }

    /// Appends a step to the action trail.
    pub fn record(&mut self, action: ActionId, outcome: ActionOutcome, detail: impl Into<String>) {
        self.pending_actions.push(ActionRecord {
            action,
            outcome,
            at: crate::context::now(),
            detail: wire_text(&detail.into(), MAX_DETAIL_BYTES),
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
            summary: wire_text(&self.summary, 512),
            evidence: self
                .evidence
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .chain(
                    self.consequences
                        .iter()
                        .map(|(c, s)| (format!("consequence.{c}"), s.clone())),
                )
                .take(MAX_EVIDENCE_ENTRIES)
                .map(|(k, v)| (wire_key(&k), wire_text(&v, MAX_EVIDENCE_VALUE_BYTES)))
                .collect(),
            actions: std::mem::take(&mut self.pending_actions),
            auto_healed: (kind == EventKind::Resolved).then_some(self.healed_by.is_some()),
            experiment: self.experiment.clone(),
        }
    }
}

/// The collector's limits (`netmedic_proto::validate`): an event over them is refused whole.
const MAX_DETAIL_BYTES: usize = 512;
const MAX_EVIDENCE_ENTRIES: usize = 32;
const MAX_EVIDENCE_VALUE_BYTES: usize = 1024;

/// An evidence key as the wire accepts it (1-64 of `A-Za-z0-9._:-`): other characters (the
/// space in `resolver 192.0.2.53`) become `_`.
pub fn wire_key(k: &str) -> String {
    let mut out: String = k
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if out.is_empty() {
        out.push('_');
    }
    out
}

/// Free text as the wire accepts it: control characters (a resolv.conf's newlines, a
/// command's output) become spaces, and it is cut to `max` bytes on a character boundary.
pub fn wire_text(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_control() && c != '\t' { ' ' } else { c })
        .collect();
    if out.len() > max {
        let mut cut = max.saturating_sub(3);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn wire_text_has_no_control_characters_and_fits() {
        let t = super::wire_text("a\nb\tc", 100);
        assert_eq!(t, "a b\tc");
        assert_eq!(
            super::wire_key("resolver 192.0.2.53"),
            "resolver_192.0.2.53"
        );
        let long = "é".repeat(400);
        let t = super::wire_text(&long, 512);
        assert!(t.len() <= 512 && t.ends_with("..."));
    }
}
