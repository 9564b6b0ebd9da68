//! The NOC console: server-rendered HTML pages served by the collector (askama templates in
//! `collector/templates/`, compiled in), working without JavaScript. Every device-supplied
//! string is HTML-escaped by the templates and has its control and bidi-override characters made
//! visible ([`visible`]); a strict Content-Security-Policy forbids inline script as a second
//! line of defence. Sessions, CSRF and roles are in [`session`]; read-only pages in [`pages`];
//! the forms that change things in [`actions`]; SVG charts in [`chart`].

pub mod actions;
pub mod chart;
pub mod pages;
pub mod password;
pub mod session;
pub mod throttle;

pub use crate::text::{visible, visible_multiline};

use crate::AppState;
use crate::analytics::Report;
use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use netmedic_proto::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The console's per-process state.
#[derive(Debug)]
pub struct Console {
    /// The default experience report (last 30 days) and when it was computed.
    pub report: Mutex<Option<(Instant, Arc<Report>)>>,
    /// A report computation is running (one at a time per process).
    pub report_running: Mutex<bool>,
    /// Failed logins per user name: (count, first failure of the current run).
    pub failed_logins: Mutex<HashMap<String, (u32, Instant)>>,
    /// Login rate limits and the bound on concurrent password checks.
    pub logins: throttle::LoginGate,
}

impl Console {
    pub fn new(web: &crate::config::WebConfig) -> Self {
        Self {
            report: Mutex::new(None),
            report_running: Mutex::new(false),
            failed_logins: Mutex::new(HashMap::new()),
            logins: throttle::LoginGate::new(web),
        }
    }
}

/// The console's routes (merged into the API router, so they share its metrics and limits).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/login", get(session::login_page).post(session::login))
        .route("/logout", post(session::logout))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{agent_id}/{incident_id}", get(pages::incident))
        .route(
            "/incidents/{agent_id}/{incident_id}/ack",
            post(actions::acknowledge),
        )
        .route(
            "/incidents/{agent_id}/{incident_id}/notes",
            post(actions::annotate),
        )
        .route("/devices", get(pages::devices))
        .route("/devices/{agent_id}", get(pages::device))
        .route(
            "/devices/{agent_id}/diagnostics",
            post(actions::diagnostics),
        )
        .route("/customers/{customer_id}", get(pages::customer))
        .route("/experience", get(pages::experience))
        .route("/network-events", get(pages::network_events))
        .route(
            "/killswitches",
            get(pages::killswitches).post(actions::set_killswitch),
        )
        .route("/killswitches/clear", post(actions::clear_killswitch))
        .route(
            "/experiments",
            get(pages::experiments).post(actions::start_experiment),
        )
        .route("/experiments/stop", post(actions::stop_experiment))
        .route("/static/console.css", get(static_css))
        .route("/static/console.js", get(static_js))
        .layer(middleware::from_fn(security_headers))
}

/// The Content-Security-Policy of every console answer: only our own script and style files,
/// no inline script, no framing, forms only to us.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

async fn security_headers(req: Request, next: Next) -> Response {
    let is_static = req.uri().path().starts_with("/static/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !is_static {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

async fn static_css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/console.css"),
    )
        .into_response()
}

async fn static_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/console.js"),
    )
        .into_response()
}

/// What every page's frame shows: title, active tab, the signed-in user, a notice.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub title: String,
    /// The active navigation tab (`overview`, `incidents`, …; empty for none).
    pub nav: &'static str,
    pub user: Option<UserView>,
    /// A confirmation after an action (from a fixed set, never echoed from the request).
    pub notice: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct UserView {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    pub operator: bool,
}

impl Chrome {
    pub fn new(title: &str, nav: &'static str, session: Option<&session::NocSession>) -> Self {
        Self {
            title: title.to_owned(),
            nav,
            user: session.map(|s| UserView {
                name: visible(&s.user),
                role: s.role.as_str(),
                csrf: s.csrf.clone(),
                operator: s.is_operator(),
            }),
            notice: None,
        }
    }

    /// The notice for `?done=<code>` after a redirect.
    pub fn with_done(mut self, done: Option<&str>) -> Self {
        self.notice = match done {
            Some("ack") => Some("Incident acknowledged."),
            Some("note") => Some("Note added."),
            Some("kill_set") => Some(
                "Kill switch set: the agents it covers stop remediating at their next heartbeat.",
            ),
            Some("kill_cleared") => Some("Kill switch cleared."),
            Some("experiment_started") => {
                Some("Experiment started: agents compute their arm at their next heartbeat.")
            }
            Some("experiment_stopped") => {
                Some("Experiment stopped: no longer delivered to agents; kept for the report.")
            }
            Some("diag") => {
                Some("Diagnostics queued: the device runs them after its next heartbeat.")
            }
            _ => None,
        };
        self
    }
}

/// A rendered page, or a plain error when the template failed (a bug).
pub fn render<T: askama::Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            log::error!("console template failed: {e}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered; see the collector log",
            )
                .into_response()
        }
    }
}

/// Percent-encodes one URL path segment or query value (everything but RFC 3986 unreserved).
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `2026-11-23 12:00:05Z` (UTC, seconds).
pub fn when(t: Timestamp) -> String {
    let s = t.to_string();
    let s = s.replacen('T', " ", 1);
    match s.find('.') {
        Some(i) => format!("{}Z", &s[..i]),
        None => s,
    }
}

/// `when` of an optional instant, `—` when absent.
pub fn when_opt(t: Option<Timestamp>) -> String {
    t.map_or_else(|| "—".to_owned(), when)
}

/// A duration in words: `850 ms`, `42 s`, `3 min 5 s`, `2 h 10 min`, `3 d 4 h`.
pub fn duration_ms(ms: i64) -> String {
    let ms = ms.max(0);
    if ms < 1000 {
        return format!("{ms} ms");
    }
    let s = ms / 1000;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86_400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// A percentage with one decimal, `—` when the denominator is 0.
pub fn pct(k: u64, n: u64) -> String {
    if n == 0 {
        "—".into()
    } else {
        format!("{:.1} %", 100.0 * k as f64 / n as f64)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_become_visible() {
        assert_eq!(visible("a\u{7}b\u{0}c\n"), "a␇b␀c␊");
        assert_eq!(visible_multiline("a\nb\r"), "a\nb␍");
        assert_eq!(visible("x\u{202e}y\u{7f}"), "x⟨U+202E⟩y␡");
        assert_eq!(
            visible("<script>"),
            "<script>",
            "HTML is the template's job"
        );
    }

    #[test]
    fn encoding_and_formatting() {
        assert_eq!(enc("a b/c?d&e=f"), "a%20b%2Fc%3Fd%26e%3Df");
        assert_eq!(enc("cpe:0001"), "cpe%3A0001");
        let t: Timestamp = "2026-11-23T12:00:05.123Z".parse().unwrap();
        assert_eq!(when(t), "2026-11-23 12:00:05Z");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(65_000), "1 min 5 s");
        assert_eq!(duration_ms(7_800_000), "2 h 10 min");
        assert_eq!(pct(1, 4), "25.0 %");
        assert_eq!(pct(1, 0), "—");
    }
}
