//! `hello`: the ceiling of the HTTP stack on this box — the collector's own connection loop
//! (`netmedic_collector::listen`, hyper http1 + axum) serving one route that reads the body and
//! answers a fixed small JSON document, with no authentication, no JSON decoding and no store.
//! `scripts/bench-collector.sh` loads it with the same `wrk` requests as the collector, so the
//! ratio collector/hello is what the heartbeat path costs beyond the HTTP stack. Loopback only.

use anyhow::{Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use netmedic_collector::listen::{self, Limits};
use std::net::SocketAddr;
use std::time::Duration;

/// A reply about the size of a heartbeat reply without advisories.
const REPLY: &str = r#"{"schema_version":1,"server_time":"2026-01-01T00:00:00Z","heartbeat_interval_secs":300,"advisories":[],"experiments":[]}"#;

async fn hello(body: Bytes) -> impl IntoResponse {
    // The body is read whole, as the collector reads a heartbeat.
    let _ = body.len();
    ([(header::CONTENT_TYPE, "application/json")], REPLY)
}

/// Serves until killed (the benchmark script stops it by its PID).
pub(crate) async fn serve(addr: SocketAddr) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!("refusing to listen on {addr}: loopback addresses only");
    }
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The same line the collector prints, so the script finds the port the same way.
    eprintln!("listening on http://{}", listener.local_addr()?);
    let app = Router::new().fallback(hello);
    let limits = Limits {
        max_connections: 10_000,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
    };
    listen::run(listener, app, limits, std::future::pending()).await?;
    Ok(())
}
