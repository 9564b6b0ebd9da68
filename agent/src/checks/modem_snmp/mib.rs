//! The MIB objects read from the modem (IF-MIB, ADSL-LINE-MIB, DOCSIS-IF-MIB) and the reading
//! they make: one column per object, keyed by ifIndex, in the wire's raw units.

use snmp2::Value;
use std::collections::BTreeMap;

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
    pub(super) fn from_snmp(v: &Value<'_>) -> Val {
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
