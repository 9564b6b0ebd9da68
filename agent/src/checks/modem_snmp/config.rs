//! `[checks.modem_snmp]`: target, SNMP version and credentials (secrets never printed), line
//! type and thresholds, and their validation.

use crate::checks::{check_settings, common_problems};
use crate::site::Problem;
use serde::Deserialize;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// A secret from the config file; never printed.
#[derive(Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub(super) String);

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
