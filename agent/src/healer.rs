//! Healer: maps an incident's cause to its playbook — an ordered ladder of actions, least
//! disruptive first — and picks the next rung. Execution, verification and recording live in
//! the daemon loop so that every step reaches the spool in order.

use crate::config::Mode;
use crate::incident::Incident;
use netmedic_proto::{ActionId, CheckId};

/// The built-in ladder for a check's failure.
pub fn playbook(check: CheckId, cause: &str) -> &'static [ActionId] {
    match (check, cause) {
        (CheckId::DefaultRoute, "default_route_missing" | "default_route_wrong_interface") => {
            &[ActionId::RestoreRoute]
        }
        _ => &[],
    }
}

/// What the healer decides for an open incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do: healing is off, or the incident has no playbook.
    Nothing,
    /// Take this action (or, in dry run, report that it would be taken).
    Act(ActionId),
    /// Every rung was tried and none helped: tell the NOC (once).
    Escalate,
}

pub fn decide(mode: Mode, incident: &Incident) -> Decision {
    if mode == Mode::Off || incident.escalated || incident.healed_by.is_some() {
        return Decision::Nothing;
    }
    let ladder = playbook(incident.check, &incident.cause);
    if ladder.is_empty() {
        return Decision::Nothing;
    }
    match ladder.iter().find(|a| !incident.tried.contains(a)) {
        Some(a) => Decision::Act(*a),
        None => Decision::Escalate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Observation;
    use netmedic_proto::{Category, CheckStatus, Severity, Timestamp};

    fn incident(cause: &str) -> Incident {
        Incident::open(&Observation {
            check: CheckId::DefaultRoute,
            status: CheckStatus::Failed,
            cause: cause.into(),
            summary: "s".into(),
            value: String::new(),
            threshold: String::new(),
            hint: String::new(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            evidence: Default::default(),
            at: Timestamp::EPOCH,
        })
    }

    #[test]
    fn climbs_the_ladder_then_escalates_once() {
        let mut i = incident("default_route_missing");
        assert_eq!(
            decide(Mode::Enforce, &i),
            Decision::Act(ActionId::RestoreRoute)
        );
        i.tried.push(ActionId::RestoreRoute);
        assert_eq!(decide(Mode::Enforce, &i), Decision::Escalate);
        i.escalated = true;
        assert_eq!(decide(Mode::Enforce, &i), Decision::Nothing);
    }

    #[test]
    fn off_mode_and_unknown_causes_do_nothing() {
        let i = incident("default_route_missing");
        assert_eq!(decide(Mode::Off, &i), Decision::Nothing);
        assert_eq!(
            decide(Mode::Enforce, &incident("gateway_unreachable")),
            Decision::Nothing
        );
    }
}
