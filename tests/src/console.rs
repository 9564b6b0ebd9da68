//! What the NOC console's browser tests share: running the collector's CLI on a lab stack's
//! database (enrolling devices, adding users), posting to its API from the ISP namespace, and
//! logging in to the console in [`Browser`].

use crate::browser::Browser;
use crate::error::{LabError, Result};
use crate::stack::{Stack, bin_path};
use crate::{HttpResponse, http_request};
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs `netmedic-collector ARGS --db <the stack's SQLite>` with `stdin`; its trimmed stdout,
/// or an error with its stderr when it fails.
pub fn collector_cli(stack: &Stack, args: &[&str], stdin: &str) -> Result<String> {
    let db = format!("sqlite://{}", stack.db_path().display());
    let setup = |what: &str, e: &dyn std::fmt::Display| {
        LabError::Setup(format!("netmedic-collector {args:?}: {what}: {e}"))
    };
    let mut child = Command::new(bin_path("netmedic-collector")?)
        .args(args)
        .args(["--db", &db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| setup("spawn", &e))?;
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .map_err(|e| setup("stdin", &e))?;
    }
    let out = child.wait_with_output().map_err(|e| setup("wait", &e))?;
    if !out.status.success() {
        return Err(setup(
            "failed",
            &String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Opens the console at `base`, is sent to the login form, logs in as `user` and waits for the
/// `#whoami` badge naming `user`.
pub fn login(b: &Browser, base: &str, user: &str, password: &str, wait: Duration) -> Result<()> {
    b.goto(&format!("{base}/"))?;
    b.wait_for("#login-form", wait)?;
    let url = b.current_url()?;
    if !url.contains("/login?next=") {
        return Err(LabError::Setup(format!(
            "the console did not send an anonymous visitor to the login form: {url}"
        )));
    }
    b.find("#username")?.send_keys(user)?;
    b.find("#password")?.send_keys(password)?;
    b.find("#login")?.click()?;
    b.wait_for("#whoami", wait)?;
    let who = b.find("#whoami")?.text()?;
    if !who.starts_with(user) {
        return Err(LabError::Setup(format!("logged in as {who:?}, not {user}")));
    }
    Ok(())
}

/// POSTs `body` (of `content_type`) to the stack's collector at `path` with the bearer `token`,
/// from the ISP namespace (where the collector listens); the response, whatever its status.
pub fn post(
    stack: &Stack,
    path: &str,
    token: &str,
    content_type: &str,
    body: &str,
) -> Result<HttpResponse> {
    let addr = stack.collector_addr;
    let auth = format!("Bearer {token}");
    stack.lab().isp().ns.run(|| {
        http_request(
            addr,
            "POST",
            path,
            &[("Authorization", auth.as_str())],
            Some((content_type, body.as_bytes())),
        )
    })?
}
