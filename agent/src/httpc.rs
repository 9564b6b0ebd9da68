//! The agent's HTTP/1.1 client: one connection per request (hyper's connection API over a
//! tokio TCP stream, TLS through tokio-rustls), a deadline over the whole exchange, no pool,
//! no redirects, no proxy.
//!
//! Used by the reporter and the heartbeat (the collector), the `clock` check's fallback GET and
//! the `http` check's probe. A heartbeat every few minutes gains nothing from a pooled
//! connection; without a pool there is no idle connection, reaper timer or wake-up between
//! requests, and no connection-pool code in the router binary. TLS session tickets
//! (the `rustls::ClientConfig` is shared by a client's requests) keep a reconnect cheap.
//!
//! A peer is hostile: the reply head is bounded by hyper, the body is read a chunk at a time
//! by the caller (who caps it), and the deadline cuts a slow or endless reply; the connection
//! task itself ends by the deadline whatever the peer does.

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

pub use http::header;

/// What went wrong with a request; the message has the cause (refused, no route, DNS, TLS).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("timed out")]
    Timeout,
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Other(String),
}

impl HttpError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }
    pub fn is_connect(&self) -> bool {
        matches!(self, Self::Connect(_))
    }
}

/// An `http://` or `https://` URL split into what a request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub https: bool,
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: host, and the port when it is not the scheme's.
    pub authority: String,
    pub path_and_query: String,
}

impl Url {
    /// Parses an absolute `http://` or `https://` URL with a host; no user info.
    pub fn parse(s: &str) -> Result<Self, String> {
        let uri: Uri = s.parse().map_err(|e| format!("{e}"))?;
        let https = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            Some(other) => return Err(format!("scheme {other:?} is not http or https")),
            None => return Err("no scheme (http:// or https://)".into()),
        };
        let auth = uri.authority().ok_or("no host")?;
        if auth.as_str().contains('@') {
            return Err("user info in the URL is not supported".into());
        }
        let host = auth.host().trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err("no host".into());
        }
        let default_port = if https { 443 } else { 80 };
        let port = auth.port_u16().unwrap_or(default_port);
        let authority = if port == default_port {
            auth.host().to_string()
        } else {
            format!("{}:{port}", auth.host())
        };
        Ok(Self {
            https,
            host: host.to_string(),
            port,
            authority,
            path_and_query: uri.path_and_query().map_or("/", |p| p.as_str()).to_string(),
        })
    }

    /// The host when it is a DNS name (not an IP address).
    pub fn domain(&self) -> Option<&str> {
        self.host
            .parse::<IpAddr>()
            .is_err()
            .then_some(self.host.as_str())
    }
}

/// A client: TLS settings (none: `http://` only) and timeouts. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    tls: Option<Arc<rustls::ClientConfig>>,
    https_only: bool,
    timeout: Duration,
    connect_timeout: Duration,
}

const USER_AGENT: &str = concat!("netmedic-agent/", env!("CARGO_PKG_VERSION"));

impl Client {
    /// `tls`: the config for `https://` URLs (`None`: they fail). `timeout` bounds the whole
    /// exchange, body included; `connect_timeout` the TCP connect and TLS handshake.
    pub fn new(
        tls: Option<Arc<rustls::ClientConfig>>,
        https_only: bool,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Self {
        Self {
            tls,
            https_only,
            timeout,
            connect_timeout: connect_timeout.min(timeout),
        }
    }

    /// A client for `http://` URLs only: no certificate store is read.
    pub fn plain_http(timeout: Duration) -> Self {
        Self::new(None, false, timeout, timeout)
    }

    pub async fn get(&self, url: &str) -> Result<Response, HttpError> {
        self.send(Method::GET, url, &[], Bytes::new()).await
    }

    /// Sends one request (`User-Agent`, `Host`, `Content-Length` added) and returns once the
    /// reply head is in; read the body with [`Response::chunk`] before the deadline.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response, HttpError> {
        let url = Url::parse(url).map_err(|e| HttpError::Other(format!("bad URL: {e}")))?;
        let deadline = Instant::now() + self.timeout;
        let mut req = http::Request::builder()
            .method(method)
            .uri(url.path_and_query.as_str())
            .header(header::HOST, url.authority.as_str())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONNECTION, "close");
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req
            .body(Full::new(body))
            .map_err(|e| HttpError::Other(format!("bad request: {e}")))?;
        let exchange = async {
            let io = self.connect(&url).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| HttpError::Other(chain(&e)))?;
            // The connection task: ends with the exchange, or at the deadline at the latest.
            tokio::spawn(async move {
                let _ = tokio::time::timeout_at(deadline, conn).await;
            });
            sender.send_request(req).await.map_err(|e| {
                if e.is_timeout() {
                    HttpError::Timeout
                } else {
                    HttpError::Other(chain(&e))
                }
            })
        };
        let resp = tokio::time::timeout_at(deadline, exchange)
            .await
            .map_err(|_| HttpError::Timeout)??;
        let (head, body) = resp.into_parts();
        Ok(Response {
            head,
            body,
            deadline,
        })
    }

    /// TCP to the first address of the host that answers, then TLS for `https://`.
    async fn connect(&self, url: &Url) -> Result<TokioIo<Stream>, HttpError> {
        if self.https_only && !url.https {
            return Err(HttpError::Other(
                "the collector URL is https://; refusing a plain http:// request".into(),
            ));
        }
        let tls = match (url.https, &self.tls) {
            (false, _) => None,
            (true, Some(t)) => Some(t.clone()),
            (true, None) => {
                return Err(HttpError::Other(
                    "https:// URL, but this client is for http:// only".into(),
                ));
            }
        };
        let step = async {
            let tcp = tcp_connect(&url.host, url.port).await?;
            let Some(tls) = tls else {
                return Ok(Stream::Plain(tcp));
            };
            let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                .map_err(|e| HttpError::Connect(format!("{}: {e}", url.host)))?;
            let tls = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Connect(format!("TLS with {}: {}", url.host, chain(&e))))?;
            Ok(Stream::Tls(Box::new(tls)))
        };
        tokio::time::timeout(self.connect_timeout, step)
            .await
            .map_err(|_| HttpError::Timeout)?
            .map(TokioIo::new)
    }
}

async fn tcp_connect(host: &str, port: u16) -> Result<tokio::net::TcpStream, HttpError> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| HttpError::Connect(format!("{host}: {e}")))?
            .collect(),
    };
    let mut last = format!("{host}: no address");
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = format!("{a}: {e}"),
        }
    }
    Err(HttpError::Connect(last))
}

/// A plain or TLS TCP stream.
#[derive(Debug)]
enum Stream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A reply: status and headers in, the body read chunk by chunk until the deadline.
#[derive(Debug)]
pub struct Response {
    head: http::response::Parts,
    body: hyper::body::Incoming,
    deadline: Instant,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.head.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The announced `Content-Length`, if any and valid.
    pub fn content_length(&self) -> Option<u64> {
        self.head
            .headers
            .get(header::CONTENT_LENGTH)?
            .to_str()
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        loop {
            let frame = tokio::time::timeout_at(self.deadline, self.body.frame())
                .await
                .map_err(|_| HttpError::Timeout)?;
            match frame {
                None => return Ok(None),
                Some(Err(e)) => return Err(HttpError::Other(chain(&e))),
                Some(Ok(f)) => {
                    if let Ok(data) = f.into_data() {
                        return Ok(Some(data));
                    }
                    // Trailers: not data, read on.
                }
            }
        }
    }
}

/// An error with its sources, `a: b: c` (hyper's and rustls's own messages hide the cause).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_for_a_request() {
        let u = Url::parse("https://collector.example.invalid:8440/api/v1?x=1").unwrap();
        assert!(u.https);
        assert_eq!(u.host, "collector.example.invalid");
        assert_eq!(
            (u.port, u.authority.as_str()),
            (8440, "collector.example.invalid:8440")
        );
        assert_eq!(u.path_and_query, "/api/v1?x=1");
        assert_eq!(u.domain(), Some("collector.example.invalid"));
        let u = Url::parse("http://[2001:db8::1]/").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 80));
        assert_eq!(u.authority, "[2001:db8::1]");
        assert_eq!(u.domain(), None);
        let u = Url::parse("http://192.0.2.1").unwrap();
        assert_eq!((u.path_and_query.as_str(), u.domain()), ("/", None));
        for bad in [
            "ftp://192.0.2.1/",
            "/relative",
            "http://user:pw@192.0.2.1/",
            "not a url",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    /// A loopback server that sends `reply` and then, if `stall`, keeps the connection open.
    fn server(reply: &'static [u8], stall: bool) -> u16 {
        use std::io::{Read as _, Write as _};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = c.write_all(reply);
            if stall {
                std::thread::sleep(Duration::from_secs(5));
            }
        });
        port
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_reply_is_read_and_an_endless_one_times_out() {
        let port = server(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-a: b\r\n\r\nhello",
            false,
        );
        let c = Client::plain_http(Duration::from_secs(5));
        rt().block_on(async {
            let mut r = c.get(&format!("http://127.0.0.1:{port}/x")).await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.content_length(), Some(5));
            assert_eq!(r.headers().get("x-a").unwrap(), "b");
            let mut body = Vec::new();
            while let Some(c) = r.chunk().await.unwrap() {
                body.extend_from_slice(&c);
            }
            assert_eq!(body, b"hello");
        });
        // Announces more than it sends, then stalls: the deadline ends the read.
        let port = server(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nabc", true);
        let c = Client::plain_http(Duration::from_millis(300));
        rt().block_on(async {
            let mut r = c.get(&format!("http://127.0.0.1:{port}/")).await.unwrap();
            let mut err = None;
            loop {
                match r.chunk().await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        err = Some(e);
                        break;
                    }
                }
            }
            assert!(err.is_some_and(|e| e.is_timeout()));
        });
    }

    #[test]
    fn a_refused_connection_is_a_connect_error_and_https_needs_tls() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let c = Client::plain_http(Duration::from_secs(5));
        rt().block_on(async {
            let e = c
                .get(&format!("http://127.0.0.1:{port}/"))
                .await
                .unwrap_err();
            assert!(e.is_connect(), "{e}");
            let e = c.get("https://127.0.0.1:1/").await.unwrap_err();
            assert!(e.to_string().contains("http:// only"), "{e}");
        });
    }
}
