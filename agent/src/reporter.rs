//! Reporter: delivers spooled incident events to the collector in batches.
//!
//! At-least-once: events leave the spool only when the collector's ack names them, and the
//! collector deduplicates by event id. Bodies are gzip'd. Failures back off exponentially with
//! full jitter; a 429/503 `Retry-After` is honoured (no request before it) up to
//! `max_backoff_secs`; a 400 is never retried — the events it names are set aside with the
//! collector's reason. The first attempt waits a random start delay so a fleet coming back does
//! not arrive at once. Every response's `Date` header becomes a clock sample for the `clock`
//! check.
//!
//! The collector is treated as hostile (or a man in the middle of an `http://` URL): a reply
//! body is read through a [`MAX_REPLY_BYTES`] cap, an ack only deletes events of the batch it
//! answers, a 200 that acknowledges none of them is a failed delivery (backoff, not an
//! immediate resend), and a 400 that names no event keeps the batch and backs off rather than
//! setting every event aside for ever.

use crate::checks::clock::parse_http_date;
use crate::context::{ClockSample, Shared, now};
use crate::spool::Spool;
use crate::tls::TlsError;
use netmedic_proto::{ErrorBody, ReportAck, ReportBatch, SCHEMA_VERSION, paths};
use std::collections::HashSet;
use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// Reads a bearer token file (first line, trimmed), refusing a mode looser than 0600.
pub fn read_token(path: &std::path::Path) -> Result<String, ReporterError> {
    Ok(crate::tls::read_token(path)?)
}

/// The collector endpoint: client, base URL, token; shared by the reporter and the heartbeat.
#[derive(Debug, Clone)]
pub struct Collector {
    client: crate::httpc::Client,
    base_url: String,
    token: Option<String>,
    shared: Arc<Shared>,
}

/// A body gzip'd when that makes it smaller (it always does for report batches).
pub fn encode_body(json: &[u8]) -> (Vec<u8>, bool) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    match gz.write_all(json).and_then(|()| gz.finish()) {
        Ok(z) if z.len() < json.len() => (z, true),
        _ => (json.to_vec(), false),
    }
}

impl Collector {
    pub fn new(
        config: &crate::config::AgentConfig,
        shared: Arc<Shared>,
    ) -> Result<Self, ReporterError> {
        let c = &config.collector;
        let token = c.token_file.as_deref().map(read_token).transpose()?;
        Ok(Self {
            client: crate::tls::client(c)?,
            base_url: c.url.trim_end_matches('/').to_string(),
            token,
            shared,
        })
    }

    /// POSTs `body` as JSON (gzip'd when smaller) to `path`; records the clock sample.
    pub async fn post_json(
        &self,
        path: &str,
        body: &impl serde::Serialize,
    ) -> Result<crate::httpc::Response, String> {
        let url = format!("{}{path}", self.base_url);
        let json = serde_json::to_vec(body).map_err(|e| format!("cannot encode: {e}"))?;
        let (bytes, gzip) = encode_body(&json);
        use crate::httpc::header::{self, HeaderValue};
        let mut headers = vec![(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )];
        if gzip {
            headers.push((header::CONTENT_ENCODING, HeaderValue::from_static("gzip")));
        }
        if let Some(t) = &self.token {
            let mut v = HeaderValue::try_from(format!("Bearer {t}"))
                .map_err(|_| "the token is not a valid header value".to_string())?;
            v.set_sensitive(true);
            headers.push((header::AUTHORIZATION, v));
        }
        let started = Instant::now();
        let resp = self
            .client
            .send(http::Method::POST, &url, &headers, bytes.into())
            .await
            .map_err(|e| format!("POST {url}: {e}"))?;
        self.clock_sample(&resp, started);
        Ok(resp)
    }

    fn clock_sample(&self, resp: &crate::httpc::Response, started: Instant) {
        let server = resp
            .headers()
            .get(crate::httpc::header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_http_date);
        if let Some(server) = server {
            self.shared.set_clock_sample(ClockSample {
                server,
                local: now(),
                rtt_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            });
        }
    }
}

/// The largest collector reply body the agent reads (an ack of 500 event ids is ~20 KiB); a
/// longer one is a failed request, never a reason to grow.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Reads a reply body, at most `max` bytes (after any content decoding): an endless or huge
/// body is an error once the cap is passed, with nothing more buffered.
pub async fn read_body(mut resp: crate::httpc::Response, max: usize) -> Result<Vec<u8>, String> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(format!("reply body over {max} bytes"));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("reading the reply: {e}"))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("reply body over {max} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A JSON reply of type `T`, read through [`read_body`] with [`MAX_REPLY_BYTES`].
pub async fn read_json<T: serde::de::DeserializeOwned>(
    resp: crate::httpc::Response,
) -> Result<T, String> {
    let body = read_body(resp, MAX_REPLY_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| e.to_string())
}

#[derive(Debug, Clone)]
pub struct Reporter {
    collector: Collector,
    agent_id: String,
    batch_max_events: usize,
    max_backoff: Duration,
}

/// A `Retry-After` in seconds (the collector's form) or as an HTTP-date, never longer than
/// `cap`: a collector (or anyone in between) must not silence the agent until it restarts.
pub fn retry_after(headers: &crate::httpc::header::HeaderMap, cap: Duration) -> Option<Duration> {
    let v = headers
        .get(crate::httpc::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(cap));
    }
    let at = parse_http_date(v)?;
    let ms = at.unix_millis().saturating_sub(now().unix_millis());
    Some(Duration::from_millis(u64::try_from(ms.max(0)).unwrap_or(0)).min(cap))
}

impl Reporter {
    pub fn new(config: &crate::config::AgentConfig, collector: Collector) -> Self {
        Self {
            collector,
            agent_id: config.agent.id.clone(),
            batch_max_events: config.collector.batch_max_events,
            max_backoff: Duration::from_secs(config.collector.max_backoff_secs),
        }
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
        let resp = match self.collector.post_json(paths::REPORTS, &batch).await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(e),
        };
        let status = resp.status();
        if status.is_success() {
            let ack: ReportAck = match read_json(resp).await {
                Ok(a) => a,
                Err(e) => return Outcome::Failed(format!("unreadable ack: {e}")),
            };
            return self.apply_ack(spool, &batch, &ack);
        }
        if status.as_u16() == 429 || status.as_u16() == 503 {
            return Outcome::RetryAfter(
                retry_after(resp.headers(), self.max_backoff)
                    .unwrap_or(Duration::from_secs(30).min(self.max_backoff)),
            );
        }
        if status.as_u16() == 400 || status.as_u16() == 422 {
            let body: Option<ErrorBody> = read_json(resp).await.ok();
            return self.set_aside_rejected(spool, &batch, status.as_u16(), body);
        }
        Outcome::Failed(format!("collector answered {status}"))
    }

    /// Deletes the acknowledged events of `batch` (ids it did not send are ignored: an ack
    /// cannot delete what was never delivered). Acknowledging none of them is a failure.
    fn apply_ack(&self, spool: &Mutex<Spool>, batch: &ReportBatch, ack: &ReportAck) -> Outcome {
        let sent: HashSet<&str> = batch.events.iter().map(|e| e.event_id.as_str()).collect();
        let acked: Vec<String> = ack
            .acked_event_ids
            .iter()
            .filter(|id| sent.contains(id.as_str()))
            .cloned()
            .collect();
        let foreign = ack.acked_event_ids.len() - acked.len();
        if foreign > 0 {
            log::warn!("collector acked {foreign} event id(s) it was not sent; ignored");
        }
        if acked.is_empty() {
            return Outcome::Failed(format!(
                "the collector acknowledged none of the {} event(s) sent",
                batch.events.len()
            ));
        }
        for id in &acked {
            log::debug!("collector acked event {id}");
        }
        let mut s = lock(spool);
        match s.ack(&acked) {
            Ok(n) => Outcome::Delivered {
                acked: n,
                more: s.depth() > 0,
            },
            Err(e) => Outcome::Failed(format!("acked but cannot delete from spool: {e}")),
        }
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
        let reason = crate::text::loggable(&reason);
        // Violations name `events[N]...`: set aside just those. A refusal that names no event
        // (a proxy, a broken or hostile collector) says nothing against any one event: keep
        // them all and back off.
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
            return Outcome::Failed(format!("refused without naming an event ({reason})"));
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

/// A uniform random fraction in [0, 1].
pub fn random_fraction() -> f64 {
    f64::from(crate::ids::random_u16()) / f64::from(u16::MAX)
}

/// Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)].
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.min(20)).min(cap);
    exp.mul_f64(random_fraction())
}

/// A random start delay in `[0, max_secs]`.
pub fn start_delay(max_secs: u64) -> Duration {
    Duration::from_secs(max_secs).mul_f64(random_fraction())
}

/// The least time between two report requests (a spool of many full batches still drains at
/// ≥ 5,000 events/s).
const MIN_REQUEST_SPACING: Duration = Duration::from_millis(20);

/// Most of the random delay after a "WAN back" signal before retrying: a fleet whose shared
/// upstream returns does not hit the collector in the same instant.
pub const WAN_BACK_JITTER_MAX: Duration = Duration::from_secs(2);

/// Sleeps `wait`, unless the WAN comes back first (`wan_back` changes): then sleeps a random
/// 0..[`WAN_BACK_JITTER_MAX`] and returns true. A closed signal (no netlink) only sleeps.
pub async fn sleep_unless_wan_back(
    wait: Duration,
    wan_back: &mut tokio::sync::watch::Receiver<u64>,
) -> bool {
    let back = async {
        if wan_back.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = tokio::time::sleep(wait) => false,
        () = back => {
            tokio::time::sleep(WAN_BACK_JITTER_MAX.mul_f64(random_fraction())).await;
            true
        }
    }
}

/// Delivery loop: runs until the task is dropped. A failed delivery backs off, but a WAN that
/// comes back (`wan_back`) ends the backoff: the spool is retried at once and the backoff starts
/// over, so an incident that cut the WAN reaches the NOC seconds after the path is back.
pub async fn run(
    reporter: Reporter,
    spool: Arc<Mutex<Spool>>,
    wake: Arc<tokio::sync::Notify>,
    max_backoff: Duration,
    start_delay_max_secs: u64,
    mut wan_back: tokio::sync::watch::Receiver<u64>,
) {
    let delay = start_delay(start_delay_max_secs);
    if !delay.is_zero() {
        log::info!(
            "reporter: first delivery in {:.1} s (start delay)",
            delay.as_secs_f64()
        );
        tokio::time::sleep(delay).await;
    }
    let mut failures = 0u32;
    loop {
        // Every request, whatever its answer, is spaced by at least a little: no answer the
        // collector can give makes the reporter spin.
        tokio::time::sleep(MIN_REQUEST_SPACING).await;
        // Only a WAN that comes back after this attempt started cuts its backoff short.
        wan_back.borrow_and_update();
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
                // Never sooner than our own backoff: `Retry-After: 0` must not mean "spin".
                let wait = d.max(backoff(failures, Duration::from_secs(1), max_backoff));
                failures = failures.saturating_add(1);
                log::warn!(
                    "collector busy: next request in {} ms (Retry-After)",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            Outcome::Failed(why) => {
                let wait = backoff(failures, Duration::from_secs(1), max_backoff);
                failures = failures.saturating_add(1);
                log::warn!(
                    "delivery failed ({}); {} event(s) kept, retry in {:.1} s",
                    crate::text::loggable(&why),
                    lock(&spool).depth(),
                    wait.as_secs_f64()
                );
                if sleep_unless_wan_back(wait, &mut wan_back).await {
                    log::info!("the WAN is back: retrying delivery now");
                    failures = 0;
                }
                continue;
            }
        }
        // Wait for new events; poll now and then in case a wake-up was missed.
        let _ = tokio::time::timeout(Duration::from_secs(300), wake.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wan_back_signal_cuts_the_backoff_short() {
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        // The sleep is an hour: finishing within the timeout below proves the wake-up.
        let sleeper =
            tokio::spawn(
                async move { sleep_unless_wan_back(Duration::from_secs(3600), &mut rx).await },
            );
        tx.send_modify(|n| *n += 1);
        let woken = tokio::time::timeout(Duration::from_secs(10), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert!(woken);
        // A closed signal (no netlink) only sleeps.
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        drop(tx);
        assert!(!sleep_unless_wan_back(Duration::from_millis(10), &mut rx).await);
    }

    #[test]
    fn backoff_is_bounded_by_cap_and_grows() {
        let cap = Duration::from_secs(300);
        for attempt in 0..40 {
            let b = backoff(attempt, Duration::from_secs(1), cap);
            assert!(b <= cap);
            assert!(b <= Duration::from_secs(1 << attempt.min(20)));
        }
    }

    #[test]
    fn start_delay_stays_in_range() {
        assert_eq!(start_delay(0), Duration::ZERO);
        for _ in 0..100 {
            assert!(start_delay(30) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let mut h = crate::httpc::header::HeaderMap::new();
        let cap = Duration::from_secs(300);
        h.insert(crate::httpc::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h, cap), Some(Duration::from_secs(7)));
        h.insert(
            crate::httpc::header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h, cap), Some(Duration::ZERO));
    }

    #[test]
    fn retry_after_is_capped() {
        let mut h = crate::httpc::header::HeaderMap::new();
        let cap = Duration::from_secs(300);
        for v in [
            "18446744073709551615",
            "9999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            h.insert(crate::httpc::header::RETRY_AFTER, v.parse().unwrap());
            assert_eq!(retry_after(&h, cap), Some(cap), "{v}");
        }
    }

    #[test]
    fn report_bodies_are_gzipped() {
        let json = br#"{"events":[{"summary":"no default route"},{"summary":"no default route"}]}"#;
        let (z, gz) = encode_body(json);
        assert!(gz && z.len() < json.len());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&z[..]), &mut out).unwrap();
        assert_eq!(out.as_bytes(), json);
    }
}
