//! `Timestamp`: a UTC instant with millisecond precision, RFC 3339 on the wire.
//!
//! Written by hand (civil-from-days arithmetic) so the agent does not carry a date library.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Milliseconds since the Unix epoch, UTC. Serialized as `2026-11-23T08:55:31.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Earliest accepted instant (1970-01-01) and latest (9999-12-31): anything outside is a bug or hostile.
const MAX_MILLIS: i64 = 253_402_300_799_999;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid RFC 3339 timestamp {input:?}: {reason}")]
pub struct TimestampError {
    input: String,
    reason: &'static str,
}

impl Timestamp {
    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// Builds a timestamp from Unix milliseconds; `None` when out of the supported range.
    pub fn from_unix_millis(ms: i64) -> Option<Self> {
        (0..=MAX_MILLIS).contains(&ms).then_some(Self(ms))
    }

    pub fn unix_millis(self) -> i64 {
        self.0
    }

    pub fn unix_secs(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Milliseconds from `earlier` to `self` (negative when `self` is earlier).
    pub fn millis_since(self, earlier: Timestamp) -> i64 {
        self.0 - earlier.0
    }

    /// Adds a (possibly negative) number of milliseconds, saturating at the supported range.
    pub fn add_millis(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms).clamp(0, MAX_MILLIS))
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400_000);
        let rem = self.0.rem_euclid(86_400_000);
        let (y, m, d) = civil_from_days(days);
        let (h, mi, s, ms) = (
            rem / 3_600_000,
            rem / 60_000 % 60,
            rem / 1000 % 60,
            rem % 1000,
        );
        write!(f, "{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    /// Accepts `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`; fractions beyond milliseconds are truncated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| TimestampError {
            input: s.chars().take(64).collect(),
            reason,
        };
        let b = s.as_bytes();
        if b.len() < 20 || !s.is_ascii() {
            return Err(err("too short"));
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, TimestampError> {
            let part = &s[r];
            if part.bytes().all(|c| c.is_ascii_digit()) {
                part.parse::<i64>().map_err(|_| err("bad number"))
            } else {
                Err(err("expected digits"))
            }
        };
        if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
            return Err(err("expected YYYY-MM-DDTHH:MM:SS"));
        }
        if b[13] != b':' || b[16] != b':' {
            return Err(err("expected HH:MM:SS"));
        }
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
            return Err(err("date out of range"));
        }
        if h > 23 || mi > 59 || sec > 60 {
            return Err(err("time out of range"));
        }
        let mut i = 19;
        let mut ms = 0i64;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                if i - start < 3 {
                    ms = ms * 10 + i64::from(b[i] - b'0');
                }
                i += 1;
            }
            if i == start {
                return Err(err("empty fraction"));
            }
            for _ in (i - start)..3 {
                ms *= 10;
            }
        }
        let offset_secs = match &s[i..] {
            "Z" | "z" => 0,
            tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
                if tz.as_bytes()[3] != b':' {
                    return Err(err("bad offset"));
                }
                let oh = num(i + 1..i + 3)?;
                let om = num(i + 4..i + 6)?;
                if oh > 23 || om > 59 {
                    return Err(err("offset out of range"));
                }
                let sign = if tz.starts_with('-') { -1 } else { 1 };
                sign * (oh * 3600 + om * 60)
            }
            _ => return Err(err("expected Z or ±HH:MM offset")),
        };
        let secs =
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec.min(59) - offset_secs;
        Timestamp::from_unix_millis(secs * 1000 + ms).ok_or_else(|| err("outside 1970..9999"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_instants() {
        let t: Timestamp = "2026-11-23T08:55:31.123Z".parse().unwrap();
        assert_eq!(t.unix_millis(), 1_795_424_131_123);
        assert_eq!(t.to_string(), "2026-11-23T08:55:31.123Z");
        let t: Timestamp = "2024-02-29T23:00:00+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2024-02-29T22:00:00.000Z");
        assert_eq!(
            "1970-01-01T00:00:00Z"
                .parse::<Timestamp>()
                .unwrap()
                .unix_millis(),
            0
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "1969-12-31T23:59:59Z",
            "2026-01-01T00:00:00+0100",
            "２０２６-01-01T00:00:00Z",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(ms in 0i64..=MAX_MILLIS) {
            let t = Timestamp::from_unix_millis(ms).unwrap();
            prop_assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        }
    }
}
