//! Validation of decoded wire documents: every problem is reported at once, each with the path
//! of the field it concerns, so a 400 tells the sender exactly what to fix.

use crate::{EventKind, Heartbeat, IncidentEvent, ReportBatch, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Size bounds. Device-supplied strings are hostile until proven otherwise: everything is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_events_per_batch: usize,
    pub max_id_len: usize,
    pub max_summary_len: usize,
    pub max_evidence_entries: usize,
    pub max_evidence_key_len: usize,
    pub max_evidence_value_len: usize,
    pub max_actions_per_event: usize,
    pub max_action_detail_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events_per_batch: 500,
            max_id_len: 64,
            max_summary_len: 512,
            max_evidence_entries: 32,
            max_evidence_key_len: 64,
            max_evidence_value_len: 1024,
            max_actions_per_event: 64,
            max_action_detail_len: 512,
        }
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Path of the field, e.g. `events[2].cause`.
    pub field: String,
    pub problem: String,
}

/// All problems found in a document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub violations: Vec<Violation>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, v) in self.violations.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", v.field, v.problem)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Collect(Vec<Violation>);

impl Collect {
    fn push(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            problem: problem.into(),
        });
    }

    /// Identifiers: 1..=max chars of `[A-Za-z0-9._:-]`.
    fn id(&mut self, field: &str, value: &str, max: usize) {
        if value.is_empty() {
            self.push(field, "must not be empty");
        } else if value.len() > max {
            self.push(field, format!("longer than {max} bytes"));
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            self.push(field, "may only contain A-Z a-z 0-9 . _ : -");
        }
    }

    /// Free text: bounded, no control characters other than tab.
    fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.len() > max {
            self.push(field, format!("longer than {max} bytes"));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            self.push(field, "contains control characters");
        }
    }

    fn finish(self) -> Result<(), ValidationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ValidationError { violations: self.0 })
        }
    }
}

fn schema(c: &mut Collect, v: u32) {
    if v != SCHEMA_VERSION {
        c.push(
            "schema_version",
            format!("unsupported version {v}; this side speaks {SCHEMA_VERSION}"),
        );
    }
}

fn event(c: &mut Collect, p: &str, e: &IncidentEvent, l: &Limits) {
    c.id(&format!("{p}.event_id"), &e.event_id, l.max_id_len);
    c.id(&format!("{p}.incident_id"), &e.incident_id, l.max_id_len);
    c.id(&format!("{p}.cause"), &e.cause, l.max_id_len);
    if e.summary.is_empty() {
        c.push(format!("{p}.summary"), "must not be empty");
    }
    c.text(&format!("{p}.summary"), &e.summary, l.max_summary_len);
    if e.at < e.started_at {
        c.push(format!("{p}.at"), "is before started_at");
    }
    if e.evidence.len() > l.max_evidence_entries {
        c.push(
            format!("{p}.evidence"),
            format!("more than {} entries", l.max_evidence_entries),
        );
    }
    for (k, v) in &e.evidence {
        c.id(&format!("{p}.evidence key"), k, l.max_evidence_key_len);
        c.text(&format!("{p}.evidence.{k}"), v, l.max_evidence_value_len);
    }
    if e.actions.len() > l.max_actions_per_event {
        c.push(
            format!("{p}.actions"),
            format!("more than {} entries", l.max_actions_per_event),
        );
    }
    for (i, a) in e.actions.iter().enumerate() {
        c.text(
            &format!("{p}.actions[{i}].detail"),
            &a.detail,
            l.max_action_detail_len,
        );
    }
    match (e.kind, e.auto_healed) {
        (EventKind::Resolved, None) => {
            c.push(format!("{p}.auto_healed"), "required on a resolved event")
        }
        (EventKind::Opened | EventKind::Updated, Some(_)) => c.push(
            format!("{p}.auto_healed"),
            "only allowed on a resolved event",
        ),
        _ => {}
    }
}

impl ReportBatch {
    /// Checks everything serde could not: schema version, sizes, identifier syntax, consistency.
    pub fn validate(&self, l: &Limits) -> Result<(), ValidationError> {
        let mut c = Collect::default();
        schema(&mut c, self.schema_version);
        c.id("agent_id", &self.agent_id, l.max_id_len);
        if self.events.is_empty() {
            c.push("events", "must not be empty");
        }
        if self.events.len() > l.max_events_per_batch {
            c.push(
                "events",
                format!("more than {} events in one batch", l.max_events_per_batch),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, e) in self.events.iter().enumerate() {
            event(&mut c, &format!("events[{i}]"), e, l);
            if !seen.insert(e.event_id.as_str()) {
                c.push(format!("events[{i}].event_id"), "repeated within the batch");
            }
        }
        c.finish()
    }
}

impl Heartbeat {
    pub fn validate(&self, l: &Limits) -> Result<(), ValidationError> {
        let mut c = Collect::default();
        schema(&mut c, self.schema_version);
        c.id("agent_id", &self.agent_id, l.max_id_len);
        c.text("agent_version", &self.agent_version, l.max_id_len);
        c.text("firmware_version", &self.firmware_version, l.max_id_len);
        c.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Category, CheckId, Severity, Timestamp};

    fn ev() -> IncidentEvent {
        let t = Timestamp::from_unix_millis(1_700_000_000_000).unwrap();
        IncidentEvent {
            event_id: "e1".into(),
            incident_id: "i1".into(),
            seq: 1,
            kind: EventKind::Opened,
            check: CheckId::DefaultRoute,
            cause: "default_route_missing".into(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            started_at: t,
            at: t,
            summary: "no default route".into(),
            evidence: Default::default(),
            actions: vec![],
            auto_healed: None,
        }
    }

    #[test]
    fn a_good_batch_passes() {
        let b = ReportBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-0001".into(),
            events: vec![ev()],
        };
        b.validate(&Limits::default()).unwrap();
    }

    #[test]
    fn all_problems_are_reported_with_their_field() {
        let mut e = ev();
        e.summary = "<script>\u{7}".into();
        e.cause = "bad cause!".into();
        e.kind = EventKind::Resolved;
        let b = ReportBatch {
            schema_version: 99,
            agent_id: String::new(),
            events: vec![e.clone(), e],
        };
        let err = b.validate(&Limits::default()).unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field.as_str()).collect();
        for want in [
            "schema_version",
            "agent_id",
            "events[0].cause",
            "events[0].summary",
            "events[0].auto_healed",
            "events[1].event_id",
        ] {
            assert!(fields.contains(&want), "missing {want} in {err}");
        }
    }
}
