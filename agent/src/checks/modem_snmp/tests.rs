//! Unit tests of the modem_snmp check: unit conversion, rates, verdicts and config.

use super::*;
use crate::checks::causes::assert_declared;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// [`super::judge`], asserting that the cause it reports is declared in `CAUSES`.
fn judge(c: &ModemSnmpConfig, r: &LineReading, prev: Option<&Sample>, now: Instant) -> Observation {
    let o = super::judge(c, r, prev, now);
    assert_declared(&o);
    o
}

fn adsl(snr_tenth: i64) -> LineReading {
    let mut r = LineReading::default();
    r.oper_status.insert(1000, 1);
    r.oper_status.insert(1, 1);
    r.adsl_snr_margin_tenth_db.insert(1000, snr_tenth);
    r.adsl_attenuation_tenth_db.insert(1000, 305);
    r.adsl_down_bps.insert(1001, 16_000_000);
    r.adsl_up_bps.insert(1002, 1_000_000);
    r
}

#[test]
fn snr_margin_is_converted_from_tenths_and_judged() {
    let c = ModemSnmpConfig::default();
    let t = Instant::now();
    let o = judge(&c, &adsl(123), None, t);
    assert_eq!((o.status, o.cause.as_str()), (CheckStatus::Ok, "ok"));
    assert_eq!(o.evidence["if1000_snr_margin_db"], "12.3");
    assert_eq!(o.evidence["if1000_attenuation_db"], "30.5");
    assert_eq!(o.evidence["downstream_sync_kbps"], "16000");
    assert_eq!(o.evidence["line_type"], "adsl");
    assert_eq!(o.evidence["in_errors_per_min"], "no previous sample");
    let o = judge(&c, &adsl(45), None, t);
    assert_eq!(
        (o.status, o.cause.as_str(), o.category),
        (
            CheckStatus::Degraded,
            "snr_margin_low",
            Category::LineDegraded
        )
    );
    assert!(o.summary.contains("4.5 dB"), "{}", o.summary);
    let o = judge(&c, &adsl(-15), None, t);
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Failed, "snr_margin_low")
    );
}

#[test]
fn line_down_wins_and_other_findings_are_listed() {
    let c = ModemSnmpConfig::default();
    let mut r = adsl(20);
    r.oper_status.insert(1000, 2);
    let o = judge(&c, &r, None, Instant::now());
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Failed, "line_down")
    );
    assert_eq!(o.evidence["other_findings"], "snr_margin_low");
}

#[test]
fn docsis_snr_and_uncorrectable_rate() {
    let c = ModemSnmpConfig::default();
    let t0 = Instant::now();
    let mut r = LineReading::default();
    r.docsis_snr_tenth_db.insert(3, 362);
    r.docsis_snr_tenth_db.insert(4, 355);
    r.docsis_uncorrectables.insert(3, 1000);
    let o = judge(&c, &r, None, t0);
    assert_eq!(
        (o.status, o.evidence["line_type"].as_str()),
        (CheckStatus::Ok, "docsis")
    );
    let prev = Sample {
        at: t0,
        in_errors: BTreeMap::new(),
        uncorrectables: r.docsis_uncorrectables.clone(),
    };
    r.docsis_uncorrectables.insert(3, 1300);
    let o = judge(&c, &r, Some(&prev), t0 + Duration::from_secs(60));
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Degraded, "uncorrectables_high")
    );
    assert_eq!(o.evidence["uncorrectables_per_min"], "300.0");
    r.docsis_snr_tenth_db.insert(4, 240);
    let o = judge(&c, &r, None, t0);
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Failed, "docsis_snr_low")
    );
}

#[test]
fn rates_skip_resets_and_short_intervals() {
    let m = |v: &[(u32, i64)]| v.iter().copied().collect::<BTreeMap<_, _>>();
    let s = Duration::from_secs(30);
    assert_eq!(rate_per_min(&m(&[(1, 10)]), &m(&[(1, 40)]), s), Some(60.0));
    // Counter went backwards: that index adds nothing.
    assert_eq!(
        rate_per_min(&m(&[(1, 100), (2, 0)]), &m(&[(1, 5), (2, 15)]), s),
        Some(30.0)
    );
    assert_eq!(rate_per_min(&m(&[(1, 1)]), &m(&[(2, 1)]), s), None);
    assert_eq!(
        rate_per_min(&m(&[(1, 1)]), &m(&[(1, 9)]), Duration::ZERO),
        None
    );
}

#[test]
fn in_error_rate_counts_line_interfaces_only() {
    let c = ModemSnmpConfig::default();
    let t0 = Instant::now();
    let mut r = adsl(100);
    r.in_errors.insert(1, 0);
    r.in_errors.insert(1000, 0);
    let prev = Sample {
        at: t0,
        in_errors: r.in_errors.clone(),
        uncorrectables: BTreeMap::new(),
    };
    r.in_errors.insert(1, 1_000_000); // the LAN side: not the line
    let o = judge(&c, &r, Some(&prev), t0 + Duration::from_secs(60));
    assert_eq!(o.status, CheckStatus::Ok, "{o:?}");
    r.in_errors.insert(1000, 500);
    let o = judge(&c, &r, Some(&prev), t0 + Duration::from_secs(60));
    assert_eq!(o.cause, "line_errors_high");
}

#[test]
fn explicit_line_type_without_its_table_is_unknown() {
    let c = ModemSnmpConfig {
        line_type: LineType::Docsis,
        ..ModemSnmpConfig::default()
    };
    let o = judge(&c, &adsl(100), None, Instant::now());
    assert_eq!(
        (o.status, o.cause.as_str()),
        (CheckStatus::Unknown, "line_mib_missing")
    );
}

#[test]
fn columns_are_keyed_by_the_last_arc() {
    let mut a = ADSL_SNR_MARGIN.to_vec();
    a.push(1000);
    let mut b = IF_OPER_STATUS.to_vec();
    b.push(2);
    let rows = vec![(a, Val::Int(55)), (b, Val::Int(1))];
    assert_eq!(column(&rows, ADSL_SNR_MARGIN), BTreeMap::from([(1000, 55)]));
}

#[test]
fn secrets_never_show_in_debug_and_config_is_validated() {
    let c = ModemSnmpConfig {
        enabled: true,
        target: "192.0.2.254".into(),
        version: SnmpVersion::V3,
        user: "noc".into(),
        auth_password: Secret::new("hunter2hunter2"),
        priv_password: Secret::new("short"),
        ..ModemSnmpConfig::default()
    };
    assert!(!format!("{c:?}").contains("hunter2"));
    let mut out = Vec::new();
    c.problems(&mut out);
    let f: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(f, ["checks.modem_snmp.priv_password"]);
    assert_eq!(parse_target("192.0.2.254"), "192.0.2.254:161".parse().ok());
    assert_eq!(
        parse_target("192.0.2.254:1161"),
        "192.0.2.254:1161".parse().ok()
    );
    assert_eq!(parse_target("modem"), None);
    let mut out = Vec::new();
    ModemSnmpConfig {
        enabled: true,
        critical_snr_margin_db: 9.0,
        ..ModemSnmpConfig::default()
    }
    .problems(&mut out);
    let f: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        f,
        [
            "checks.modem_snmp.target",
            "checks.modem_snmp.critical_snr_margin_db"
        ]
    );
    let mut out = Vec::new();
    ModemSnmpConfig::default().problems(&mut out);
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn unreadable_modems_report_declared_causes() {
    let c = ModemSnmpConfig::default();
    let target: SocketAddr = "192.0.2.1:161".parse().unwrap();
    let causes: Vec<String> = [
        SnmpError::Timeout(target),
        SnmpError::Auth("x".into()),
        SnmpError::Secret("x".into()),
        SnmpError::Protocol("x".into()),
    ]
    .iter()
    .map(|e| {
        let o = unreadable(&c, target, e);
        assert_declared(&o);
        o.cause
    })
    .collect();
    assert_eq!(
        causes,
        [
            "modem_unreachable",
            "snmp_auth_failed",
            "snmp_secret_unreadable",
            "snmp_error"
        ]
    );
}
