//! Evaluation: counter rates between runs, the verdict on one reading and the observation for
//! a modem that could not be read. Pure, so it is unit-tested without a modem.

use super::{LineReading, LineType, ModemSnmpConfig, SnmpError};
use crate::checks::Observation;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Counters kept from the previous run, for rates.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub at: Instant,
    pub in_errors: BTreeMap<u32, i64>,
    pub uncorrectables: BTreeMap<u32, i64>,
}

/// Events per minute between two counter samples, summed over the indexes present in both. An
/// index whose counter went backwards (modem reboot, counter reset or 32-bit wrap) is left out
/// for this interval. `None`: no previous sample, no common index, or too short an interval.
pub fn rate_per_min(
    prev: &BTreeMap<u32, i64>,
    cur: &BTreeMap<u32, i64>,
    elapsed: Duration,
) -> Option<f64> {
    if elapsed < Duration::from_millis(500) {
        return None;
    }
    let mut delta = 0i64;
    let mut common = 0;
    for (i, now) in cur {
        if let Some(before) = prev.get(i) {
            common += 1;
            if now >= before {
                delta = delta.saturating_add(now - before);
            }
        }
    }
    (common > 0).then(|| delta as f64 * 60.0 / elapsed.as_secs_f64())
}

fn tenth_db(v: i64) -> f64 {
    v as f64 / 10.0
}

fn oper_name(v: i64) -> &'static str {
    match v {
        1 => "up",
        2 => "down",
        3 => "testing",
        4 => "unknown",
        5 => "dormant",
        6 => "notPresent",
        7 => "lowerLayerDown",
        _ => "invalid",
    }
}

pub(super) fn unreadable(c: &ModemSnmpConfig, target: SocketAddr, e: &SnmpError) -> Observation {
    let o = match e {
        SnmpError::Timeout(_) => Observation::new(
            CheckId::ModemSnmp,
            CheckStatus::Failed,
            "modem_unreachable",
            format!("the modem's SNMP agent at {target} does not answer"),
        )
        .category(Category::DeviceHealth)
        .value("no response")
        .hint("the modem is down, rebooting, or its management address changed"),
        SnmpError::Auth(_) => Observation::new(
            CheckId::ModemSnmp,
            CheckStatus::Unknown,
            "snmp_auth_failed",
            format!("the modem at {target} refused our SNMPv3 credentials"),
        )
        .category(Category::LocalMisconfig)
        .value("auth failed")
        .hint("check user, protocols and passwords in [checks.modem_snmp]"),
        SnmpError::Secret(_) => Observation::new(
            CheckId::ModemSnmp,
            CheckStatus::Unknown,
            "snmp_secret_unreadable",
            "a configured SNMP secret file cannot be read",
        )
        .category(Category::LocalMisconfig)
        .value("no credentials")
        .hint("check the *_file paths in [checks.modem_snmp] and their permissions"),
        SnmpError::Protocol(_) => Observation::new(
            CheckId::ModemSnmp,
            CheckStatus::Unknown,
            "snmp_error",
            format!("the modem at {target} answered with an error"),
        )
        .value("error")
        .hint("a wrong community answers nothing; an agent error names itself in the evidence"),
    };
    o.evidence("error", e)
        .evidence("target", target)
        .evidence("timeout_ms", c.timeout_ms)
        .evidence("retries", c.retries)
}

/// The verdict on one reading; pure so it is unit-tested without a modem.
pub fn judge(
    c: &ModemSnmpConfig,
    r: &LineReading,
    prev: Option<&Sample>,
    now: Instant,
) -> Observation {
    let mut ev: Vec<(String, String)> = Vec::new();
    let has_adsl =
        !r.adsl_snr_margin_tenth_db.is_empty() || !r.adsl_attenuation_tenth_db.is_empty();
    let has_docsis = !r.docsis_snr_tenth_db.is_empty();
    let line = match (c.line_type, has_adsl, has_docsis) {
        (LineType::Auto, true, _) => "adsl",
        (LineType::Auto, false, true) => "docsis",
        (LineType::Auto, false, false) => "none",
        (LineType::Adsl, ..) => "adsl",
        (LineType::Vdsl, ..) => "vdsl",
        (LineType::Docsis, ..) => "docsis",
    };
    ev.push(("line_type".into(), line.into()));
    let threshold = format!(
        "line up; SNR margin ≥ {} dB (failed < {}), attenuation ≤ {} dB; DOCSIS SNR ≥ {} dB (failed < {}); ≤ {}/min uncorrectables, ≤ {}/min ifInErrors",
        c.min_snr_margin_db,
        c.critical_snr_margin_db,
        c.max_attenuation_db,
        c.min_docsis_snr_db,
        c.critical_docsis_snr_db,
        c.max_uncorrectables_per_min,
        c.max_in_errors_per_min
    );

    // Findings, each (status, cause, summary); the worst becomes the verdict.
    let mut findings: Vec<(CheckStatus, &str, String)> = Vec::new();
    let expect_dsl = matches!(c.line_type, LineType::Adsl | LineType::Vdsl);
    let expect_docsis = c.line_type == LineType::Docsis;
    if (expect_dsl && !has_adsl) || (expect_docsis && !has_docsis) {
        findings.push((
            CheckStatus::Unknown,
            "line_mib_missing",
            format!("the modem serves no {line} line table"),
        ));
    }

    // The line interfaces: configured, or those the line tables describe.
    let line_ifs: Vec<u32> = if !c.line_if_indexes.is_empty() {
        c.line_if_indexes.clone()
    } else {
        let mut v: Vec<u32> = r
            .adsl_snr_margin_tenth_db
            .keys()
            .chain(r.adsl_attenuation_tenth_db.keys())
            .chain(r.docsis_snr_tenth_db.keys())
            .copied()
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    ev.push((
        "line_if_indexes".into(),
        line_ifs
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" "),
    ));
    for i in &line_ifs {
        if let Some(&s) = r.oper_status.get(i) {
            ev.push((format!("if{i}_oper_status"), oper_name(s).into()));
            if s != 1 {
                findings.push((
                    CheckStatus::Failed,
                    "line_down",
                    format!("line interface {i} is {}", oper_name(s)),
                ));
            }
        }
    }

    // DSL.
    if let Some((&i, &snr)) = r.adsl_snr_margin_tenth_db.iter().min_by_key(|(_, v)| **v) {
        let db = tenth_db(snr);
        for (j, v) in &r.adsl_snr_margin_tenth_db {
            ev.push((
                format!("if{j}_snr_margin_db"),
                format!("{:.1}", tenth_db(*v)),
            ));
        }
        if db < c.critical_snr_margin_db {
            findings.push((
                CheckStatus::Failed,
                "snr_margin_low",
                format!(
                    "DSL SNR margin {db:.1} dB on line {i} is below the critical {} dB",
                    c.critical_snr_margin_db
                ),
            ));
        } else if db < c.min_snr_margin_db {
            findings.push((
                CheckStatus::Degraded,
                "snr_margin_low",
                format!(
                    "DSL SNR margin {db:.1} dB on line {i} is below {} dB",
                    c.min_snr_margin_db
                ),
            ));
        }
    }
    if let Some((&i, &atn)) = r.adsl_attenuation_tenth_db.iter().max_by_key(|(_, v)| **v) {
        let db = tenth_db(atn);
        ev.push((format!("if{i}_attenuation_db"), format!("{db:.1}")));
        if db > c.max_attenuation_db {
            findings.push((
                CheckStatus::Degraded,
                "attenuation_high",
                format!(
                    "DSL attenuation {db:.1} dB on line {i} is above {} dB",
                    c.max_attenuation_db
                ),
            ));
        }
    }
    // Sync rate: the fastest channel (interleaved or fast path) is the line's rate.
    for (name, map, min) in [
        ("downstream", &r.adsl_down_bps, c.min_downstream_kbps),
        ("upstream", &r.adsl_up_bps, c.min_upstream_kbps),
    ] {
        if let Some(&bps) = map.values().max() {
            let kbps = bps.max(0) as u64 / 1000;
            ev.push((format!("{name}_sync_kbps"), kbps.to_string()));
            if min > 0 && kbps < min {
                findings.push((
                    CheckStatus::Degraded,
                    "sync_rate_low",
                    format!("DSL {name} sync rate {kbps} kbit/s is below {min} kbit/s"),
                ));
            }
        }
    }

    // DOCSIS.
    if let Some((&i, &snr)) = r.docsis_snr_tenth_db.iter().min_by_key(|(_, v)| **v) {
        let db = tenth_db(snr);
        for (j, v) in &r.docsis_snr_tenth_db {
            ev.push((
                format!("if{j}_docsis_snr_db"),
                format!("{:.1}", tenth_db(*v)),
            ));
        }
        if db < c.critical_docsis_snr_db {
            findings.push((
                CheckStatus::Failed,
                "docsis_snr_low",
                format!(
                    "DOCSIS downstream SNR {db:.1} dB on channel {i} is below the critical {} dB",
                    c.critical_docsis_snr_db
                ),
            ));
        } else if db < c.min_docsis_snr_db {
            findings.push((
                CheckStatus::Degraded,
                "docsis_snr_low",
                format!(
                    "DOCSIS downstream SNR {db:.1} dB on channel {i} is below {} dB",
                    c.min_docsis_snr_db
                ),
            ));
        }
    }

    // Rates.
    let elapsed = prev.map(|p| now.saturating_duration_since(p.at));
    let line_errors = |m: &BTreeMap<u32, i64>| -> BTreeMap<u32, i64> {
        if line_ifs.is_empty() {
            m.clone()
        } else {
            m.iter()
                .filter(|(i, _)| line_ifs.contains(i))
                .map(|(i, v)| (*i, *v))
                .collect()
        }
    };
    let in_err_rate = prev
        .zip(elapsed)
        .and_then(|(p, e)| rate_per_min(&line_errors(&p.in_errors), &line_errors(&r.in_errors), e));
    let unc_rate = prev
        .zip(elapsed)
        .and_then(|(p, e)| rate_per_min(&p.uncorrectables, &r.docsis_uncorrectables, e));
    let show_rate =
        |r: Option<f64>| r.map_or("no previous sample".to_string(), |v| format!("{v:.1}"));
    ev.push(("in_errors_per_min".into(), show_rate(in_err_rate)));
    if let Some(v) = in_err_rate
        && v > c.max_in_errors_per_min
    {
        findings.push((
            CheckStatus::Degraded,
            "line_errors_high",
            format!(
                "{v:.0} input errors/min on the line (threshold {})",
                c.max_in_errors_per_min
            ),
        ));
    }
    if !r.docsis_uncorrectables.is_empty() {
        ev.push(("uncorrectables_per_min".into(), show_rate(unc_rate)));
    }
    if let Some(v) = unc_rate
        && v > c.max_uncorrectables_per_min
    {
        findings.push((
            CheckStatus::Degraded,
            "uncorrectables_high",
            format!(
                "{v:.0} uncorrectable codewords/min (threshold {})",
                c.max_uncorrectables_per_min
            ),
        ));
    }

    let rank = |s: CheckStatus| match s {
        CheckStatus::Failed => 3,
        CheckStatus::Degraded => 2,
        CheckStatus::Unknown => 1,
        CheckStatus::Ok => 0,
    };
    findings.sort_by_key(|(s, ..)| std::cmp::Reverse(rank(*s)));
    let value = {
        let mut parts = Vec::new();
        if let Some(v) = r.adsl_snr_margin_tenth_db.values().min() {
            parts.push(format!("SNR margin {:.1} dB", tenth_db(*v)));
        }
        if let Some(v) = r.adsl_down_bps.values().max() {
            parts.push(format!("{} kbit/s down", v.max(&0) / 1000));
        }
        if let Some(v) = r.docsis_snr_tenth_db.values().min() {
            parts.push(format!("DOCSIS SNR {:.1} dB", tenth_db(*v)));
        }
        if parts.is_empty() {
            parts.push(format!("{} interfaces", r.oper_status.len()));
        }
        parts.join(", ")
    };
    let mut o = match findings.first() {
        None => Observation::ok(
            CheckId::ModemSnmp,
            if line == "none" {
                "modem answers; it serves no ADSL or DOCSIS line table (IF-MIB only)".to_string()
            } else {
                format!("{line} line healthy")
            },
        ),
        Some((status, cause, summary)) => {
            let hint = match *cause {
                "line_down" => "the line has no sync: the ISP's access network or the wiring",
                "snr_margin_low" | "attenuation_high" | "sync_rate_low" => {
                    "a noisy or long line: check the in-home wiring and filters; the ISP can re-profile the line"
                }
                "docsis_snr_low" | "uncorrectables_high" => {
                    "a noisy cable plant: check splitters and connectors; else the ISP's plant"
                }
                "line_errors_high" => "the line takes errors: noise or a failing modem",
                _ => "set line_type to what the modem is, or \"auto\"",
            };
            let mut o =
                Observation::new(CheckId::ModemSnmp, *status, *cause, summary.clone()).hint(hint);
            if *status == CheckStatus::Failed {
                o = o.severity(Severity::Major);
            }
            if findings.len() > 1 {
                let others: Vec<&str> = findings[1..].iter().map(|(_, c, _)| *c).collect();
                o = o.evidence("other_findings", others.join(" "));
            }
            o
        }
    };
    o = o.value(value).threshold(threshold);
    for (k, v) in ev {
        o = o.evidence(k, v);
    }
    o
}
