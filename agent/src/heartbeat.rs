//! Heartbeats: every `heartbeat.interval_secs` ± `jitter_secs` a small status report (agent and
//! firmware version, uptime, per-check state, spool depth, dropped count; ≤ 600 bytes on the
//! wire) goes to the collector. Its reply's advisories (upstream outage, kill switch, on-demand
//! diagnostics) are stored in [`Shared`] for the healer and the checks; requested diagnostics
//! are run here, their results logged and POSTed to the collector
//! ([`paths::DIAGNOSTICS_RESULTS`]). A result the collector could not take (network trouble,
//! 429, 5xx) waits in a small in-memory [`Outbox`] and is retried after the next successful
//! heartbeat; one it refused (any other 4xx) is logged and dropped, as retrying cannot help.
//!
//! The reply is untrusted: it is read through a size cap, a `Retry-After` is capped at
//! `collector.max_backoff_secs`, diagnostics requests pass a [`DiagLimit`] (a few per reply and
//! per hour, none twice) and every collector-supplied string is made [`loggable`] first.

use crate::checks::Observation;
use crate::context::{Advisories, Context, Shared, now};
use crate::incident::{wire_key, wire_text};
use crate::reporter::{Collector, random_fraction, read_json, retry_after};
use crate::spool::Spool;
use crate::text::loggable;
use netmedic_proto::{
    Advisory, CheckId, CheckStatus, DiagnosticCheck, DiagnosticsResult, ErrorBody, Heartbeat,
    HeartbeatReply, SCHEMA_VERSION, paths,
};
use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything the heartbeat task needs.
#[derive(Debug)]
pub struct Heartbeater {
    pub collector: Collector,
    pub config: Arc<crate::config::AgentConfig>,
    pub ctx: Arc<Context>,
    pub spool: Arc<Mutex<Spool>>,
    /// When the agent started (uptime).
    pub started: Instant,
}

/// The heartbeat of this moment.
pub fn build(
    config: &crate::config::AgentConfig,
    shared: &Shared,
    spool: &Mutex<Spool>,
    started: Instant,
) -> Heartbeat {
    let (depth, dropped) = {
        let s = spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (s.depth(), s.dropped_total())
    };
    Heartbeat {
        schema_version: SCHEMA_VERSION,
        agent_id: config.agent.id.clone(),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        firmware_version: config.agent.firmware_version.clone(),
        uptime_secs: started.elapsed().as_secs(),
        sent_at: now(),
        checks: shared.check_statuses(),
        spool_depth: u32::try_from(depth).unwrap_or(u32::MAX),
        dropped_total: dropped,
    }
}

/// Folds a reply's advisories into what the agent knows: outage and kill switch are replaced
/// by the latest reply (absent = cleared); diagnostics requests queue until run. The
/// collector's text is stored [`loggable`].
pub fn apply_advisories(shared: &Shared, advisories: &[Advisory]) -> Advisories {
    let mut a = shared.advisories();
    a.upstream_outage = None;
    a.kill_switch = None;
    for adv in advisories {
        match adv {
            Advisory::UpstreamOutage {
                network_event_id,
                until,
            } => a.upstream_outage = Some((loggable(network_event_id), *until)),
            // Neutralised here, once: the reason reaches logs, decisions and incident records.
            Advisory::KillSwitch { reason } => a.kill_switch = Some(loggable(reason)),
            Advisory::Diagnostics { request_id, checks } => {
                if !a.diagnostics.iter().any(|(id, _)| id == request_id) {
                    a.diagnostics.push((request_id.clone(), checks.clone()));
                }
            }
        }
    }
    shared.set_advisories(a.clone());
    a
}

/// Diagnostics requests taken from one heartbeat reply; more are refused (logged).
pub const MAX_DIAG_REQUESTS_PER_REPLY: usize = 2;
/// Diagnostics requests run in any hour; more are refused until the hour has passed.
pub const MAX_DIAG_REQUESTS_PER_HOUR: usize = 12;
/// How many recent request ids are remembered to refuse a repeated request.
const RECENT_DIAG_IDS: usize = 64;
const HOUR: Duration = Duration::from_secs(3600);

/// What a collector may make the agent run: a diagnostics flood (thousands of requests in one
/// reply, the same request again and again) costs it a warning, not the router's CPU.
#[derive(Debug, Default)]
pub struct DiagLimit {
    /// When each request of the last hour was admitted, oldest first.
    admitted: VecDeque<Instant>,
    /// Request ids admitted recently, oldest first.
    recent: VecDeque<String>,
}

impl DiagLimit {
    /// `advisories` with the diagnostics requests this limit refuses removed, and each
    /// admitted request's checks named once.
    pub fn admit(&mut self, advisories: &[Advisory], now: Instant) -> Vec<Advisory> {
        while self
            .admitted
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= HOUR)
        {
            self.admitted.pop_front();
        }
        let (mut in_reply, mut repeated, mut over_reply, mut over_hour) = (0, 0, 0, 0);
        let mut out = Vec::new();
        for adv in advisories {
            let Advisory::Diagnostics { request_id, checks } = adv else {
                out.push(adv.clone());
                continue;
            };
            if self.recent.iter().any(|id| id == request_id) {
                repeated += 1;
            } else if in_reply >= MAX_DIAG_REQUESTS_PER_REPLY {
                over_reply += 1;
            } else if self.admitted.len() >= MAX_DIAG_REQUESTS_PER_HOUR {
                over_hour += 1;
            } else {
                in_reply += 1;
                self.admitted.push_back(now);
                if self.recent.len() >= RECENT_DIAG_IDS {
                    self.recent.pop_front();
                }
                self.recent.push_back(request_id.clone());
                let mut unique: Vec<CheckId> = Vec::new();
                for c in checks {
                    if !unique.contains(c) {
                        unique.push(*c);
                    }
                }
                out.push(Advisory::Diagnostics {
                    request_id: request_id.clone(),
                    checks: unique,
                });
            }
        }
        if repeated > 0 {
            log::debug!("diagnostics: {repeated} request(s) already run, not repeated");
        }
        if over_reply + over_hour > 0 {
            log::warn!(
                "diagnostics: refused {over_reply} request(s) over {MAX_DIAG_REQUESTS_PER_REPLY} \
                 per reply and {over_hour} over {MAX_DIAG_REQUESTS_PER_HOUR} per hour"
            );
        }
        out
    }
}

/// The next period: `interval ± jitter`, uniform.
pub fn next_period(interval_secs: u64, jitter_secs: u64) -> Duration {
    let base = Duration::from_secs(interval_secs);
    let jitter = Duration::from_secs(jitter_secs).mul_f64(2.0 * random_fraction());
    (base + jitter).saturating_sub(Duration::from_secs(jitter_secs))
}

/// Diagnostics results kept in memory for redelivery; past this the oldest is dropped.
pub const OUTBOX_CAPACITY: usize = 8;

/// The collector's limits (`netmedic_proto::Limits`): a result over them is refused whole.
const MAX_TEXT_BYTES: usize = 512;
const MAX_EVIDENCE_ENTRIES: usize = 32;
const MAX_EVIDENCE_VALUE_BYTES: usize = 1024;

/// What became of one attempt to deliver a diagnostics result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The collector stored it (or had already).
    Delivered,
    /// The collector refused it for good (a 4xx other than 429): retrying cannot help.
    Refused(String),
    /// Network trouble, 429 or 5xx: keep it and try again later.
    Retry(String),
}

impl Delivery {
    /// The verdict for a collector answer with this status; `reason` says what it said.
    pub fn of_status(status: u16, reason: String) -> Self {
        match status {
            200..=299 => Delivery::Delivered,
            429 => Delivery::Retry(reason),
            400..=499 => Delivery::Refused(reason),
            _ => Delivery::Retry(reason),
        }
    }
}

/// Diagnostics results waiting for the collector, oldest first, at most `capacity` of them.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<DiagnosticsResult>,
    capacity: usize,
}

impl Default for Outbox {
    fn default() -> Self {
        Self::new(OUTBOX_CAPACITY)
    }
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::with_capacity(capacity),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Request ids waiting, oldest first.
    pub fn request_ids(&self) -> impl Iterator<Item = &str> {
        self.queue.iter().map(|r| r.request_id.as_str())
    }

    /// Queues a result. When the outbox is full the oldest result is dropped (logged) and
    /// returned.
    pub fn push(&mut self, result: DiagnosticsResult) -> Option<DiagnosticsResult> {
        let dropped = if self.queue.len() >= self.capacity {
            self.queue.pop_front()
        } else {
            None
        };
        if let Some(d) = &dropped {
            log::warn!(
                "diagnostics {}: result dropped undelivered ({} newer result(s) wait for the collector)",
                d.request_id,
                self.capacity
            );
        }
        self.queue.push_back(result);
        dropped
    }

    /// Delivers the queued results oldest first with `send`. A delivered or refused result
    /// leaves the outbox; the first one to be retried stops the flush and stays, with every
    /// result after it, for the next call. Returns how many left the outbox.
    pub async fn flush<F, Fut>(&mut self, mut send: F) -> usize
    where
        F: FnMut(DiagnosticsResult) -> Fut,
        Fut: Future<Output = Delivery>,
    {
        let mut done = 0;
        while let Some(front) = self.queue.front() {
            let id = front.request_id.clone();
            match send(front.clone()).await {
                Delivery::Delivered => {
                    log::info!("diagnostics {id}: result delivered to the collector");
                }
                Delivery::Refused(why) => {
                    log::error!(
                        "diagnostics {id}: the collector refused the result ({why}); dropped, not retried"
                    );
                }
                Delivery::Retry(why) => {
                    log::warn!(
                        "diagnostics {id}: result not delivered ({why}); {} result(s) kept, retried after the next heartbeat",
                        self.queue.len()
                    );
                    break;
                }
            }
            self.queue.pop_front();
            done += 1;
        }
        done
    }
}

/// One check's entry in a diagnostics result, bounded and cleaned to what the wire accepts.
pub fn diagnostic_check(obs: &Observation) -> DiagnosticCheck {
    let summary = if obs.summary.trim().is_empty() {
        obs.cause.clone()
    } else {
        obs.summary.clone()
    };
    DiagnosticCheck {
        check: obs.check,
        status: obs.status,
        cause: obs.cause.clone(),
        summary: wire_text(&summary, MAX_TEXT_BYTES),
        value: wire_text(&obs.value, MAX_TEXT_BYTES),
        threshold: wire_text(&obs.threshold, MAX_TEXT_BYTES),
        hint: wire_text(&obs.hint, MAX_TEXT_BYTES),
        evidence: obs
            .evidence
            .iter()
            .take(MAX_EVIDENCE_ENTRIES)
            .map(|(k, v)| (wire_key(k), wire_text(v, MAX_EVIDENCE_VALUE_BYTES)))
            .collect(),
    }
}

/// The entry for a requested check this device does not run.
pub fn not_enabled(check: CheckId) -> DiagnosticCheck {
    DiagnosticCheck {
        check,
        status: CheckStatus::Unknown,
        cause: "check_not_enabled".into(),
        summary: format!("check {check} is not enabled on this device"),
        value: String::new(),
        threshold: String::new(),
        hint: format!("enable [checks.{check}] in the agent config to run it"),
        evidence: Default::default(),
    }
}

impl Heartbeater {
    /// Sends one heartbeat; returns how long the collector asked us to wait, if it did. After a
    /// successful one, runs the requested diagnostics and delivers what `outbox` holds.
    pub async fn send_once(
        &self,
        outbox: &mut Outbox,
        diag: &mut DiagLimit,
    ) -> Result<Option<Duration>, String> {
        let config = &self.config;
        let hb = build(config, &self.ctx.shared, &self.spool, self.started);
        let resp = self.collector.post_json(paths::HEARTBEATS, &hb).await?;
        let status = resp.status();
        if status.as_u16() == 429 || status.as_u16() == 503 {
            let cap = Duration::from_secs(config.collector.max_backoff_secs);
            return Ok(retry_after(resp.headers(), cap));
        }
        if !status.is_success() {
            return Err(format!("collector answered {status}"));
        }
        let reply: HeartbeatReply = read_json(resp)
            .await
            .map_err(|e| format!("unreadable heartbeat reply: {e}"))?;
        let advisories = diag.admit(&reply.advisories, Instant::now());
        let before = self.ctx.shared.advisories();
        let now_adv = apply_advisories(&self.ctx.shared, &advisories);
        if now_adv.kill_switch != before.kill_switch {
            match &now_adv.kill_switch {
                Some(r) => log::warn!("collector kill switch on: {r}; no remediation"),
                None => log::info!("collector kill switch cleared"),
            }
        }
        if now_adv.upstream_outage != before.upstream_outage {
            match &now_adv.upstream_outage {
                Some((id, until)) => {
                    log::warn!("upstream outage {id} until {until}: local remediation held")
                }
                None => log::info!("upstream outage advisory cleared"),
            }
        }
        self.apply_experiments(&reply.experiments);
        for result in self.run_diagnostics().await {
            outbox.push(result);
        }
        if !outbox.is_empty() {
            outbox
                .flush(|r| async move { self.post_result(&r).await })
                .await;
        }
        Ok(None)
    }

    /// Takes the reply's holdout experiments (an absent one has ended) and logs each change of
    /// this device's arm.
    fn apply_experiments(&self, list: &[netmedic_proto::Experiment]) {
        let (assigned, refused) = crate::experiment::assign(list, &self.config.agent.id);
        for why in refused {
            log::warn!("{why}");
        }
        let before = self.ctx.shared.set_experiments(assigned.clone());
        for change in crate::experiment::changes(&before, &assigned) {
            log::info!("{change}");
        }
    }

    /// POSTs one diagnostics result with the device token.
    async fn post_result(&self, result: &DiagnosticsResult) -> Delivery {
        let resp = match self
            .collector
            .post_json(paths::DIAGNOSTICS_RESULTS, result)
            .await
        {
            Ok(r) => r,
            Err(e) => return Delivery::Retry(e),
        };
        let status = resp.status();
        if status.is_success() {
            return Delivery::Delivered;
        }
        let reason = match read_json::<ErrorBody>(resp).await {
            Ok(b) => {
                let mut r = format!("{status} {}: {}", b.error, b.reason);
                for v in &b.violations {
                    r.push_str(&format!("; {}: {}", v.field, v.problem));
                }
                loggable(&r)
            }
            Err(_) => format!("collector answered {status}"),
        };
        Delivery::of_status(status.as_u16(), reason)
    }

    /// Runs the queued diagnostics requests, logs their results and returns them.
    async fn run_diagnostics(&self) -> Vec<DiagnosticsResult> {
        let queued = std::mem::take(
            &mut self
                .ctx
                .shared
                .advisories
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .diagnostics,
        );
        if queued.is_empty() {
            return Vec::new();
        }
        let catalogue = self.config.enabled_checks();
        let mut out = Vec::with_capacity(queued.len());
        for (request_id, wanted) in queued {
            let mut results = Vec::with_capacity(wanted.len());
            let rid = loggable(&request_id);
            log::info!(
                "diagnostics {rid}: running {}",
                wanted
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for id in wanted {
                let Some(check) = catalogue.iter().find(|c| c.id() == id) else {
                    log::warn!(check = id.as_str(); "diagnostics {rid}: check {id} is not enabled here");
                    results.push(not_enabled(id));
                    continue;
                };
                let obs = check.run(&self.ctx).await;
                results.push(diagnostic_check(&obs));
                log::info!(
                    check = id.as_str();
                    "diagnostics {rid}: {id} {} ({}): {} [{}]",
                    obs.status,
                    obs.cause,
                    obs.summary,
                    obs.evidence
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            out.push(DiagnosticsResult {
                schema_version: SCHEMA_VERSION,
                agent_id: self.config.agent.id.clone(),
                request_id,
                completed_at: now(),
                results,
            });
        }
        out
    }
}

/// The heartbeat loop: runs until the task is dropped. After a failed heartbeat, a WAN that
/// comes back (`wan_back`) sends the next one at once (after a small jitter).
pub async fn run(
    hb: Heartbeater,
    first_delay: Duration,
    mut wan_back: tokio::sync::watch::Receiver<u64>,
) {
    let h = hb.config.heartbeat.clone();
    tokio::time::sleep(first_delay).await;
    let mut outbox = Outbox::default();
    let mut diag = DiagLimit::default();
    loop {
        let mut wait = next_period(h.interval_secs, h.jitter_secs);
        wan_back.borrow_and_update();
        match hb.send_once(&mut outbox, &mut diag).await {
            Ok(None) => log::debug!("heartbeat sent"),
            Ok(Some(after)) => {
                log::warn!("collector busy: next heartbeat in {} s", after.as_secs());
                wait = wait.max(after);
            }
            Err(e) => {
                log::warn!("heartbeat failed: {}", loggable(&e));
                if crate::reporter::sleep_unless_wan_back(wait, &mut wan_back).await {
                    log::info!("the WAN is back: sending a heartbeat now");
                }
                continue;
            }
        }
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netmedic_proto::{CheckId, CheckStatus, Timestamp};

    #[test]
    fn periods_stay_within_the_jitter() {
        for _ in 0..200 {
            let p = next_period(300, 30);
            assert!(
                p >= Duration::from_secs(270) && p <= Duration::from_secs(330),
                "{p:?}"
            );
        }
    }

    #[test]
    fn advisories_replace_state_and_queue_diagnostics() {
        let shared = Shared::default();
        let a = apply_advisories(
            &shared,
            &[
                Advisory::KillSwitch {
                    reason: "storm".into(),
                },
                Advisory::Diagnostics {
                    request_id: "d1".into(),
                    checks: vec![CheckId::Dns],
                },
            ],
        );
        assert_eq!(a.kill_switch.as_deref(), Some("storm"));
        assert_eq!(a.diagnostics.len(), 1);
        let a = apply_advisories(
            &shared,
            &[Advisory::UpstreamOutage {
                network_event_id: "n1".into(),
                until: Timestamp::EPOCH,
            }],
        );
        assert_eq!(a.kill_switch, None);
        assert!(a.upstream_outage.is_some());
        assert_eq!(a.diagnostics.len(), 1, "still queued until run");
    }

    #[test]
    fn collector_text_is_stored_neutralised() {
        let shared = Shared::default();
        let a = apply_advisories(
            &shared,
            &[Advisory::KillSwitch {
                reason: "storm\x1b[2J\r\nERROR forged\u{202e}".into(),
            }],
        );
        assert_eq!(
            a.kill_switch.as_deref(),
            Some("storm\\u{001b}[2J\\u{000d}\\u{000a}ERROR forged\\u{202e}")
        );
    }

    fn diag(id: &str, checks: Vec<CheckId>) -> Advisory {
        Advisory::Diagnostics {
            request_id: id.into(),
            checks,
        }
    }

    fn admitted(a: &[Advisory]) -> Vec<String> {
        a.iter()
            .filter_map(|a| match a {
                Advisory::Diagnostics { request_id, .. } => Some(request_id.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn diagnostics_are_capped_per_reply_and_hour_and_never_repeated() {
        let mut lim = DiagLimit::default();
        let t0 = Instant::now();
        let flood: Vec<Advisory> = (0..5000)
            .map(|i| {
                diag(
                    &format!("d{i}"),
                    vec![CheckId::Dns, CheckId::Dns, CheckId::Link],
                )
            })
            .chain([Advisory::KillSwitch { reason: "x".into() }])
            .collect();
        let out = lim.admit(&flood, t0);
        assert_eq!(admitted(&out), ["d0", "d1"]);
        assert!(out.iter().any(|a| matches!(a, Advisory::KillSwitch { .. })));
        assert!(matches!(&out[0], Advisory::Diagnostics { checks, .. } if checks.len() == 2));
        // The same ids again: refused as repeats.
        assert!(admitted(&lim.admit(&flood[..2], t0)).is_empty());
        // Fresh ids until the hourly budget is spent, then nothing until the hour passes.
        let mut total = 2;
        for i in 0..20 {
            let reply = [diag(&format!("n{i}"), vec![CheckId::Link])];
            total += admitted(&lim.admit(&reply, t0)).len();
        }
        assert_eq!(total, MAX_DIAG_REQUESTS_PER_HOUR);
        let later = t0 + HOUR;
        let reply = [diag("fresh", vec![CheckId::Link])];
        assert_eq!(admitted(&lim.admit(&reply, later)), ["fresh"]);
    }

    fn result(id: &str) -> DiagnosticsResult {
        DiagnosticsResult {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-0001".into(),
            request_id: id.into(),
            completed_at: Timestamp::EPOCH,
            results: vec![not_enabled(CheckId::Dns)],
        }
    }

    fn ids(o: &Outbox) -> Vec<String> {
        o.request_ids().map(str::to_owned).collect()
    }

    #[test]
    fn the_outbox_is_bounded_and_drops_the_oldest() {
        let mut o = Outbox::default();
        for i in 0..OUTBOX_CAPACITY {
            assert_eq!(o.push(result(&format!("d{i}"))), None);
        }
        assert_eq!(o.len(), OUTBOX_CAPACITY);
        let dropped = o.push(result("d8")).map(|r| r.request_id);
        assert_eq!(dropped.as_deref(), Some("d0"));
        let dropped = o.push(result("d9")).map(|r| r.request_id);
        assert_eq!(dropped.as_deref(), Some("d1"));
        assert_eq!(o.len(), OUTBOX_CAPACITY);
        assert_eq!(
            ids(&o),
            (2..10).map(|i| format!("d{i}")).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn a_flush_stops_at_the_first_retry_and_keeps_the_rest_in_order() {
        let mut o = Outbox::new(8);
        for id in ["a", "b", "c", "d"] {
            o.push(result(id));
        }
        let mut sent = Vec::new();
        // a is stored, b refused for good (dropped), c hits a 503: c and d wait.
        let n = o
            .flush(|r| {
                sent.push(r.request_id.clone());
                let verdict = match r.request_id.as_str() {
                    "a" => Delivery::of_status(200, String::new()),
                    "b" => Delivery::of_status(400, "invalid".into()),
                    _ => Delivery::of_status(503, "busy".into()),
                };
                async move { verdict }
            })
            .await;
        assert_eq!(n, 2);
        assert_eq!(sent, ["a", "b", "c"]);
        assert_eq!(ids(&o), ["c", "d"]);

        // After the next successful heartbeat the collector takes them.
        let mut sent = Vec::new();
        let n = o
            .flush(|r| {
                sent.push(r.request_id.clone());
                async { Delivery::Delivered }
            })
            .await;
        assert_eq!((n, sent), (2, vec!["c".to_string(), "d".to_string()]));
        assert!(o.is_empty());
    }

    #[test]
    fn only_429_and_server_errors_are_retried() {
        assert_eq!(Delivery::of_status(200, "x".into()), Delivery::Delivered);
        assert_eq!(Delivery::of_status(202, "x".into()), Delivery::Delivered);
        for s in [429, 500, 502, 503] {
            assert!(
                matches!(Delivery::of_status(s, "x".into()), Delivery::Retry(_)),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 413, 415] {
            assert!(
                matches!(Delivery::of_status(s, "x".into()), Delivery::Refused(_)),
                "{s}"
            );
        }
    }

    #[test]
    fn observations_become_valid_wire_entries() {
        let mut obs = Observation::new(
            CheckId::Dns,
            CheckStatus::Failed,
            "dns_timeout",
            "resolver 192.0.2.53\ntimed out",
        );
        obs.value = "0 of 2 answered".into();
        obs.threshold = "all resolvers answer".into();
        obs.hint = "check the resolvers".into();
        for i in 0..40 {
            obs.evidence
                .insert(format!("resolver {i}"), "x\n".repeat(1000));
        }
        let d = diagnostic_check(&obs);
        assert_eq!(d.summary, "resolver 192.0.2.53 timed out");
        assert_eq!(d.value, "0 of 2 answered");
        assert_eq!(d.hint, "check the resolvers");
        assert_eq!(d.evidence.len(), MAX_EVIDENCE_ENTRIES);
        assert!(d.evidence.contains_key("resolver_0"));
        let r = DiagnosticsResult {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-0001".into(),
            request_id: "diag-00ff".into(),
            completed_at: now(),
            results: vec![d, not_enabled(CheckId::ModemSnmp)],
        };
        r.validate(&netmedic_proto::Limits::default()).unwrap();
        assert_eq!(r.results[1].status, CheckStatus::Unknown);
        assert_eq!(r.results[1].cause, "check_not_enabled");
    }

    /// A full heartbeat (every check reported, long ids and versions) stays well under 600
    /// bytes on the wire: body (gzip'd when smaller) plus the request head sent.
    #[test]
    fn a_full_heartbeat_fits_in_600_bytes() {
        let hb = Heartbeat {
            schema_version: SCHEMA_VERSION,
            agent_id: "cpe-0123456789ab-0123456789ab".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            firmware_version: "OpenWrt 23.05.5 r24106-10cc5fcd00".into(),
            uptime_secs: 31_536_000,
            sent_at: now(),
            checks: CheckId::ALL
                .iter()
                .map(|c| (*c, CheckStatus::Degraded))
                .collect(),
            spool_depth: 1000,
            dropped_total: 123_456,
        };
        let json = serde_json::to_vec(&hb).unwrap();
        let (body, gzip) = crate::reporter::encode_body(&json);
        let head = format!(
            "POST {} HTTP/1.1\r\ncontent-type: application/json\r\n{}authorization: Bearer {}\r\n\
             user-agent: netmedic-agent/{}\r\naccept: */*\r\nhost: collector.isp.example:8440\r\n\
             content-length: {}\r\n\r\n",
            paths::HEARTBEATS,
            if gzip {
                "content-encoding: gzip\r\n"
            } else {
                ""
            },
            "f".repeat(64),
            env!("CARGO_PKG_VERSION"),
            body.len()
        );
        let total = head.len() + body.len();
        assert!(
            total <= 600,
            "{total} bytes ({} head + {} body)",
            head.len(),
            body.len()
        );
    }
}
