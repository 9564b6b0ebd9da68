//! [`Browser`]: headless Chromium driven over the W3C WebDriver protocol by `chromedriver`, both
//! running inside a lab namespace, for the end-to-end tests of the NOC web console.
//!
//! Network safety: `chromedriver` is spawned *inside* the given namespace (listening on that
//! namespace's `127.0.0.1`), every WebDriver request is sent from a thread that has joined the
//! namespace ([`Netns::run`]), and Chromium, started by `chromedriver`, inherits the namespace:
//! it reaches the collector (or any lab address) from there and never touches the host's network.
//!
//! Process hygiene: `chromedriver` runs as the init of a fresh PID namespace
//! (`unshare --pid --fork --kill-child --mount-proc`), so every Chromium process — including the
//! crash handlers that double-fork out of the process group — dies, and is reaped by the kernel,
//! when `chromedriver` dies. `HOME` and the XDG directories point into a private temp dir, so
//! nothing is written to the real home. Dropping the [`Browser`] (also during a panic) deletes
//! the session, stops `chromedriver`, checks that none of its processes is left in the namespace
//! and removes the temp dir. During a panic it first saves a screenshot and the driver log into
//! the artifacts dir.
//!
//! ```no_run
//! # fn main() -> Result<(), netmedic_lab::LabError> {
//! use std::time::Duration;
//! use netmedic_lab::browser::Browser;
//! let lab = netmedic_lab::Lab::builder().cpes(0).build()?;
//! let b = Browser::start(&lab.isp().ns, None)?;
//! b.goto("http://203.0.113.10:8440/")?;
//! b.wait_for("#incidents", Duration::from_secs(5))?;
//! assert_eq!(b.alert_text()?, None); // no injected script ran
//! println!("screenshot: {}", b.screenshot("incidents")?.display());
//! # Ok(()) }
//! ```

use std::fmt;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::error::{LabError, Result, io_ctx};
use crate::http::in_host_netns;
use crate::netns::Netns;
use crate::process::{LabProcess, tail_file};
use crate::wait::{Observation, wait_for};

/// The browser (Debian package `chromium`).
pub const CHROMIUM_BIN: &str = "/usr/bin/chromium";
/// The WebDriver server (Debian package `chromium-driver`).
pub const CHROMEDRIVER_BIN: &str = "/usr/bin/chromedriver";
/// Where screenshots go when set (and non-empty); see [`default_artifacts_dir`].
pub const ARTIFACTS_DIR_ENV: &str = "NETMEDIC_ARTIFACTS_DIR";
/// The browser window size (width, height).
pub const WINDOW_SIZE: (u32, u32) = (1366, 900);
/// Page-load and script timeouts of the session: below [`REQUEST_TIMEOUT`], so a slow page is
/// reported by WebDriver, with its URL.
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connect, write and read timeout of one WebDriver request (but session creation, which
/// starts Chromium, gets [`SESSION_TIMEOUT`]).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// How long creating the session (starting Chromium) may take.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium command line (besides `--user-data-dir` and `--window-size`): headless, as root
/// in a container, and quiet on the network (no background requests, updates, sync or QUIC).
pub const CHROMIUM_ARGS: [&str; 12] = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--password-store=basic",
];

/// WebDriver codes of special keys, for [`Element::send_keys`] (e.g. `"query\u{E007}"`).
pub mod keys {
    /// Enter.
    pub const ENTER: &str = "\u{E007}";
    /// Tab.
    pub const TAB: &str = "\u{E004}";
    /// Escape.
    pub const ESCAPE: &str = "\u{E00C}";
    /// Backspace.
    pub const BACKSPACE: &str = "\u{E003}";
}

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(50);
/// The W3C key of a web element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// `$NETMEDIC_ARTIFACTS_DIR` if set, else `<workspace>/target/artifacts/screenshots` (not
/// created here; [`Browser::start`] creates it).
pub fn default_artifacts_dir() -> PathBuf {
    match std::env::var_os(ARTIFACTS_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
            manifest
                .parent()
                .unwrap_or(manifest)
                .join("target")
                .join("artifacts")
                .join("screenshots")
        }
    }
}

/// A message of the page's JavaScript console (see [`Browser::console_log`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleMessage {
    /// `SEVERE` (errors, uncaught exceptions, failed loads), `WARNING`, `INFO` or `DEBUG`.
    pub level: String,
    /// The message, prefixed by its source (e.g. `http://host/app.js 12:5 "text"`).
    pub message: String,
}

/// A cookie as the browser holds it (`GET /session/{id}/cookie`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Path, if reported.
    pub path: Option<String>,
    /// Domain, if reported.
    pub domain: Option<String>,
    /// The `Secure` flag.
    pub secure: bool,
    /// The `HttpOnly` flag.
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, if reported.
    pub same_site: Option<String>,
    /// Expiry in seconds since the epoch; `None` for a session cookie.
    pub expiry: Option<u64>,
}

/// A headless Chromium session inside a lab namespace. See the module docs.
#[derive(Debug)]
pub struct Browser {
    ns: Netns,
    addr: SocketAddr,
    session: Option<String>,
    driver: Option<LabProcess>,
    /// The `unshare` pid: also the process group of `chromedriver` and Chromium.
    driver_pid: u32,
    dir: Option<tempfile::TempDir>,
    root: PathBuf,
    log_path: PathBuf,
    artifacts: PathBuf,
    closed: bool,
}

/// An element of the current page, found by a CSS selector (which error messages name).
#[derive(Debug, Clone)]
pub struct Element<'b> {
    browser: &'b Browser,
    id: String,
    selector: String,
}

/// Why a WebDriver call failed: the transport, or an error reported by the driver.
#[derive(Debug)]
enum Failure {
    Transport(String),
    Driver { code: String, message: String },
}

impl Failure {
    /// Errors that may go away by themselves while waiting for a page to render.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Driver { code, .. }
            if code == "no such element" || code == "stale element reference")
    }

    fn code(&self) -> &str {
        match self {
            Self::Transport(_) => "",
            Self::Driver { code, .. } => code,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(msg) => f.write_str(msg),
            Self::Driver { code, message } if message.starts_with(code.as_str()) => {
                f.write_str(message)
            }
            Self::Driver { code, message } => write!(f, "{code}: {message}"),
        }
    }
}

impl Browser {
    /// Starts `chromedriver` inside `ns` (bringing its loopback up first) and opens a Chromium
    /// session with a fresh profile. Screenshots go to `artifacts_dir`, or to
    /// [`default_artifacts_dir`] when `None`; the directory is created.
    ///
    /// Fails (does not skip) when Chromium or chromedriver is not installed.
    pub fn start(ns: &Netns, artifacts_dir: Option<&Path>) -> Result<Self> {
        for bin in [CHROMIUM_BIN, CHROMEDRIVER_BIN, "/usr/bin/unshare"] {
            if !Path::new(bin).is_file() {
                return Err(LabError::Setup(format!(
                    "{bin} is missing: the browser tests need Debian's chromium and \
                     chromium-driver (scripts/setup.sh installs them)"
                )));
            }
        }
        let artifacts = artifacts_dir.map_or_else(default_artifacts_dir, Path::to_path_buf);
        std::fs::create_dir_all(&artifacts)
            .map_err(io_ctx(format!("creating {}", artifacts.display())))?;
        ns.ip(&["link", "set", "lo", "up"])?;

        let dir = tempfile::Builder::new()
            .prefix("netmedic-browser-")
            .tempdir()
            .map_err(io_ctx("creating the browser's temp dir"))?;
        let root = dir.path().to_path_buf();
        let [profile, home, config, cache] =
            ["profile", "home", "home/.config", "home/.cache"].map(|d| root.join(d));
        for d in [&profile, &config, &cache] {
            std::fs::create_dir_all(d).map_err(io_ctx(format!("creating {}", d.display())))?;
        }
        let log_path = root.join("chromedriver.log");
        let [home, config, cache] = [&home, &config, &cache].map(|p| p.display().to_string());
        let driver = ns.spawn_with_env(
            "unshare",
            &[
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                CHROMEDRIVER_BIN,
                "--port=0",
            ],
            &[
                ("HOME", &home),
                ("XDG_CONFIG_HOME", &config),
                ("XDG_CACHE_HOME", &cache),
            ],
            &log_path,
        )?;
        // From here on, dropping `browser` cleans up whatever has been started.
        let mut browser = Self {
            ns: ns.clone(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            session: None,
            driver_pid: driver.pid(),
            driver: Some(driver),
            dir: Some(dir),
            root,
            log_path,
            artifacts,
            closed: false,
        };
        let port = browser.wait_for_port()?;
        browser.addr.set_port(port);

        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", WINDOW_SIZE.0, WINDOW_SIZE.1));
        let timeout_ms = u64::try_from(PAGE_TIMEOUT.as_millis()).unwrap_or(u64::MAX);
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "pageLoadStrategy": "normal",
            // Leave alerts open (and fail commands) instead of silently dismissing them, so an
            // alert from an injected script cannot be swallowed by a polling wait.
            "unhandledPromptBehavior": "ignore",
            "timeouts": { "implicit": 0, "pageLoad": timeout_ms, "script": timeout_ms },
            "goog:chromeOptions": { "binary": CHROMIUM_BIN, "args": args },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let value = browser
            .call_with_timeout("POST", "/session", Some(&caps), SESSION_TIMEOUT)
            .map_err(|f| {
                browser.wd_error(
                    "creating a Chromium session",
                    format!("{f}\n--- chromedriver log ---\n{}", browser.log_tail(30)),
                )
            })?;
        let id = value
            .get("sessionId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                browser.wd_error(
                    "creating a Chromium session",
                    format!("no sessionId in {value}"),
                )
            })?;
        browser.session = Some(id.to_owned());
        Ok(browser)
    }

    /// Waits for chromedriver's "started successfully on port N" line.
    fn wait_for_port(&mut self) -> Result<u16> {
        let log_path = self.log_path.clone();
        let mut exited = None;
        let port = wait_for(
            "chromedriver to listen",
            START_TIMEOUT,
            POLL,
            || -> std::result::Result<Option<u16>, String> {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                if let Some(port) = parse_port(&log) {
                    return Ok(Some(port));
                }
                if let Some(driver) = self.driver.as_mut()
                    && let Some(status) = driver.exit_status()
                {
                    exited = Some(status);
                    return Ok(None);
                }
                Err(format!("log so far: {:?}", log.trim()))
            },
        );
        match (port, exited) {
            (Ok(Some(port)), _) => Ok(port),
            (Ok(None), status) => Err(LabError::Setup(format!(
                "chromedriver exited ({}) before listening:\n{}",
                status.map(|s| s.to_string()).unwrap_or_default(),
                self.log_tail(30)
            ))),
            (Err(e), _) => Err(LabError::Setup(format!(
                "{e}\n--- chromedriver log ---\n{}",
                self.log_tail(30)
            ))),
        }
    }

    /// The namespace the browser lives in.
    pub fn ns(&self) -> &Netns {
        &self.ns
    }

    /// Where [`screenshot`](Self::screenshot) saves its files.
    pub fn artifacts_dir(&self) -> &Path {
        &self.artifacts
    }

    /// The last `lines` lines of chromedriver's log (Chromium's stderr included).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path, lines)
    }

    /// The live processes of this browser in its namespace (`unshare`, chromedriver and every
    /// Chromium process), found through [`Netns::pids`]. Empty once it is closed.
    pub fn pids(&self) -> Result<Vec<i32>> {
        if !self.ns.exists() {
            return Ok(Vec::new());
        }
        let pgid = i32::try_from(self.driver_pid).unwrap_or(i32::MAX);
        let root = self.root.display().to_string();
        Ok(self
            .ns
            .pids()?
            .into_iter()
            .filter(|&pid| proc_pgid(pid) == Some(pgid) || proc_cmdline(pid).contains(&root))
            .collect())
    }

    /// Navigates to `url` and waits for the page to load (at most [`PAGE_TIMEOUT`]). Fails
    /// with the network error (e.g. `net::ERR_CONNECTION_REFUSED`) when the browser shows its
    /// error page instead; an HTTP error status is a loaded page, not an error.
    pub fn goto(&self, url: &str) -> Result<()> {
        let what = format!("navigating to {url}");
        self.session_cmd("POST", "/url", Some(&json!({ "url": url })))
            .map_err(|f| self.wd_error(&what, f))?;
        // chromedriver reports most network errors, but not all (ERR_UNSAFE_PORT, for one):
        // the page is then Chromium's error page.
        let probe = "return location.href.startsWith('chrome-error:') ? \
                     ((document.querySelector('.error-code') || {}).textContent || 'unknown') : null;";
        match self.session_cmd(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": probe, "args": [] })),
        ) {
            Ok(Value::String(code)) => Err(self.wd_error(
                &what,
                format!("the browser shows its error page: net::{}", code.trim()),
            )),
            // A page that opened an alert while loading has loaded: let the test look at it.
            Err(f) if f.code() != "unexpected alert open" => Err(self.wd_error(&what, f)),
            _ => Ok(()),
        }
    }

    /// Reloads the current page.
    pub fn refresh(&self) -> Result<()> {
        self.cmd("refreshing the page", "POST", "/refresh", Some(&json!({})))
            .map(drop)
    }

    /// Goes back in history.
    pub fn back(&self) -> Result<()> {
        self.cmd("going back", "POST", "/back", Some(&json!({})))
            .map(drop)
    }

    /// The URL of the current page.
    pub fn current_url(&self) -> Result<String> {
        self.session_cmd("GET", "/url", None)
            .map(|v| v.as_str().unwrap_or_default().to_owned())
            .map_err(|f| self.wd_error("reading the current URL", f))
    }

    /// The current page's `document.title`.
    pub fn title(&self) -> Result<String> {
        self.cmd("reading the title", "GET", "/title", None)
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// The current page's serialized DOM.
    pub fn page_source(&self) -> Result<String> {
        self.cmd("reading the page source", "GET", "/source", None)
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// The first element matching the CSS selector `css` (an error if there is none).
    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        self.find_raw(None, css)
            .map(|id| self.element(id, css.to_owned()))
            .map_err(|f| self.wd_error(&format!("finding `{css}`"), f))
    }

    /// Every element matching `css`, in document order (empty if none).
    pub fn find_all(&self, css: &str) -> Result<Vec<Element<'_>>> {
        self.find_all_raw(None, css)
            .map(|ids| self.elements(ids, css))
            .map_err(|f| self.wd_error(&format!("finding all `{css}`"), f))
    }

    /// Waits up to `timeout` for an element matching `css` to exist *and be displayed*, and
    /// returns it. Fails at once on a non-transient error (an open alert, a bad selector).
    pub fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element<'_>> {
        let mut hard = None;
        let found = wait_for(
            &format!("element `{css}` to be displayed"),
            timeout,
            POLL,
            || -> std::result::Result<Option<String>, String> {
                let step = self.find_raw(None, css).and_then(|id| {
                    let shown = self.session_cmd("GET", &format!("/element/{id}/displayed"), None);
                    shown.map(|v| (id, v.as_bool() == Some(true)))
                });
                match step {
                    Ok((id, true)) => Ok(Some(id)),
                    Ok((_, false)) => Err("present but not displayed".to_owned()),
                    Err(f) if f.is_transient() => Err(f.to_string()),
                    Err(f) => {
                        hard = Some(f);
                        Ok(None)
                    }
                }
            },
        );
        match (found, hard) {
            (Ok(Some(id)), _) => Ok(self.element(id, css.to_owned())),
            (Ok(None), Some(f)) => Err(self.wd_error(&format!("waiting for `{css}`"), f)),
            (Ok(None), None) => Err(self.wd_error(&format!("waiting for `{css}`"), "no result")),
            (Err(e), _) => Err(self.on_page(e)),
        }
    }

    /// Calls `probe(self)` every 50 ms until it yields a value or `timeout` passes (see
    /// [`wait_for`](crate::wait_for)): return `Err(what you saw)` or `None` for "not yet". The
    /// timeout error names `desc`, the last observation and the current page.
    pub fn wait_until<O, F>(&self, desc: &str, timeout: Duration, mut probe: F) -> Result<O::Output>
    where
        O: Observation,
        F: FnMut(&Browser) -> O,
    {
        wait_for(desc, timeout, POLL, || probe(self)).map_err(|e| self.on_page(e))
    }

    /// Waits up to `timeout` until the text of the element matching `css` contains `needle`,
    /// and returns that text; the timeout error shows the last text seen.
    pub fn wait_for_text(&self, css: &str, needle: &str, timeout: Duration) -> Result<String> {
        self.wait_until(
            &format!("`{css}` to contain {needle:?}"),
            timeout,
            |b| match b.find(css).and_then(|e| e.text()) {
                Ok(t) if t.contains(needle) => Ok(t),
                Ok(t) => Err(format!("`{css}` says {:?}", excerpt(&t, 200))),
                Err(e) => Err(e.to_string()),
            },
        )
    }

    /// Runs `js` as a synchronous script (`arguments[i]` are `args`; pass elements with
    /// [`Element::to_arg`]) and returns what it returns.
    pub fn execute(&self, js: &str, args: &[Value]) -> Result<Value> {
        let what = format!("executing script `{}`", excerpt(js, 80));
        self.cmd(
            &what,
            "POST",
            "/execute/sync",
            Some(&json!({ "script": js, "args": args })),
        )
    }

    /// The text of the open JavaScript alert, confirm or prompt, if there is one (it stays
    /// open: [`accept_alert`](Self::accept_alert) or [`dismiss_alert`](Self::dismiss_alert)).
    pub fn alert_text(&self) -> Result<Option<String>> {
        match self.session_cmd("GET", "/alert/text", None) {
            Ok(v) => Ok(Some(v.as_str().unwrap_or_default().to_owned())),
            Err(f) if f.code() == "no such alert" => Ok(None),
            Err(f) => Err(self.wd_error("reading the alert text", f)),
        }
    }

    /// Accepts the open alert (OK).
    pub fn accept_alert(&self) -> Result<()> {
        self.cmd(
            "accepting the alert",
            "POST",
            "/alert/accept",
            Some(&json!({})),
        )
        .map(drop)
    }

    /// Dismisses the open alert (Cancel).
    pub fn dismiss_alert(&self) -> Result<()> {
        self.cmd(
            "dismissing the alert",
            "POST",
            "/alert/dismiss",
            Some(&json!({})),
        )
        .map(drop)
    }

    /// The JavaScript console messages (and failed resource loads) since the previous call —
    /// each message is returned once. Filter on `level == "SEVERE"` to assert a page has no
    /// errors. (chromedriver's `/se/log`, not part of W3C WebDriver.)
    pub fn console_log(&self) -> Result<Vec<ConsoleMessage>> {
        let v = self.cmd(
            "reading the console log",
            "POST",
            "/se/log",
            Some(&json!({ "type": "browser" })),
        )?;
        let field = |e: &Value, k: &str| {
            e.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .map(|e| ConsoleMessage {
                        level: field(e, "level"),
                        message: field(e, "message"),
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The cookies visible to the current page (`HttpOnly` ones included).
    pub fn cookies(&self) -> Result<Vec<Cookie>> {
        let v = self.cmd("reading cookies", "GET", "/cookie", None)?;
        Ok(v.as_array()
            .map(|a| a.iter().map(parse_cookie).collect())
            .unwrap_or_default())
    }

    /// Deletes every cookie of the current page's domain.
    pub fn delete_all_cookies(&self) -> Result<()> {
        self.cmd("deleting all cookies", "DELETE", "/cookie", None)
            .map(drop)
    }

    /// Saves a PNG screenshot of the viewport as `<artifacts dir>/<name>.png` (characters
    /// other than `A-Za-z0-9._-` in `name` become `_`) and returns its path.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf> {
        let what = format!("taking screenshot {name:?}");
        let v = self.cmd(&what, "GET", "/screenshot", None)?;
        let png = base64_decode(v.as_str().unwrap_or_default())
            .filter(|b| b.starts_with(&PNG_SIGNATURE))
            .ok_or_else(|| self.wd_error(&what, "the driver did not return base64 PNG data"))?;
        let mut file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if !file.ends_with(".png") {
            file.push_str(".png");
        }
        let path = self.artifacts.join(file);
        std::fs::write(&path, png).map_err(io_ctx(format!("writing {}", path.display())))?;
        Ok(path)
    }

    /// Deletes the session, stops chromedriver and Chromium, checks that none of their
    /// processes is left and removes the temp profile; reports what went wrong (dropping does
    /// the same and prints it). Idempotent.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        let mut problems = Vec::new();
        if std::thread::panicking() && self.session.is_some() {
            self.save_failure_artifacts();
        }
        if let Some(id) = self.session.take()
            && let Err(f) = self.call("DELETE", &format!("/session/{id}"), None)
        {
            problems.push(format!("deleting the WebDriver session: {f}"));
        }
        if let Some(mut driver) = self.driver.take() {
            if self.addr.port() != 0 && driver.is_running() {
                // Makes chromedriver exit; as the PID namespace's init it takes every
                // remaining Chromium process with it.
                let _ = self.call("GET", "/shutdown", None);
            }
            if driver.wait_exit(STOP_TIMEOUT).is_none() {
                problems.push("chromedriver did not exit after /shutdown; killed".to_owned());
                self.kill_leftovers(Some(driver.pid()));
                driver.wait_exit(STOP_TIMEOUT);
            }
            if let Err(e) = driver.kill() {
                problems.push(e.to_string());
            }
        }
        let left = wait_for(
            "the browser's processes to be gone",
            STOP_TIMEOUT,
            POLL,
            || match self.pids() {
                Ok(p) if p.is_empty() => Ok(()),
                Ok(p) => Err(format!("pids {p:?}")),
                Err(e) => Err(e.to_string()),
            },
        );
        if let Err(e) = left {
            problems.push(format!("{e}; killing them"));
            self.kill_leftovers(None);
        }
        if let Some(dir) = self.dir.take()
            && let Err(e) = dir.close()
        {
            problems.push(format!("removing {}: {e}", self.root.display()));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Setup(format!(
                "closing the browser in {}: {}",
                self.ns.name(),
                problems.join("; ")
            )))
        }
    }

    /// SIGKILL to every process of this browser (but `except`).
    fn kill_leftovers(&self, except: Option<u32>) {
        for pid in self.pids().unwrap_or_default() {
            if u32::try_from(pid).ok() != except {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }

    /// During a panic: a screenshot and the chromedriver log, into the artifacts dir.
    fn save_failure_artifacts(&self) {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let name = format!("panic-{}-{stamp}", self.ns.name());
        match self.screenshot(&name) {
            Ok(p) => eprintln!("netmedic-lab: browser screenshot at panic: {}", p.display()),
            Err(e) => eprintln!("netmedic-lab: no screenshot at panic: {e}"),
        }
        // chromedriver's own log, and Chromium's (console messages included).
        let logs = [
            (self.log_path.clone(), "chromedriver.log"),
            (
                self.root.join("profile").join("chrome_debug.log"),
                "chrome_debug.log",
            ),
        ];
        for (from, suffix) in logs {
            let to = self.artifacts.join(format!("{name}-{suffix}"));
            match std::fs::copy(&from, &to) {
                Ok(_) => eprintln!("netmedic-lab: browser log at panic: {}", to.display()),
                Err(e) => eprintln!("netmedic-lab: copying {}: {e}", from.display()),
            }
        }
    }

    fn element(&self, id: String, selector: String) -> Element<'_> {
        Element {
            browser: self,
            id,
            selector,
        }
    }

    fn elements(&self, ids: Vec<String>, css: &str) -> Vec<Element<'_>> {
        ids.into_iter()
            .enumerate()
            .map(|(i, id)| self.element(id, format!("{css}[{i}]")))
            .collect()
    }

    /// `POST .../element` (from the document, or from element `from`): the element id.
    fn find_raw(&self, from: Option<&str>, css: &str) -> std::result::Result<String, Failure> {
        let path = from.map_or_else(
            || "/element".to_owned(),
            |e| format!("/element/{e}/element"),
        );
        let body = json!({ "using": "css selector", "value": css });
        let v = self.session_cmd("POST", &path, Some(&body))?;
        element_id(&v).ok_or_else(|| Failure::Transport(format!("no element reference in {v}")))
    }

    fn find_all_raw(
        &self,
        from: Option<&str>,
        css: &str,
    ) -> std::result::Result<Vec<String>, Failure> {
        let path = from.map_or_else(
            || "/elements".to_owned(),
            |e| format!("/element/{e}/elements"),
        );
        let body = json!({ "using": "css selector", "value": css });
        let v = self.session_cmd("POST", &path, Some(&body))?;
        Ok(v.as_array()
            .map(|a| a.iter().filter_map(element_id).collect())
            .unwrap_or_default())
    }

    /// A session command whose failure is described by `what` (plus the current page).
    fn cmd(&self, what: &str, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        self.session_cmd(method, path, body)
            .map_err(|f| self.wd_error(what, f))
    }

    fn session_cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, Failure> {
        let Some(id) = self.session.as_deref() else {
            return Err(Failure::Transport("the session is closed".to_owned()));
        };
        self.call(method, &format!("/session/{id}{path}"), body)
    }

    /// One WebDriver request to chromedriver, from inside the namespace: the response's
    /// `value`, or the driver's error.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> std::result::Result<Value, Failure> {
        self.call_with_timeout(method, path, body, REQUEST_TIMEOUT)
    }

    fn call_with_timeout(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> std::result::Result<Value, Failure> {
        let addr = self.addr;
        let payload = body.map(Value::to_string);
        let (status, text) = self
            .ns
            .run(|| exchange(addr, method, path, payload.as_deref(), timeout))
            .map_err(|e| Failure::Transport(e.to_string()))?
            .map_err(Failure::Transport)?;
        let mut v: Value = serde_json::from_str(&text).map_err(|e| {
            Failure::Transport(format!(
                "HTTP {status} with a non-JSON body ({e}): {}",
                excerpt(&text, 200)
            ))
        })?;
        let value = v.get_mut("value").map(Value::take).unwrap_or(Value::Null);
        match value.get("error").and_then(Value::as_str) {
            Some(code) => {
                let message = value
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                // chromedriver appends "\n  (Session info: chrome=...)": noise.
                let message = message
                    .split("\n  (Session info")
                    .next()
                    .unwrap_or_default();
                Err(Failure::Driver {
                    code: code.to_owned(),
                    message: message.trim().to_owned(),
                })
            }
            None if status != 200 => Err(Failure::Transport(format!(
                "HTTP {status}: {}",
                excerpt(&text, 200)
            ))),
            None => Ok(value),
        }
    }

    /// An error naming what was done and on which page (when the page can be asked).
    fn wd_error(&self, what: &str, msg: impl fmt::Display) -> LabError {
        LabError::Http {
            addr: self.addr,
            msg: format!("WebDriver: {what}{}: {msg}", self.page_suffix()),
        }
    }

    /// Adds the current page to a timeout's description.
    fn on_page(&self, e: LabError) -> LabError {
        match e {
            LabError::Timeout {
                desc,
                waited,
                last_seen,
            } => LabError::Timeout {
                desc: format!("{desc}{}", self.page_suffix()),
                waited,
                last_seen,
            },
            e => e,
        }
    }

    /// ` on page URL`, or nothing when that cannot be read (no session, an alert is open).
    fn page_suffix(&self) -> String {
        match self.session_cmd("GET", "/url", None) {
            Ok(Value::String(url)) => format!(" on page {url}"),
            _ => String::new(),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            eprintln!("netmedic-lab: {e}");
        }
    }
}

impl<'b> Element<'b> {
    /// The selector it was found by (`css[i]` for [`Browser::find_all`] results).
    pub fn selector(&self) -> &str {
        &self.selector
    }

    /// The element as an argument of [`Browser::execute`].
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    /// Clicks it (scrolled into view; fails if another element would get the click).
    pub fn click(&self) -> Result<()> {
        self.post("clicking", "/click", json!({})).map(drop)
    }

    /// Types `text` into it (see [`keys`] for Enter, Tab, ...).
    pub fn send_keys(&self, text: &str) -> Result<()> {
        self.post("typing into", "/value", json!({ "text": text }))
            .map(drop)
    }

    /// Empties an input or textarea.
    pub fn clear(&self) -> Result<()> {
        self.post("clearing", "/clear", json!({})).map(drop)
    }

    /// Its rendered text (`innerText`-like: what the user sees).
    pub fn text(&self) -> Result<String> {
        self.get("reading the text of", "/text")
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// An HTML attribute (`None` if absent).
    pub fn attr(&self, name: &str) -> Result<Option<String>> {
        let v = self.get(
            &format!("reading attribute {name:?} of"),
            &format!("/attribute/{}", percent_encode(name)),
        )?;
        Ok(match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        })
    }

    /// A DOM property (e.g. `value`, `checked`, `innerHTML`) as JSON.
    pub fn prop(&self, name: &str) -> Result<Value> {
        self.get(
            &format!("reading property {name:?} of"),
            &format!("/property/{}", percent_encode(name)),
        )
    }

    /// Whether it is displayed (visible to the user).
    pub fn is_displayed(&self) -> Result<bool> {
        self.get("checking whether it displays", "/displayed")
            .map(|v| v.as_bool() == Some(true))
    }

    /// The first descendant matching `css`.
    pub fn find(&self, css: &str) -> Result<Element<'b>> {
        let b = self.browser;
        b.find_raw(Some(&self.id), css)
            .map(|id| b.element(id, format!("{} {css}", self.selector)))
            .map_err(|f| b.wd_error(&format!("finding `{css}` inside `{}`", self.selector), f))
    }

    /// Every descendant matching `css`.
    pub fn find_all(&self, css: &str) -> Result<Vec<Element<'b>>> {
        let b = self.browser;
        b.find_all_raw(Some(&self.id), css)
            .map(|ids| b.elements(ids, &format!("{} {css}", self.selector)))
            .map_err(|f| {
                b.wd_error(
                    &format!("finding all `{css}` inside `{}`", self.selector),
                    f,
                )
            })
    }

    fn get(&self, what: &str, path: &str) -> Result<Value> {
        let what = format!("{what} `{}`", self.selector);
        self.browser
            .cmd(&what, "GET", &format!("/element/{}{path}", self.id), None)
    }

    fn post(&self, what: &str, path: &str, body: Value) -> Result<Value> {
        let what = format!("{what} `{}`", self.selector);
        self.browser.cmd(
            &what,
            "POST",
            &format!("/element/{}{path}", self.id),
            Some(&body),
        )
    }
}

/// One HTTP/1.1 request to chromedriver at `addr` (loopback, from inside the namespace): status
/// and body.
///
/// Not [`crate::http_request`]: chromedriver answers `Connection: close` but keeps the socket
/// open until the client closes it, so a client that reads to EOF waits for its read timeout on
/// every request. This one stops reading at `Content-Length`.
fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> std::result::Result<(u16, String), String> {
    if !addr.ip().is_loopback() || in_host_netns() {
        return Err(format!(
            "refusing to reach {addr} from this network namespace: chromedriver listens on \
             the loopback of the lab namespace (use Netns::run)"
        ));
    }
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("setting timeouts: {e}"))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: netmedic-lab\r\n"
    );
    match body {
        Some(body) => req.push_str(&format!(
            "Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => req.push_str("Content-Length: 0\r\n\r\n"),
    }
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;

    let mut raw = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let (head_end, len) = loop {
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let len = content_length(&String::from_utf8_lossy(&raw[..end]));
            if len.is_none_or(|len| raw.len() >= end + 4 + len) {
                break (end, len);
            }
        }
        let n = stream
            .read(&mut chunk)
            .map_err(|e| format!("read (after {} bytes): {e}", raw.len()))?;
        if n == 0 {
            match find(&raw, b"\r\n\r\n") {
                // No Content-Length: the body ends at EOF.
                Some(end) => break (end, None),
                None => return Err(format!("connection closed after {} bytes", raw.len())),
            }
        }
        raw.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let status_line = head.lines().next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .filter(|_| status_line.starts_with("HTTP/1."))
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let rest = &raw[head_end + 4..];
    let body = len.map_or(rest, |len| &rest[..len.min(rest.len())]);
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

/// The `Content-Length` of a response head, if it has one.
fn content_length(head: &str) -> Option<usize> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        if k.trim().eq_ignore_ascii_case("content-length") {
            v.trim().parse().ok()
        } else {
            None
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn element_id(v: &Value) -> Option<String> {
    v.get(ELEMENT_KEY)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn parse_cookie(v: &Value) -> Cookie {
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    Cookie {
        name: s("name").unwrap_or_default(),
        value: s("value").unwrap_or_default(),
        path: s("path"),
        domain: s("domain"),
        secure: v.get("secure").and_then(Value::as_bool) == Some(true),
        http_only: v.get("httpOnly").and_then(Value::as_bool) == Some(true),
        same_site: s("sameSite"),
        expiry: v.get("expiry").and_then(Value::as_u64),
    }
}

/// The port in chromedriver's "ChromeDriver was started successfully on port 41234." line.
fn parse_port(log: &str) -> Option<u16> {
    let rest = log.split("started successfully on port ").nth(1)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok().filter(|&p| p != 0)
}

/// The process group of `pid` (`/proc/<pid>/stat`, field 5).
fn proc_pgid(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid pgrp ...": comm may contain spaces and parentheses.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(2)?.parse().ok()
}

fn proc_cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

fn excerpt(s: &str, max: usize) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// Percent-encodes everything but unreserved characters, for a URL path segment.
fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Standard base64 (padding optional, whitespace ignored); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("Zg==").unwrap(), b"f");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert_eq!(base64_decode("Zm9v").unwrap(), b"foo");
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9v\nYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        assert_eq!(
            base64_decode("iVBORw0KGgo=").unwrap(),
            PNG_SIGNATURE.to_vec()
        );
        assert!(base64_decode("Zm9v*").is_none());
    }

    #[test]
    fn parses_the_driver_port() {
        let log = "Starting ChromeDriver 156.0 on port 0\nOnly local connections are allowed.\n\
                   ChromeDriver was started successfully on port 39193.\n";
        assert_eq!(parse_port(log), Some(39193));
        assert_eq!(parse_port("Starting ChromeDriver on port 0\n"), None);
    }

    #[test]
    fn failures_read_well() {
        let f = Failure::Driver {
            code: "no such element".into(),
            message: "no such element: Unable to locate element".into(),
        };
        assert_eq!(f.to_string(), "no such element: Unable to locate element");
        assert!(f.is_transient());
        let f = Failure::Driver {
            code: "unexpected alert open".into(),
            message: "{Alert text : x}".into(),
        };
        assert_eq!(f.to_string(), "unexpected alert open: {Alert text : x}");
        assert!(!f.is_transient());
    }

    #[test]
    fn encodes_path_segments_and_excerpts() {
        assert_eq!(percent_encode("data-x_y.z"), "data-x_y.z");
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(excerpt("a\n  b", 10), "a b");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }

    #[test]
    fn reads_content_length_and_refuses_the_host_namespace() {
        let head = "HTTP/1.1 200 OK\r\nContent-Length:249\r\nConnection:close";
        assert_eq!(content_length(head), Some(249));
        assert_eq!(content_length("HTTP/1.1 200 OK\r\nX: y"), None);
        if in_host_netns() {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
            let e = exchange(addr, "GET", "/status", None, Duration::from_secs(1)).unwrap_err();
            assert!(e.contains("refusing"), "{e}");
        }
    }

    #[test]
    fn reads_our_own_process_group() {
        let me = i32::try_from(std::process::id()).unwrap();
        assert_eq!(proc_pgid(me), Some(nix::unistd::getpgrp().as_raw()));
        assert!(proc_cmdline(me).contains("netmedic_lab"));
    }
}
