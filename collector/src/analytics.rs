//! Customer-experience analytics (DESIGN §4): NPS and CSAT of customers with incidents against
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

use netmedic_proto::{Category, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// z of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// What a report covers and how links are made.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportParams {
    /// Incidents started, surveys answered and contacts created at or after this instant.
    pub from_ms: Option<i64>,
    /// ... and before this instant.
    pub to_ms: Option<i64>,
    pub contact_window_ms: i64,
    pub survey_window_ms: i64,
    /// Contact reason (lower case) → the incident category it speaks about.
    pub reason_categories: BTreeMap<String, Category>,
    pub cost_per_contact_cents: u64,
    pub currency: String,
    /// Longest churn-risk list.
    pub churn_top: usize,
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
            reason_categories: cx.reason_categories.clone(),
            cost_per_contact_cents: cx.cost_per_contact_cents,
            currency: cx.currency.clone(),
            churn_top: cx.churn_top as usize,
        }
    }

    /// Bounds for SQL (far past / far future when open).
    pub fn bounds(&self) -> (i64, i64) {
        (
            self.from_ms.unwrap_or(i64::MIN / 2),
            self.to_ms.unwrap_or(i64::MAX / 2),
        )
    }

    pub fn category_of_reason(&self, reason: &str) -> Option<Category> {
        self.reason_categories
            .get(&reason.trim().to_ascii_lowercase())
            .copied()
    }
}

// ---- statistics -------------------------------------------------------------------------------

/// A proportion `k/n` with its Wilson 95 % interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    pub n: u64,
    pub k: u64,
    pub rate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

/// Wilson score interval (good at small n and rates near 0 or 1).
pub fn wilson(k: u64, n: u64) -> Option<Proportion> {
    if n == 0 {
        return None;
    }
    let nf = n as f64;
    let p = k as f64 / nf;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = Z95 * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(Proportion {
        n,
        k,
        rate: p,
        ci_low: (centre - half).max(0.0),
        ci_high: (centre + half).min(1.0),
    })
}

/// Net Promoter Score (−100..=100) of `n` answers with its 95 % interval: NPS/100 is the mean of
/// a score of +1 (promoter, 9–10), 0 (passive, 7–8), −1 (detractor, 0–6), whose variance is
/// `p + d − (p − d)²`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NpsStat {
    pub n: u64,
    pub promoters: u64,
    pub detractors: u64,
    pub nps: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Standard error, in NPS points.
    pub se: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NpsAcc {
    pub promoters: u64,
    pub passives: u64,
    pub detractors: u64,
}

impl NpsAcc {
    pub fn add(&mut self, score: i64) {
        match score {
            9.. => self.promoters += 1,
            7..=8 => self.passives += 1,
            _ => self.detractors += 1,
        }
    }

    pub fn stat(&self) -> Option<NpsStat> {
        let n = self.promoters + self.passives + self.detractors;
        if n == 0 {
            return None;
        }
        let nf = n as f64;
        let p = self.promoters as f64 / nf;
        let d = self.detractors as f64 / nf;
        let mean = p - d;
        let var = (p + d - mean * mean).max(0.0);
        let se = 100.0 * (var / nf).sqrt();
        Some(NpsStat {
            n,
            promoters: self.promoters,
            detractors: self.detractors,
            nps: 100.0 * mean,
            ci_low: 100.0 * mean - Z95 * se,
            ci_high: 100.0 * mean + Z95 * se,
            se,
        })
    }
}

/// A difference between two groups (`a − b`) with its 95 % interval (normal approximation of
/// two independent samples).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Effect {
    pub estimate: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}

impl Effect {
    fn new(estimate: f64, se: f64) -> Self {
        Self {
            estimate,
            ci_low: estimate - Z95 * se,
            ci_high: estimate + Z95 * se,
        }
    }

    /// True when the interval excludes zero.
    pub fn significant(&self) -> bool {
        self.ci_low > 0.0 || self.ci_high < 0.0
    }

    pub fn covers(&self, x: f64) -> bool {
        self.ci_low <= x && x <= self.ci_high
    }

    fn scale(self, f: f64) -> Self {
        let (a, b) = (self.ci_low * f, self.ci_high * f);
        Self {
            estimate: self.estimate * f,
            ci_low: a.min(b),
            ci_high: a.max(b),
        }
    }
}

pub fn nps_effect(a: Option<&NpsStat>, b: Option<&NpsStat>) -> Option<Effect> {
    let (a, b) = (a?, b?);
    Some(Effect::new(
        a.nps - b.nps,
        (a.se * a.se + b.se * b.se).sqrt(),
    ))
}

/// Difference of two proportions, in rate units (0..1).
pub fn prop_effect(a: Option<&Proportion>, b: Option<&Proportion>) -> Option<Effect> {
    let (a, b) = (a?, b?);
    let var = |p: &Proportion| p.rate * (1.0 - p.rate) / p.n as f64;
    Some(Effect::new(a.rate - b.rate, (var(a) + var(b)).sqrt()))
}

// ---- accumulators -----------------------------------------------------------------------------

/// NPS and CSAT of a group of survey answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SatAcc {
    pub nps: NpsAcc,
    pub csat_n: u64,
    pub csat_satisfied: u64,
}

impl SatAcc {
    fn add(&mut self, nps: Option<i64>, csat: Option<i64>) {
        if let Some(s) = nps {
            self.nps.add(s);
        }
        if let Some(c) = csat {
            self.csat_n += 1;
            if c >= 4 {
                self.csat_satisfied += 1;
            }
        }
    }

    pub fn stat(&self) -> Satisfaction {
        Satisfaction {
            nps: self.nps.stat(),
            csat: wilson(self.csat_satisfied, self.csat_n),
        }
    }
}

/// NPS (answers 0–10) and CSAT (% of answers 4–5).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Satisfaction {
    pub nps: Option<NpsStat>,
    pub csat: Option<Proportion>,
}

/// How an incident ended, for "auto-healed vs escalated".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Resolved by the agent's own action.
    AutoHealed,
    /// Resolved without the agent's help, or an action escalated it to the NOC.
    Escalated,
    /// Still open and not escalated.
    Open,
}

impl Outcome {
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
    fn values(&self) -> [(usize, &Option<String>); 4] {
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
}

#[derive(Debug, Default)]
struct ContactAcc {
    incidents: u64,
    with_contact: u64,
    strong: u64,
}

#[derive(Debug, Default)]
struct DimAcc {
    incidents: u64,
    auto_healed: u64,
    resolved: u64,
    with_contact: u64,
    sat: SatAcc,
}

type OpenSurvey = (SurveyRow, HashSet<Category>, HashSet<Outcome>);

/// Streams rows in; [`Aggregator::finish`] builds the report.
#[derive(Debug)]
pub struct Aggregator {
    params: ReportParams,
    current: Option<(IncidentRow, bool, bool)>,
    incidents: u64,
    by_category: BTreeMap<Category, ContactAcc>,
    by_outcome: BTreeMap<Outcome, ContactAcc>,
    per_customer: HashMap<String, u64>,
    dims: [BTreeMap<String, DimAcc>; 4],
    survey: Option<OpenSurvey>,
    surveys: u64,
    without: SatAcc,
    with: SatAcc,
    sat_by_category: BTreeMap<Category, SatAcc>,
    sat_by_outcome: BTreeMap<Outcome, SatAcc>,
    /// Churn candidates (≥ 2 incidents) → (lowest NPS, detractor answers).
    candidates: HashMap<String, (Option<i64>, u64)>,
    contacts_of: HashMap<String, u64>,
}

impl Aggregator {
    pub fn new(params: ReportParams) -> Self {
        Self {
            params,
            current: None,
            incidents: 0,
            by_category: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            per_customer: HashMap::new(),
            dims: Default::default(),
            survey: None,
            surveys: 0,
            without: SatAcc::default(),
            with: SatAcc::default(),
            sat_by_category: BTreeMap::new(),
            sat_by_outcome: BTreeMap::new(),
            candidates: HashMap::new(),
            contacts_of: HashMap::new(),
        }
    }

    /// Feeds the incident rows (ordered by agent, incident).
    pub fn incident(&mut self, row: IncidentRow) {
        let same = self.current.as_ref().is_some_and(|(c, _, _)| {
            c.agent_id == row.agent_id && c.incident_id == row.incident_id
        });
        if !same {
            self.close_incident();
        }
        let (contact, strong) = match &row.contact_reason {
            None => (false, false),
            Some(r) => (
                true,
                self.params.category_of_reason(r) == Some(row.category),
            ),
        };
        match &mut self.current {
            Some((_, c, s)) if same => {
                *c |= contact;
                *s |= strong;
            }
            _ => self.current = Some((row, contact, strong)),
        }
    }

    fn close_incident(&mut self) {
        let Some((row, contact, strong)) = self.current.take() else {
            return;
        };
        self.incidents += 1;
        let outcome = Outcome::of(row.auto_healed, row.escalated_actions);
        for acc in [
            self.by_category.entry(row.category).or_default(),
            self.by_outcome.entry(outcome).or_default(),
        ] {
            acc.incidents += 1;
            acc.with_contact += u64::from(contact);
            acc.strong += u64::from(strong);
        }
        if let Some(c) = row.customer_id {
            *self.per_customer.entry(c).or_default() += 1;
        }
        for (i, v) in row.dims.values() {
            let acc = self.dims[i]
                .entry(v.clone().unwrap_or_else(|| UNKNOWN.into()))
                .or_default();
            acc.incidents += 1;
            acc.with_contact += u64::from(contact);
            if outcome != Outcome::Open {
                acc.resolved += 1;
            }
            if outcome == Outcome::AutoHealed {
                acc.auto_healed += 1;
            }
        }
    }

    /// Call between the incident rows and the survey rows: fixes the churn candidates.
    pub fn incidents_done(&mut self) {
        self.close_incident();
        for (c, n) in &self.per_customer {
            if *n >= 2 {
                self.candidates.insert(c.clone(), (None, 0));
            }
        }
    }

    /// Feeds the survey rows (ordered by survey id).
    pub fn survey(&mut self, row: SurveyRow) {
        let same = self
            .survey
            .as_ref()
            .is_some_and(|(s, _, _)| s.survey_id == row.survey_id);
        if !same {
            self.close_survey();
        }
        let link = row.incident;
        if !same {
            self.survey = Some((row, HashSet::new(), HashSet::new()));
        }
        if let (Some((_, cats, outs)), Some((c, o))) = (&mut self.survey, link) {
            cats.insert(c);
            outs.insert(o);
        }
    }

    fn close_survey(&mut self) {
        let Some((row, cats, outs)) = self.survey.take() else {
            return;
        };
        self.surveys += 1;
        if cats.is_empty() {
            self.without.add(row.nps, row.csat);
        } else {
            self.with.add(row.nps, row.csat);
        }
        for c in cats {
            self.sat_by_category
                .entry(c)
                .or_default()
                .add(row.nps, row.csat);
        }
        for o in outs {
            self.sat_by_outcome
                .entry(o)
                .or_default()
                .add(row.nps, row.csat);
        }
        for (i, v) in row.dims.values() {
            if let Some(v) = v {
                self.dims[i]
                    .entry(v.clone())
                    .or_default()
                    .sat
                    .add(row.nps, row.csat);
            }
        }
        if let Some(c) = self.candidates.get_mut(&row.customer_id)
            && let Some(n) = row.nps
        {
            c.0 = Some(c.0.map_or(n, |m| m.min(n)));
            if n <= 6 {
                c.1 += 1;
            }
        }
    }

    /// Whether contacts of this customer matter for the churn list.
    pub fn is_candidate(&self, customer_id: &str) -> bool {
        self.candidates.contains_key(customer_id)
    }

    /// Contacts created in the window, per customer (only candidates are kept).
    pub fn contacts(&mut self, customer_id: &str, count: u64) {
        if self.candidates.contains_key(customer_id) {
            self.contacts_of.insert(customer_id.to_owned(), count);
        }
    }

    pub fn finish(
        mut self,
        subscribers: [Vec<(String, u64)>; 4],
        network_events: Vec<NetworkEventView>,
    ) -> Report {
        self.close_incident();
        self.close_survey();
        let p = &self.params;
        let without = self.without.stat();
        let group = |name: String, acc: &SatAcc| {
            let s = acc.stat();
            SatGroup {
                nps_effect: nps_effect(s.nps.as_ref(), without.nps.as_ref()),
                csat_effect: prop_effect(s.csat.as_ref(), without.csat.as_ref())
                    .map(|e| e.scale(100.0)),
                group: name,
                satisfaction: s,
            }
        };
        let outcome_group = |o: Outcome, name: &str| {
            group(
                name.to_owned(),
                self.sat_by_outcome.get(&o).unwrap_or(&SatAcc::default()),
            )
        };
        let satisfaction = SatisfactionReport {
            without_incident: without,
            with_incident: group("with_incident".into(), &self.with),
            by_category: self
                .sat_by_category
                .iter()
                .map(|(c, a)| group(c.as_str().to_owned(), a))
                .collect(),
            auto_healed: outcome_group(Outcome::AutoHealed, "auto_healed"),
            escalated: outcome_group(Outcome::Escalated, "escalated"),
        };
        let rate = |a: Option<&ContactAcc>| a.and_then(|a| wilson(a.with_contact, a.incidents));
        let auto = rate(self.by_outcome.get(&Outcome::AutoHealed));
        let esc = rate(self.by_outcome.get(&Outcome::Escalated));
        let n_auto = auto.map_or(0, |a| a.n);
        let avoided = prop_effect(esc.as_ref(), auto.as_ref()).map(|e| e.scale(n_auto as f64));
        let contacts = ContactReport {
            by_category: self
                .by_category
                .iter()
                .map(|(c, a)| CategoryContacts {
                    category: *c,
                    incidents: a.incidents,
                    contact_rate: wilson(a.with_contact, a.incidents),
                    strong_links: a.strong,
                })
                .collect(),
            auto_healed: auto,
            escalated: esc,
            escalated_to_auto_ratio: match (esc, auto) {
                (Some(e), Some(a)) if a.rate > 0.0 => Some(e.rate / a.rate),
                _ => None,
            },
            avoided,
            avoided_value: avoided.map(|e| e.scale(p.cost_per_contact_cents as f64 / 100.0)),
            cost_per_contact: p.cost_per_contact_cents as f64 / 100.0,
            currency: p.currency.clone(),
        };
        let mut churn: Vec<ChurnRisk> = self
            .candidates
            .iter()
            .filter_map(|(c, (lowest, detractor_answers))| {
                let incidents = self.per_customer.get(c).copied().unwrap_or(0);
                let contacts = self.contacts_of.get(c).copied().unwrap_or(0);
                let detractor = *detractor_answers > 0;
                (incidents >= 2 && (detractor || contacts >= 2)).then(|| ChurnRisk {
                    customer_id: c.clone(),
                    incidents,
                    contacts,
                    detractor,
                    lowest_nps: *lowest,
                    score: incidents + contacts + if detractor { 3 } else { 0 },
                })
            })
            .collect();
        churn.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then(b.incidents.cmp(&a.incidents))
                .then(a.customer_id.cmp(&b.customer_id))
        });
        let churn_candidates = churn.len() as u64;
        churn.truncate(p.churn_top);
        let mut breakdowns = BTreeMap::new();
        for (i, subs) in subscribers.into_iter().enumerate() {
            let subs: BTreeMap<String, u64> = subs.into_iter().collect();
            let mut keys: Vec<&String> = self.dims[i].keys().chain(subs.keys()).collect();
            keys.sort();
            keys.dedup();
            let empty = DimAcc::default();
            let rows: Vec<Breakdown> = keys
                .into_iter()
                .map(|k| {
                    let a = self.dims[i].get(k).unwrap_or(&empty);
                    let n_subs = subs.get(k).copied().unwrap_or(0);
                    Breakdown {
                        value: k.clone(),
                        subscribers: n_subs,
                        incidents: a.incidents,
                        incidents_per_100_subscribers: (n_subs > 0)
                            .then(|| 100.0 * a.incidents as f64 / n_subs as f64),
                        auto_healed: wilson(a.auto_healed, a.resolved),
                        contact_rate: wilson(a.with_contact, a.incidents),
                        satisfaction: a.sat.stat(),
                    }
                })
                .collect();
            breakdowns.insert(DIMENSIONS[i].to_owned(), rows);
        }
        Report {
            from: p.from_ms.and_then(Timestamp::from_unix_millis),
            to: p.to_ms.and_then(Timestamp::from_unix_millis),
            contact_window_hours: p.contact_window_ms / 3_600_000,
            survey_window_days: p.survey_window_ms / 86_400_000,
            incidents: self.incidents,
            customers_with_incidents: self.per_customer.len() as u64,
            surveys: self.surveys,
            satisfaction,
            contacts,
            churn_candidates,
            churn_risk: churn,
            breakdowns,
            network_events,
        }
    }
}

// ---- the report -------------------------------------------------------------------------------

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
    pub satisfaction: SatisfactionReport,
    pub contacts: ContactReport,
    /// Customers meeting the churn-risk rule (the list holds the top ones).
    pub churn_candidates: u64,
    pub churn_risk: Vec<ChurnRisk>,
    /// `region`, `access_node`, `cpe_model`, `firmware` → rows.
    pub breakdowns: BTreeMap<String, Vec<Breakdown>>,
    /// Network events that started in the window.
    pub network_events: Vec<NetworkEventView>,
}

/// Survey answers grouped by the incidents linked to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SatisfactionReport {
    /// Answers with no incident linked: the baseline.
    pub without_incident: Satisfaction,
    pub with_incident: SatGroup,
    /// Answers linked to an incident of each category (an answer may count in several).
    pub by_category: Vec<SatGroup>,
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
    /// Incidents with a linked contact whose reason matches the category.
    pub strong_links: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactReport {
    pub by_category: Vec<CategoryContacts>,
    pub auto_healed: Option<Proportion>,
    pub escalated: Option<Proportion>,
    pub escalated_to_auto_ratio: Option<f64>,
    /// Contacts avoided by self-healing: (escalated rate − auto-healed rate) × auto-healed
    /// incidents.
    pub avoided: Option<Effect>,
    /// `avoided` × cost per contact.
    pub avoided_value: Option<Effect>,
    pub cost_per_contact: f64,
    pub currency: String,
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

// ---- rendering --------------------------------------------------------------------------------

fn fmt_nps(s: &Option<NpsStat>) -> String {
    match s {
        None => "-".into(),
        Some(s) => format!(
            "{:+.1} [{:+.1}, {:+.1}] n={}",
            s.nps, s.ci_low, s.ci_high, s.n
        ),
    }
}

fn fmt_prop(p: &Option<Proportion>) -> String {
    match p {
        None => "-".into(),
        Some(p) => format!(
            "{:.1}% [{:.1}, {:.1}] n={}",
            100.0 * p.rate,
            100.0 * p.ci_low,
            100.0 * p.ci_high,
            p.n
        ),
    }
}

fn fmt_effect(e: &Option<Effect>, unit: &str) -> String {
    match e {
        None => "-".into(),
        Some(e) => format!(
            "{:+.1}{unit} [{:+.1}, {:+.1}]{}",
            e.estimate,
            e.ci_low,
            e.ci_high,
            if e.significant() { " *" } else { "" }
        ),
    }
}

/// Aligned columns; cells are sanitised (ids come from imported files).
fn table(out: &mut String, header: &[&str], rows: Vec<Vec<String>>) {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let w = width.get(i).copied().unwrap_or(0);
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r);
    }
}

/// The report as readable text (tables).
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let t = |t: &Option<Timestamp>| t.map_or("-".to_owned(), |t| t.to_string());
    out.push_str(&format!(
        "Customer-experience report  from {}  to {}\n{} incidents ({} customers), {} surveys; \
         contacts linked within {} h, surveys within {} days of an incident's start.\n\
         Intervals are 95 %; * marks a difference whose interval excludes 0.\n\n",
        t(&r.from),
        t(&r.to),
        r.incidents,
        r.customers_with_incidents,
        r.surveys,
        r.contact_window_hours,
        r.survey_window_days
    ));
    out.push_str("SATISFACTION (NPS points; CSAT % of 4-5 answers)\n");
    let s = &r.satisfaction;
    let mut rows = vec![vec![
        "without incident".to_owned(),
        fmt_nps(&s.without_incident.nps),
        "(baseline)".into(),
        fmt_prop(&s.without_incident.csat),
        "(baseline)".into(),
    ]];
    let g = |g: &SatGroup| {
        vec![
            g.group.clone(),
            fmt_nps(&g.satisfaction.nps),
            fmt_effect(&g.nps_effect, ""),
            fmt_prop(&g.satisfaction.csat),
            fmt_effect(&g.csat_effect, " pp"),
        ]
    };
    rows.push(g(&s.with_incident));
    rows.push(g(&s.auto_healed));
    rows.push(g(&s.escalated));
    rows.extend(s.by_category.iter().map(g));
    table(
        &mut out,
        &["GROUP", "NPS", "VS BASELINE", "CSAT", "VS BASELINE"],
        rows,
    );
    out.push_str("\nCONTACTS (share of incidents followed by a contact)\n");
    let c = &r.contacts;
    let mut rows: Vec<Vec<String>> = c
        .by_category
        .iter()
        .map(|x| {
            vec![
                x.category.as_str().to_owned(),
                x.incidents.to_string(),
                fmt_prop(&x.contact_rate),
                x.strong_links.to_string(),
            ]
        })
        .collect();
    for (name, p) in [("auto_healed", &c.auto_healed), ("escalated", &c.escalated)] {
        rows.push(vec![
            format!("({name})"),
            p.map_or(0, |p| p.n).to_string(),
            fmt_prop(p),
            String::new(),
        ]);
    }
    table(
        &mut out,
        &["CATEGORY", "INCIDENTS", "CONTACT RATE", "STRONG"],
        rows,
    );
    out.push_str(&format!(
        "contacts avoided by self-healing: {}; worth {} {} at {:.2} {} per contact\n",
        fmt_effect(&c.avoided, ""),
        fmt_effect(&c.avoided_value, ""),
        c.currency,
        c.cost_per_contact,
        c.currency
    ));
    if let Some(ratio) = c.escalated_to_auto_ratio {
        out.push_str(&format!(
            "escalated incidents are followed by a contact {ratio:.2}x as often as auto-healed ones\n"
        ));
    }
    out.push_str(&format!(
        "\nCHURN RISK ({} customers: repeat incidents plus a detractor answer or repeat contacts)\n",
        r.churn_candidates
    ));
    table(
        &mut out,
        &["CUSTOMER", "INCIDENTS", "CONTACTS", "LOWEST NPS", "SCORE"],
        r.churn_risk
            .iter()
            .map(|x| {
                vec![
                    x.customer_id.clone(),
                    x.incidents.to_string(),
                    x.contacts.to_string(),
                    x.lowest_nps.map_or("-".into(), |n| n.to_string()),
                    x.score.to_string(),
                ]
            })
            .collect(),
    );
    for (dim, rows) in &r.breakdowns {
        out.push_str(&format!("\nBY {}\n", dim.to_ascii_uppercase()));
        table(
            &mut out,
            &[
                "VALUE",
                "SUBS",
                "INCIDENTS",
                "PER 100",
                "AUTO-HEALED",
                "CONTACT RATE",
                "NPS",
            ],
            rows.iter()
                .map(|b| {
                    vec![
                        b.value.clone(),
                        b.subscribers.to_string(),
                        b.incidents.to_string(),
                        b.incidents_per_100_subscribers
                            .map_or("-".into(), |x| format!("{x:.1}")),
                        fmt_prop(&b.auto_healed),
                        fmt_prop(&b.contact_rate),
                        fmt_nps(&b.satisfaction.nps),
                    ]
                })
                .collect(),
        );
    }
    out.push_str(&format!("\nNETWORK EVENTS ({})\n", r.network_events.len()));
    table(
        &mut out,
        &[
            "EVENT",
            "ACCESS NODE",
            "STARTED",
            "RESOLVED",
            "DEVICES",
            "INCIDENTS",
        ],
        r.network_events
            .iter()
            .map(|e| {
                vec![
                    e.event_id.clone(),
                    e.access_node.clone(),
                    e.started_at.to_string(),
                    e.resolved_at.map_or("(ongoing)".into(), |t| t.to_string()),
                    e.devices.to_string(),
                    e.incidents.to_string(),
                ]
            })
            .collect(),
    );
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wilson_and_nps_intervals() {
        let p = wilson(50, 100).unwrap();
        assert!(
            (p.ci_low - 0.404).abs() < 0.002 && (p.ci_high - 0.596).abs() < 0.002,
            "{p:?}"
        );
        let p = wilson(0, 10).unwrap();
        assert_eq!(p.ci_low, 0.0);
        assert!(p.ci_high > 0.25 && p.ci_high < 0.32);
        assert!(wilson(0, 0).is_none());
        let mut acc = NpsAcc::default();
        for s in [10, 9, 8, 7, 6, 0] {
            acc.add(s);
        }
        let s = acc.stat().unwrap();
        assert_eq!(s.n, 6);
        assert!((s.nps - 0.0).abs() < 1e-9);
        // var = p + d − 0 = 2/3; se = 100 · sqrt(2/3/6) = 33.3
        assert!((s.se - 33.333).abs() < 0.01, "{s:?}");
        let all_promoters = NpsAcc {
            promoters: 5,
            passives: 0,
            detractors: 0,
        };
        assert_eq!(all_promoters.stat().unwrap().nps, 100.0);
    }

    #[test]
    fn outcomes() {
        assert_eq!(Outcome::of(Some(true), 0), Outcome::AutoHealed);
        assert_eq!(Outcome::of(Some(true), 1), Outcome::Escalated);
        assert_eq!(Outcome::of(Some(false), 0), Outcome::Escalated);
        assert_eq!(Outcome::of(None, 0), Outcome::Open);
    }
}
