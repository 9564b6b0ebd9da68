//! `clock`: skew of the router's clock against the collector's `Date` header.
//!
//! A router without a battery-backed clock boots in 1970 (or at its build date) until NTP
//! answers; a wrong clock breaks TLS (certificates "not yet valid"), makes incident timestamps
//! lie and lets tokens expire. The reference is the collector: a fresh sample recorded by the
//! reporter is used when there is one, otherwise the check makes a small GET to `url` itself.
//! The header has one-second precision and arrives after up to one round trip, so the skew is
//! judged with that uncertainty subtracted.

use super::{Context, Observation, check_settings, common_problems, now};
use crate::context::ClockSample;
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity, Timestamp};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &["clock_skew", "no_time_reference"];

/// `[checks.clock]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClockConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Largest tolerated difference from the reference clock.
    pub max_skew_secs: u64,
    /// The reference: any HTTP URL whose response carries a `Date` header. Empty = the
    /// collector's `/healthz`.
    pub url: String,
    /// Timeout of that request.
    pub timeout_ms: u64,
    /// A reporter's sample younger than this is used instead of a request of our own.
    pub sample_max_age_secs: u64,
}

impl Default for ClockConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 300,
            fail_threshold: 2,
            ok_threshold: 1,
            max_skew_secs: 60,
            url: String::new(),
            timeout_ms: 5000,
            sample_max_age_secs: 600,
        }
    }
}

check_settings!(ClockConfig);

impl ClockConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "clock",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.max_skew_secs == 0 || self.max_skew_secs > 86_400 {
            out.push(Problem::new(
                "checks.clock.max_skew_secs",
                "must be between 1 and 86400",
            ));
        }
        let http = self.url.starts_with("http://") || self.url.starts_with("https://");
        if !self.url.is_empty() && !http {
            out.push(Problem::new(
                "checks.clock.url",
                format!("{:?} must be empty or an http:// or https:// URL", self.url),
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            out.push(Problem::new(
                "checks.clock.timeout_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.sample_max_age_secs > 86_400 {
            out.push(Problem::new(
                "checks.clock.sample_max_age_secs",
                "must be at most 86400",
            ));
        }
    }
}

/// Parses an HTTP-date in its preferred form, IMF-fixdate (RFC 9110 §5.6.7):
/// `Sun, 06 Nov 1994 08:49:37 GMT`. The obsolete RFC 850 and asctime forms are refused.
pub fn parse_http_date(s: &str) -> Option<Timestamp> {
    let b = s.trim().as_bytes();
    if b.len() != 29 || &b[3..5] != b", " || &b[25..] != b" GMT" {
        return None;
    }
    const DAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let weekday = DAYS.iter().position(|d| *d == &b[..3])?;
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(r)?;
        digits.iter().all(u8::is_ascii_digit).then(|| {
            digits
                .iter()
                .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
        })
    };
    let sep = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(sep(7, b' ') && sep(11, b' ') && sep(16, b' ') && sep(19, b':') && sep(22, b':')) {
        return None;
    }
    let day = num(5..7)?;
    let month = MONTHS.iter().position(|m| *m == &b[8..11])? as i64 + 1;
    let year = num(12..16)?;
    let (h, mi, sec) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let month_len = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if day < 1 || day > month_len[(month - 1) as usize] || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // 1970-01-01 was a Thursday (index 3 with Monday = 0).
    if (days + 3).rem_euclid(7) != weekday as i64 {
        return None;
    }
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec.min(59);
    Timestamp::from_unix_millis(secs.checked_mul(1000)?)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Our clock minus the reference's, in milliseconds (positive: we are ahead), and the
/// uncertainty of that figure: the header is truncated to the second (+0.5 s on average) and
/// was stamped somewhere during the round trip (+rtt/2).
pub fn skew_ms(s: &ClockSample) -> (i64, i64) {
    let half_rtt = i64::try_from(s.rtt_ms / 2).unwrap_or(i64::MAX / 4);
    let reference_at_receipt = s.server.unix_millis() + 500 + half_rtt;
    (s.local.unix_millis() - reference_at_receipt, 500 + half_rtt)
}

#[derive(Debug, Clone)]
pub struct ClockCheck {
    pub config: ClockConfig,
    pub url: String,
}

impl ClockCheck {
    pub fn new(site: &Site, config: &ClockConfig) -> Self {
        let c = config.clone();
        let url = if c.url.is_empty() {
            format!("{}/healthz", site.collector_url.trim_end_matches('/'))
        } else {
            c.url.clone()
        };
        Self { config: c, url }
    }

    /// One GET to the reference; the sample of its `Date` header.
    async fn sample(&self) -> Result<ClockSample, String> {
        let client =
            crate::tls::client_for(&self.url, Duration::from_millis(self.config.timeout_ms))
                .map_err(|e| e.to_string())?;
        let started = Instant::now();
        let resp = client
            .get(&self.url)
            .await
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        let local = now();
        let rtt_ms = started.elapsed().as_millis() as u64;
        let date = resp
            .headers()
            .get(crate::httpc::header::DATE)
            .ok_or_else(|| {
                format!(
                    "{} answered {} without a Date header",
                    self.url,
                    resp.status()
                )
            })?
            .to_str()
            .map_err(|_| "Date header is not text".to_string())?;
        let server = parse_http_date(date)
            .ok_or_else(|| format!("Date header {date:?} is not an IMF-fixdate"))?;
        Ok(ClockSample {
            server,
            local,
            rtt_ms,
        })
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let c = &self.config;
        let threshold = format!("|skew| ≤ {} s", c.max_skew_secs);
        let max_age_ms = i64::try_from(c.sample_max_age_secs * 1000).unwrap_or(i64::MAX);
        let fresh = ctx
            .shared
            .clock_sample()
            .filter(|s| (0..=max_age_ms).contains(&now().millis_since(s.local)));
        let (sample, source) = match fresh {
            Some(s) => (s, "reporter".to_string()),
            None => match self.sample().await {
                Ok(s) => {
                    ctx.shared.set_clock_sample(s);
                    (s, self.url.clone())
                }
                Err(e) => {
                    return Observation::new(
                        CheckId::Clock,
                        CheckStatus::Unknown,
                        "no_time_reference",
                        format!("no reference clock answered: {e}"),
                    )
                    .category(Category::DeviceHealth)
                    .threshold(threshold)
                    .evidence("url", &self.url)
                    .hint("the collector is unreachable; icmp, dns and http tell why");
                }
            },
        };
        let (skew, uncertainty) = skew_ms(&sample);
        let excess = skew.abs() - uncertainty;
        let skew_secs = skew as f64 / 1000.0;
        let limit_ms = i64::try_from(c.max_skew_secs * 1000).unwrap_or(i64::MAX);
        let o = if excess > limit_ms {
            Observation::new(
                CheckId::Clock,
                CheckStatus::Failed,
                "clock_skew",
                format!(
                    "the clock is {:.0} s {} the reference",
                    skew_secs.abs(),
                    if skew > 0 { "ahead of" } else { "behind" }
                ),
            )
            .severity(Severity::Major)
            .hint("NTP is not working (blocked UDP 123, no DNS at boot, no RTC); TLS and timestamps break")
        } else {
            Observation::ok(
                CheckId::Clock,
                format!("clock within {:.1} s of the reference", skew_secs.abs()),
            )
        };
        o.category(Category::DeviceHealth)
            .value(format!(
                "skew {skew_secs:+.1} s (±{:.1} s)",
                uncertainty as f64 / 1000.0
            ))
            .threshold(threshold)
            .evidence("skew_secs", format!("{skew_secs:.1}"))
            .evidence("uncertainty_ms", uncertainty)
            .evidence("reference_date", sample.server)
            .evidence("local_time", sample.local)
            .evidence("rtt_ms", sample.rtt_ms)
            .evidence("source", source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_imf_fixdate() {
        let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.unix_secs(), 784_111_777);
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Timestamp::EPOCH)
        );
        let t = parse_http_date("Tue, 29 Feb 2028 23:59:59 GMT").unwrap();
        assert_eq!(t.to_string(), "2028-02-29T23:59:59.000Z");
        for bad in [
            "Sunday, 06-Nov-94 08:49:37 GMT", // RFC 850
            "Sun Nov  6 08:49:37 1994",       // asctime
            "Mon, 06 Nov 1994 08:49:37 GMT",  // wrong weekday
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:3x GMT",
            "Wed, 29 Feb 2023 00:00:00 GMT",
            "",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn skew_accounts_for_truncation_and_rtt() {
        let at = |ms| Timestamp::from_unix_millis(ms).unwrap();
        let s = ClockSample {
            server: at(1_000_000),
            local: at(1_000_600),
            rtt_ms: 200,
        };
        assert_eq!(skew_ms(&s), (0, 600));
        let s = ClockSample {
            server: at(4_600_000),
            local: at(1_000_000),
            rtt_ms: 0,
        };
        assert_eq!(skew_ms(&s).0, -3_600_500, "an hour behind");
    }

    #[test]
    fn config_problems() {
        let mut p = Vec::new();
        ClockConfig::default().problems(&mut p);
        assert!(p.is_empty(), "{p:?}");
        ClockConfig {
            max_skew_secs: 0,
            url: "ftp://x".into(),
            ..ClockConfig::default()
        }
        .problems(&mut p);
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(f, ["checks.clock.max_skew_secs", "checks.clock.url"]);
    }
}
