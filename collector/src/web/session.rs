//! Console access: login with a NOC user's password (Argon2id), a session cookie (256 random
//! bits, stored as SHA-256, `HttpOnly; SameSite=Strict`, `Secure` when configured), idle and
//! absolute expiry, a per-session CSRF token on every form (and an `Origin` check), roles
//! `viewer` and `operator` read from the database on every request, and a login throttle.

use super::{Chrome, render};
use crate::AppState;
use crate::auth::{Role, random_hex, token_sha256};
use crate::store::noc_types::SessionRecord;
use crate::web::password;
use crate::web::throttle::Refused;
use askama::Template;
use axum::extract::{ConnectInfo, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "netmedic_session";
/// Name of the login form's double-submit CSRF cookie.
pub const LOGIN_COOKIE: &str = "netmedic_login";
/// How long a user name stays locked after too many failed logins.
const LOCKOUT: Duration = Duration::from_secs(60);

/// The signed-in user of a console request.
#[derive(Debug, Clone)]
pub struct NocSession {
    pub user: String,
    pub role: Role,
    pub csrf: String,
}

impl NocSession {
    pub fn is_operator(&self) -> bool {
        self.role.allows(Role::Operator)
    }

    /// 403 unless the user is an operator; then the form's CSRF token must match.
    #[allow(clippy::result_large_err)] // a ready answer for the handler, as axum rejections are
    pub fn authorize_action(&self, csrf: &str, what: &str) -> Result<(), Response> {
        if !self.is_operator() {
            log::warn!(
                "console: {} (role {}) was refused: {what}",
                self.user,
                self.role.as_str()
            );
            return Err(error_page(
                Some(self),
                StatusCode::FORBIDDEN,
                "Not allowed",
                &format!(
                    "Your role is {}; only operators can {what}.",
                    self.role.as_str()
                ),
            ));
        }
        self.check_csrf(csrf)
    }

    /// The form's CSRF token must be this session's (constant-time comparison).
    #[allow(clippy::result_large_err)]
    pub fn check_csrf(&self, csrf: &str) -> Result<(), Response> {
        if constant_time_eq(csrf.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(error_page(
                Some(self),
                StatusCode::FORBIDDEN,
                "Form expired",
                "The form's security token does not match your session. Reload the page and try again.",
            ))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

fn set_cookie(state: &AppState, name: &str, value: &str, max_age_secs: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age_secs {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if state.web.secure_cookies {
        c.push_str("; Secure");
    }
    // Invariant: names and values are ASCII hex or fixed names.
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static("invalid=1"))
}

/// For state-changing requests: an `Origin` header, when the browser sends one, must name this
/// host (defence in depth beside the CSRF token and `SameSite=Strict`).
fn same_origin(parts: &Parts) -> bool {
    let Some(origin) = parts
        .headers
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    else {
        return true;
    };
    let Some(host) = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host)
}

/// Where a rejected request is sent: the login page, remembering the page asked for.
fn to_login(parts: &Parts) -> Response {
    let next = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    if parts.method == Method::GET {
        Redirect::to(&format!("/login?next={}", super::enc(next))).into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

impl FromRequestParts<AppState> for NocSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        if parts.method != Method::GET && parts.method != Method::HEAD && !same_origin(parts) {
            return Err(error_page(
                None,
                StatusCode::FORBIDDEN,
                "Cross-site request refused",
                "This form was sent from another site.",
            ));
        }
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(to_login(parts));
        };
        if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(to_login(parts));
        }
        let idle_ms = i64::from(state.web.session_idle_mins) * 60_000;
        match state
            .store
            .session_get(&token_sha256(token), crate::now(), idle_ms)
            .await
        {
            Ok(Some(s)) => Ok(NocSession {
                user: s.user,
                role: s.role,
                csrf: s.csrf_token,
            }),
            Ok(None) => Err(to_login(parts)),
            Err(e) => {
                log::warn!("console session lookup failed: {}", crate::error_chain(&e));
                Err(error_page(
                    None,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Database unavailable",
                    "The collector cannot reach its database right now. Try again shortly.",
                ))
            }
        }
    }
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    message: String,
}

/// An HTML error page with `status`.
pub fn error_page(
    session: Option<&NocSession>,
    status: StatusCode,
    heading: &str,
    message: &str,
) -> Response {
    let page = ErrorPage {
        chrome: Chrome::new(heading, "", session),
        heading: heading.to_owned(),
        message: message.to_owned(),
    };
    (status, render(&page)).into_response()
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

/// Only a path on this site is followed after login, else `/`: it starts with one `/`, and
/// every byte is printable ASCII other than `\\` (browsers drop tabs and line breaks from a URL,
/// so `/\t/evil.example` would become `//evil.example`; a line break cannot go in a header).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && n.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            n.to_owned()
        }
        _ => "/".to_owned(),
    }
}

fn login_form(
    state: &AppState,
    status: StatusCode,
    next: String,
    username: String,
    error: Option<String>,
) -> Response {
    let csrf = match random_hex(16) {
        Ok(c) => c,
        Err(e) => {
            log::error!("console: {e}");
            return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
        }
    };
    let page = LoginPage {
        chrome: Chrome::new("Log in", "", None),
        csrf: csrf.clone(),
        next,
        username,
        error,
    };
    let mut resp = (status, render(&page)).into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, LOGIN_COOKIE, &csrf, Some(3600)),
    );
    resp
}

pub async fn login_page(
    State(state): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let next = safe_next(query.as_ref().ok().and_then(|q| q.next.as_deref()));
    login_form(&state, StatusCode::OK, next, String::new(), None)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    #[serde(default)]
    next: Option<String>,
}

/// Whether `user` is locked out after too many failures (and forgets old runs).
fn locked_out(state: &AppState, user: &str) -> bool {
    let mut map = state
        .console
        .failed_logins
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match map.get(user) {
        Some((n, since)) if since.elapsed() < LOCKOUT => *n >= state.web.max_failed_logins,
        Some(_) => {
            map.remove(user);
            false
        }
        None => false,
    }
}

fn record_failure(state: &AppState, user: &str) {
    let mut map = state
        .console
        .failed_logins
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if map.len() > 10_000 {
        map.retain(|_, (_, since)| since.elapsed() < LOCKOUT);
    }
    let e = map.entry(user.to_owned()).or_insert((0, Instant::now()));
    if e.1.elapsed() >= LOCKOUT {
        *e = (0, Instant::now());
    }
    e.0 += 1;
}

/// The login page with `status`, an error and `Retry-After: retry_after_secs`.
fn login_refused(
    state: &AppState,
    status: StatusCode,
    retry_after_secs: u64,
    message: &str,
) -> Response {
    let mut resp = login_form(
        state,
        status,
        "/".into(),
        String::new(),
        Some(message.into()),
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    resp
}

pub async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    // Counted before anything costs: a flood gets 429s, not database reads and Argon2 runs.
    let source = peer.map(|Extension(ConnectInfo(a))| a.ip());
    match state.console.logins.admit(source) {
        Ok(()) => {}
        Err(Refused::Global(secs)) => {
            log::warn!("console: login refused: too many attempts this minute");
            return login_refused(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                secs,
                "Too many login attempts right now. Wait a minute and try again.",
            );
        }
        Err(Refused::Source(secs)) => {
            return login_refused(
                &state,
                StatusCode::TOO_MANY_REQUESTS,
                secs,
                "Too many login attempts from your address. Wait a minute and try again.",
            );
        }
    }
    let Ok(Form(form)) = form else {
        return login_form(
            &state,
            StatusCode::BAD_REQUEST,
            "/".into(),
            String::new(),
            Some("The login form was incomplete.".into()),
        );
    };
    let next = safe_next(form.next.as_deref());
    let cookie_csrf = cookie(&headers, LOGIN_COOKIE).unwrap_or("");
    if cookie_csrf.is_empty() || !constant_time_eq(cookie_csrf.as_bytes(), form.csrf.as_bytes()) {
        return login_form(
            &state,
            StatusCode::FORBIDDEN,
            next,
            form.username,
            Some("The login form expired. Please try again.".into()),
        );
    }
    let username = form.username.trim().to_owned();
    if locked_out(&state, &username) {
        log::warn!("console: login for {username:?} refused: too many failed attempts");
        return login_form(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            next,
            username,
            Some("Too many failed attempts for this user. Wait a minute and try again.".into()),
        );
    }
    let user = match state.store.noc_user_get(&username).await {
        Ok(u) => u,
        Err(e) => {
            log::warn!("console login: {}", crate::error_chain(&e));
            return error_page(
                None,
                StatusCode::SERVICE_UNAVAILABLE,
                "Database unavailable",
                "The collector cannot reach its database right now. Try again shortly.",
            );
        }
    };
    // An unknown name runs the same check on a dummy hash (same time, same memory), through the
    // same bounded slots, so neither timing nor load tells which names exist.
    let phc: Cow<'static, str> = user
        .as_ref()
        .map_or(Cow::Borrowed(password::dummy_phc()), |u| {
            Cow::Owned(u.password_phc.clone())
        });
    let Some(slot) = state.console.logins.verify_slot().await else {
        log::warn!("console: login for {username:?} refused: all password checks busy");
        return login_refused(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            1,
            "The console is busy. Try again in a moment.",
        );
    };
    let pw = form.password;
    // The slot moves into the password-check job: it is held as long as the check's memory, even
    // when the client goes away.
    let ok = password::verify_pooled(pw, phc.into_owned(), slot).await;
    let Some(user) = user.filter(|_| ok) else {
        record_failure(&state, &username);
        log::warn!("console: failed login for {username:?}");
        return login_form(
            &state,
            StatusCode::UNAUTHORIZED,
            next,
            username,
            Some("Unknown user name or wrong password.".into()),
        );
    };
    let (Ok(token), Ok(csrf)) = (random_hex(32), random_hex(32)) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no randomness").into_response();
    };
    let now_ms = crate::now().unix_millis();
    let session = SessionRecord {
        user: user.name.clone(),
        role: user.role,
        csrf_token: csrf,
        created_at_ms: now_ms,
        expires_at_ms: now_ms + i64::from(state.web.session_max_hours) * 3_600_000,
    };
    if let Err(e) = state
        .store
        .session_create(&token_sha256(&token), &session)
        .await
    {
        log::warn!("console login: {}", crate::error_chain(&e));
        return error_page(
            None,
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable",
            "The collector cannot reach its database right now. Try again shortly.",
        );
    }
    state
        .console
        .failed_logins
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&username);
    log::info!(
        "console: {} logged in (role {})",
        user.name,
        user.role.as_str()
    );
    let mut resp = Redirect::to(&next).into_response();
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, &token, None),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(&state, LOGIN_COOKIE, "", Some(0)),
    );
    resp
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsrfForm {
    pub csrf: String,
}

pub async fn logout(
    session: NocSession,
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = session.check_csrf(&form.csrf) {
        return r;
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && let Err(e) = state.store.session_delete(&token_sha256(token)).await
    {
        log::warn!("console logout: {}", crate::error_chain(&e));
    }
    log::info!("console: {} logged out", session.user);
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, "", Some(0)),
    );
    resp
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cookies_and_redirect_targets() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; netmedic_session=abc"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "b"), None);
        assert_eq!(safe_next(Some("/incidents?x=1")), "/incidents?x=1");
        for bad in [
            "//evil.example",
            "https://evil.example/",
            "/\\evil",
            "",
            "/\t/evil.example",
            "/\n/evil.example",
            "/incidents\r\nSet-Cookie: x=1",
            "/ /evil",
            "/caf\u{e9}",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
