//! The Experience page's causal section: per holdout experiment, treated vs control arm, as
//! display strings (the report's `causal` entries).

use super::common::effect_text;
use crate::analytics::{ArmReport, CausalExperiment, NpsStat, Proportion, Report, scope_label};
use crate::web::visible;

#[derive(Debug)]
pub(super) struct ArmRow {
    pub arm: &'static str,
    pub incidents: u64,
    pub devices: u64,
    pub contact_rate: String,
    pub nps: String,
    pub csat: String,
}

#[derive(Debug)]
pub(super) struct CausalView {
    pub id: String,
    pub scope: String,
    pub control: String,
    pub design: String,
    pub arms: Vec<ArmRow>,
    pub reduction: String,
    pub per_1000: String,
    pub value_per_1000: String,
    pub in_period: String,
    pub nps_difference: String,
    pub csat_difference: String,
    pub mdd: String,
    pub warnings: Vec<String>,
    /// Per arm, contact rate and satisfaction with intervals, as inline SVG (`web::chart`).
    pub svg: String,
}

fn prop(p: &Option<Proportion>, min_n: u64) -> String {
    match p {
        None => "—".into(),
        Some(p) if p.n < min_n => format!("too few (n={})", p.n),
        Some(p) => format!(
            "{:.1} % [{:.1}, {:.1}] of {}",
            100.0 * p.rate,
            100.0 * p.ci_low,
            100.0 * p.ci_high,
            p.n
        ),
    }
}

fn nps(s: &Option<NpsStat>, min_n: u64) -> String {
    match s {
        None => "—".into(),
        Some(s) if s.n < min_n => format!("too few (n={})", s.n),
        Some(s) => format!(
            "{:+.1} [{:+.1}, {:+.1}] n={}",
            s.nps, s.ci_low, s.ci_high, s.n
        ),
    }
}

fn arm_row(arm: &'static str, a: &ArmReport, min_n: u64) -> ArmRow {
    ArmRow {
        arm,
        incidents: a.incidents,
        devices: a.devices,
        contact_rate: prop(&a.contact_rate, 0),
        nps: nps(&a.satisfaction.nps, min_n),
        csat: prop(&a.satisfaction.csat, min_n),
    }
}

fn view(x: &CausalExperiment, r: &Report) -> CausalView {
    let money = format!(" {}", r.contacts.currency);
    CausalView {
        id: visible(&x.experiment_id),
        scope: x.scope.as_ref().map_or_else(
            || "(unknown to this collector)".into(),
            |s| visible(&scope_label(s)),
        ),
        control: x
            .control_permille
            .map_or_else(|| "—".into(), |m| format!("{:.1} %", f64::from(m) / 10.0)),
        design: x.design.clone(),
        arms: vec![
            arm_row("treated", &x.treated, r.min_group_n),
            arm_row("control", &x.control, r.min_group_n),
        ],
        reduction: effect_text(x.contact_rate_reduction.as_ref(), " pp"),
        per_1000: effect_text(x.avoided_per_1000.as_ref(), ""),
        value_per_1000: effect_text(x.avoided_value_per_1000.as_ref(), &money),
        in_period: format!(
            "{} (worth {}) over {} treated incidents",
            effect_text(x.avoided_in_period.as_ref(), ""),
            effect_text(x.avoided_value_in_period.as_ref(), &money),
            x.treated.incidents
        ),
        nps_difference: effect_text(x.nps_difference.as_ref(), ""),
        csat_difference: effect_text(x.csat_difference.as_ref(), " pp"),
        mdd: x
            .minimal_detectable_difference
            .map_or_else(|| "—".into(), |m| format!("{m:.1} pp")),
        warnings: x.warnings.clone(),
        svg: crate::web::chart::arms(&x.experiment_id, &x.treated, &x.control, r.min_group_n),
    }
}

pub(super) fn causal_views(r: &Report) -> Vec<CausalView> {
    r.causal.iter().map(|x| view(x, r)).collect()
}
