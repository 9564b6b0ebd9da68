//! `storm`: the reconnect storm — a fleet's worth of agents that come back at once (after a
//! collector restart or an outage). Every agent opens a fresh connection at the same moment,
//! sends one report batch and one heartbeat, and behaves like the real agent: on 429 or 503 it
//! waits `Retry-After` and retries, on a dropped connection it reconnects. The collector must
//! answer only 200 or 429/503 with `Retry-After` (never another 5xx), and every event it acked
//! must be in the database afterwards: the storm counts the stored events of this run itself.

use crate::batch::resolver_event;
use crate::http::Conn;
use crate::load::heartbeat;
use anyhow::{Context, Result, bail};
use netmedic_proto::{ReportAck, ReportBatch, SCHEMA_VERSION};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one agent saw.
#[derive(Default)]
struct Seen {
    /// Responses by status code.
    statuses: BTreeMap<u16, u64>,
    /// 429/503 responses without a usable `Retry-After`.
    no_retry_after: u64,
    /// Connections refused, reset or closed mid-request.
    io_errors: u64,
    /// Event ids the collector acked.
    acked: u64,
    /// The agent finished (batch and heartbeat answered 200) before the deadline.
    done: bool,
    /// Seconds from the start until this agent was done.
    done_secs: f64,
}

fn batch(agent: &str, run: &str, n: usize) -> ReportBatch {
    let now = netmedic_collector::now();
    let events = (0..n)
        .map(|k| {
            resolver_event(
                format!("storm-{run}-{agent}-{k}"),
                format!("storm-{run}-{}", k / 2),
                k as u64 + 1,
                k,
                now,
            )
        })
        .collect();
    ReportBatch {
        schema_version: SCHEMA_VERSION,
        agent_id: agent.to_owned(),
        events,
    }
}

/// Sends `body` until it gets a 200 (returns its body) or the deadline passes (None).
async fn deliver(
    addr: SocketAddr,
    conn: &mut Option<Conn>,
    path: &str,
    token: &str,
    body: &[u8],
    deadline: Instant,
    seen: &mut Seen,
) -> Option<Vec<u8>> {
    let auth = format!("Bearer {token}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let mut pause = Duration::from_millis(100);
    while Instant::now() < deadline {
        let c = match conn {
            Some(c) => c,
            None => match Conn::open(addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    seen.io_errors += 1;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                    continue;
                }
            },
        };
        let resp = match c.request("POST", path, &headers, body).await {
            Ok(r) => r,
            Err(_) => {
                seen.io_errors += 1;
                *conn = None;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        *seen.statuses.entry(resp.status).or_default() += 1;
        if resp.close {
            *conn = None;
        }
        match resp.status {
            200 => return Some(resp.body),
            429 | 503 => {
                let wait = resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if wait.is_none() {
                    seen.no_retry_after += 1;
                }
                // Retry-After is whole seconds; agents spread their retries over it.
                let secs = wait.unwrap_or(1).max(1);
                let jitter = u64::from(rand_u16()) % (secs * 1000);
                tokio::time::sleep(Duration::from_millis(secs * 1000 / 2 + jitter / 2)).await;
            }
            // Anything else is a failure the summary reports; a real agent would retry later.
            _ => tokio::time::sleep(Duration::from_secs(1)).await,
        }
    }
    None
}

/// A cheap pseudo-random number for retry jitter (no cryptographic use).
fn rand_u16() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(Instant::now()) & 0xffff) as u16
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn storm(
    addr: SocketAddr,
    tokens: &Path,
    db: &str,
    agents: usize,
    events: usize,
    deadline_secs: u64,
) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!("refusing to load {addr}: loopback addresses only");
    }
    let text =
        std::fs::read_to_string(tokens).with_context(|| format!("reading {}", tokens.display()))?;
    let devices: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .take(agents)
        .collect();
    if devices.len() < agents {
        bail!(
            "{agents} agents need as many enrolled devices; {} has {}",
            tokens.display(),
            devices.len()
        );
    }
    let run = format!("{:x}", netmedic_collector::now().unix_millis());
    let barrier = Arc::new(tokio::sync::Barrier::new(agents));
    let seen_all = Arc::new(Mutex::new(Vec::with_capacity(agents)));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(deadline_secs);
    let mut tasks = tokio::task::JoinSet::new();
    for (id, token) in devices {
        let (barrier, seen_all, run) = (barrier.clone(), seen_all.clone(), run.clone());
        tasks.spawn(async move {
            let mut seen = Seen::default();
            let report = serde_json::to_vec(&batch(&id, &run, events)).unwrap_or_default();
            let hb = serde_json::to_vec(&heartbeat(&id)).unwrap_or_default();
            barrier.wait().await;
            let t0 = Instant::now();
            let mut conn = None;
            if let Some(body) = deliver(
                addr,
                &mut conn,
                "/api/v1/reports",
                &token,
                &report,
                deadline,
                &mut seen,
            )
            .await
            {
                if let Ok(ack) = serde_json::from_slice::<ReportAck>(&body) {
                    seen.acked = ack.acked_event_ids.len() as u64;
                }
                if deliver(
                    addr,
                    &mut conn,
                    "/api/v1/heartbeats",
                    &token,
                    &hb,
                    deadline,
                    &mut seen,
                )
                .await
                .is_some()
                {
                    seen.done = true;
                    seen.done_secs = t0.elapsed().as_secs_f64();
                }
            }
            if let Ok(mut all) = seen_all.lock() {
                all.push(seen);
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r?;
    }
    let all = std::mem::take(&mut *seen_all.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    let (mut no_ra, mut io, mut acked, mut done) = (0, 0, 0, 0);
    let mut done_secs: Vec<f64> = Vec::new();
    for s in &all {
        for (k, v) in &s.statuses {
            *statuses.entry(*k).or_default() += v;
        }
        no_ra += s.no_retry_after;
        io += s.io_errors;
        acked += s.acked;
        if s.done {
            done += 1;
            done_secs.push(s.done_secs);
        }
    }
    done_secs.sort_by(f64::total_cmp);
    let stored = count_stored(db, &run).await?;
    let fivexx: u64 = statuses
        .iter()
        .filter(|(k, _)| **k >= 500 && **k != 503)
        .map(|(_, v)| v)
        .sum();
    let codes: Vec<String> = statuses.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    println!(
        "storm: {agents} agents at once, {events} events each: {done} done in {:.1} s (last) / {:.1} s \
         (median); responses {{{}}}; 5xx other than 503: {fivexx}; 429/503 without Retry-After: \
         {no_ra}; connection errors: {io}; events acked {acked}, stored {stored}, acked but \
         missing {}",
        done_secs.last().copied().unwrap_or(0.0),
        done_secs.get(done_secs.len() / 2).copied().unwrap_or(0.0),
        codes.join(", "),
        acked.saturating_sub(stored),
    );
    Ok(())
}

/// The events of this run in the database (read directly, not through the collector).
async fn count_stored(db: &str, run: &str) -> Result<u64> {
    let pattern = format!("storm-{run}-%");
    let sql = "SELECT COUNT(*) FROM events WHERE event_id LIKE $1";
    let n: i64 = if db.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(db).await?;
        let n = sqlx::query_scalar(sql)
            .bind(&pattern)
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(db).await?;
        let n = sqlx::query_scalar(sql)
            .bind(&pattern)
            .fetch_one(&pool)
            .await?;
        pool.close().await;
        n
    };
    Ok(u64::try_from(n).unwrap_or(0))
}
