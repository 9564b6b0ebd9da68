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
    // Adjusted: 3 promoters, 3 detractors of 9; var = 2/3; se = 100 · sqrt(2/3/9) = 27.2
    assert!((s.se - 27.217).abs() < 0.01, "{s:?}");
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

/// Small groups: the NPS interval stays in [−100, +100], contains the score and never collapses
/// to a point (the plain Wald interval gave [+44.9, +115.1] for 5 answers, [+100, +100] for 2).
#[test]
fn nps_interval_stays_in_range_at_small_n() {
    for (p, pa, d) in [
        (4, 1, 0),
        (2, 0, 0),
        (0, 0, 2),
        (1, 0, 0),
        (5, 0, 0),
        (0, 0, 1),
    ] {
        let s = NpsAcc {
            promoters: p,
            passives: pa,
            detractors: d,
        }
        .stat()
        .unwrap();
        assert!(s.ci_low >= -100.0 && s.ci_high <= 100.0, "{s:?}");
        assert!(s.ci_high - s.ci_low > 10.0, "collapsed: {s:?}");
        assert!(s.ci_low <= s.nps && s.nps <= s.ci_high, "{s:?}");
    }
    // Large n: close to the plain interval (NPS 20, n 1000, var 0.56: ±4.6 points).
    let s = NpsAcc {
        promoters: 400,
        passives: 400,
        detractors: 200,
    }
    .stat()
    .unwrap();
    assert!((s.nps - 20.0).abs() < 1e-9);
    assert!(
        (s.ci_low - 15.4).abs() < 0.2 && (s.ci_high - 24.6).abs() < 0.2,
        "{s:?}"
    );
}

#[test]
fn reason_rules_match_words_case_insensitively() {
    let rule = ReasonRule::parse("website* load*").unwrap();
    assert!(rule.matches("websites do not load"));
    assert!(rule.matches("Website not LOADING!"));
    assert!(!rule.matches("websites are slow"));
    let dns = ReasonRule::parse("DNS").unwrap();
    assert!(dns.matches("dns_failure"));
    assert!(dns.matches("Problem with DNS?"));
    assert!(!dns.matches("dnsmasq"));
    assert!(ReasonRule::parse("").is_err());
    assert!(ReasonRule::parse("  ,  ").is_err());
    assert!(ReasonRule::parse("*").is_err());
    assert!(ReasonRule::parse("a*b").is_err());
    // The shipped rules link the common phrasings to their category.
    let params = ReportParams::from_config(
        &crate::config::CollectorConfig::default().experience,
        None,
        None,
    );
    use netmedic_proto::Category as C;
    for (reason, cat) in [
        ("websites do not load", C::DnsFailure),
        ("Web pages won't open", C::DnsFailure),
        ("No Internet", C::NoInternet),
        ("no_internet", C::NoInternet),
        ("internet is very slow", C::SlowOrLossy),
        ("connection keeps dropping", C::Intermittent),
        ("router keeps rebooting", C::DeviceHealth),
        ("IP address conflict on my laptop", C::LanDegraded),
        ("devices on the home network get no address", C::LanDegraded),
    ] {
        assert!(params.reason_matches(reason, cat), "{reason:?} → {cat:?}");
    }
    assert!(!params.reason_matches("websites do not load", C::NoInternet));
    assert!(!params.reason_matches("billing question", C::DnsFailure));
}
