//! The lab's error type, [`LabError`], and small helpers to build it.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything that can go wrong while building, driving or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// An external command (`ip`, `nft`, `ping`, ...) exited unsuccessfully.
    #[error("command `{cmd}` failed ({status}): {stderr}")]
    Command {
        /// The command line, space-joined.
        cmd: String,
        /// How it ended (`exit status: 1`, `signal: 9`, ...).
        status: String,
        /// Its stderr (and stdout if stderr was empty), trimmed.
        stderr: String,
    },
    /// A file-system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the lab was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A system call made through `nix` failed.
    #[error("{context}: {source}")]
    Sys {
        /// What the lab was doing.
        context: String,
        /// The errno.
        #[source]
        source: nix::Error,
    },
    /// [`crate::wait_for`] gave up.
    #[error("timed out after {waited:?} waiting for {desc}; last seen: {last_seen}")]
    Timeout {
        /// What was being waited for.
        desc: String,
        /// How long it waited.
        waited: Duration,
        /// The last observation (or error) the probe reported.
        last_seen: String,
    },
    /// The lab could not be brought up; the message carries the relevant logs.
    #[error("lab setup failed: {0}")]
    Setup(String),
    /// The minimal HTTP client failed (connect, timeout, malformed response).
    #[error("HTTP {addr}: {msg}")]
    Http {
        /// The server address.
        addr: SocketAddr,
        /// What went wrong.
        msg: String,
    },
    /// Output of a tool or a file could not be parsed.
    #[error("cannot parse {what}: {msg}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// Why it failed.
        msg: String,
    },
}

/// Shorthand for `Result<T, LabError>`.
pub type Result<T, E = LabError> = std::result::Result<T, E>;

/// Returns a closure that wraps an `io::Error` with `context`, for `map_err`.
pub(crate) fn io_ctx(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Io { context, source }
}

/// Returns a closure that wraps a `nix::Error` with `context`, for `map_err`.
pub(crate) fn sys_ctx(context: impl Into<String>) -> impl FnOnce(nix::Error) -> LabError {
    let context = context.into();
    move |source| LabError::Sys { context, source }
}

/// Builds a [`LabError::Parse`].
pub(crate) fn parse_err(what: impl Into<String>, msg: impl std::fmt::Display) -> LabError {
    LabError::Parse {
        what: what.into(),
        msg: msg.to_string(),
    }
}
