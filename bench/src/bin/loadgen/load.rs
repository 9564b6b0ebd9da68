//! `enrol`, `heartbeats` and `events`: devices provisioned through the store, then many
//! keep-alive connections sending heartbeats or report batches for a bounded time.

use crate::Load;
use crate::batch::{self, BatchId};
use crate::http::Conn;
use anyhow::{Context, Result, bail};
use netmedic_collector::config::{StorageConfig, StorageUrl};
use netmedic_collector::store::{self, OpenMode};
use netmedic_proto::{CheckId, CheckStatus, Heartbeat, SCHEMA_VERSION};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub(crate) async fn enrol(db: &str, n: usize, out: &PathBuf) -> Result<()> {
    let url = StorageUrl::parse(db).map_err(anyhow::Error::msg)?;
    let st = store::open(&StorageConfig::with_url(url), OpenMode::CreateAndMigrate).await?;
    let mut lines = String::new();
    let mut devices = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("bench-{i:06}");
        let token = netmedic_collector::auth::new_token()?;
        lines.push_str(&format!("{id} {token}\n"));
        devices.push((id, netmedic_collector::auth::token_sha256(&token)));
    }
    for chunk in devices.chunks(5000) {
        st.enrol_devices(chunk, netmedic_collector::now()).await?;
    }
    st.close().await;
    std::fs::write(out, lines).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// What `wrk-requests` prepares requests for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum WrkTarget {
    /// `POST /api/v1/heartbeats`, the device's token, one heartbeat.
    Collector,
    /// `POST /api/v1/import/prometheus`, one sample labelled with the device.
    VictoriaMetrics,
}

/// Writes `PATH<TAB>TOKEN-or-minus<TAB>BODY` lines, one per enrolled device, for
/// `bench/wrk/requests.lua`.
pub(crate) fn wrk_requests(tokens: &PathBuf, target: WrkTarget, out: &PathBuf) -> Result<()> {
    let text =
        std::fs::read_to_string(tokens).with_context(|| format!("reading {}", tokens.display()))?;
    let mut lines = String::new();
    for (id, token) in text.lines().filter_map(|l| l.split_once(' ')) {
        match target {
            WrkTarget::Collector => {
                let body = serde_json::to_string(&heartbeat(id))?;
                lines.push_str(&format!("/api/v1/heartbeats\t{token}\t{body}\n"));
            }
            WrkTarget::VictoriaMetrics => {
                // One sample of the same "device is alive" fact; VictoriaMetrics stamps it.
                lines.push_str(&format!(
                    "/api/v1/import/prometheus\t-\tnetmedic_heartbeat{{agent_id=\"{id}\"}} 1\n"
                ));
            }
        }
    }
    if lines.is_empty() {
        bail!("no devices in {}", tokens.display());
    }
    std::fs::write(out, lines).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

pub(crate) fn heartbeat(id: &str) -> Heartbeat {
    Heartbeat {
        schema_version: SCHEMA_VERSION,
        agent_id: id.to_owned(),
        agent_version: "0.1.0".into(),
        firmware_version: "OpenWrt 24.10".into(),
        uptime_secs: 86_400,
        sent_at: netmedic_collector::now(),
        checks: [
            (CheckId::Link, CheckStatus::Ok),
            (CheckId::DefaultRoute, CheckStatus::Ok),
            (CheckId::Dns, CheckStatus::Ok),
        ]
        .into_iter()
        .collect(),
        spool_depth: 0,
        dropped_total: 0,
    }
}

pub(crate) async fn run(load: Load, batch: Option<usize>) -> Result<()> {
    if !load.addr.ip().is_loopback() {
        bail!("refusing to load {}: loopback addresses only", load.addr);
    }
    let text = std::fs::read_to_string(&load.tokens)?;
    let mut devices: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    if load.devices > 0 {
        devices.truncate(load.devices);
    }
    if devices.is_empty() {
        bail!("no devices in {}", load.tokens.display());
    }
    let devices = Arc::new(devices);
    let next = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(load.duration_secs);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..load.connections {
        let (devices, next, rejected, errors) = (
            devices.clone(),
            next.clone(),
            rejected.clone(),
            errors.clone(),
        );
        let addr = load.addr;
        tasks.spawn(async move {
            let mut lat_us: Vec<u32> = Vec::new();
            let mut ok = 0u64;
            let mut conn = match Conn::open(addr).await {
                Ok(c) => c,
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return (lat_us, ok);
                }
            };
            let mut n = 0u64;
            let mut body = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize % devices.len();
                let (id, token) = &devices[i];
                body.clear();
                let (path, encoded) = match batch {
                    None => (
                        "/api/v1/heartbeats",
                        serde_json::to_writer(&mut body, &heartbeat(id))
                            .map_err(anyhow::Error::from),
                    ),
                    Some(size) => (
                        "/api/v1/reports",
                        batch::encode(
                            &mut body,
                            id,
                            BatchId { conn: c, n, size },
                            netmedic_collector::now(),
                        ),
                    ),
                };
                n += 1;
                if encoded.is_err() {
                    break;
                }
                let t = Instant::now();
                match conn.post(path, token, &body).await {
                    Ok(200) => {
                        ok += 1;
                        lat_us.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(429 | 503) => {
                        rejected.fetch_add(1, Ordering::Relaxed);
                        // A real agent backs off; a short pause keeps the generator honest.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(_) | Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        match Conn::open(addr).await {
                            Ok(c) => conn = c,
                            Err(_) => break,
                        }
                    }
                }
            }
            (lat_us, ok)
        });
    }
    let mut lat: Vec<u32> = Vec::new();
    let mut ok = 0u64;
    while let Some(r) = tasks.join_next().await {
        let (l, o) = r?;
        lat.extend(l);
        ok += o;
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 - 1.0) * p).round() as usize;
        f64::from(lat[i.min(lat.len() - 1)]) / 1000.0
    };
    let what = match batch {
        None => "heartbeats".to_owned(),
        Some(b) => format!("events (batches of {b})"),
    };
    let per_req = batch.unwrap_or(1) as f64;
    println!(
        "{what}: {:.0}/s ({} requests ok in {secs:.1} s, {:.0} req/s) p50 {:.2} ms p99 {:.2} ms; \
         429/503: {}, errors: {}; {} connections, {} devices",
        ok as f64 * per_req / secs,
        ok,
        ok as f64 / secs,
        pct(0.50),
        pct(0.99),
        rejected.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        load.connections,
        devices.len()
    );
    Ok(())
}
