//! Planning and finishing a step: the decision turned into records on the incident (and
//! events on disk) before the action starts, and the step's outcome recorded after it.

use super::Settings;
use super::step::{PlannedStep, StepResult};
use super::{Decision, Facts, HealState, UPSTREAM_CAUSE};
use crate::actions::{self, ActionInput};
use crate::checks::Observation;
use crate::context::Advisories;
use crate::detector::Detector;
use crate::incident::Incident;
use crate::site::Mode;
use netmedic_proto::{ActionId, ActionOutcome, CheckId, CheckStatus, EventKind};

/// Where incident events go: the daemon spools them (in order, before anything else happens).
pub trait EventSink {
    /// Takes an event of `kind` from `inc` and stores it.
    fn event(&mut self, inc: &mut Incident, kind: EventKind);
}

fn emit(detector: &mut Detector, sink: &mut dyn EventSink, id: CheckId, kind: EventKind) {
    if let Some(inc) = detector.incident_mut(id) {
        sink.event(inc, kind);
    }
}

/// Whether the upstream incident (icmp: gateway answers, ISP targets silent) is open.
pub fn upstream_incident_open(detector: &Detector) -> bool {
    detector
        .incident(CheckId::Icmp)
        .is_some_and(|i| i.cause == UPSTREAM_CAUSE)
}

/// Decides the next rung of the ladder for the incident of `id` under the safety rules;
/// records every decision on the incident and spools the intent before the action starts.
/// Returns the step to run, already charged to the budget.
pub fn plan(
    config: &Settings,
    advisories: &Advisories,
    detector: &mut Detector,
    heal: &mut HealState,
    sink: &mut dyn EventSink,
    id: CheckId,
) -> Option<PlannedStep> {
    let h = &config.healing;
    let mode = config.site.mode;
    super::assign_arm(config, &advisories.experiments, detector.incident_mut(id)?);
    let inc = detector.incident(id)?;
    let holdout = super::held_out_by(config, &advisories.experiments, inc);
    let ladder = super::ladder(config, id, &inc.cause);
    let now = std::time::Instant::now();
    let unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let facts = Facts {
        kill_switch: super::kill_switch(h, advisories),
        upstream_advisory: super::upstream_advisory(advisories),
        holdout: holdout.clone(),
        upstream_proven: inc.cause == UPSTREAM_CAUSE || upstream_incident_open(detector),
        service_down: detector.last_status(id) == Some(CheckStatus::Failed),
        in_window: super::in_window(&h.maintenance_windows, unix_secs, h.utc_offset_minutes),
        backing_off: heal.backing_off(id, now),
        reboot_enabled: h.reboot.enabled,
        budget_wait_max_secs: h.budget_wait_max_secs,
    };
    let boot_ms = super::budget::boottime_ms();
    let budget = &heal.budget;
    let decision = super::decide(mode, ladder.as_ref(), inc, &facts, |a| {
        budget.refused(a, boot_ms)
    });
    // An action that says it cannot help this incident is ruled out before it runs: the rung
    // is recorded skipped with why and the ladder climbs on (or escalates).
    let decision = match decision {
        Decision::Act { action, dry_run } => match ruled_out(config, action, inc) {
            Some(reason) => Decision::PassOver { action, reason },
            None => Decision::Act { action, dry_run },
        },
        d => d,
    };
    match decision {
        Decision::Nothing => None,
        Decision::Escalate => {
            if let Some(inc) = detector.incident_mut(id) {
                inc.escalated = true;
                if let Some(action) = inc.tried.last().copied() {
                    log::error!(
                        "incident {}: playbook exhausted, escalating to the NOC",
                        inc.id
                    );
                    inc.record(
                        action,
                        ActionOutcome::Escalated,
                        "every action of the playbook was tried or ruled out; the NOC must act",
                    );
                }
            }
            emit(detector, sink, id, EventKind::Updated);
            None
        }
        Decision::EscalateRefused { action, reason } => {
            // The same escalation as an exhausted ladder: the incident is the NOC's now and no
            // rung of it runs any more (`decide` does nothing for an escalated incident).
            if let Some(inc) = detector.incident_mut(id) {
                inc.escalated = true;
                log::error!(
                    "incident {}: {action} refused by its budget, escalating to the NOC: {reason}",
                    inc.id
                );
                inc.record(action, ActionOutcome::Escalated, reason);
            }
            emit(detector, sink, id, EventKind::Updated);
            None
        }
        Decision::Wait { action, reason } => {
            // Recorded once per reason, not on every check run while it lasts.
            if heal.is_new_note(id, &reason)
                && let Some(inc) = detector.incident_mut(id)
            {
                log::warn!("incident {}: {action} waits: {reason}", inc.id);
                inc.record(action, ActionOutcome::Skipped, reason);
                sink.event(inc, EventKind::Updated);
            }
            None
        }
        Decision::PassOver { action, reason } => {
            if let Some(inc) = detector.incident_mut(id) {
                log::warn!("incident {}: {action} passed over: {reason}", inc.id);
                inc.tried.push(action);
                inc.record(action, ActionOutcome::Skipped, reason);
            }
            emit(detector, sink, id, EventKind::Updated);
            // The next rung (bounded: every pass adds a rung to `tried`).
            plan(config, advisories, detector, heal, sink, id)
        }
        Decision::Act { action, dry_run } => {
            let ladder = ladder?;
            let status = detector.last_status(id);
            let inc = detector.incident_mut(id)?;
            inc.tried.push(action);
            let rung = inc.tried.len();
            inc.record(
                action,
                ActionOutcome::Planned,
                format!(
                    "{} playbook for {}/{}: rung {rung} of {} ({})",
                    ladder.origin,
                    id,
                    inc.cause,
                    ladder.actions.len(),
                    ladder
                        .actions
                        .iter()
                        .map(|a| a.as_str())
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            );
            let input = ActionInput {
                check: Some(id),
                cause: inc.cause.clone(),
                evidence: inc.evidence.clone(),
            };
            // The intent is on disk before the action starts.
            sink.event(inc, EventKind::Updated);
            if dry_run {
                let why = match &holdout {
                    _ if mode == Mode::DryRun => "dry_run mode: nothing changed".to_string(),
                    Some(experiment) => super::holdout::skip_reason(experiment),
                    None => "playbook in dry_run mode: nothing changed".to_string(),
                };
                log::info!("dry_run: would run {action} for {id}; nothing changed");
                inc.record(action, ActionOutcome::Skipped, why);
                sink.event(inc, EventKind::Updated);
                heal.attempted(id, h, now);
                return None;
            }
            heal.budget.charge(action, boot_ms);
            log::info!("running {action} for {id}");
            let disruptive = actions::is_disruptive(action);
            Some(PlannedStep {
                action,
                input,
                busy_guard: disruptive && status != Some(CheckStatus::Failed),
                locality_probe: disruptive,
            })
        }
    }
}

/// Why `action` cannot help `inc`, when the action can tell before it runs (today:
/// `reset_dns` that would name the resolvers already in use, or resolvers that fail too).
fn ruled_out(config: &Settings, action: ActionId, inc: &Incident) -> Option<String> {
    match action {
        ActionId::ResetDns => actions::reset_dns::ruled_out(
            &config.site,
            &config.actions,
            &ActionInput {
                check: Some(inc.check),
                cause: inc.cause.clone(),
                evidence: inc.evidence.clone(),
            },
        ),
        _ => None,
    }
}

/// Records a heal step's outcome; resolves the incident when verification passed.
#[allow(clippy::too_many_arguments)]
pub fn finish(
    config: &Settings,
    detector: &mut Detector,
    heal: &mut HealState,
    sink: &mut dyn EventSink,
    id: CheckId,
    action: ActionId,
    result: StepResult,
    verify: Option<Observation>,
) {
    let now = std::time::Instant::now();
    if let StepResult::Skipped { pass_over, .. } = &result {
        // Refused before it started: it did not use its budget.
        heal.budget.refund(action, super::budget::boottime_ms());
        if !*pass_over {
            heal.attempted(id, &config.healing, now);
        }
    } else {
        heal.attempted(id, &config.healing, now);
    }
    let Some(inc) = detector.incident_mut(id) else {
        // Resolved by itself while the action ran; nothing left to record against.
        log::info!("{action} finished after the {id} incident had already cleared");
        return;
    };
    let rollback = match result {
        StepResult::Skipped { reason, pass_over } => {
            log::warn!("incident {}: {action} skipped: {reason}", inc.id);
            if !pass_over {
                // The rung waits and is planned again after the backoff.
                inc.tried.retain(|a| *a != action);
            }
            inc.record(action, ActionOutcome::Skipped, reason);
            sink.event(inc, EventKind::Updated);
            return;
        }
        StepResult::Failed(e) => {
            log::warn!("incident {}: {action} failed: {e}", inc.id);
            inc.record(action, ActionOutcome::Failed, e);
            sink.event(inc, EventKind::Updated);
            return;
        }
        StepResult::Done { detail, rollback } => {
            inc.record(action, ActionOutcome::Done, detail);
            rollback
        }
    };
    match verify {
        Some(obs) if !obs.is_failing() && obs.status != CheckStatus::Unknown => {
            inc.record(action, ActionOutcome::Verified, obs.summary.clone());
            inc.healed_by = Some(action);
            if let Some(mut inc) = detector.resolve_healed(id) {
                log::info!("incident {} healed by {action}: {}", inc.id, obs.summary);
                heal.on_resolved(&inc, now);
                sink.event(&mut inc, EventKind::Resolved);
            }
        }
        other => {
            let why = other.map_or_else(String::new, |o| o.summary);
            log::warn!("incident {}: {action} did not help: {why}", inc.id);
            inc.record(action, ActionOutcome::NotEffective, why);
            match rollback {
                Some(Ok(what)) => {
                    log::warn!("incident {}: {action} rolled back: {what}", inc.id);
                    inc.record(action, ActionOutcome::RolledBack, what);
                }
                Some(Err(e)) => {
                    log::error!("incident {}: rolling back {action} failed: {e}", inc.id);
                    inc.record(
                        action,
                        ActionOutcome::Failed,
                        format!("rollback failed: {e}"),
                    );
                }
                None => {}
            }
            sink.event(inc, EventKind::Updated);
        }
    }
}
