//! [`HttpServer`]: a tiny HTTP/1.1 server listening inside a lab namespace (the ISP's probe, or a
//! captive portal pretending to be it), answering every request with a canned response the test
//! can change at any time. Stopped (thread joined, socket closed) on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Netns;
use crate::error::{LabError, Result, io_ctx};

/// What the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Wait this long before answering (a slow probe).
    pub delay: Duration,
}

impl CannedResponse {
    /// `204 No Content`: a healthy captive-portal probe.
    pub fn no_content() -> Self {
        Self::page(204, "")
    }

    /// `302 Found` to `location`: a portal's redirect.
    pub fn redirect(location: &str) -> Self {
        let mut r = Self::page(302, "");
        r.headers.push(("Location".into(), location.into()));
        r
    }

    /// `status` with an HTML `body`.
    pub fn page(status: u16, body: &str) -> Self {
        Self {
            status,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let reason = match self.status {
            200 => "OK",
            204 => "No Content",
            301 => "Moved Permanently",
            302 => "Found",
            307 => "Temporary Redirect",
            404 => "Not Found",
            500 => "Internal Server Error",
            511 => "Network Authentication Required",
            _ => "Status",
        };
        let mut s = format!("HTTP/1.1 {} {reason}\r\n", self.status);
        for (k, v) in &self.headers {
            s.push_str(&format!("{k}: {v}\r\n"));
        }
        if self.status != 204 {
            s.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        s.push_str("Connection: close\r\n\r\n");
        s.push_str(&self.body);
        s.into_bytes()
    }
}

/// A running server. See the module docs.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    response: Arc<Mutex<CannedResponse>>,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Listens on `ip:0` (a free port) inside `ns`; read the address with [`addr`](Self::addr).
    pub fn start(ns: &Netns, ip: std::net::IpAddr, response: CannedResponse) -> Result<Self> {
        // The socket is created inside the namespace and stays there; the serving thread
        // only accepts on it.
        let listener = ns
            .run(|| TcpListener::bind((ip, 0)))?
            .map_err(io_ctx(format!("binding {ip}:0 in {}", ns.name())))?;
        let addr = listener.local_addr().map_err(io_ctx("local_addr"))?;
        listener
            .set_nonblocking(true)
            .map_err(io_ctx("set_nonblocking"))?;
        let response = Arc::new(Mutex::new(response));
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (response, requests, stop) = (response.clone(), requests.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("httpd-{addr}"))
                .spawn(move || serve(&listener, &response, &requests, &stop))
                .map_err(io_ctx("spawning the httpd thread"))?
        };
        Ok(Self {
            addr,
            response,
            requests,
            stop,
            thread: Some(thread),
        })
    }

    /// Where it listens (inside its namespace).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes what the next requests get.
    pub fn set_response(&self, r: CannedResponse) {
        *self
            .response
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = r;
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Stops serving and closes the listening socket (new connections are refused). Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| LabError::Setup("the httpd thread panicked".into()))?;
        }
        Ok(())
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("netmedic-lab: stopping httpd {}: {e}", self.addr);
        }
    }
}

/// Accept loop: polls the non-blocking listener so that `stop` is seen within ~10 ms. The
/// listener is dropped (closed) when this returns.
fn serve(
    listener: &TcpListener,
    response: &Mutex<CannedResponse>,
    requests: &AtomicU64,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let r = response
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                if handle(stream, &r).is_ok() {
                    requests.fetch_add(1, Ordering::SeqCst);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

fn handle(mut stream: TcpStream, r: &CannedResponse) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 16 * 1024 {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    if !r.delay.is_zero() {
        std::thread::sleep(r.delay);
    }
    stream.write_all(&r.to_bytes())?;
    stream.flush()
}
