//! `[storage]`: which backend, where, and how the pool is tuned; URLs never print a password.

use super::{DEFAULT_BUSY_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS};
use std::fmt;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageConfig {
    pub url: StorageUrl,
    /// How long a write waits for the database lock before the request gets a 503.
    pub busy_timeout_ms: u32,
    /// Connection pool size (PostgreSQL; SQLite uses a fixed small pool).
    pub max_connections: u32,
}

impl StorageConfig {
    /// Storage at `url` with default tuning (for `--db URL`).
    pub fn with_url(url: StorageUrl) -> Self {
        Self {
            url,
            busy_timeout_ms: DEFAULT_BUSY_TIMEOUT_MS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Which storage backend to use, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// One SQLite database file (created when missing).
    Sqlite { path: PathBuf },
    /// A PostgreSQL database (`postgres://user:password@host:port/db?options`), shared by any
    /// number of collector processes.
    Postgres { url: String },
}

impl StorageUrl {
    /// Accepts `sqlite:///abs/path`, `sqlite://rel/path`, `sqlite:path` or a plain file path.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("must not be empty".into());
        }
        let path = if let Some(rest) = s.strip_prefix("sqlite:") {
            rest.strip_prefix("//").unwrap_or(rest)
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            if s.split_once("://").is_none_or(|(_, rest)| rest.is_empty()) {
                return Err("the PostgreSQL URL names no server or database".into());
            }
            return Ok(StorageUrl::Postgres { url: s.to_owned() });
        } else if let Some((scheme, _)) = s.split_once("://") {
            return Err(format!(
                "unsupported storage scheme `{scheme}` (expected sqlite or postgres)"
            ));
        } else {
            s
        };
        if path.is_empty() {
            return Err("the SQLite URL has no file path".into());
        }
        if path.contains('?') || path == ":memory:" {
            return Err(
                "SQLite URL options and in-memory databases are not supported; give a file path"
                    .into(),
            );
        }
        Ok(StorageUrl::Sqlite { path: path.into() })
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUrl::Sqlite { path } => write!(f, "sqlite://{}", path.display()),
            // Never print a password (logs, `check-config`).
            StorageUrl::Postgres { url } => f.write_str(&redact_password(url)),
        }
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}
