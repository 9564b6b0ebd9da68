//! A small HTTP/1.1 client over a tokio `TcpStream` (keep-alive, Content-Length or chunked
//! bodies), light enough to leave the CPU to the collector, and the HTML helpers of the console
//! login.

use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    pub(crate) stream: BufReader<TcpStream>,
    pub(crate) addr: SocketAddr,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr) -> Result<Self> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Self {
            stream: BufReader::new(s),
            addr,
        })
    }

    /// POSTs JSON; returns the status code (the body is read and dropped).
    pub(crate) async fn post(&mut self, path: &str, token: &str, body: &[u8]) -> Result<u16> {
        let auth = format!("Bearer {token}");
        let headers = [
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ];
        Ok(self.request("POST", path, &headers, body).await?.status)
    }
}

/// A whole HTTP response.
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    /// The server closes the connection after this response.
    pub(crate) close: bool,
}

impl Resp {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The value a `Set-Cookie` header gives cookie `name`.
    pub(crate) fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.split(';').next()?.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

impl Conn {
    /// Sends one request and reads the whole response (Content-Length, chunked, or until the
    /// server closes).
    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" || !body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let s = self.stream.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut resp = Resp {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            close: false,
        };
        loop {
            line.clear();
            if self.stream.read_line(&mut line).await? == 0 {
                bail!("connection closed in the headers");
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                resp.headers
                    .push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        resp.close = resp
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let chunked = resp
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        if method == "HEAD" || status == 204 || status == 304 || (100..200).contains(&status) {
        } else if chunked {
            loop {
                line.clear();
                self.stream.read_line(&mut line).await?;
                let size = line.trim_end().split(';').next().unwrap_or("");
                let size = usize::from_str_radix(size.trim(), 16)
                    .with_context(|| format!("bad chunk size {line:?}"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    loop {
                        line.clear();
                        if self.stream.read_line(&mut line).await? == 0
                            || line.trim_end().is_empty()
                        {
                            break;
                        }
                    }
                    break;
                }
                let at = resp.body.len();
                resp.body.resize(at + size, 0);
                self.stream.read_exact(&mut resp.body[at..]).await?;
                line.clear();
                self.stream.read_line(&mut line).await?;
            }
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len.parse().context("bad Content-Length")?;
            resp.body = vec![0u8; len];
            self.stream.read_exact(&mut resp.body).await?;
        } else {
            self.stream.read_to_end(&mut resp.body).await?;
            resp.close = true;
        }
        Ok(resp)
    }
}

/// A keep-alive connection that is reopened when the server closes it.
pub(crate) struct Client {
    pub(crate) addr: SocketAddr,
    pub(crate) conn: Option<Conn>,
}

impl Client {
    pub(crate) async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Resp> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(Conn::open(self.addr).await?),
            };
            match conn.request(method, path, headers, body).await {
                Ok(r) => {
                    if r.close {
                        self.conn = None;
                    }
                    return Ok(r);
                }
                // A kept-alive connection the server dropped meanwhile: retry once on a new one.
                Err(_) if attempt == 1 => self.conn = None,
                Err(e) => return Err(e.context(format!("{method} {path}"))),
            }
        }
    }
}

/// `application/x-www-form-urlencoded` value.
pub(crate) fn form_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'*') {
            out.push(char::from(b));
        } else if b == b' ' {
            out.push('+');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Undoes the HTML escaping of an attribute value.
pub(crate) fn html_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&amp;", "&")
}

/// The `href` of the first `<a ...>` tag that contains `marker` (e.g. `id="next-page"`).
pub(crate) fn anchor_href(html: &str, marker: &str) -> Option<String> {
    let at = html.find(marker)?;
    let start = html[..at].rfind("<a ")?;
    let end = start + html[start..].find('>')?;
    let tag = &html[start..end];
    let h = tag.find("href=\"")? + 6;
    let len = tag[h..].find('"')?;
    Some(html_unescape(&tag[h..h + len]))
}
