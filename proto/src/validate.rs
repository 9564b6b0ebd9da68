//! Validation of decoded wire documents: every problem is reported at once, each with the path
//! of the field it concerns, so a 400 tells the sender exactly what to fix.

use crate::experiment::{MAX_CONTROL_PERMILLE, MAX_EXPERIMENT_ID_LEN};
use crate::{
    DiagnosticCheck, DiagnosticsResult, EventKind, Experiment, ExperimentArm, ExperimentScope,
    Heartbeat, IncidentEvent, ReportBatch, SCHEMA_VERSION, Timestamp,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    /// Checks in one diagnostics result (a request names each check at most once).
    pub max_diagnostic_results: usize,
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
            max_diagnostic_results: 32,
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

    /// Experiment ids, salts and playbook names: 1..=64 chars of `[A-Za-z0-9._-]` (no `:`, the
    /// separator of the arm hash's input).
    fn name(&mut self, field: &str, value: &str) {
        if value.is_empty() {
            self.push(field, "must not be empty");
        } else if value.len() > MAX_EXPERIMENT_ID_LEN {
            self.push(field, format!("longer than {MAX_EXPERIMENT_ID_LEN} bytes"));
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            self.push(field, "may only contain A-Z a-z 0-9 . _ -");
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

/// Evidence maps (incidents and diagnostics alike): bounded count, identifier keys, text values.
fn evidence(c: &mut Collect, p: &str, evidence: &BTreeMap<String, String>, l: &Limits) {
    if evidence.len() > l.max_evidence_entries {
        c.push(
            format!("{p}.evidence"),
            format!("more than {} entries", l.max_evidence_entries),
        );
    }
    for (k, v) in evidence {
        c.id(&format!("{p}.evidence key"), k, l.max_evidence_key_len);
        c.text(&format!("{p}.evidence.{k}"), v, l.max_evidence_value_len);
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
    evidence(c, p, &e.evidence, l);
    if let Some(x) = &e.experiment {
        experiment_arm(c, &format!("{p}.experiment"), x);
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

fn experiment_arm(c: &mut Collect, p: &str, x: &ExperimentArm) {
    c.name(&format!("{p}.experiment_id"), &x.experiment_id);
}

impl Experiment {
    /// Checks an experiment as an operator defines it (and as an agent receives it): id and
    /// salt syntax, the control share within 1..=[`MAX_CONTROL_PERMILLE`], a well-formed scope.
    pub fn validate(&self, l: &Limits) -> Result<(), ValidationError> {
        let mut c = Collect::default();
        c.name("id", &self.id);
        c.name("salt", &self.salt);
        if self.control_permille == 0 || self.control_permille > MAX_CONTROL_PERMILLE {
            c.push(
                "control_permille",
                format!("must be within 1..={MAX_CONTROL_PERMILLE}"),
            );
        }
        match &self.scope {
            ExperimentScope::Playbook { name } => c.name("scope.name", name),
            ExperimentScope::Check { cause, .. } => {
                if let Some(cause) = cause {
                    c.id("scope.cause", cause, l.max_id_len);
                }
            }
        }
        c.finish()
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

/// How far from the receiver's clock a device-supplied event time may lie. Times outside the
/// window (a router that booted at 1970 without NTP, a forged 9999) are refused, so no device can
/// pin its incidents to the top or bottom of "newest first".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// Oldest accepted time, as an age before "now" (the agent spool may hold events that long).
    pub max_past_millis: i64,
    /// Newest accepted time, as a lead over "now" (clock skew).
    pub max_future_millis: i64,
}

impl Default for TimeWindow {
    fn default() -> Self {
        Self {
            max_past_millis: 366 * 24 * 3_600_000,
            max_future_millis: 3_600_000,
        }
    }
}

impl TimeWindow {
    fn check(&self, c: &mut Collect, field: String, t: Timestamp, now: Timestamp) {
        let ahead = t.millis_since(now);
        if ahead > self.max_future_millis {
            c.push(
                field,
                format!(
                    "{t} is more than {} s ahead of the collector clock",
                    self.max_future_millis / 1000
                ),
            );
        } else if -ahead > self.max_past_millis {
            c.push(
                field,
                format!(
                    "{t} is more than {} days before the collector clock",
                    self.max_past_millis / 86_400_000
                ),
            );
        }
    }
}

impl ReportBatch {
    /// Checks every event and action time against `now` (the receiver's clock); kept apart from
    /// [`ReportBatch::validate`] so that one stays a pure function of the document.
    pub fn check_times(&self, now: Timestamp, w: &TimeWindow) -> Vec<Violation> {
        let mut c = Collect::default();
        for (i, e) in self.events.iter().enumerate() {
            w.check(&mut c, format!("events[{i}].started_at"), e.started_at, now);
            w.check(&mut c, format!("events[{i}].at"), e.at, now);
            for (k, a) in e.actions.iter().enumerate() {
                w.check(&mut c, format!("events[{i}].actions[{k}].at"), a.at, now);
            }
        }
        c.0
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

fn diagnostic_check(c: &mut Collect, p: &str, d: &DiagnosticCheck, l: &Limits) {
    c.id(&format!("{p}.cause"), &d.cause, l.max_id_len);
    if d.summary.is_empty() {
        c.push(format!("{p}.summary"), "must not be empty");
    }
    c.text(&format!("{p}.summary"), &d.summary, l.max_summary_len);
    c.text(&format!("{p}.value"), &d.value, l.max_summary_len);
    c.text(&format!("{p}.threshold"), &d.threshold, l.max_summary_len);
    c.text(&format!("{p}.hint"), &d.hint, l.max_summary_len);
    evidence(c, p, &d.evidence, l);
}

impl DiagnosticsResult {
    /// Checks everything serde could not: schema version, sizes, identifier syntax, each check
    /// at most once.
    pub fn validate(&self, l: &Limits) -> Result<(), ValidationError> {
        let mut c = Collect::default();
        schema(&mut c, self.schema_version);
        c.id("agent_id", &self.agent_id, l.max_id_len);
        c.id("request_id", &self.request_id, l.max_id_len);
        if self.results.is_empty() {
            c.push("results", "must not be empty");
        }
        if self.results.len() > l.max_diagnostic_results {
            c.push(
                "results",
                format!("more than {} results", l.max_diagnostic_results),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (i, d) in self.results.iter().enumerate() {
            diagnostic_check(&mut c, &format!("results[{i}]"), d, l);
            if !seen.insert(d.check) {
                c.push(format!("results[{i}].check"), "repeated within the result");
            }
        }
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
            experiment: None,
        }
    }

    fn diag() -> DiagnosticsResult {
        DiagnosticsResult {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-0001".into(),
            request_id: "diag-0123456789abcdef".into(),
            completed_at: Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
            results: vec![
                DiagnosticCheck {
                    check: CheckId::DefaultRoute,
                    status: crate::CheckStatus::Ok,
                    cause: "ok".into(),
                    summary: "default route via 100.64.0.1".into(),
                    value: "via 100.64.0.1 dev wan, 0.4 ms".into(),
                    threshold: "present, gateway answers".into(),
                    hint: String::new(),
                    evidence: [("gateway".to_string(), "100.64.0.1".to_string())].into(),
                },
                DiagnosticCheck {
                    check: CheckId::Dns,
                    status: crate::CheckStatus::Failed,
                    cause: "dns_timeout".into(),
                    summary: "no resolver answers".into(),
                    value: String::new(),
                    threshold: String::new(),
                    hint: "check the resolvers".into(),
                    evidence: Default::default(),
                },
            ],
        }
    }

    #[test]
    fn a_good_diagnostics_result_passes_and_roundtrips() {
        let d = diag();
        d.validate(&Limits::default()).unwrap();
        let json = serde_json::to_string(&d).unwrap();
        // Empty optional text is left out on the wire.
        assert!(!json.contains("\"hint\":\"\""), "{json}");
        assert_eq!(serde_json::from_str::<DiagnosticsResult>(&json).unwrap(), d);
    }

    #[test]
    fn every_diagnostics_problem_is_reported_with_its_field() {
        let l = Limits::default();
        let mut d = diag();
        d.schema_version = 7;
        d.agent_id = "bad id".into();
        d.request_id = String::new();
        d.results[0].cause = "no spaces allowed".into();
        d.results[0].summary = String::new();
        d.results[0].value = "x".repeat(l.max_summary_len + 1);
        d.results[0].threshold = "a\nb".into();
        d.results[0].hint = "\u{1b}[31m".into();
        d.results[0]
            .evidence
            .insert("bad key".into(), "v".repeat(l.max_evidence_value_len + 1));
        d.results[1].check = CheckId::DefaultRoute;
        let err = d.validate(&l).unwrap_err();
        let fields: Vec<_> = err.violations.iter().map(|v| v.field.as_str()).collect();
        for want in [
            "schema_version",
            "agent_id",
            "request_id",
            "results[0].cause",
            "results[0].summary",
            "results[0].value",
            "results[0].threshold",
            "results[0].hint",
            "results[0].evidence key",
            "results[0].evidence.bad key",
            "results[1].check",
        ] {
            assert!(fields.contains(&want), "missing {want} in {err}");
        }
    }

    #[test]
    fn diagnostics_results_are_bounded() {
        let l = Limits::default();
        let mut d = diag();
        d.results.clear();
        let err = d.validate(&l).unwrap_err();
        assert_eq!(err.violations[0].field, "results", "{err}");

        let mut d = diag();
        let one = d.results[0].clone();
        d.results = vec![one; l.max_diagnostic_results + 1];
        let err = d.validate(&l).unwrap_err();
        assert!(
            err.violations
                .iter()
                .any(|v| v.field == "results" && v.problem.contains("more than")),
            "{err}"
        );

        let mut d = diag();
        d.results[0].evidence = (0..=l.max_evidence_entries)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let err = d.validate(&l).unwrap_err();
        assert_eq!(err.violations[0].field, "results[0].evidence", "{err}");
    }

    #[test]
    fn unknown_diagnostics_fields_are_refused() {
        let mut v = serde_json::to_value(diag()).unwrap();
        v["results"][0]["extra"] = serde_json::json!(1);
        let err = serde_json::from_value::<DiagnosticsResult>(v).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
    }

    #[test]
    fn experiment_arms_and_definitions_are_checked() {
        use crate::{Arm, CheckId};
        let l = Limits::default();
        let mut e = ev();
        e.experiment = Some(ExperimentArm {
            experiment_id: "dns holdout:1".into(),
            arm: Arm::Control,
        });
        let b = ReportBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-1".into(),
            events: vec![e],
        };
        let err = b.validate(&l).unwrap_err();
        assert_eq!(err.violations.len(), 1, "{err}");
        assert_eq!(
            err.violations[0].field,
            "events[0].experiment.experiment_id"
        );

        let good = Experiment {
            id: "dns-holdout_2026.q4".into(),
            scope: ExperimentScope::Playbook { name: "dns".into() },
            control_permille: MAX_CONTROL_PERMILLE,
            salt: "00ff".into(),
        };
        assert!(good.validate(&l).is_ok());
        let bad = Experiment {
            id: "x".repeat(MAX_EXPERIMENT_ID_LEN + 1),
            scope: ExperimentScope::Check {
                check: CheckId::Dns,
                cause: Some(String::new()),
            },
            control_permille: 0,
            salt: "a:b".into(),
        };
        let err = bad.validate(&l).unwrap_err();
        let fields: Vec<&str> = err.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["id", "salt", "control_permille", "scope.cause"],
            "{err}"
        );
        let over = Experiment {
            control_permille: MAX_CONTROL_PERMILLE + 1,
            scope: ExperimentScope::Playbook {
                name: String::new(),
            },
            ..good
        };
        let err = over.validate(&l).unwrap_err();
        let fields: Vec<&str> = err.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["control_permille", "scope.name"], "{err}");
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

    #[test]
    fn times_far_from_now_are_refused_with_their_field() {
        let now = Timestamp::from_unix_millis(1_700_000_000_000).unwrap();
        let mut e = ev();
        e.started_at = Timestamp::from_unix_millis(0).unwrap();
        e.at = Timestamp::from_unix_millis(253_402_300_799_999).unwrap();
        let b = ReportBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-0001".into(),
            events: vec![ev(), e],
        };
        let v = b.check_times(now, &TimeWindow::default());
        let fields: Vec<_> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["events[1].started_at", "events[1].at"], "{v:?}");
    }
}
