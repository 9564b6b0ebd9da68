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
    use netmedic_proto::Arm;
    assert_eq!(
        Outcome::classify(Some(false), 0, Some(Arm::Control)),
        Outcome::HeldOut
    );
    assert_eq!(
        Outcome::classify(Some(false), 0, Some(Arm::Treated)),
        Outcome::Escalated
    );
    assert_eq!(Outcome::classify(Some(true), 0, None), Outcome::AutoHealed);
}

/// The causal section's weekly series: per arm, one entry per week (Monday 00:00 UTC) holding
/// that week's incidents, adding up to the arm's total.
#[test]
fn each_arm_has_its_contact_rate_per_week() {
    let r = holdout_report((300, 30), (30, 9));
    let x = &r.causal[0];
    for (arm, total) in [(&x.treated, 300), (&x.control, 30)] {
        let weeks: Vec<i64> = arm
            .weekly
            .iter()
            .map(|w| w.week_start.unix_millis())
            .collect();
        assert_eq!(
            weeks,
            vec![
                1_795_996_800_000 - 2 * 7 * 86_400_000,
                1_795_996_800_000 - 7 * 86_400_000,
                1_795_996_800_000
            ]
        );
        assert_eq!(arm.weekly.iter().map(|w| w.incidents).sum::<u64>(), total);
        assert!(arm.weekly.iter().all(|w| w.contact_rate.is_some()));
    }
    let contacts: f64 = x
        .control
        .weekly
        .iter()
        .map(|w| w.contact_rate.unwrap().rate * w.incidents as f64)
        .sum();
    assert!((contacts - 9.0).abs() < 1e-9, "{contacts}");
}

/// A control-arm incident was left alone on purpose: counting it as "escalated" would bias the
/// observational healed-vs-escalated comparison with the experiment's own design.
#[test]
fn held_out_incidents_stay_out_of_the_observational_comparison() {
    let r = holdout_report((400, 60), (40, 12));
    assert_eq!(r.contacts.escalated, None, "{:?}", r.contacts.escalated);
    assert_eq!(r.contacts.auto_healed.map(|a| a.n), Some(400));
    assert_eq!(r.causal[0].control.incidents, 40);
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

fn params() -> ReportParams {
    ReportParams {
        from_ms: None,
        to_ms: None,
        contact_window_ms: 72 * 3_600_000,
        survey_window_ms: 30 * 86_400_000,
        reason_rules: Default::default(),
        cost_per_contact_cents: 1500,
        currency: "EUR".into(),
        churn_top: 10,
        min_group_n: 30,
    }
}

/// Feeds `n` covered incidents of one arm, `with_contact` of them followed by a contact.
fn feed(agg: &mut Aggregator, arm: netmedic_proto::Arm, n: u64, with_contact: u64) {
    for i in 0..n {
        agg.incident(IncidentRow {
            agent_id: format!("{}-{i:05}", arm.as_str()),
            incident_id: "inc-1".into(),
            category: netmedic_proto::Category::DnsFailure,
            auto_healed: Some(arm == netmedic_proto::Arm::Treated),
            escalated_actions: 0,
            customer_id: None,
            dims: Dims::default(),
            contact_reason: (i < with_contact).then(String::new),
            experiment: Some(("dns-holdout".into(), arm)),
            // Spread over three weeks (2026-11-16, -23 and -30, Mondays).
            started_ms: 1_795_996_800_000 - (i % 3) as i64 * 7 * 86_400_000 + 3_600_000,
        });
    }
}

fn holdout_report(treated: (u64, u64), control: (u64, u64)) -> Report {
    use netmedic_proto::Arm;
    let mut agg = Aggregator::new(params());
    // Incident rows arrive ordered by agent id: control-… before treated-….
    feed(&mut agg, Arm::Control, control.0, control.1);
    feed(&mut agg, Arm::Treated, treated.0, treated.1);
    agg.incidents_done();
    agg.experiments(vec![ExperimentInfo {
        id: "dns-holdout".into(),
        scope: netmedic_proto::ExperimentScope::Playbook { name: "dns".into() },
        control_permille: 50,
        started_at: netmedic_proto::Timestamp::from_unix_millis(1_700_000_000_000).unwrap(),
        ended_at: None,
    }]);
    agg.finish(Default::default(), Vec::new())
}

#[test]
fn a_small_control_arm_is_flagged_when_it_cannot_tell_the_effect_seen() {
    // 12 control incidents (3 with a contact: 25 %) against 400 treated (15 %): the observed
    // 10 points are well below what 12 incidents can detect.
    let r = holdout_report((400, 60), (12, 3));
    let x = &r.causal[0];
    assert_eq!(x.design, DESIGN);
    assert_eq!((x.treated.incidents, x.control.incidents), (400, 12));
    let mdd = x.minimal_detectable_difference.unwrap();
    assert!(mdd > 10.0, "{mdd}");
    assert_eq!(x.warnings.len(), 1, "{:?}", x.warnings);
    assert!(
        x.warnings[0].contains("control arm too small"),
        "{:?}",
        x.warnings
    );
    let text = render(&r);
    assert!(text.contains("WARNING: control arm too small"), "{text}");
    // The same rates on arms 50 times larger: the effect is detectable, no warning.
    let r = holdout_report((20_000, 3000), (600, 150));
    let x = &r.causal[0];
    assert!(x.warnings.is_empty(), "{:?}", x.warnings);
    let per_1000 = x.avoided_per_1000.unwrap();
    assert!((per_1000.estimate - 100.0).abs() < 1e-9, "{per_1000:?}");
    assert!(per_1000.significant());
    assert!((x.avoided_value_per_1000.unwrap().estimate - 1500.0).abs() < 1e-6);
    // Over the period: 0.10 × 20,000 treated incidents.
    assert!((x.avoided_in_period.unwrap().estimate - 2000.0).abs() < 1e-6);
}

#[test]
fn an_experiment_without_control_incidents_says_so_and_unknown_ids_are_listed() {
    let r = holdout_report((50, 5), (0, 0));
    let x = &r.causal[0];
    assert!(x.avoided_per_1000.is_none());
    assert!(
        x.warnings
            .iter()
            .any(|w| w.contains("no control incidents")),
        "{:?}",
        x.warnings
    );
    // An id recorded by agents but unknown here still gets its entry (scope unknown).
    let mut agg = Aggregator::new(params());
    agg.incident(IncidentRow {
        agent_id: "a".into(),
        incident_id: "i".into(),
        category: netmedic_proto::Category::DnsFailure,
        auto_healed: Some(true),
        escalated_actions: 0,
        customer_id: None,
        dims: Dims::default(),
        contact_reason: None,
        experiment: Some(("ghost".into(), netmedic_proto::Arm::Treated)),
        started_ms: 0,
    });
    agg.incidents_done();
    let r = agg.finish(Default::default(), Vec::new());
    assert_eq!(r.causal.len(), 1);
    assert_eq!(r.causal[0].experiment_id, "ghost");
    assert!(r.causal[0].scope.is_none());
    assert!(r.contacts.assumption.contains("not randomized"));
}
