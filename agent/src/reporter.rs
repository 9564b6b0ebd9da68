//! Reporter: delivers spooled incident events to the collector in batches.
//!
//! At-least-once: events leave the spool only when the collector's ack names them, and the
//! collector deduplicates by event id. Failures back off exponentially with full jitter; a
//! 429/503 `Retry-After` is honoured (no request before it); a 400 is never retried — the
//! events it names are set aside with the collector's reason.

use crate::spool::Spool;
use netmedic_proto::{ErrorBody, ReportAck, ReportBatch, SCHEMA_VERSION, paths};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The result of one delivery attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// This many events were acknowledged; more may be waiting.
    Delivered { acked: usize, more: bool },
    /// The spool is empty.
    Idle,
    /// The collector asked us to wait this long.
    RetryAfter(Duration),
    /// Events the collector refused were set aside; the rest can go at once.
    Rejected { set_aside: usize },
    /// Network or server failure: back off.
    Failed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ReporterError {
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("token file {path}: {source}")]
    Token {
        path: String,
        source: std::io::Error,
    },
}

#[derive(Debug, Clone)]
pub struct Reporter {
    client: reqwest::Client,
    reports_url: String,
    token: Option<String>,
    agent_id: String,
    batch_max_events: usize,
}

/// Reads a bearer token file (first line, trimmed).
pub fn read_token(path: &std::path::Path) -> Result<String, ReporterError> {
    std::fs::read_to_string(path)
        .map(|s| s.lines().next().unwrap_or("").trim().to_string())
        .map_err(|source| ReporterError::Token {
            path: path.display().to_string(),
            source,
        })
}

fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    let v = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?;
    // Seconds form only; an HTTP-date from our collector is not expected.
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl Reporter {
    pub fn new(config: &crate::config::AgentConfig) -> Result<Self, ReporterError> {
        let c = &config.collector;
        let token = c.token_file.as_deref().map(read_token).transpose()?;
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(c.request_timeout_secs))
            .connect_timeout(Duration::from_secs(c.request_timeout_secs.min(10)))
            .user_agent(concat!("netmedic-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            reports_url: format!("{}{}", c.url.trim_end_matches('/'), paths::REPORTS),
            token,
            agent_id: config.agent.id.clone(),
            batch_max_events: c.batch_max_events,
        })
    }

    /// Sends the oldest pending events once.
    pub async fn deliver_once(&self, spool: &Mutex<Spool>) -> Outcome {
        let events = lock(spool).pending(self.batch_max_events);
        if events.is_empty() {
            return Outcome::Idle;
        }
        let batch = ReportBatch {
            schema_version: SCHEMA_VERSION,
            agent_id: self.agent_id.clone(),
            events,
        };
        let mut req = self.client.post(&self.reports_url).json(&batch);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(format!("POST {}: {e}", self.reports_url)),
        };
        let status = resp.status();
        if status.is_success() {
            let ack: ReportAck = match resp.json().await {
                Ok(a) => a,
                Err(e) => return Outcome::Failed(format!("unreadable ack: {e}")),
            };
            let mut s = lock(spool);
            return match s.ack(&ack.acked_event_ids) {
                Ok(n) => Outcome::Delivered {
                    acked: n,
                    more: s.depth() > 0,
                },
                Err(e) => Outcome::Failed(format!("acked but cannot delete from spool: {e}")),
            };
        }
        if status.as_u16() == 429 || status.as_u16() == 503 {
            return Outcome::RetryAfter(retry_after(&resp).unwrap_or(Duration::from_secs(30)));
        }
        if status.as_u16() == 400 || status.as_u16() == 422 {
            let body: Option<ErrorBody> = resp.json().await.ok();
            return self.set_aside_rejected(spool, &batch, status.as_u16(), body);
        }
        Outcome::Failed(format!("collector answered {status}"))
    }

    fn set_aside_rejected(
        &self,
        spool: &Mutex<Spool>,
        batch: &ReportBatch,
        status: u16,
        body: Option<ErrorBody>,
    ) -> Outcome {
        let reason = body.as_ref().map_or_else(
            || format!("{status} without a reason"),
            |b| format!("{status} {}: {}", b.error, b.reason),
        );
        // Violations name `events[N]...`: set aside just those; otherwise the whole batch.
        let mut idx: Vec<usize> = body
            .iter()
            .flat_map(|b| &b.violations)
            .filter_map(|v| {
                let rest = v.field.strip_prefix("events[")?;
                rest.split(']').next()?.parse().ok()
            })
            .filter(|i| *i < batch.events.len())
            .collect();
        idx.sort_unstable();
        idx.dedup();
        if idx.is_empty() {
            idx = (0..batch.events.len()).collect();
        }
        let mut s = lock(spool);
        for i in &idx {
            let id = &batch.events[*i].event_id;
            log::error!("collector refused event {id}: {reason}; set aside, not retried");
            if let Err(e) = s.set_aside(id, &reason) {
                log::error!("cannot set aside event {id}: {e}");
            }
        }
        Outcome::Rejected {
            set_aside: idx.len(),
        }
    }
}

fn lock(spool: &Mutex<Spool>) -> std::sync::MutexGuard<'_, Spool> {
    // A panic while holding the lock leaves the spool's files consistent; carry on.
    spool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)].
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    let frac = f64::from(crate::ids::random_u16()) / f64::from(u16::MAX);
    exp.mul_f64(frac)
}

/// Delivery loop: runs until the task is dropped.
pub async fn run(
    reporter: Reporter,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<tokio::sync::Notify>,
    max_backoff: Duration,
) {
    let mut failures = 0u32;
    loop {
        match reporter.deliver_once(&spool).await {
            Outcome::Delivered { acked, more } => {
                failures = 0;
                log::info!("delivered {acked} event(s) to the collector");
                if more {
                    continue;
                }
            }
            Outcome::Rejected { .. } => continue,
            Outcome::Idle => failures = 0,
            Outcome::RetryAfter(d) => {
                log::warn!("collector busy: retrying after {} s", d.as_secs());
                tokio::time::sleep(d).await;
                continue;
            }
            Outcome::Failed(why) => {
                let wait = backoff(failures, Duration::from_secs(1), max_backoff);
                failures = failures.saturating_add(1);
                log::warn!(
                    "delivery failed ({why}); {} event(s) kept, retry in {:.1} s",
                    lock(&spool).depth(),
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        // Wait for new events, or poll now and then in case a wake-up was missed.
        let _ = tokio::time::timeout(Duration::from_secs(60), wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_by_cap_and_grows() {
        let cap = Duration::from_secs(300);
        for attempt in 0..40 {
            let b = backoff(attempt, Duration::from_secs(1), cap);
            assert!(b <= cap);
            assert!(b <= Duration::from_secs(1 << attempt.min(20)));
        }
    }
}
