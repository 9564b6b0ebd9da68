//! The TLS settings of the HTTP(S) client ([`crate::httpc`]) the reporter and the heartbeat
//! share: rustls with the `ring` provider (no OpenSSL, no aws-lc, no platform verifier), the collector's CA optionally pinned, an optional client certificate
//! (mutual TLS), and secret files (token, client key) refused when group or others can read
//! or write them.
//!
//! ## Trust roots
//! - `http://` collector: no certificate store is loaded at all — a router without CA
//!   certificates (common on small firmware) still reports.
//! - `https://` with `collector.ca_file`: that CA and only it (pinned); the system store is
//!   never read.
//! - `https://` without `ca_file`: the system store (`SSL_CERT_FILE` / `SSL_CERT_DIR` when
//!   set, else the distribution's bundle), read once when the client is built; when it has
//!   no certificate the error says so and names both ways out.

use crate::httpc::{Client, Url};
use crate::site::CollectorSection;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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
    Client(String),
    #[error(
        "{url} is https:// but no CA certificate is available to verify it ({why}): set \
         collector.ca_file to the collector's CA (pinned), install the system CA certificates \
         (SSL_CERT_FILE / SSL_CERT_DIR say where they are), or use an http:// collector"
    )]
    NoTrustRoots { url: String, why: String },
}

/// Whether `url` is plain `http://` (no TLS, so no trust roots needed).
fn is_plain_http(url: &str) -> bool {
    Url::parse(url).is_ok_and(|u| !u.https)
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

fn pem_error(path: &Path, why: impl std::fmt::Display) -> TlsError {
    TlsError::Pem {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// The certificates of a PEM file; an empty list is an error.
fn pem_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in the file"));
    }
    Ok(certs)
}

/// The system's CA certificates (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set, else the
/// distribution's bundle), read once per client built.
pub fn system_roots() -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map_or_else(|| "no CA certificates found".to_string(), |e| e.to_string());
        return Err(why);
    }
    Ok(roots)
}

/// A rustls client config: `ring`, the given roots, an optional client certificate, HTTP/1.1.
fn tls_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Client(e.to_string()))?
    .with_root_certificates(roots);
    let mut config = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| TlsError::Client(format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client for `url`'s scheme with the system's roots (none are read for `http://`); for a
/// check that fetches from a host of its config.
pub fn client_for(url: &str, timeout: Duration) -> Result<Client, TlsError> {
    if is_plain_http(url) {
        return Ok(Client::plain_http(timeout));
    }
    let roots = system_roots().map_err(|why| TlsError::NoTrustRoots {
        url: url.to_string(),
        why,
    })?;
    Ok(Client::new(
        Some(tls_config(roots, None)?),
        false,
        timeout,
        timeout,
    ))
}

/// Builds the collector client from `[collector]`.
pub fn client(c: &CollectorSection) -> Result<Client, TlsError> {
    let timeout = Duration::from_secs(c.request_timeout_secs);
    let connect_timeout = Duration::from_secs(c.request_timeout_secs.min(10));
    if is_plain_http(&c.url) && c.ca_file.is_none() {
        // No certificate store is loaded at all.
        return Ok(Client::new(None, false, timeout, connect_timeout));
    }
    let roots = if let Some(ca) = &c.ca_file {
        // Pinned: these and only these roots; the system store is never read.
        let mut roots = RootCertStore::empty();
        for cert in pem_certs(ca, &read(ca)?)? {
            roots.add(cert).map_err(|e| pem_error(ca, e))?;
        }
        roots
    } else {
        system_roots().map_err(|why| TlsError::NoTrustRoots {
            url: c.url.clone(),
            why,
        })?
    };
    let identity = match (&c.client_cert_file, &c.client_key_file) {
        (Some(cert), Some(key)) => {
            let certs = pem_certs(cert, &read(cert)?)?;
            let key =
                PrivateKeyDer::from_pem_slice(&read_secret(key)?).map_err(|e| pem_error(key, e))?;
            Some((certs, key))
        }
        _ => None,
    };
    Ok(Client::new(
        Some(tls_config(roots, identity)?),
        c.url.starts_with("https://"),
        timeout,
        connect_timeout,
    ))
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read as _, Write as _};
    use std::os::unix::fs::PermissionsExt as _;
    use std::process::Command;

    /// Set in the child process that runs with an empty CA store.
    const CHILD: &str = "NETMEDIC_TEST_NO_CA_STORE";

    fn section(toml_text: &str) -> CollectorSection {
        toml::from_str(toml_text).unwrap()
    }

    /// A one-request HTTP server on loopback: answers 200 and hands back what it received.
    fn one_shot_server() -> (u16, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the body its Content-Length announces.
            loop {
                let n = conn.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if got.len() >= end + 4 + len || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (port, handle)
    }

    /// What must hold with no CA certificate on the system (runs in the child).
    fn without_a_ca_store(dir: &Path) {
        // An http:// collector: the client builds and a report gets through.
        let (port, server) = one_shot_server();
        let c = client(&section(&format!("url = \"http://127.0.0.1:{port}\""))).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let status = rt.block_on(async {
            c.send(
                http::Method::POST,
                &format!("http://127.0.0.1:{port}/api/v1/report"),
                &[],
                bytes::Bytes::from_static(b"{\"events\":[]}"),
            )
            .await
            .unwrap()
            .status()
        });
        assert_eq!(status.as_u16(), 200);
        let got = server.join().unwrap();
        assert!(got.starts_with("POST /api/v1/report"), "{got}");
        assert!(got.ends_with("{\"events\":[]}"), "{got}");
        // A check's client for an http:// URL builds too.
        client_for("http://192.0.2.1/", Duration::from_secs(1)).unwrap();
        // https:// with a pinned CA: the system store is not needed.
        let ca = dir.join("ca.pem");
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=netmedic test CA"])
            .arg("-keyout")
            .arg(dir.join("ca.key"))
            .arg("-out")
            .arg(&ca)
            .output()
            .expect("openssl (the test generates its CA with it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pinned = format!(
            "url = \"https://collector.example.invalid:8440\"\nca_file = \"{}\"",
            ca.display()
        );
        client(&section(&pinned)).unwrap();
        // https:// with neither: a clear error naming what is missing.
        let err = client(&section("url = \"https://collector.example.invalid:8440\""))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no CA certificate") && err.contains("collector.ca_file"),
            "{err}"
        );
    }

    #[test]
    fn reports_without_any_system_ca_certificate() {
        let dir = tempfile::tempdir().unwrap();
        if std::env::var_os(CHILD).is_some() {
            without_a_ca_store(dir.path());
            return;
        }
        // The platform verifier looks only at SSL_CERT_FILE / SSL_CERT_DIR when they are
        // set: an empty file and an empty directory are a system without CA certificates.
        // Environment is per process, so the checks run in a child of this test binary.
        let empty_file = dir.path().join("none.pem");
        std::fs::write(&empty_file, "").unwrap();
        let empty_dir = dir.path().join("certs");
        std::fs::create_dir(&empty_dir).unwrap();
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "tls::tests::reports_without_any_system_ca_certificate",
            ])
            .args(["--test-threads", "1", "--nocapture"])
            .env(CHILD, "1")
            .env("SSL_CERT_FILE", &empty_file)
            .env("SSL_CERT_DIR", &empty_dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child failed:\n{stdout}\n{stderr}"
        );
    }

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
