//! `modem_snmp`: line health of the DSL/DOCSIS/ONT modem in front of the CPE, read over SNMP v2c
//! or v3 (USM authPriv/authNoPriv) with `snmp2`:
//!
//! - IF-MIB `ifOperStatus` of the line interfaces and the `ifInErrors` **rate** (the previous
//!   counter sample is kept in the check; the first run has no rate);
//! - ADSL-LINE-MIB (RFC 2662) `adslAturCurrSnrMgn` (SNR margin) and `adslAturCurrAtn`
//!   (attenuation), both in **tenths of a dB** on the wire and reported here in dB, and the
//!   channel sync rates `adslAtucChanCurrTxRate` (downstream) / `adslAturChanCurrTxRate`
//!   (upstream) in bit/s, reported in kbit/s. VDSL2 modems are read through the same tables (most
//!   expose them for the line); VDSL2-LINE-MIB (RFC 5650) is not read yet;
//! - DOCSIS-IF-MIB `docsIfSigQSignalNoise` (downstream SNR, tenths of a dB → dB) and the
//!   `docsIfSigQUncorrectables` codeword **rate**.
//!
//! `snmp2` sends single requests; the walk (GETBULK loop with a per-request timeout, retries and
//! a row cap) is here. Community strings and passwords are never logged or put in evidence.

use super::{Context, Observation, check_settings, common_problems};
use crate::config::{AgentConfig, Problem};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use snmp2::{AsyncSession, Oid, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "line_down",
    "line_errors_high",
    "line_mib_missing",
    "snr_margin_low",
    "attenuation_high",
    "sync_rate_low",
    "docsis_snr_low",
    "uncorrectables_high",
    "modem_unreachable",
    "modem_target_invalid",
    "snmp_auth_failed",
    "snmp_secret_unreadable",
    "snmp_error",
];

/// A secret from the config file; never printed.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(empty)"
        } else {
            "Secret(***)"
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SnmpVersion {
    #[serde(rename = "v2c")]
    V2c,
    #[serde(rename = "v3")]
    V3,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecurityLevel {
    AuthPriv,
    AuthNoPriv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthProtocol {
    Md5,
    Sha,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivProtocol {
    Des,
    Aes,
    Aes192,
    Aes256,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineType {
    Adsl,
    Vdsl,
    Docsis,
    /// Whatever line MIB the modem serves.
    Auto,
}

/// `[checks.modem_snmp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModemSnmpConfig {
    /// Off by default: needs the modem's management address and credentials.
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The modem's SNMP agent, `IP` or `IP:PORT` (port 161 by default). Required when enabled.
    pub target: String,
    pub version: SnmpVersion,
    /// v2c community (prefer `community_file`).
    pub community: Secret,
    /// File holding the v2c community (first line); overrides `community`.
    pub community_file: Option<PathBuf>,
    /// v3 user name.
    pub user: String,
    pub security_level: SecurityLevel,
    pub auth_protocol: AuthProtocol,
    pub auth_password: Secret,
    pub auth_password_file: Option<PathBuf>,
    pub priv_protocol: PrivProtocol,
    pub priv_password: Secret,
    pub priv_password_file: Option<PathBuf>,
    pub line_type: LineType,
    /// ifIndexes of the line interfaces. Empty: those the line MIB tables are indexed by.
    pub line_if_indexes: Vec<u32>,
    /// Wait for one SNMP response.
    pub timeout_ms: u64,
    /// Further attempts after a timeout, per request.
    pub retries: u32,
    /// GETBULK max-repetitions.
    pub max_repetitions: u32,
    /// Most rows one table walk reads.
    pub max_rows: usize,
    /// DSL SNR margin (dB) below which the line is `degraded`.
    pub min_snr_margin_db: f64,
    /// DSL SNR margin (dB) below which the line is `failed` (retrains are imminent).
    pub critical_snr_margin_db: f64,
    /// DSL attenuation (dB) above which the line is `degraded`.
    pub max_attenuation_db: f64,
    /// Downstream sync rate (kbit/s) below which the line is `degraded`; 0: not checked.
    pub min_downstream_kbps: u64,
    /// Upstream sync rate (kbit/s) below which the line is `degraded`; 0: not checked.
    pub min_upstream_kbps: u64,
    /// DOCSIS downstream SNR (dB) below which the line is `degraded`.
    pub min_docsis_snr_db: f64,
    /// DOCSIS downstream SNR (dB) below which the line is `failed`.
    pub critical_docsis_snr_db: f64,
    /// DOCSIS uncorrectable codewords per minute (all channels) above which: `degraded`.
    pub max_uncorrectables_per_min: f64,
    /// ifInErrors per minute (line interfaces) above which: `degraded`.
    pub max_in_errors_per_min: f64,
}

impl Default for ModemSnmpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            fail_threshold: 2,
            ok_threshold: 2,
            target: String::new(),
            version: SnmpVersion::V2c,
            community: Secret::new("public"),
            community_file: None,
            user: String::new(),
            security_level: SecurityLevel::AuthPriv,
            auth_protocol: AuthProtocol::Sha,
            auth_password: Secret::default(),
            auth_password_file: None,
            priv_protocol: PrivProtocol::Aes,
            priv_password: Secret::default(),
            priv_password_file: None,
            line_type: LineType::Auto,
            line_if_indexes: Vec::new(),
            timeout_ms: 1000,
            retries: 2,
            max_repetitions: 16,
            max_rows: 512,
            min_snr_margin_db: 6.0,
            critical_snr_margin_db: 3.0,
            max_attenuation_db: 55.0,
            min_downstream_kbps: 0,
            min_upstream_kbps: 0,
            min_docsis_snr_db: 30.0,
            critical_docsis_snr_db: 25.0,
            max_uncorrectables_per_min: 60.0,
            max_in_errors_per_min: 60.0,
        }
    }
}

check_settings!(ModemSnmpConfig);

/// `IP` or `IP:PORT` (`[v6]:PORT`), port 161 by default.
pub fn parse_target(s: &str) -> Option<SocketAddr> {
    s.parse::<SocketAddr>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 161)))
}

impl ModemSnmpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        let f = |k: &str| format!("checks.modem_snmp.{k}");
        common_problems(
            "modem_snmp",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.enabled && self.target.is_empty() {
            out.push(Problem::new(
                f("target"),
                "the modem's address is required when the check is enabled",
            ));
        } else if !self.target.is_empty() && parse_target(&self.target).is_none() {
            out.push(Problem::new(
                f("target"),
                format!("{:?} is not IP or IP:PORT", self.target),
            ));
        }
        let both = |inline: &Secret, file: &Option<PathBuf>| !inline.is_empty() && file.is_some();
        if both(&self.auth_password, &self.auth_password_file) {
            out.push(Problem::new(
                f("auth_password"),
                "set auth_password or auth_password_file, not both",
            ));
        }
        if both(&self.priv_password, &self.priv_password_file) {
            out.push(Problem::new(
                f("priv_password"),
                "set priv_password or priv_password_file, not both",
            ));
        }
        match self.version {
            SnmpVersion::V2c => {
                if self.community.is_empty() && self.community_file.is_none() {
                    out.push(Problem::new(
                        f("community"),
                        "v2c needs community or community_file",
                    ));
                }
            }
            SnmpVersion::V3 if self.enabled => {
                if self.user.is_empty() || self.user.len() > 32 {
                    out.push(Problem::new(f("user"), "v3 needs a user of 1 to 32 bytes"));
                }
                if self.auth_password_file.is_none() && self.auth_password.0.len() < 8 {
                    out.push(Problem::new(
                        f("auth_password"),
                        "v3 needs auth_password (at least 8 characters) or auth_password_file",
                    ));
                }
                if self.security_level == SecurityLevel::AuthPriv
                    && self.priv_password_file.is_none()
                    && self.priv_password.0.len() < 8
                {
                    out.push(Problem::new(
                        f("priv_password"),
                        "authPriv needs priv_password (at least 8 characters) or priv_password_file",
                    ));
                }
            }
            SnmpVersion::V3 => {}
        }
        if self.line_if_indexes.contains(&0) {
            out.push(Problem::new(
                f("line_if_indexes"),
                "ifIndex 0 does not exist",
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            out.push(Problem::new(f("timeout_ms"), "must be between 1 and 10000"));
        }
        if self.retries > 5 {
            out.push(Problem::new(f("retries"), "must be at most 5"));
        }
        if self.max_repetitions == 0 || self.max_repetitions > 100 {
            out.push(Problem::new(
                f("max_repetitions"),
                "must be between 1 and 100",
            ));
        }
        if self.max_rows == 0 || self.max_rows > 10_000 {
            out.push(Problem::new(f("max_rows"), "must be between 1 and 10000"));
        }
        let db = |v: f64| v.is_finite() && (-64.0..=64.0).contains(&v);
        if !db(self.min_snr_margin_db) || !db(self.critical_snr_margin_db) {
            out.push(Problem::new(
                f("min_snr_margin_db"),
                "SNR margins must be between -64 and 64 dB",
            ));
        } else if self.critical_snr_margin_db > self.min_snr_margin_db {
            out.push(Problem::new(
                f("critical_snr_margin_db"),
                "must not be above min_snr_margin_db",
            ));
        }
        if !(self.max_attenuation_db.is_finite()
            && (0.0..=100.0).contains(&self.max_attenuation_db))
        {
            out.push(Problem::new(
                f("max_attenuation_db"),
                "must be between 0 and 100 dB",
            ));
        }
        let snr = |v: f64| v.is_finite() && (0.0..=100.0).contains(&v);
        if !snr(self.min_docsis_snr_db) || !snr(self.critical_docsis_snr_db) {
            out.push(Problem::new(
                f("min_docsis_snr_db"),
                "DOCSIS SNR thresholds must be between 0 and 100 dB",
            ));
        } else if self.critical_docsis_snr_db > self.min_docsis_snr_db {
            out.push(Problem::new(
                f("critical_docsis_snr_db"),
                "must not be above min_docsis_snr_db",
            ));
        }
        for (k, v) in [
            (
                "max_uncorrectables_per_min",
                self.max_uncorrectables_per_min,
            ),
            ("max_in_errors_per_min", self.max_in_errors_per_min),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                out.push(Problem::new(f(k), "must be a number ≥ 0"));
            }
        }
    }
}

// --- OIDs -------------------------------------------------------------------------------------

/// IF-MIB ifType.
pub const IF_TYPE: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 3];
/// IF-MIB ifOperStatus (1 up, 2 down, ...).
pub const IF_OPER_STATUS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 8];
/// IF-MIB ifInErrors (Counter32).
pub const IF_IN_ERRORS: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1, 14];
/// ADSL-LINE-MIB adslAturCurrSnrMgn (INTEGER, tenths of dB).
pub const ADSL_SNR_MARGIN: &[u64] = &[1, 3, 6, 1, 2, 1, 10, 94, 1, 1, 3, 1, 4];
/// ADSL-LINE-MIB adslAturCurrAtn (Gauge32, tenths of dB).
pub const ADSL_ATTENUATION: &[u64] = &[1, 3, 6, 1, 2, 1, 10, 94, 1, 1, 3, 1, 5];
/// ADSL-LINE-MIB adslAtucChanCurrTxRate: the ATU-C's transmit rate = downstream (bit/s).
pub const ADSL_DOWN_RATE: &[u64] = &[1, 3, 6, 1, 2, 1, 10, 94, 1, 1, 4, 1, 2];
/// ADSL-LINE-MIB adslAturChanCurrTxRate: the ATU-R's transmit rate = upstream (bit/s).
pub const ADSL_UP_RATE: &[u64] = &[1, 3, 6, 1, 2, 1, 10, 94, 1, 1, 5, 1, 2];
/// DOCSIS-IF-MIB docsIfSigQSignalNoise (TenthdB).
pub const DOCSIS_SNR: &[u64] = &[1, 3, 6, 1, 2, 1, 10, 127, 1, 1, 4, 1, 5];
/// DOCSIS-IF-MIB docsIfSigQUncorrectables (Counter32).
pub const DOCSIS_UNCORRECTABLES: &[u64] = &[1, 3, 6, 1, 2, 1, 10, 127, 1, 1, 4, 1, 4];

/// A value of a table cell, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Int(i64),
    Other(String),
}

impl Val {
    fn from_snmp(v: &Value<'_>) -> Val {
        match v {
            Value::Integer(i) => Val::Int(*i),
            Value::Counter32(u) | Value::Unsigned32(u) | Value::Timeticks(u) => {
                Val::Int(i64::from(*u))
            }
            Value::Counter64(u) => Val::Int(i64::try_from(*u).unwrap_or(i64::MAX)),
            other => Val::Other(format!("{other:?}")),
        }
    }
}

/// One walked table column: the last index arc (ifIndex for every table read here) → value.
pub fn column(rows: &[(Vec<u64>, Val)], base: &[u64]) -> BTreeMap<u32, i64> {
    rows.iter()
        .filter_map(|(oid, v)| {
            let idx = oid.strip_prefix(base)?;
            let (&last, _) = idx.split_last()?;
            match v {
                Val::Int(i) => Some((u32::try_from(last).ok()?, *i)),
                Val::Other(_) => None,
            }
        })
        .collect()
}

/// What the modem said, one map per column, keyed by ifIndex. Raw units (tenths of dB, bit/s).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LineReading {
    pub if_type: BTreeMap<u32, i64>,
    pub oper_status: BTreeMap<u32, i64>,
    pub in_errors: BTreeMap<u32, i64>,
    pub adsl_snr_margin_tenth_db: BTreeMap<u32, i64>,
    pub adsl_attenuation_tenth_db: BTreeMap<u32, i64>,
    pub adsl_down_bps: BTreeMap<u32, i64>,
    pub adsl_up_bps: BTreeMap<u32, i64>,
    pub docsis_snr_tenth_db: BTreeMap<u32, i64>,
    pub docsis_uncorrectables: BTreeMap<u32, i64>,
}

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

/// Why the modem could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnmpError {
    #[error("no response from {0} (after retries)")]
    Timeout(SocketAddr),
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("cannot read a secret: {0}")]
    Secret(String),
    #[error("SNMP error: {0}")]
    Protocol(String),
}

#[derive(Debug, Clone)]
pub struct ModemSnmpCheck {
    pub config: ModemSnmpConfig,
    /// The previous counter sample (error-counter rates need two).
    prev: Arc<Mutex<Option<Sample>>>,
}

impl ModemSnmpCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.modem_snmp.clone(),
            prev: Arc::default(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        let c = &self.config;
        let Some(target) = parse_target(&c.target) else {
            return Observation::new(
                CheckId::ModemSnmp,
                CheckStatus::Unknown,
                "modem_target_invalid",
                format!("checks.modem_snmp.target {:?} is not IP[:PORT]", c.target),
            )
            .category(Category::LocalMisconfig);
        };
        let started = Instant::now();
        let reading = read_modem(c, target).await;
        let now = Instant::now();
        let reading = match reading {
            Ok(r) => r,
            Err(e) => return unreadable(c, target, &e),
        };
        let prev = {
            let mut slot = self
                .prev
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.replace(Sample {
                at: now,
                in_errors: reading.in_errors.clone(),
                uncorrectables: reading.docsis_uncorrectables.clone(),
            })
        };
        judge(c, &reading, prev.as_ref(), now)
            .evidence("target", target)
            .evidence(
                "snmp_version",
                match c.version {
                    SnmpVersion::V2c => "v2c",
                    SnmpVersion::V3 => "v3",
                },
            )
            .evidence("read_ms", now.duration_since(started).as_millis())
    }
}

fn unreadable(c: &ModemSnmpConfig, target: SocketAddr, e: &SnmpError) -> Observation {
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

// --- SNMP I/O ---------------------------------------------------------------------------------

/// Reads a secret: the file (first line, trailing newline removed) when given, else inline.
fn secret(inline: &Secret, file: &Option<PathBuf>, what: &str) -> Result<Vec<u8>, SnmpError> {
    match file {
        Some(p) => std::fs::read_to_string(p)
            .map(|t| t.lines().next().unwrap_or("").as_bytes().to_vec())
            .map_err(|e| SnmpError::Secret(format!("{what} file {}: {}", p.display(), e.kind()))),
        None => Ok(inline.0.as_bytes().to_vec()),
    }
}

/// A session with retries; owns the socket for the duration of one check run.
struct Client {
    sess: AsyncSession,
    target: SocketAddr,
    timeout: Duration,
    retries: u32,
    max_repetitions: u32,
    /// Requests sent, for the evidence.
    requests: u32,
}

fn snmp_err(e: snmp2::Error) -> SnmpError {
    match e {
        snmp2::Error::AuthFailure(k) => SnmpError::Auth(format!("{k:?}")),
        other => SnmpError::Protocol(format!("{other:?}")),
    }
}

fn to_oid(arcs: &[u64]) -> Result<Oid<'static>, SnmpError> {
    Oid::from(arcs).map_err(|e| SnmpError::Protocol(format!("bad OID {arcs:?}: {e:?}")))
}

impl Client {
    async fn connect(c: &ModemSnmpConfig, target: SocketAddr) -> Result<Client, SnmpError> {
        let timeout = Duration::from_millis(c.timeout_ms);
        let req_id = i32::from(std::process::id() as u16);
        let io = |e: std::io::Error| SnmpError::Protocol(format!("socket: {e}"));
        let sess = match c.version {
            SnmpVersion::V2c => {
                let community = secret(&c.community, &c.community_file, "community")?;
                AsyncSession::new_v2c(target, &community, req_id)
                    .await
                    .map_err(io)?
            }
            SnmpVersion::V3 => {
                use snmp2::v3;
                let auth_pw = secret(&c.auth_password, &c.auth_password_file, "auth_password")?;
                let proto = match c.auth_protocol {
                    AuthProtocol::Md5 => v3::AuthProtocol::Md5,
                    AuthProtocol::Sha => v3::AuthProtocol::Sha1,
                    AuthProtocol::Sha224 => v3::AuthProtocol::Sha224,
                    AuthProtocol::Sha256 => v3::AuthProtocol::Sha256,
                    AuthProtocol::Sha384 => v3::AuthProtocol::Sha384,
                    AuthProtocol::Sha512 => v3::AuthProtocol::Sha512,
                };
                let mut sec =
                    v3::Security::new(c.user.as_bytes(), &auth_pw).with_auth_protocol(proto);
                if c.security_level == SecurityLevel::AuthPriv {
                    let priv_pw = secret(&c.priv_password, &c.priv_password_file, "priv_password")?;
                    let cipher = match c.priv_protocol {
                        PrivProtocol::Des => v3::Cipher::Des,
                        PrivProtocol::Aes => v3::Cipher::Aes128,
                        PrivProtocol::Aes192 => v3::Cipher::Aes192,
                        PrivProtocol::Aes256 => v3::Cipher::Aes256,
                    };
                    if cipher.priv_key_needs_extension(&proto) {
                        // net-snmp's AES-192/256 key localisation.
                        sec = sec.with_key_extension_method(v3::KeyExtension::Blumenthal);
                    }
                    sec = sec.with_auth(v3::Auth::AuthPriv {
                        cipher,
                        privacy_password: priv_pw,
                    });
                }
                let mut sess = AsyncSession::new_v3(target, req_id, sec)
                    .await
                    .map_err(io)?;
                // Engine discovery, with the same timeout and retries as any request.
                let mut attempt = 0;
                loop {
                    match tokio::time::timeout(timeout, sess.init()).await {
                        Ok(Ok(())) => break,
                        Ok(Err(snmp2::Error::AuthFailure(k))) => {
                            return Err(SnmpError::Auth(format!("{k:?}")));
                        }
                        Ok(Err(e)) if attempt >= c.retries => return Err(snmp_err(e)),
                        Err(_) if attempt >= c.retries => return Err(SnmpError::Timeout(target)),
                        _ => attempt += 1,
                    }
                }
                sess
            }
        };
        Ok(Client {
            sess,
            target,
            timeout,
            retries: c.retries,
            max_repetitions: c.max_repetitions,
            requests: 0,
        })
    }

    /// One GETBULK from `from`, retried after timeouts and stale replies.
    async fn bulk(&mut self, from: &[u64]) -> Result<Vec<(Vec<u64>, Val)>, SnmpError> {
        let oid = to_oid(from)?;
        let mut attempt = 0;
        loop {
            self.requests += 1;
            let res = tokio::time::timeout(
                self.timeout,
                self.sess.getbulk(&[&oid], 0, self.max_repetitions),
            )
            .await;
            let retryable = match res {
                Ok(Ok(pdu)) => {
                    if pdu.error_status != 0 {
                        return Err(SnmpError::Protocol(format!(
                            "error-status {} at index {}",
                            pdu.error_status, pdu.error_index
                        )));
                    }
                    let mut out = Vec::new();
                    for (name, value) in pdu.varbinds {
                        let Some(arcs) = name.iter() else {
                            return Err(SnmpError::Protocol("OID arc too large".into()));
                        };
                        let arcs: Vec<u64> = arcs.collect();
                        let end = matches!(
                            value,
                            Value::EndOfMibView | Value::NoSuchObject | Value::NoSuchInstance
                        );
                        out.push((
                            arcs,
                            if end {
                                Val::Other("end".into())
                            } else {
                                Val::from_snmp(&value)
                            },
                        ));
                        if end {
                            break;
                        }
                    }
                    return Ok(out);
                }
                // A late reply to an abandoned request, or the v3 engine clock was resynced.
                Ok(Err(snmp2::Error::RequestIdMismatch | snmp2::Error::AuthUpdated)) => true,
                Ok(Err(snmp2::Error::Receive)) => true,
                Ok(Err(e)) => return Err(snmp_err(e)),
                Err(_) => true,
            };
            if !retryable || attempt >= self.retries {
                return Err(SnmpError::Timeout(self.target));
            }
            attempt += 1;
        }
    }

    /// Every row of the subtree `base`, in order; bounded by `max_rows`.
    async fn walk(
        &mut self,
        base: &[u64],
        max_rows: usize,
    ) -> Result<Vec<(Vec<u64>, Val)>, SnmpError> {
        let mut rows: Vec<(Vec<u64>, Val)> = Vec::new();
        let mut cur = base.to_vec();
        loop {
            let batch = self.bulk(&cur).await?;
            if batch.is_empty() {
                return Ok(rows);
            }
            for (oid, v) in batch {
                if !oid.starts_with(base) || v == Val::Other("end".into()) {
                    return Ok(rows);
                }
                if oid <= cur {
                    return Err(SnmpError::Protocol(format!(
                        "agent returned OIDs out of order after {}",
                        dotted(&cur)
                    )));
                }
                cur.clone_from(&oid);
                rows.push((oid, v));
                if rows.len() >= max_rows {
                    return Ok(rows);
                }
            }
        }
    }
}

fn dotted(arcs: &[u64]) -> String {
    arcs.iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// Walks the columns the line type needs.
async fn read_modem(c: &ModemSnmpConfig, target: SocketAddr) -> Result<LineReading, SnmpError> {
    let mut cl = Client::connect(c, target).await?;
    let mut r = LineReading::default();
    let get = async |cl: &mut Client, base: &[u64]| -> Result<BTreeMap<u32, i64>, SnmpError> {
        Ok(column(&cl.walk(base, c.max_rows).await?, base))
    };
    r.oper_status = get(&mut cl, IF_OPER_STATUS).await?;
    r.if_type = get(&mut cl, IF_TYPE).await?;
    r.in_errors = get(&mut cl, IF_IN_ERRORS).await?;
    if matches!(
        c.line_type,
        LineType::Adsl | LineType::Vdsl | LineType::Auto
    ) {
        r.adsl_snr_margin_tenth_db = get(&mut cl, ADSL_SNR_MARGIN).await?;
        r.adsl_attenuation_tenth_db = get(&mut cl, ADSL_ATTENUATION).await?;
        r.adsl_down_bps = get(&mut cl, ADSL_DOWN_RATE).await?;
        r.adsl_up_bps = get(&mut cl, ADSL_UP_RATE).await?;
    }
    if matches!(c.line_type, LineType::Docsis | LineType::Auto) {
        r.docsis_snr_tenth_db = get(&mut cl, DOCSIS_SNR).await?;
        r.docsis_uncorrectables = get(&mut cl, DOCSIS_UNCORRECTABLES).await?;
    }
    log::debug!("modem_snmp: {} requests to {}", cl.requests, cl.target);
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
