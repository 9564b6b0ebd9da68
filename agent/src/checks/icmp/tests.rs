//! Unit tests of the icmp check: path statistics, verdicts, the adaptive sample's escalation,
//! and the shipped config's defaults.

use super::*;

#[test]
fn stats_loss_p95_and_jitter() {
    let s = PathStats::compute(10, &[1.0, 3.0, 2.0, 6.0]);
    assert_eq!(s.received, 4);
    assert!((s.loss_percent - 60.0).abs() < 1e-9);
    assert_eq!(s.rtt_avg_ms, Some(3.0));
    assert_eq!(s.rtt_p95_ms, Some(6.0));
    // |3-1| + |2-3| + |6-2| = 7 over 3 steps.
    assert!((s.jitter_ms.unwrap() - 7.0 / 3.0).abs() < 1e-9);

    let rtts: Vec<f64> = (1..=100).map(f64::from).collect();
    let s = PathStats::compute(100, &rtts);
    assert_eq!(s.rtt_p95_ms, Some(95.0), "nearest rank");
    assert_eq!(s.loss_percent, 0.0);
    assert_eq!(s.jitter_ms, Some(1.0));

    let s = PathStats::compute(5, &[]);
    assert_eq!(
        (s.loss_percent, s.rtt_avg_ms, s.jitter_ms),
        (100.0, None, None)
    );
    let s = PathStats::compute(1, &[4.0]);
    assert_eq!((s.rtt_p95_ms, s.jitter_ms), (Some(4.0), None));
}

#[test]
fn verdicts_follow_thresholds() {
    let c = IcmpConfig::default();
    let judge = |sent, rtts: &[f64]| c.judge(&PathStats::compute(sent, rtts));
    assert_eq!(judge(4, &[1.0, 1.0, 1.0, 1.0]).status, CheckStatus::Ok);
    let v = judge(4, &[]);
    assert_eq!((v.status, v.cause), (CheckStatus::Failed, "unreachable"));
    let v = judge(10, &[1.0; 8]);
    assert_eq!((v.status, v.cause), (CheckStatus::Degraded, "packet_loss"));
    let v = judge(10, &[1.0; 4]);
    assert_eq!((v.status, v.cause), (CheckStatus::Failed, "packet_loss"));
    let v = judge(3, &[200.0, 200.0, 200.0]);
    assert_eq!((v.status, v.cause), (CheckStatus::Degraded, "high_latency"));
    let v = judge(4, &[1.0, 200.0, 1.0, 200.0]);
    assert_eq!((v.status, v.cause), (CheckStatus::Failed, "high_jitter"));
}

fn replies(sent: u32, rtts_ms: &[f64]) -> crate::ping::PingResult {
    crate::ping::PingResult {
        sent,
        received: rtts_ms.len() as u32,
        rtts_ms: rtts_ms.to_vec(),
    }
}

#[test]
fn a_clean_sample_suffices_and_any_sign_escalates() {
    let c = IcmpConfig::default();
    let clean = replies(3, &[1.0, 1.2, 0.9]);
    assert!(!c.sample_needs_full_run(&[clean.clone(), clean.clone()]));
    let signs = [
        ("a lost probe", replies(3, &[1.0, 1.0])),
        ("one late reply", replies(3, &[1.0, 150.0, 1.0])),
        ("jitter", replies(3, &[1.0, 40.0, 1.0])),
        ("nothing answered", replies(3, &[])),
    ];
    for (what, sign) in signs {
        assert!(
            c.sample_needs_full_run(&[clean.clone(), sign.clone()]),
            "{what} in the second target's sample"
        );
    }
    // RTT below the thresholds but high average: still clean at 149 ms.
    assert!(!c.sample_needs_full_run(&[replies(3, &[149.0, 149.0, 149.0])]));
    assert!(c.sample_needs_full_run(&[replies(3, &[149.0, 149.0, 150.0])]));
}

#[test]
fn the_sample_is_smaller_than_count_or_off() {
    let c = IcmpConfig::default();
    assert_eq!(c.sample_size(), Some(3));
    assert_eq!(c.sample_wait(), Some(Duration::from_millis(150)));
    for (healthy_count, count) in [(0, 20), (20, 20), (25, 20), (3, 3)] {
        let c = IcmpConfig {
            healthy_count,
            count,
            ..IcmpConfig::default()
        };
        assert_eq!(c.sample_size(), None, "{healthy_count} of {count}");
        assert_eq!(c.sample_wait(), None);
    }
    let c = IcmpConfig {
        degraded_rtt_ms: 5000.0,
        failed_rtt_ms: 5000.0,
        timeout_ms: 800,
        ..IcmpConfig::default()
    };
    assert_eq!(c.sample_wait(), Some(Duration::from_millis(800)), "capped");
}

#[test]
fn config_problems_are_named() {
    let mut c = IcmpConfig {
        count: 0,
        degraded_loss_percent: 60.0,
        targets: vec![Ipv4Addr::new(224, 0, 0, 1)],
        ..IcmpConfig::default()
    };
    let mut p = Vec::new();
    c.problems(&mut p);
    let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "checks.icmp.count",
            "checks.icmp.targets[0]",
            "checks.icmp.degraded_loss_percent"
        ]
    );
    c = IcmpConfig {
        count: 200,
        interval_ms: 100,
        ..IcmpConfig::default()
    };
    p.clear();
    c.problems(&mut p);
    assert!(p[0].message.contains("longer than interval_secs"), "{p:?}");
    // 19 × 450 + 1000 fits in 10 s, but not with the sample's 1000 ms wait for replies.
    c = IcmpConfig {
        interval_ms: 450,
        degraded_rtt_ms: 1000.0,
        failed_rtt_ms: 1000.0,
        ..IcmpConfig::default()
    };
    p.clear();
    c.problems(&mut p);
    assert!(p[0].message.contains("longer than interval_secs"), "{p:?}");
    c.healthy_count = 0;
    p.clear();
    c.problems(&mut p);
    assert!(p.is_empty(), "{p:?}");
    c.healthy_count = 1001;
    c.count = 1000;
    c.interval_secs = 3600;
    p.clear();
    c.problems(&mut p);
    let fields: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["checks.icmp.healthy_count"]);
    p.clear();
    IcmpConfig::default().problems(&mut p);
    assert!(p.is_empty(), "{p:?}");
}

mod example_config {
    /// config/agent.toml shows every key of the host-health checks with its default.
    #[test]
    fn shipped_example_shows_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/agent.toml");
        let c = crate::config::AgentConfig::load(std::path::Path::new(path)).unwrap();
        let d = crate::checks::ChecksSection::default();
        assert_eq!(c.checks.icmp, d.icmp);
        assert_eq!(c.checks.mtu, d.mtu);
        assert_eq!(c.checks.conntrack, d.conntrack);
        assert_eq!(c.checks.resources, d.resources);
        assert_eq!(c.checks.service, d.service);
        assert_eq!(c.checks.clock, d.clock);
    }
}
