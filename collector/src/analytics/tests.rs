//! Unit tests of the interval statistics and outcomes.

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
