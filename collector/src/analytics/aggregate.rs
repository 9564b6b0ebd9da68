//! Report assembly: the aggregator the store streams incident and survey rows into, with
//! memory only per group and per repeat-incident customer, and its `finish` into a [`Report`].

use super::causal::{CausalAcc, ExperimentInfo};
use super::linking::{DIMENSIONS, IncidentRow, Outcome, ReportParams, SurveyRow, UNKNOWN};
use super::report::*;
use super::statistics::*;
use netmedic_proto::{Category, Timestamp};
use std::collections::{BTreeMap, HashMap, HashSet};

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

type OpenSurvey = (
    SurveyRow,
    HashSet<(Category, Outcome)>,
    HashSet<(String, netmedic_proto::Arm)>,
);

/// Streams rows in; [`Aggregator::finish`] builds the report.
#[derive(Debug)]
pub struct Aggregator {
    params: ReportParams,
    current: Option<(IncidentRow, bool, bool)>,
    incidents: u64,
    by_category: BTreeMap<Category, ContactAcc>,
    by_outcome: BTreeMap<Outcome, ContactAcc>,
    by_category_outcome: BTreeMap<(Category, Outcome), ContactAcc>,
    /// Contact rate of customers without incidents (same window rule).
    baseline: Option<Proportion>,
    per_customer: HashMap<String, u64>,
    dims: [BTreeMap<String, DimAcc>; 4],
    survey: Option<OpenSurvey>,
    surveys: u64,
    without: SatAcc,
    with: SatAcc,
    sat_by_category: BTreeMap<Category, SatAcc>,
    sat_by_outcome: BTreeMap<Outcome, SatAcc>,
    sat_by_category_outcome: BTreeMap<(Category, Outcome), SatAcc>,
    /// Churn candidates (≥ 2 incidents) → (lowest NPS, detractor answers).
    candidates: HashMap<String, (Option<i64>, u64)>,
    contacts_of: HashMap<String, u64>,
    causal: CausalAcc,
}

impl Aggregator {
    pub fn new(params: ReportParams) -> Self {
        Self {
            params,
            current: None,
            incidents: 0,
            by_category: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            by_category_outcome: BTreeMap::new(),
            baseline: None,
            per_customer: HashMap::new(),
            dims: Default::default(),
            survey: None,
            surveys: 0,
            without: SatAcc::default(),
            with: SatAcc::default(),
            sat_by_category: BTreeMap::new(),
            sat_by_outcome: BTreeMap::new(),
            sat_by_category_outcome: BTreeMap::new(),
            candidates: HashMap::new(),
            contacts_of: HashMap::new(),
            causal: CausalAcc::default(),
        }
    }

    /// The holdout experiments the store knows (active and ended): each gets its causal entry,
    /// also when no incident of the period was covered.
    pub fn experiments(&mut self, known: Vec<ExperimentInfo>) {
        self.causal.experiments(known);
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
            Some(r) => (true, self.params.reason_matches(r, row.category)),
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
        let outcome = Outcome::classify(
            row.auto_healed,
            row.escalated_actions,
            row.experiment.as_ref().map(|(_, arm)| *arm),
        );
        for acc in [
            self.by_category.entry(row.category).or_default(),
            self.by_outcome.entry(outcome).or_default(),
            self.by_category_outcome
                .entry((row.category, outcome))
                .or_default(),
        ] {
            acc.incidents += 1;
            acc.with_contact += u64::from(contact);
            acc.strong += u64::from(strong);
        }
        if let Some(x) = &row.experiment {
            self.causal
                .incident(x, &row.agent_id, row.started_ms, contact);
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
        let arm = row.experiment.clone();
        if !same {
            self.survey = Some((row, HashSet::new(), HashSet::new()));
        }
        if let (Some((_, links, _)), Some(l)) = (&mut self.survey, link) {
            links.insert(l);
        }
        if let (Some((_, _, arms)), Some(a)) = (&mut self.survey, arm) {
            arms.insert(a);
        }
    }

    fn close_survey(&mut self) {
        let Some((row, links, arms)) = self.survey.take() else {
            return;
        };
        for a in &arms {
            self.causal.survey(a, row.nps, row.csat);
        }
        let cats: HashSet<Category> = links.iter().map(|(c, _)| *c).collect();
        let outs: HashSet<Outcome> = links.iter().map(|(_, o)| *o).collect();
        for l in links {
            self.sat_by_category_outcome
                .entry(l)
                .or_default()
                .add(row.nps, row.csat);
        }
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

    /// The baseline: of `slots` (customer without incidents × contact-window-long period of
    /// the report), `with_contact` had at least one contact.
    pub fn baseline_contacts(&mut self, with_contact: u64, slots: u64) {
        self.baseline = wilson(with_contact.min(slots), slots);
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
        let min_n = p.min_group_n;
        // Groups (and baselines) under the minimum n get no effect.
        let enough_nps = |s: &Option<NpsStat>| s.filter(|s| s.n >= min_n);
        let enough_csat = |s: &Option<Proportion>| s.filter(|s| s.n >= min_n);
        let group = |name: String, acc: &SatAcc| {
            let s = acc.stat();
            SatGroup {
                nps_effect: nps_effect(
                    enough_nps(&s.nps).as_ref(),
                    enough_nps(&without.nps).as_ref(),
                ),
                csat_effect: prop_effect(
                    enough_csat(&s.csat).as_ref(),
                    enough_csat(&without.csat).as_ref(),
                )
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
            by_category_outcome: self
                .sat_by_category_outcome
                .iter()
                .filter(|((_, o), _)| *o != Outcome::Open)
                .map(|((c, o), a)| group(format!("{} {}", c.as_str(), outcome_name(*o)), a))
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
                .map(|(c, a)| {
                    let contact_rate = wilson(a.with_contact, a.incidents);
                    let of = |o: Outcome| rate(self.by_category_outcome.get(&(*c, o)));
                    CategoryContacts {
                        category: *c,
                        incidents: a.incidents,
                        vs_baseline: prop_effect(contact_rate.as_ref(), self.baseline.as_ref())
                            .map(|e| e.scale(100.0)),
                        contact_rate,
                        strong_links: a.strong,
                        auto_healed: of(Outcome::AutoHealed),
                        escalated: of(Outcome::Escalated),
                    }
                })
                .collect(),
            baseline: self.baseline,
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
            assumption: super::causal::OBSERVATIONAL_ASSUMPTION.to_owned(),
        };
        let causal = std::mem::take(&mut self.causal)
            .finish(p.cost_per_contact_cents as f64 / 100.0, p.min_group_n);
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
            min_group_n: p.min_group_n,
            satisfaction,
            contacts,
            churn_candidates,
            churn_risk: churn,
            breakdowns,
            network_events,
            causal,
        }
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::AutoHealed => "auto_healed",
        Outcome::Escalated => "escalated",
        Outcome::Open => "open",
        Outcome::HeldOut => "held_out",
    }
}
