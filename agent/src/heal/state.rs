//! The healer's state owned by the daemon loop: budgets, backoff between rungs and the ladder
//! memory of flapping incidents.

use super::Settings;
use super::budget::Budget;
use super::config::HealingConfig;
use super::decide::backoff;
use crate::incident::Incident;
use netmedic_proto::{ActionId, CheckId};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
struct Progress {
    attempts: u32,
    next_at: Option<Instant>,
    last_note: Option<String>,
}

#[derive(Debug)]
struct Memory {
    tried: Vec<ActionId>,
    attempts: u32,
    resolved_at: Instant,
}

/// The healer's state owned by the daemon loop.
#[derive(Debug)]
pub struct HealState {
    pub budget: Budget,
    progress: BTreeMap<CheckId, Progress>,
    memory: BTreeMap<(CheckId, String), Memory>,
}

impl HealState {
    pub fn open(config: &Settings) -> Self {
        let h = &config.healing;
        Self::with_budget(Budget::open(
            config.site.state_dir.join("heal-budget.json"),
            h.budgets.clone(),
            h.global_budget,
        ))
    }

    pub fn with_budget(budget: Budget) -> Self {
        Self {
            budget,
            progress: BTreeMap::new(),
            memory: BTreeMap::new(),
        }
    }

    /// A new incident: resume the ladder of the same check+cause if it resolved within the
    /// memory window. Returns how many rungs were resumed.
    pub fn on_opened(&mut self, inc: &mut Incident, cfg: &HealingConfig, now: Instant) -> usize {
        let key = (inc.check, inc.cause.clone());
        let mut p = Progress::default();
        let mut resumed = 0;
        if let Some(m) = self.memory.remove(&key)
            && now.duration_since(m.resolved_at) < Duration::from_secs(cfg.ladder_memory_secs)
        {
            inc.tried = m.tried;
            resumed = inc.tried.len();
            p.attempts = m.attempts;
            p.next_at = Some(m.resolved_at + backoff(cfg, m.attempts, random_unit()));
        }
        self.progress.insert(inc.check, p);
        resumed
    }

    /// The incident resolved (healed or by itself): remember its ladder position.
    pub fn on_resolved(&mut self, inc: &Incident, now: Instant) {
        let attempts = self.progress.remove(&inc.check).map_or(0, |p| p.attempts);
        if !inc.tried.is_empty() {
            self.memory.insert(
                (inc.check, inc.cause.clone()),
                Memory {
                    tried: inc.tried.clone(),
                    attempts,
                    resolved_at: now,
                },
            );
        }
        // Forget what no window can still need.
        self.memory
            .retain(|_, m| now.duration_since(m.resolved_at) < Duration::from_secs(7 * 86_400));
    }

    /// Whether the backoff after the last rung of `check` still runs.
    pub fn backing_off(&self, check: CheckId, now: Instant) -> bool {
        self.progress
            .get(&check)
            .and_then(|p| p.next_at)
            .is_some_and(|t| now < t)
    }

    /// A rung ran (or was reported in dry run): the next one waits the backoff.
    pub fn attempted(&mut self, check: CheckId, cfg: &HealingConfig, now: Instant) {
        let p = self.progress.entry(check).or_default();
        p.attempts = p.attempts.saturating_add(1);
        p.next_at = Some(now + backoff(cfg, p.attempts, random_unit()));
        p.last_note = None;
    }

    /// Whether `note` differs from the last one recorded for `check` (records it).
    pub fn is_new_note(&mut self, check: CheckId, note: &str) -> bool {
        let p = self.progress.entry(check).or_default();
        if p.last_note.as_deref() == Some(note) {
            false
        } else {
            p.last_note = Some(note.to_string());
            true
        }
    }
}

/// A uniform draw in [0, 1] for jitter.
fn random_unit() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_ne_bytes(b)) / f64::from(u32::MAX)
}
