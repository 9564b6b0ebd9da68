//! Customer-experience analytics (see docs/design.md, "Customer-experience model"): NPS and CSAT
//! of customers with incidents against
//! those without (by category, auto-healed vs escalated), each with a 95 % confidence interval
//! and its sample size; contact rate per incident category; contacts avoided by self-healing and
//! their value; customers at churn risk; breakdowns by region, access node, CPE model and
//! firmware; network events.
//!
//! **Linking** is computed from the database at report time, never materialised, so it is always
//! up to date with late data (a survey imported after the incident, a subscriber mapping that
//! changed, an incident that arrived after the contacts) and every collector process sharing a
//! database computes the same links:
//! - an incident belongs to the customer behind its device (`subscribers`, as imported now);
//! - a contact of that customer created in `[started_at, started_at + contact window)` is linked
//!   to the incident; the link is *strong* when the contact's reason maps (configurable) to the
//!   incident's category, else *weak*;
//! - a survey of that customer answered in `(answered_at − survey window, answered_at]` of the
//!   incident's start is linked (the survey came at most the window after the incident).
//!
//! The store streams rows ([`IncidentRow`], [`SurveyRow`]) into the accumulators here, so the
//! report of millions of rows needs memory only per group and per repeat-incident customer.
//!
//! One file per concern: `linking` (report parameters and the joined rows the store streams),
//! `statistics` (Wilson and NPS intervals, effects, Newcombe's interval, power), `aggregate`
//! (the accumulators), `causal` (the holdout experiments' comparison),
//! `report` (the report's shape) and `render` (the text form).

mod aggregate;
mod causal;
mod linking;
mod render;
mod report;
mod statistics;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

pub use aggregate::Aggregator;
pub use causal::{DESIGN, ExperimentInfo, OBSERVATIONAL_ASSUMPTION, WeekRate, scope_label};
pub use linking::{
    DIMENSIONS, Dims, IncidentRow, Outcome, ReasonRule, ReportParams, SurveyRow, UNKNOWN,
};
pub use render::{causal_text, render};
pub use report::{
    ArmReport, Breakdown, CategoryContacts, CausalExperiment, ChurnRisk, ContactReport,
    NetworkEventView, Report, SatGroup, SatisfactionReport,
};
pub use statistics::{
    Effect, NpsAcc, NpsStat, Proportion, SatAcc, Satisfaction, minimal_detectable_difference,
    newcombe, nps_effect, prop_effect, wilson,
};
