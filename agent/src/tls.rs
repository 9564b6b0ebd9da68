//! The HTTP(S) client the reporter and the heartbeat share: rustls with the `ring` provider (no
//! OpenSSL, no aws-lc), the collector's CA optionally pinned, an optional client certificate
//! (mutual TLS), and secret files (token, client key) refused when group or others can read
//! or write them.

use crate::config::CollectorSection;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}: mode {mode:04o} lets group or others read or write a secret; \
         run `chmod 600 {path}` (the agent refuses looser modes)"
    )]
    LooseMode { path: String, mode: u32 },
    #[error("{path}: {why}")]
    Pem { path: String, why: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// The largest token, key, certificate or CA file read (a long chain is tens of KiB).
const MAX_SECRET_FILE_BYTES: u64 = 1024 * 1024;

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::io::Read as _;
    let err = |source| TlsError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET_FILE_BYTES + 1).read_to_end(&mut buf))
        .map_err(err)?;
    if buf.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(err(std::io::Error::other(format!(
            "larger than {MAX_SECRET_FILE_BYTES} bytes"
        ))));
    }
    Ok(buf)
}

/// Reads a secret file, refusing it when its mode gives group or others any access: a token or
/// key that other users can read is already leaked, and one they can write can be swapped.
pub fn read_secret(path: &Path) -> Result<Vec<u8>, TlsError> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TlsError::LooseMode {
            path: path.display().to_string(),
            mode,
        });
    }
    read(path)
}

/// Reads the bearer token file (first line, trimmed); see [`read_secret`].
pub fn read_token(path: &Path) -> Result<String, TlsError> {
    let bytes = read_secret(path)?;
    Ok(String::from_utf8_lossy(&bytes)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string())
}

/// Installs `ring` as the process's rustls crypto provider (once; later calls are no-ops).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn pem_error(path: &Path) -> impl FnOnce(reqwest::Error) -> TlsError + '_ {
    move |e| TlsError::Pem {
        path: path.display().to_string(),
        why: e.to_string(),
    }
}

/// Builds the collector client from `[collector]`.
pub fn client(c: &CollectorSection) -> Result<reqwest::Client, TlsError> {
    install_crypto_provider();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(c.request_timeout_secs))
        .connect_timeout(Duration::from_secs(c.request_timeout_secs.min(10)))
        .user_agent(concat!("netmedic-agent/", env!("CARGO_PKG_VERSION")))
        .https_only(c.url.starts_with("https://"))
        // Idle between heartbeats: keep no connection (and no wakeups) open for minutes.
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1);
    if let Some(ca) = &c.ca_file {
        let certs = reqwest::Certificate::from_pem_bundle(&read(ca)?).map_err(pem_error(ca))?;
        if certs.is_empty() {
            return Err(TlsError::Pem {
                path: ca.display().to_string(),
                why: "no certificate in the file".into(),
            });
        }
        // Pinned: these and only these roots.
        b = b.tls_certs_only(certs);
    }
    if let (Some(cert), Some(key)) = (&c.client_cert_file, &c.client_key_file) {
        let mut pem = read(cert)?;
        pem.push(b'\n');
        pem.extend_from_slice(&read_secret(key)?);
        let id = reqwest::Identity::from_pem(&pem).map_err(pem_error(cert))?;
        b = b.identity(id);
    }
    b.build().map_err(TlsError::Client)
}

/// The files a config's client depends on (to tell a reload that they changed).
pub fn files(c: &CollectorSection) -> Vec<PathBuf> {
    [
        &c.token_file,
        &c.ca_file,
        &c.client_cert_file,
        &c.client_key_file,
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn a_huge_secret_file_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_token(&p).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn loose_token_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "abc\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_token(&p).unwrap(), "abc");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_token(&p).unwrap_err().to_string();
        assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");
    }
}
