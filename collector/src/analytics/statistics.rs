//! Statistics: proportions with Wilson 95 % intervals, NPS with its variance-based interval,
//! effects against a baseline, and the NPS/CSAT accumulator of a group of answers.

use serde::{Deserialize, Serialize};

/// z of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;
/// z of 80 % power (one-sided 0.8 quantile of the standard normal).
const Z80: f64 = 0.841_621_233_572_914_3;

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

/// Net Promoter Score (−100..=100) of `n` answers with its 95 % interval. NPS/100 is the mean of
/// a score of +1 (promoter, 9–10), 0 (passive, 7–8), −1 (detractor, 0–6). The interval is an
/// adjusted Wald interval on that scale: one pseudo-answer of each kind is added (as Agresti–Coull
/// add two successes and two failures to a proportion), the mean and variance `p + d − (p − d)²`
/// of the adjusted counts give centre and standard error, and the bounds are clamped to
/// [−100, +100]. It stays in range and never collapses to a point at small n; at large n it is the
/// plain Wald interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NpsStat {
    pub n: u64,
    pub promoters: u64,
    pub detractors: u64,
    pub nps: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// Standard error (of the adjusted counts), in NPS points.
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
        let raw = 100.0 * (self.promoters as f64 - self.detractors as f64) / n as f64;
        // One pseudo-answer of each kind.
        let nf = n as f64 + 3.0;
        let p = (self.promoters as f64 + 1.0) / nf;
        let d = (self.detractors as f64 + 1.0) / nf;
        let mean = p - d;
        let var = (p + d - mean * mean).max(0.0);
        let se = 100.0 * (var / nf).sqrt();
        Some(NpsStat {
            n,
            promoters: self.promoters,
            detractors: self.detractors,
            nps: raw,
            ci_low: (100.0 * mean - Z95 * se).max(-100.0),
            ci_high: (100.0 * mean + Z95 * se).min(100.0),
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

    pub(super) fn scale(self, f: f64) -> Self {
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

/// Difference of two proportions `a − b` (rate units) with Newcombe's hybrid score interval
/// (his method 10): the Wilson limits of each proportion combined, so it stays sensible at small
/// n and at rates near 0 or 1, where the Wald interval of [`prop_effect`] fails.
pub fn newcombe(a: &Proportion, b: &Proportion) -> Effect {
    let d = a.rate - b.rate;
    let below = ((a.rate - a.ci_low).powi(2) + (b.ci_high - b.rate).powi(2)).sqrt();
    let above = ((a.ci_high - a.rate).powi(2) + (b.rate - b.ci_low).powi(2)).sqrt();
    Effect {
        estimate: d,
        ci_low: (d - below).max(-1.0),
        ci_high: (d + above).min(1.0),
    }
}

/// The smallest difference of two proportions (rate units) that a two-sided test at α = 0.05
/// detects with 80 % power, for arms of `n_a` and `n_b` and the `pooled` rate of both:
/// `(z₀.₉₇₅ + z₀.₈) · √(p̄(1 − p̄)(1/n_a + 1/n_b))`. `None` when an arm is empty. A pooled rate
/// of exactly 0 or 1 (no contact at all, or only contacts) would make the difference look
/// detectable at any size, so p̄ is kept half an observation away from both ends.
pub fn minimal_detectable_difference(n_a: u64, n_b: u64, pooled: f64) -> Option<f64> {
    if n_a == 0 || n_b == 0 {
        return None;
    }
    let half = 0.5 / (n_a + n_b) as f64;
    let pooled = pooled.clamp(half, 1.0 - half);
    let var = pooled * (1.0 - pooled) * (1.0 / n_a as f64 + 1.0 / n_b as f64);
    Some((Z95 + Z80) * var.max(0.0).sqrt())
}

/// NPS and CSAT of a group of survey answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SatAcc {
    pub nps: NpsAcc,
    pub csat_n: u64,
    pub csat_satisfied: u64,
}

impl SatAcc {
    pub(super) fn add(&mut self, nps: Option<i64>, csat: Option<i64>) {
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod causal_tests {
    use super::*;

    #[test]
    fn newcombe_matches_the_published_example() {
        // Newcombe (1998), Table II, example (a): 56/70 − 48/80 → [0.0524, 0.3339].
        let e = newcombe(&wilson(56, 70).unwrap(), &wilson(48, 80).unwrap());
        assert!((e.estimate - 0.2).abs() < 1e-12);
        assert!((e.ci_low - 0.0524).abs() < 5e-4, "{e:?}");
        assert!((e.ci_high - 0.3339).abs() < 5e-4, "{e:?}");
        // Example (h): 0/10 − 0/20 → [−0.1611, 0.2775].
        let e = newcombe(&wilson(0, 10).unwrap(), &wilson(0, 20).unwrap());
        assert!((e.ci_low + 0.1611).abs() < 5e-4, "{e:?}");
        assert!((e.ci_high - 0.2775).abs() < 5e-4, "{e:?}");
    }

    #[test]
    fn minimal_detectable_difference_shrinks_with_n() {
        // 2.8016 · √(0.25 · (1/100 + 1/100)) = 0.1981.
        let m = minimal_detectable_difference(100, 100, 0.5).unwrap();
        assert!((m - 0.1981).abs() < 5e-4, "{m}");
        let big = minimal_detectable_difference(10_000, 10_000, 0.5).unwrap();
        assert!(big < m / 9.0);
        assert!(minimal_detectable_difference(0, 10, 0.5).is_none());
        // No contact in either arm of 3 + 3 incidents tells nothing: a large MDD, never 0.
        let none = minimal_detectable_difference(3, 3, 0.0).unwrap();
        assert!(none > 0.5, "{none}");
    }
}
