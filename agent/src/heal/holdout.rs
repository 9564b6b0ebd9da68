//! Holdout experiments in the healer: an incident covered by an experiment in which this
//! device is in the control arm runs its playbook in `dry_run` — detected, planned and
//! reported, nothing changed — so the fleet's treated and control devices can be compared.
//!
//! What an incident records (its arm) is fixed by the first covering experiment the healer
//! sees: when the incident opens, or, for an experiment that starts while it is open, from
//! the next decision on (earlier events of that incident carry no arm). What the healer does
//! follows the experiments in force at each decision: an experiment that ends lets the
//! playbook act again. The kill switch and the upstream-outage advisory still win over both
//! arms ([`super::decide()`] checks them before anything runs, dry run or not).

use super::Settings;
use crate::experiment::{Assigned, covering};
use crate::incident::Incident;
use netmedic_proto::Arm;

/// The experiment that covers `inc` under the playbook that applies to it, if any.
pub fn covering_experiment<'a>(
    config: &Settings,
    experiments: &'a [Assigned],
    inc: &Incident,
) -> Option<&'a Assigned> {
    if experiments.is_empty() {
        return None;
    }
    let ladder = super::ladder(config, inc.check, &inc.cause);
    covering(
        experiments,
        inc.check,
        &inc.cause,
        ladder.as_ref().map(|l| l.name.as_str()),
    )
}

/// Records on `inc` the arm of the experiment covering it, unless it already has one.
pub fn assign_arm(config: &Settings, experiments: &[Assigned], inc: &mut Incident) {
    if inc.experiment.is_some() {
        return;
    }
    if let Some(a) = covering_experiment(config, experiments, inc) {
        log::info!(
            "incident {} ({}/{}) is covered by {}",
            inc.id,
            inc.check,
            inc.cause,
            a.describe()
        );
        inc.experiment = Some(a.record());
    }
}

/// The id of the experiment holding `inc` out (this device in its control arm), if one does.
pub fn held_out_by(config: &Settings, experiments: &[Assigned], inc: &Incident) -> Option<String> {
    covering_experiment(config, experiments, inc)
        .filter(|a| a.arm == Arm::Control)
        .map(|a| a.experiment.id.clone())
}

/// The detail of a rung skipped because of a holdout.
pub fn skip_reason(experiment_id: &str) -> String {
    format!("holdout experiment {experiment_id}: control arm")
}
