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
//!
//! `config` holds `[checks.modem_snmp]`, `mib` the objects read, `snmp` the session and walk,
//! `judge` the verdict.

use super::{Context, Observation};
use crate::site::Site;
use netmedic_proto::{Category, CheckId, CheckStatus};
use std::sync::{Arc, Mutex};
use std::time::Instant;

mod config;
mod judge;
mod mib;
mod snmp;
#[cfg(test)]
mod tests;

pub use config::*;
use judge::unreadable;
pub use judge::*;
pub use mib::*;
use snmp::read_modem;
pub use snmp::*;

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

#[derive(Debug, Clone)]
pub struct ModemSnmpCheck {
    pub config: ModemSnmpConfig,
    /// The previous counter sample (error-counter rates need two).
    prev: Arc<Mutex<Option<Sample>>>,
}

impl ModemSnmpCheck {
    pub fn new(_site: &Site, config: &ModemSnmpConfig) -> Self {
        Self {
            config: config.clone(),
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
