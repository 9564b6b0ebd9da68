//! The report's causal section: per holdout experiment, the incidents it covered (the arm the
//! agent recorded) in the treated arm (healing as configured) against the control arm (the
//! playbook in `dry_run`). Devices were put in their arm at random (a salted hash of the device
//! id), so the difference of the arms' contact rates is the effect of self-healing on contacts —
//! unlike the observational figure, which compares auto-healed with escalated incidents, two
//! different kinds of fault.
//!
//! The unit of randomisation is the device, the unit of analysis the incident; intervals treat
//! incidents as independent, so a few devices with many incidents make them too narrow (the
//! number of devices per arm is shown for that reason).

use super::statistics::{
    Effect, Proportion, SatAcc, Satisfaction, minimal_detectable_difference, newcombe, nps_effect,
    wilson,
};
use netmedic_proto::{Arm, ExperimentScope, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};

/// How the causal figures were obtained (shown beside each of them).
pub const DESIGN: &str = "randomized (holdout)";

/// What the observational "contacts avoided" figure rests on (shown beside it).
pub const OBSERVATIONAL_ASSUMPTION: &str = "assumes escalated and auto-healed incidents would \
    have drawn contacts at the same rate if untreated — not randomized";

/// An experiment as the report knows it (from the store's experiments table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentInfo {
    pub id: String,
    pub scope: ExperimentScope,
    pub control_permille: u16,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
}

/// One arm of an experiment over the report's period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmReport {
    /// Covered incidents started in the period.
    pub incidents: u64,
    /// Distinct devices with such incidents.
    pub devices: u64,
    /// Share of those incidents followed by a contact within the contact window.
    pub contact_rate: Option<Proportion>,
    /// Survey answers linked (survey window) to a covered incident of this arm.
    pub satisfaction: Satisfaction,
    /// The contact rate per week (by incident start, weeks from Monday 00:00 UTC), oldest first:
    /// does the effect hold over time, or did one bad week make it?
    #[serde(default)]
    pub weekly: Vec<WeekRate>,
}

/// One week of an arm's covered incidents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekRate {
    /// Monday 00:00 UTC of the week.
    pub week_start: Timestamp,
    pub incidents: u64,
    pub contact_rate: Option<Proportion>,
}

/// Milliseconds in a week.
const WEEK_MS: i64 = 7 * 86_400_000;
/// 1970-01-05, the first Monday of Unix time (day 0 was a Thursday), in Unix milliseconds.
const MONDAY_OFFSET_MS: i64 = 4 * 86_400_000;

/// Monday 00:00 UTC of the week holding `ms`.
fn week_start_ms(ms: i64) -> i64 {
    (ms - MONDAY_OFFSET_MS).div_euclid(WEEK_MS) * WEEK_MS + MONDAY_OFFSET_MS
}

/// One experiment's randomized comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CausalExperiment {
    pub experiment_id: String,
    /// Always [`DESIGN`].
    pub design: String,
    /// `None` for an id recorded by agents but unknown to this collector.
    pub scope: Option<ExperimentScope>,
    pub control_permille: Option<u16>,
    pub started_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub treated: ArmReport,
    pub control: ArmReport,
    /// Contact rate of control minus treated, in percentage points (Newcombe hybrid score
    /// interval): what self-healing takes off the contact rate.
    pub contact_rate_reduction: Option<Effect>,
    /// `(rate_control − rate_treated) × 1000`: contacts avoided per 1,000 covered incidents.
    pub avoided_per_1000: Option<Effect>,
    /// `avoided_per_1000` × cost per contact.
    pub avoided_value_per_1000: Option<Effect>,
    /// Contacts avoided over the treated incidents of the period, and their value.
    pub avoided_in_period: Option<Effect>,
    pub avoided_value_in_period: Option<Effect>,
    /// NPS of treated minus control (NPS points).
    pub nps_difference: Option<Effect>,
    /// CSAT of treated minus control, in percentage points (Newcombe).
    pub csat_difference: Option<Effect>,
    /// Smallest contact-rate difference (percentage points) these arms detect with 80 % power
    /// at α = 0.05, given their n and the pooled rate.
    pub minimal_detectable_difference: Option<f64>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Default)]
struct ArmAcc {
    incidents: u64,
    with_contact: u64,
    /// Week start (ms) → (incidents, with a contact).
    weekly: BTreeMap<i64, (u64, u64)>,
    devices: HashSet<String>,
    sat: SatAcc,
}

/// The causal section's accumulator: per (experiment, arm).
#[derive(Debug, Default)]
pub(super) struct CausalAcc {
    arms: BTreeMap<(String, Arm), ArmAcc>,
    known: Vec<ExperimentInfo>,
}

impl CausalAcc {
    pub(super) fn experiments(&mut self, known: Vec<ExperimentInfo>) {
        self.known = known;
    }

    pub(super) fn incident(
        &mut self,
        experiment: &(String, Arm),
        agent_id: &str,
        started_ms: i64,
        contact: bool,
    ) {
        let acc = self.arms.entry(experiment.clone()).or_default();
        acc.incidents += 1;
        acc.with_contact += u64::from(contact);
        let week = acc.weekly.entry(week_start_ms(started_ms)).or_default();
        week.0 += 1;
        week.1 += u64::from(contact);
        if !acc.devices.contains(agent_id) {
            acc.devices.insert(agent_id.to_owned());
        }
    }

    pub(super) fn survey(
        &mut self,
        experiment: &(String, Arm),
        nps: Option<i64>,
        csat: Option<i64>,
    ) {
        self.arms
            .entry(experiment.clone())
            .or_default()
            .sat
            .add(nps, csat);
    }

    /// One entry per known experiment (active first, as the store lists them), then any id
    /// only the incidents know.
    pub(super) fn finish(
        mut self,
        cost_per_contact: f64,
        min_group_n: u64,
    ) -> Vec<CausalExperiment> {
        let mut ids: Vec<(String, Option<ExperimentInfo>)> = self
            .known
            .drain(..)
            .map(|k| (k.id.clone(), Some(k)))
            .collect();
        let mut recorded: Vec<String> = self.arms.keys().map(|(id, _)| id.clone()).collect();
        recorded.dedup();
        for id in recorded {
            if !ids.iter().any(|(k, _)| *k == id) {
                ids.push((id, None));
            }
        }
        ids.into_iter()
            .map(|(id, info)| {
                let treated = self
                    .arms
                    .remove(&(id.clone(), Arm::Treated))
                    .unwrap_or_default();
                let control = self
                    .arms
                    .remove(&(id.clone(), Arm::Control))
                    .unwrap_or_default();
                compare(id, info, &treated, &control, cost_per_contact, min_group_n)
            })
            .collect()
    }
}

fn arm_report(a: &ArmAcc) -> ArmReport {
    ArmReport {
        incidents: a.incidents,
        devices: a.devices.len() as u64,
        contact_rate: wilson(a.with_contact, a.incidents),
        satisfaction: a.sat.stat(),
        weekly: a
            .weekly
            .iter()
            .filter_map(|(&start, &(n, k))| {
                Some(WeekRate {
                    week_start: Timestamp::from_unix_millis(start)?,
                    incidents: n,
                    contact_rate: wilson(k, n),
                })
            })
            .collect(),
    }
}

fn compare(
    id: String,
    info: Option<ExperimentInfo>,
    t: &ArmAcc,
    c: &ArmAcc,
    cost: f64,
    min_n: u64,
) -> CausalExperiment {
    let treated = arm_report(t);
    let control = arm_report(c);
    let mut warnings = Vec::new();
    let reduction = match (&control.contact_rate, &treated.contact_rate) {
        (Some(c), Some(t)) => Some(newcombe(c, t)),
        _ => None,
    };
    for (name, arm) in [("treated", &treated), ("control", &control)] {
        if arm.incidents == 0 {
            warnings.push(format!(
                "no {name} incidents in the period: the arms cannot be compared"
            ));
        }
    }
    let pooled =
        (t.with_contact + c.with_contact) as f64 / (t.incidents + c.incidents).max(1) as f64;
    let mdd = minimal_detectable_difference(t.incidents, c.incidents, pooled);
    if let (Some(d), Some(m)) = (reduction, mdd)
        && d.estimate.abs() < m
    {
        warnings.push(format!(
            "control arm too small to tell an effect of the size seen: the observed difference \
             of {:.1} pp is below the {:.1} pp these arms detect with 80 % power at α = 0.05 \
             (n = {} treated, {} control incidents); enlarge the control share or wait for more \
             incidents",
            100.0 * d.estimate,
            100.0 * m,
            t.incidents,
            c.incidents
        ));
    }
    let enough_nps = |s: &Satisfaction| s.nps.filter(|s| s.n >= min_n);
    let enough_csat = |s: &Satisfaction| s.csat.filter(|s| s.n >= min_n);
    let nps_difference = nps_effect(
        enough_nps(&treated.satisfaction).as_ref(),
        enough_nps(&control.satisfaction).as_ref(),
    );
    let csat_difference = match (
        enough_csat(&treated.satisfaction),
        enough_csat(&control.satisfaction),
    ) {
        (Some(t), Some(c)) => Some(newcombe(&t, &c).scale(100.0)),
        _ => None,
    };
    let per_1000 = reduction.map(|d| d.scale(1000.0));
    let in_period = reduction.map(|d| d.scale(t.incidents as f64));
    CausalExperiment {
        experiment_id: id,
        design: DESIGN.to_owned(),
        scope: info.as_ref().map(|i| i.scope.clone()),
        control_permille: info.as_ref().map(|i| i.control_permille),
        started_at: info.as_ref().map(|i| i.started_at),
        ended_at: info.as_ref().and_then(|i| i.ended_at),
        contact_rate_reduction: reduction.map(|d| d.scale(100.0)),
        avoided_per_1000: per_1000,
        avoided_value_per_1000: per_1000.map(|e| e.scale(cost)),
        avoided_in_period: in_period,
        avoided_value_in_period: in_period.map(|e| e.scale(cost)),
        nps_difference,
        csat_difference,
        minimal_detectable_difference: mdd.map(|m| 100.0 * m),
        warnings,
        treated,
        control,
    }
}

/// A scope as operators read it: `playbook dns`, `check dns`, `check dns/resolv_conf_empty`.
pub fn scope_label(scope: &ExperimentScope) -> String {
    match scope {
        ExperimentScope::Playbook { name } => format!("playbook {name}"),
        ExperimentScope::Check { check, cause: None } => format!("check {check}"),
        ExperimentScope::Check {
            check,
            cause: Some(c),
        } => format!("check {check}/{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::week_start_ms;

    #[test]
    fn weeks_start_on_monday_midnight_utc() {
        // 2026-12-03T12:00Z is a Thursday; its week began 2026-11-30T00:00Z.
        assert_eq!(week_start_ms(1_796_299_200_000), 1_795_996_800_000);
        assert_eq!(week_start_ms(1_795_996_800_000), 1_795_996_800_000);
        assert_eq!(
            week_start_ms(1_795_996_799_999),
            1_795_996_800_000 - 7 * 86_400_000
        );
        // Before 1970-01-05 too (div_euclid, not truncation).
        assert_eq!(week_start_ms(0), 4 * 86_400_000 - 7 * 86_400_000);
    }
}
