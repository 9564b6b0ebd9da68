//! Linking: what a report covers, how contacts and surveys are linked to incidents (windows,
//! reason → category), and the joined rows the store streams into the aggregator.

pub use crate::config::ReasonRule;
use netmedic_proto::{Arm, Category, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a report covers and how links are made.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportParams {
    /// Incidents started, surveys answered and contacts created at or after this instant.
    pub from_ms: Option<i64>,
    /// ... and before this instant.
    pub to_ms: Option<i64>,
    pub contact_window_ms: i64,
    pub survey_window_ms: i64,
    /// Category → the reason rules that make a contact about it a strong link.
    pub reason_rules: BTreeMap<Category, Vec<ReasonRule>>,
    pub cost_per_contact_cents: u64,
    pub currency: String,
    /// Longest churn-risk list.
    pub churn_top: usize,
    /// Groups with fewer answers show "too few" and no effect.
    pub min_group_n: u64,
}

impl ReportParams {
    pub fn from_config(
        cx: &crate::config::CxConfig,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
    ) -> Self {
        Self {
            from_ms: from.map(Timestamp::unix_millis),
            to_ms: to.map(Timestamp::unix_millis),
            contact_window_ms: i64::from(cx.contact_window_hours) * 3_600_000,
            survey_window_ms: i64::from(cx.survey_window_days) * 86_400_000,
            // The config validated every rule; one that still fails to parse is left out.
            reason_rules: cx
                .reason_rules
                .iter()
                .map(|(c, rules)| {
                    let rules = rules
                        .iter()
                        .filter_map(|r| ReasonRule::parse(r).ok())
                        .collect();
                    (*c, rules)
                })
                .collect(),
            cost_per_contact_cents: cx.cost_per_contact_cents,
            currency: cx.currency.clone(),
            churn_top: cx.churn_top as usize,
            min_group_n: u64::from(cx.min_group_n),
        }
    }

    /// Bounds for SQL (far past / far future when open).
    pub fn bounds(&self) -> (i64, i64) {
        (
            self.from_ms.unwrap_or(i64::MIN / 2),
            self.to_ms.unwrap_or(i64::MAX / 2),
        )
    }

    /// Whether a contact with this reason about an incident of `category` is a strong link: the
    /// reason matches one of the category's rules.
    pub fn reason_matches(&self, reason: &str, category: Category) -> bool {
        self.reason_rules
            .get(&category)
            .is_some_and(|rules| rules.iter().any(|r| r.matches(reason)))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Resolved by the agent's own action.
    AutoHealed,
    /// Resolved without the agent's help, or an action escalated it to the NOC.
    Escalated,
    /// Still open and not escalated.
    Open,
    /// In the control arm of a holdout experiment: healing was withheld on purpose, so the
    /// incident is neither healed nor escalated and stays out of the observational comparison
    /// (the experiment's causal section counts it).
    HeldOut,
}

impl Outcome {
    /// [`Outcome::of`], except that an incident in a holdout's control arm is [`Outcome::HeldOut`].
    pub fn classify(auto_healed: Option<bool>, escalated_actions: i64, arm: Option<Arm>) -> Self {
        if arm == Some(Arm::Control) {
            Self::HeldOut
        } else {
            Self::of(auto_healed, escalated_actions)
        }
    }

    pub fn of(auto_healed: Option<bool>, escalated_actions: i64) -> Self {
        match (auto_healed, escalated_actions > 0) {
            (_, true) | (Some(false), _) => Self::Escalated,
            (Some(true), false) => Self::AutoHealed,
            (None, false) => Self::Open,
        }
    }
}

/// The subscriber attributes a breakdown groups by.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dims {
    pub region: Option<String>,
    pub access_node: Option<String>,
    pub cpe_model: Option<String>,
    pub firmware: Option<String>,
}

impl Dims {
    pub(super) fn values(&self) -> [(usize, &Option<String>); 4] {
        [
            (0, &self.region),
            (1, &self.access_node),
            (2, &self.cpe_model),
            (3, &self.firmware),
        ]
    }
}

/// The breakdown dimensions (also the `subscribers` columns).
pub const DIMENSIONS: [&str; 4] = ["region", "access_node", "cpe_model", "firmware"];

/// Label of subscribers/incidents without a value for a dimension.
pub const UNKNOWN: &str = "(unknown)";

/// One incident joined with one linked contact (or none): the store sends every incident in the
/// window, ordered by (agent, incident), one row per linked contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentRow {
    pub agent_id: String,
    pub incident_id: String,
    pub category: Category,
    pub auto_healed: Option<bool>,
    pub escalated_actions: i64,
    pub customer_id: Option<String>,
    pub dims: Dims,
    /// A linked contact's reason (`Some("")` for a contact without a reason).
    pub contact_reason: Option<String>,
    /// The holdout experiment that covered the incident and the device's arm in it.
    pub experiment: Option<(String, Arm)>,
    /// When the incident started (Unix milliseconds): the causal section's weekly series.
    pub started_ms: i64,
}

/// One survey joined with one linked incident (or none), ordered by survey id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurveyRow {
    pub survey_id: String,
    pub customer_id: String,
    pub nps: Option<i64>,
    pub csat: Option<i64>,
    pub dims: Dims,
    /// The linked incident's category and outcome.
    pub incident: Option<(Category, Outcome)>,
    /// The linked incident's experiment and arm, when one covered it.
    pub experiment: Option<(String, Arm)>,
}
