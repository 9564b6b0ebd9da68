//! A minimal blocking HTTP/1.1 client for tests, meant to be used inside
//! [`crate::Netns::run`] (one request per connection, `Connection: close`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{LabError, Result};

/// Connect, write and read timeout of every request.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// A response: status, headers (names lower-cased) and body (lossy UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code, e.g. 200.
    pub status: u16,
    /// Header name (lower case) and value pairs, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: String,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value> {
        serde_json::from_str(&self.body)
            .map_err(|e| crate::error::parse_err("HTTP body as JSON", e))
    }
}

/// `GET path` on `addr`.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<HttpResponse> {
    http_request(addr, "GET", path, &[], None)
}

/// `POST path` on `addr` with a JSON body (`Content-Type: application/json`).
pub fn http_post_json(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<HttpResponse> {
    let body = body.to_string();
    http_request(
        addr,
        "POST",
        path,
        &[],
        Some(("application/json", body.as_bytes())),
    )
}

/// Any request: extra `headers`, optional `(content_type, body)`.
///
/// Refuses to talk to a non-loopback address from the host's own network namespace:
/// call it inside [`crate::Netns::run`].
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Result<HttpResponse> {
    let err = |msg: String| LabError::Http { addr, msg };
    if !addr.ip().is_loopback() && in_host_netns() {
        return Err(err(
            "refusing to send packets from the host network namespace; use Netns::run".into(),
        ));
    }
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)
        .map_err(|e| err(format!("connect: {e}")))?;
    stream
        .set_read_timeout(Some(HTTP_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(HTTP_TIMEOUT)))
        .map_err(|e| err(format!("setting timeouts: {e}")))?;

    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: netmedic-lab\r\n"
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut bytes = Vec::new();
    match body {
        Some((ctype, data)) => {
            req.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {}\r\n\r\n",
                data.len()
            ));
            bytes.extend_from_slice(req.as_bytes());
            bytes.extend_from_slice(data);
        }
        None => {
            req.push_str("\r\n");
            bytes.extend_from_slice(req.as_bytes());
        }
    }
    stream
        .write_all(&bytes)
        .map_err(|e| err(format!("write: {e}")))?;

    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| err(format!("read: {e}")))?;
    parse_response(&raw).map_err(err)
}

/// Whether the calling thread is in the host's network namespace: the one of pid 1,
/// or, when that is not readable (as in some containers), the one of this process's
/// main thread (which the lab never moves).
pub fn in_host_netns() -> bool {
    let Ok(mine) = std::fs::read_link("/proc/thread-self/ns/net") else {
        return true; // Cannot tell: be safe.
    };
    match std::fs::read_link("/proc/1/ns/net").or_else(|_| std::fs::read_link("/proc/self/ns/net"))
    {
        Ok(host) => mine == host,
        Err(_) => true,
    }
}

fn parse_response(raw: &[u8]) -> std::result::Result<HttpResponse, String> {
    let head_end = find(raw, b"\r\n\r\n").ok_or("response has no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..head_end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!("bad status line {status_line:?}"));
    }
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let body =
        if get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            dechunk(rest)?
        } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
            if rest.len() < len {
                return Err(format!("body truncated: {} of {len} bytes", rest.len()));
            }
            rest[..len].to_vec()
        } else {
            rest.to_vec()
        };
    Ok(HttpResponse {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let line_end = find(data, b"\r\n").ok_or("chunk size line missing")?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("bad chunk size {size_hex:?}: {e}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if data.len() < size + 2 {
            return Err("chunk truncated".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_and_chunked() {
        let r =
            parse_response(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nX-A: b\r\n\r\n{}junk")
                .unwrap();
        assert_eq!(
            (r.status, r.body.as_str(), r.header("x-a")),
            (201, "{}", Some("b"))
        );
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, "abcde");
        assert!(parse_response(b"garbage").is_err());
    }

    #[test]
    fn get_over_loopback_inside_a_thread() {
        use std::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"ok\":true}")
                .unwrap();
            req
        });
        let resp = http_get(addr, "/health").unwrap();
        assert_eq!(resp.status, 200);
        assert_eq!(resp.json().unwrap()["ok"], true);
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /health HTTP/1.1\r\n"), "{req}");
        assert!(req.contains("Connection: close"), "{req}");
    }

    #[test]
    fn refuses_non_loopback_from_host_ns() {
        if !in_host_netns() {
            return;
        }
        let addr: SocketAddr = "192.0.2.1:80".parse().unwrap();
        assert!(matches!(http_get(addr, "/"), Err(LabError::Http { .. })));
    }
}
