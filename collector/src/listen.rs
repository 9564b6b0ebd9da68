//! The HTTP server loop: accepts TCP connections up to a cap below the open-file limit and serves
//! each with hyper's HTTP/1 connection, a header-read timeout and an idle timeout, so slow or
//! silent clients cannot hold sockets and memory for ever.
//!
//! At the cap the loop stops accepting (new clients wait in the kernel's listen backlog), logs
//! it, and asks every open connection to close once its current request is answered: idle
//! keep-alive connections go at once, and a slot frees for the next client (a `/healthz` probe
//! included). On shutdown the listener closes, every connection finishes its request in flight,
//! and the loop returns when the last one is gone.

use crate::config::ServerConfig;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};

/// File descriptors kept free for the database, log files and the listener itself.
const RESERVED_FDS: u64 = 64;
/// Highest automatic connection cap.
const AUTO_MAX_CONNECTIONS: u64 = 10_000;
/// Pause after a failed `accept` (e.g. out of file descriptors) before the next try.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// At most one "connection limit reached" line per this interval.
const FULL_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The connection limits the loop enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
}

impl Limits {
    /// The limits of `[server]`; `max_connections = 0` becomes [`auto_max_connections`] of this
    /// process's open-file limit.
    pub fn from_config(c: &ServerConfig) -> Self {
        let max_connections = match c.max_connections {
            0 => auto_max_connections(nofile_soft_limit()),
            n => n as usize,
        };
        Self {
            max_connections,
            header_read_timeout: Duration::from_secs(u64::from(c.header_read_timeout_secs)),
            idle_timeout: Duration::from_secs(u64::from(c.idle_timeout_secs)),
        }
    }
}

/// min(open-file limit − 64, 10,000), at least 16; 10,000 when the limit is unknown or
/// unlimited.
pub fn auto_max_connections(nofile: Option<u64>) -> usize {
    let cap = nofile.map_or(AUTO_MAX_CONNECTIONS, |n| {
        n.saturating_sub(RESERVED_FDS)
            .clamp(16, AUTO_MAX_CONNECTIONS)
    });
    usize::try_from(cap).unwrap_or(10_000)
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (None: unknown or
/// unlimited).
pub fn nofile_soft_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_nofile(&text)
}

fn parse_nofile(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `app` on `listener` until `shutdown` resolves and every connection has closed.
pub async fn run<F>(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let cap = limits.max_connections.clamp(1, Semaphore::MAX_PERMITS);
    let slots = Arc::new(Semaphore::new(cap));
    let pressure = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut last_full_log: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if last_full_log.is_none_or(|t| t.elapsed() >= FULL_LOG_INTERVAL) {
                    log::warn!(
                        "connection limit reached ({cap} open, [server] max_connections): new \
                         clients wait while idle keep-alive connections are closed"
                    );
                    last_full_log = Some(Instant::now());
                }
                pressure.notify_waiters();
                tokio::select! {
                    p = slots.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break, // never closed while the loop runs
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    log::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            peer,
            app.clone(),
            limits,
            pressure.clone(),
            stop_rx.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection task holds one slot: all slots back means all connections closed.
    let _ = slots
        .acquire_many(u32::try_from(cap).unwrap_or(u32::MAX))
        .await;
    Ok(())
}

/// Serves one connection; closes it when idle for `idle_timeout`, on pressure or on shutdown
/// (after the request in flight), and drops it when it stays silent after that.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    pressure: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Tracked {
        inner: stream,
        activity: activity.clone(),
    });
    let hyper_service = TowerToHyperService::new(app);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        hyper_service.call(req)
    });
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let mut closing = false;
    loop {
        // A closing connection gets a second idle period to finish its answer, then is dropped.
        let limit = if closing {
            limits.idle_timeout * 2
        } else {
            limits.idle_timeout
        };
        let wait = limit.saturating_sub(activity.idle_for());
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    log::debug!("connection from {peer}: {e}");
                }
                return;
            }
            () = tokio::time::sleep(wait) => {
                if activity.idle_for() >= limit {
                    if closing {
                        log::debug!("connection from {peer}: silent while closing, dropped");
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
            () = pressure.notified(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stop.changed(), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// When a connection last moved a byte.
#[derive(Debug)]
struct Activity {
    base: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            base: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.base.elapsed().saturating_sub(last)
    }
}

/// A stream that records in [`Activity`] every read or write that moved data.
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_follows_the_open_file_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(parse_nofile(limits), Some(1024));
        assert_eq!(
            parse_nofile("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(auto_max_connections(Some(1024)), 960);
        assert_eq!(auto_max_connections(Some(1_048_576)), 10_000);
        assert_eq!(auto_max_connections(Some(40)), 16);
        assert_eq!(auto_max_connections(None), 10_000);
    }
}
