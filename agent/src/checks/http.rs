//! `http`: GET the ISP's probe URL, measure the status and the time to first byte, and detect a
//! captive portal (a redirect, a 511, or a 200 with a login page where the probe answers 204 or a
//! known body).
//!
//! Redirects are never followed: a redirect is the portal's signature, so it is reported with its
//! `Location`. The agent is built without TLS for now, so the probe URL must be `http://` (a
//! captive-portal probe is plain HTTP anyway, since a portal cannot intercept HTTPS cleanly).
//! The time to first byte is measured from sending the request to the response head's arrival,
//! name resolution and connection set-up included (what a subscriber waits for).

use super::{Context, Observation, check_settings, common_problems};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::time::{Duration, Instant};

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "captive_portal",
    "http_timeout",
    "http_unreachable",
    "http_error",
    "http_slow",
    "http_unexpected_status",
];

/// `[checks.http]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Off by default: the probe URL is the ISP's own.
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The ISP's probe (placeholder: `http://probe.isp.example/generate_204`). `http://` only.
    pub url: String,
    /// The status the probe answers with when nothing is in between.
    pub expected_status: u16,
    /// Text the probe's body must contain (empty: body not checked).
    pub expected_body_contains: String,
    /// The whole request, connection and body included.
    pub timeout_ms: u64,
    /// A slower first byte makes the check `degraded` (`http_slow`).
    pub ttfb_degraded_ms: u64,
    /// Most body bytes read (to look for `expected_body_contains` or a portal page).
    pub max_body_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 60,
            fail_threshold: 2,
            ok_threshold: 2,
            url: "http://probe.isp.example/generate_204".into(),
            expected_status: 204,
            expected_body_contains: String::new(),
            timeout_ms: 5000,
            ttfb_degraded_ms: 1000,
            max_body_bytes: 16 * 1024,
        }
    }
}

check_settings!(HttpConfig);

impl HttpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "http",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        match crate::httpc::Url::parse(&self.url) {
            Ok(u) if !u.https => {}
            Ok(_) => out.push(Problem::new(
                "checks.http.url",
                "https:// is not supported yet (the agent is built without TLS); use an http:// probe",
            )),
            Err(e) => out.push(Problem::new(
                "checks.http.url",
                format!("{:?} is not an http:// URL with a host: {e}", self.url),
            )),
        }
        if !(100..=599).contains(&self.expected_status) {
            out.push(Problem::new(
                "checks.http.expected_status",
                "must be an HTTP status between 100 and 599",
            ));
        }
        if (300..400).contains(&self.expected_status) {
            out.push(Problem::new(
                "checks.http.expected_status",
                "a redirect cannot be the expected answer: redirects are how portals show",
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 60_000 {
            out.push(Problem::new(
                "checks.http.timeout_ms",
                "must be between 1 and 60000",
            ));
        }
        if self.ttfb_degraded_ms == 0 || self.ttfb_degraded_ms >= self.timeout_ms {
            out.push(Problem::new(
                "checks.http.ttfb_degraded_ms",
                "must be at least 1 and below timeout_ms",
            ));
        }
        if self.max_body_bytes == 0 || self.max_body_bytes > 1024 * 1024 {
            out.push(Problem::new(
                "checks.http.max_body_bytes",
                "must be between 1 and 1048576",
            ));
        }
        if self.expected_body_contains.len() > self.max_body_bytes {
            out.push(Problem::new(
                "checks.http.expected_body_contains",
                "longer than max_body_bytes: it could never be found",
            ));
        }
    }
}

/// What the probe request got.
#[derive(Debug, Clone, PartialEq)]
pub enum Fetch {
    Response {
        status: u16,
        ttfb_ms: f64,
        location: Option<String>,
        /// The first `max_body_bytes` of the body, lossy UTF-8.
        body: String,
    },
    /// No response head within the timeout.
    Timeout,
    /// Could not connect (refused, unreachable, name did not resolve).
    Connect(String),
    /// Anything else (protocol error, reset mid-response).
    Error(String),
}

#[derive(Debug, Clone)]
pub struct HttpCheck {
    pub config: HttpConfig,
}

impl HttpCheck {
    pub fn new(_site: &Site, config: &HttpConfig) -> Self {
        Self {
            config: config.clone(),
        }
    }

    pub async fn run(&self, _ctx: &Context) -> Observation {
        judge(&self.config, &self.fetch().await)
    }

    async fn fetch(&self) -> Fetch {
        let c = &self.config;
        // The probe is http:// only (validated): no CA store is read, so none is needed.
        let client = crate::httpc::Client::plain_http(Duration::from_millis(c.timeout_ms));
        let start = Instant::now();
        let mut resp = match client.get(&c.url).await {
            Ok(r) => r,
            Err(e) => return classify(&e),
        };
        let ttfb_ms = start.elapsed().as_secs_f64() * 1000.0;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get(crate::httpc::header::LOCATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let mut body = Vec::new();
        while body.len() < c.max_body_bytes {
            match resp.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) => break,
                // A body cut short still tells what the page was.
                Err(_) => break,
            }
        }
        body.truncate(c.max_body_bytes);
        Fetch::Response {
            status,
            ttfb_ms,
            location,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

fn classify(e: &crate::httpc::HttpError) -> Fetch {
    // The message has the cause (refused, no route, DNS).
    if e.is_timeout() {
        Fetch::Timeout
    } else if e.is_connect() {
        Fetch::Connect(e.to_string())
    } else {
        Fetch::Error(e.to_string())
    }
}

/// At most `n` characters of `s` on one line, control characters replaced (evidence is shown to
/// NOC staff; the collector escapes it, this keeps it readable).
fn snippet(s: &str, n: usize) -> String {
    s.chars()
        .take(n)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The verdict on one fetch; pure so it is unit-tested without a server.
pub fn judge(c: &HttpConfig, f: &Fetch) -> Observation {
    let threshold = format!(
        "status {}{}; first byte within {} ms",
        c.expected_status,
        if c.expected_body_contains.is_empty() {
            String::new()
        } else {
            format!(", body contains {:?}", c.expected_body_contains)
        },
        c.ttfb_degraded_ms
    );
    let obs = match f {
        Fetch::Timeout => Observation::new(
            CheckId::Http,
            CheckStatus::Failed,
            "http_timeout",
            format!("{} did not answer within {} ms", c.url, c.timeout_ms),
        )
        .category(Category::NoInternet)
        .value("timeout")
        .hint("the probe is unreachable: check the icmp and default_route checks"),
        Fetch::Connect(e) => Observation::new(
            CheckId::Http,
            CheckStatus::Failed,
            "http_unreachable",
            format!("cannot connect to {}", c.url),
        )
        .category(Category::NoInternet)
        .value("no connection")
        .hint("the probe refused or could not be reached; if others work, the probe is down")
        .evidence("error", e),
        Fetch::Error(e) => Observation::new(
            CheckId::Http,
            CheckStatus::Failed,
            "http_error",
            format!("request to {} failed", c.url),
        )
        .category(Category::NoInternet)
        .value("error")
        .hint("a broken answer: a middlebox or the probe itself")
        .evidence("error", e),
        Fetch::Response {
            status,
            ttfb_ms,
            location,
            body,
        } => {
            let status = *status;
            let value = format!("{status} in {ttfb_ms:.0} ms");
            let body_ok = c.expected_body_contains.is_empty()
                || body.contains(c.expected_body_contains.as_str());
            let portal = |why: String| {
                Observation::new(CheckId::Http, CheckStatus::Failed, "captive_portal", why)
                    .category(Category::NoInternet)
                    .severity(Severity::Major)
                    .value(value.clone())
                    .hint("something between the CPE and the probe intercepts HTTP (a captive portal or a walled garden): check the account's state")
            };
            let mut o = if (300..400).contains(&status) {
                portal(format!(
                    "the probe was redirected ({status}) to {}",
                    location.as_deref().unwrap_or("(no Location)")
                ))
            } else if status == 511 {
                portal("the network demands authentication (511)".into())
            } else if status == c.expected_status && body_ok {
                if *ttfb_ms > c.ttfb_degraded_ms as f64 {
                    Observation::new(
                        CheckId::Http,
                        CheckStatus::Degraded,
                        "http_slow",
                        format!(
                            "first byte after {ttfb_ms:.0} ms (threshold {} ms)",
                            c.ttfb_degraded_ms
                        ),
                    )
                    .value(value.clone())
                    .hint("the path or the probe is slow: check the icmp check's RTT and loss")
                } else {
                    Observation::ok(CheckId::Http, format!("{} answers {status}", c.url))
                        .value(value.clone())
                }
            } else if status == 200 && c.expected_status != 200 {
                portal(format!(
                    "the probe should answer {} but a 200 page came back",
                    c.expected_status
                ))
            } else if status == c.expected_status {
                portal(format!(
                    "the answer lacks {:?}: another page came back",
                    c.expected_body_contains
                ))
            } else {
                Observation::new(
                    CheckId::Http,
                    CheckStatus::Failed,
                    "http_unexpected_status",
                    format!(
                        "the probe answered {status}, expected {}",
                        c.expected_status
                    ),
                )
                .category(Category::NoInternet)
                .value(value.clone())
                .hint("the probe server is failing, or a proxy answers instead of it")
            };
            o = o
                .evidence("status", status)
                .evidence("ttfb_ms", format!("{ttfb_ms:.1}"));
            if let Some(l) = location {
                o = o.evidence("location", snippet(l, 300));
            }
            if o.status != CheckStatus::Ok && !body.is_empty() {
                o = o.evidence("body_start", snippet(body, 200));
            }
            o
        }
    };
    obs.threshold(threshold).evidence("url", &c.url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::causes::assert_declared;

    /// [`super::judge`], asserting that the cause it reports is declared in `CAUSES`.
    fn judge(c: &HttpConfig, f: &Fetch) -> Observation {
        let o = super::judge(c, f);
        assert_declared(&o);
        o
    }

    fn resp(status: u16, ttfb_ms: f64, location: Option<&str>, body: &str) -> Fetch {
        Fetch::Response {
            status,
            ttfb_ms,
            location: location.map(String::from),
            body: body.into(),
        }
    }

    fn verdict(c: &HttpConfig, f: Fetch) -> (CheckStatus, String) {
        let o = judge(c, &f);
        (o.status, o.cause)
    }

    #[test]
    fn expected_204_is_ok_and_slow_degrades() {
        let c = HttpConfig::default();
        assert_eq!(
            verdict(&c, resp(204, 20.0, None, "")),
            (CheckStatus::Ok, "ok".into())
        );
        assert_eq!(
            verdict(&c, resp(204, 1500.0, None, "")),
            (CheckStatus::Degraded, "http_slow".into())
        );
    }

    #[test]
    fn portals_are_detected() {
        let c = HttpConfig::default();
        let o = judge(
            &c,
            &resp(302, 5.0, Some("http://portal.isp.example/login"), ""),
        );
        assert_eq!(o.cause, "captive_portal");
        assert_eq!(o.evidence["location"], "http://portal.isp.example/login");
        let o = judge(&c, &resp(200, 5.0, None, "<html>\n<h1>Log in</h1>"));
        assert_eq!(o.cause, "captive_portal");
        assert_eq!(o.evidence["body_start"], "<html> <h1>Log in</h1>");
        assert_eq!(
            verdict(&c, resp(511, 5.0, None, "")).1,
            "captive_portal".to_string()
        );
        // A body-checked probe: the right status with the wrong page is a portal too.
        let c = HttpConfig {
            expected_status: 200,
            expected_body_contains: "netmedic-probe-ok".into(),
            ..HttpConfig::default()
        };
        assert_eq!(
            verdict(&c, resp(200, 5.0, None, "xx netmedic-probe-ok xx")).0,
            CheckStatus::Ok
        );
        assert_eq!(
            verdict(&c, resp(200, 5.0, None, "<h1>Welcome</h1>")).1,
            "captive_portal".to_string()
        );
    }

    #[test]
    fn failures_are_named() {
        let c = HttpConfig::default();
        assert_eq!(
            verdict(&c, Fetch::Timeout),
            (CheckStatus::Failed, "http_timeout".into())
        );
        assert_eq!(
            verdict(&c, Fetch::Connect("refused".into())),
            (CheckStatus::Failed, "http_unreachable".into())
        );
        assert_eq!(
            verdict(&c, resp(503, 5.0, None, "")),
            (CheckStatus::Failed, "http_unexpected_status".into())
        );
    }

    #[test]
    fn config_problems() {
        let mut out = Vec::new();
        HttpConfig::default().problems(&mut out);
        assert!(out.is_empty(), "{out:?}");
        let mut out = Vec::new();
        HttpConfig {
            url: "https://probe.isp.example/".into(),
            expected_status: 302,
            ttfb_degraded_ms: 9000,
            ..HttpConfig::default()
        }
        .problems(&mut out);
        let f: Vec<&str> = out.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "checks.http.url",
                "checks.http.expected_status",
                "checks.http.ttfb_degraded_ms"
            ]
        );
    }
}
