//! The report's shape (`GET /api/v1/report`, `netmedic-collector report --json`).

pub use super::causal::{ArmReport, CausalExperiment};
use super::statistics::{Effect, Proportion, Satisfaction};
use netmedic_proto::{Category, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The report (`GET /api/v1/report`, `netmedic-collector report --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    pub contact_window_hours: i64,
    pub survey_window_days: i64,
    /// Incidents started in the window.
    pub incidents: u64,
    pub customers_with_incidents: u64,
    /// Surveys answered in the window.
    pub surveys: u64,
    /// Groups with fewer answers than this show "too few" and have no effect.
    pub min_group_n: u64,
    pub satisfaction: SatisfactionReport,
    pub contacts: ContactReport,
    /// Customers meeting the churn-risk rule (the list holds the top ones).
    pub churn_candidates: u64,
    pub churn_risk: Vec<ChurnRisk>,
    /// `region`, `access_node`, `cpe_model`, `firmware` → rows.
    pub breakdowns: BTreeMap<String, Vec<Breakdown>>,
    /// Network events that started in the window.
    pub network_events: Vec<NetworkEventView>,
    /// Per holdout experiment, the randomized comparison of its arms (see `causal.rs`).
    #[serde(default)]
    pub causal: Vec<CausalExperiment>,
}

/// Survey answers grouped by the incidents linked to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SatisfactionReport {
    /// Answers with no incident linked: the baseline.
    pub without_incident: Satisfaction,
    pub with_incident: SatGroup,
    /// Answers linked to an incident of each category (an answer may count in several).
    pub by_category: Vec<SatGroup>,
    /// The same per category and outcome ("dns_failure auto_healed"): a fleet where some
    /// categories are never healed skews the pooled auto-healed vs escalated comparison.
    pub by_category_outcome: Vec<SatGroup>,
    pub auto_healed: SatGroup,
    pub escalated: SatGroup,
}

/// A group of answers and its difference to the baseline (NPS points; CSAT percentage points).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SatGroup {
    pub group: String,
    pub satisfaction: Satisfaction,
    pub nps_effect: Option<Effect>,
    pub csat_effect: Option<Effect>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryContacts {
    pub category: Category,
    pub incidents: u64,
    /// Share of incidents followed by at least one linked contact.
    pub contact_rate: Option<Proportion>,
    /// Difference to the baseline contact rate, in percentage points.
    pub vs_baseline: Option<Effect>,
    /// Incidents with a linked contact whose reason matches one of the category's reason
    /// rules (`[experience.reason_rules]`).
    pub strong_links: u64,
    /// Contact rate of the category's auto-healed incidents ...
    pub auto_healed: Option<Proportion>,
    /// ... and of its escalated ones.
    pub escalated: Option<Proportion>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactReport {
    /// Customers without incidents in the report's period: the share of their
    /// contact-window-long periods (customer × consecutive window of `contact_window_hours`
    /// from the report's start) with at least one contact — the reference of every contact
    /// rate.
    pub baseline: Option<Proportion>,
    pub by_category: Vec<CategoryContacts>,
    pub auto_healed: Option<Proportion>,
    pub escalated: Option<Proportion>,
    pub escalated_to_auto_ratio: Option<f64>,
    /// Contacts avoided by self-healing: (escalated rate − auto-healed rate) × auto-healed
    /// incidents. Observational: see `assumption`.
    pub avoided: Option<Effect>,
    /// `avoided` × cost per contact.
    pub avoided_value: Option<Effect>,
    pub cost_per_contact: f64,
    pub currency: String,
    /// What `avoided` rests on (it compares different faults, not randomized arms).
    #[serde(default)]
    pub assumption: String,
}

/// A customer with repeat incidents plus a detractor answer or repeat contacts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChurnRisk {
    pub customer_id: String,
    pub incidents: u64,
    pub contacts: u64,
    pub detractor: bool,
    pub lowest_nps: Option<i64>,
    /// incidents + contacts + 3 for a detractor answer; the list is ranked by it.
    pub score: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Breakdown {
    pub value: String,
    pub subscribers: u64,
    pub incidents: u64,
    pub incidents_per_100_subscribers: Option<f64>,
    /// Share of resolved incidents the agent healed.
    pub auto_healed: Option<Proportion>,
    pub contact_rate: Option<Proportion>,
    pub satisfaction: Satisfaction,
}

/// A mass outage (`GET /api/v1/network-events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEventView {
    pub event_id: String,
    pub access_node: String,
    pub started_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
    /// While unresolved: how long the advisory sent to the node's agents is valid.
    pub advisory_until: Timestamp,
    pub devices: u64,
    pub incidents: u64,
    /// (agent_id, incident_id) of the members (when asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<(String, String)>,
}
