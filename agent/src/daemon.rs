//! The daemon: schedules checks, feeds the detector, runs the healer's decisions (record intent,
//! act, verify) and spools every incident event for the reporter.
//!
//! **Invariant:** checks never wait on the collector — delivery runs in its own task and only
//! ever reads the spool.

use crate::actions;
use crate::checks::Observation;
use crate::checks::{self, Check, Context, Shared, now};
use crate::config::{AgentConfig, Mode};
use crate::detector::{Detector, Transition};
use crate::events::{self, NetChange};
use crate::healer::{self, Decision};
use crate::incident::Incident;
use crate::net::Netlink;
use crate::ping::Pinger;
use crate::reporter::{self, Reporter};
use crate::spool::Spool;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use netmedic_proto::{ActionId, ActionOutcome, CheckId, CheckStatus, EventKind, IncidentEvent};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("state directory {path}: {source}")]
    StateDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error(transparent)]
    Net(#[from] crate::net::NetError),
    #[error(transparent)]
    Reporter(#[from] crate::reporter::ReporterError),
}

/// Per-agent event sequence numbers, persisted so they keep rising across restarts.
#[derive(Debug)]
struct SeqGen {
    path: PathBuf,
    next: u64,
}

impl SeqGen {
    fn open(path: PathBuf, floor: u64) -> Self {
        let stored = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Self {
            path,
            next: stored.max(floor + 1).max(1),
        }
    }

    fn next(&mut self) -> u64 {
        let n = self.next;
        self.next += 1;
        // Best effort: the spool's own max seq is the floor after a crash, so a lost write here
        // can only repeat numbers of events that were already delivered and deleted.
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, self.next.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .is_err()
        {
            log::warn!("cannot persist sequence number to {}", self.path.display());
        }
        n
    }
}

struct Agent {
    config: Arc<AgentConfig>,
    ctx: Arc<Context>,
    checks: Vec<Check>,
    detector: Detector,
    spool: Arc<Mutex<Spool>>,
    seq: SeqGen,
    wake_reporter: Arc<tokio::sync::Notify>,
}

fn push_event(spool: &Mutex<Spool>, wake: &tokio::sync::Notify, event: IncidentEvent) {
    let result = spool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(&event);
    match result {
        Ok(()) => wake.notify_one(),
        Err(e) => log::error!(
            "incident {} event {} ({}) dropped: {e}",
            event.incident_id,
            event.event_id,
            event.kind
        ),
    }
}

/// The next netlink change, or never when there is no subscription.
async fn recv(rx: &mut Option<mpsc::UnboundedReceiver<NetChange>>) -> Option<NetChange> {
    match rx {
        Some(r) => match r.recv().await {
            Some(c) => Some(c),
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Runs the agent until `shutdown` completes.
pub async fn run(
    config: AgentConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let state_dir = &config.agent.state_dir;
    std::fs::create_dir_all(state_dir).map_err(|source| DaemonError::StateDir {
        path: state_dir.display().to_string(),
        source,
    })?;
    let (spool, recovery) = Spool::open(
        &state_dir.join("spool"),
        config.spool.max_events,
        config.spool.max_bytes,
    )?;
    log::info!(
        "spool: {} event(s) awaiting delivery, {} quarantined, {} torn temp file(s) removed",
        recovery.events,
        recovery.quarantined,
        recovery.temp_files_removed
    );
    let seq = SeqGen::open(state_dir.join("seq"), spool.max_seq());
    let spool = Arc::new(Mutex::new(spool));
    let wake_reporter = Arc::new(tokio::sync::Notify::new());
    let reporter = Reporter::new(&config)?;
    let delivery = tokio::spawn(reporter::run(
        reporter,
        spool.clone(),
        wake_reporter.clone(),
        Duration::from_secs(config.collector.max_backoff_secs),
    ));
    let pinger = match Pinger::new() {
        Ok(p) => Some(p),
        Err(e) => {
            log::warn!("no ICMP socket ({e}): gateway reachability will read as unknown");
            None
        }
    };
    let shared = Arc::new(Shared::default());
    let ctx = Context {
        config: config.clone(),
        netlink: Netlink::connect()?,
        pinger,
        shared: shared.clone(),
    };
    let net_events = match events::watch(&ctx.netlink, shared.clone()).await {
        Ok(rx) => Some(rx),
        Err(e) => {
            log::warn!("no netlink events ({e}): checks run on their intervals only");
            None
        }
    };
    let checks = checks::enabled(&config);
    log::info!(
        "agent {} running in {} mode with checks: {}",
        config.agent.id,
        config.agent.mode.as_str(),
        checks
            .iter()
            .map(|c| c.id().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut agent = Agent {
        config,
        ctx: Arc::new(ctx),
        checks,
        detector: Detector::default(),
        spool,
        seq,
        wake_reporter,
    };
    tokio::select! {
        () = agent.schedule(net_events) => {}
        () = shutdown => log::info!("shutting down"),
    }
    delivery.abort();
    Ok(())
}

/// What an in-flight future of the scheduler finished with.
enum Finished {
    /// Check `index` ran.
    Check(usize, Observation),
    /// A heal step for check `index` ran `action`; `verify` is the last re-run of the check.
    Heal {
        index: usize,
        action: ActionId,
        result: Result<String, actions::ActionError>,
        verify: Option<Observation>,
    },
}

type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = Finished>>>>;

/// Runs `action`, then re-runs the check until it passes (up to three times, a second apart).
async fn heal_step(ctx: Arc<Context>, check: Check, index: usize, action: ActionId) -> Finished {
    let result = actions::run(action, &ctx).await;
    let mut verify = None;
    if result.is_ok() {
        for attempt in 0..3 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let obs = check.run(&ctx).await;
            let passed = !obs.is_failing() && obs.status != CheckStatus::Unknown;
            verify = Some(obs);
            if passed {
                break;
            }
        }
    }
    Finished::Heal {
        index,
        action,
        result,
        verify,
    }
}

impl Agent {
    /// The scheduler. Check runs and heal steps are futures polled concurrently, so a slow
    /// check (a loss measurement, a DNS timeout) never delays the reaction to a netlink event;
    /// all state (detector, incidents) is owned and changed here alone.
    async fn schedule(&mut self, mut net_events: Option<mpsc::UnboundedReceiver<NetChange>>) {
        let n = self.checks.len();
        if n == 0 {
            std::future::pending::<()>().await;
        }
        let mut due: Vec<Instant> = vec![Instant::now(); n];
        let mut in_flight = vec![false; n];
        // A netlink change arrived while the check was running: run it again when it ends.
        let mut rerun = vec![false; n];
        let mut healing = vec![false; n];
        let mut pending: Pending = FuturesUnordered::new();
        loop {
            let next_due = (0..n)
                .filter(|i| !in_flight[*i])
                .map(|i| due[i])
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = tokio::time::sleep_until(next_due) => {
                    let now = Instant::now();
                    for i in 0..n {
                        if !in_flight[i] && due[i] <= now {
                            self.start_check(i, &mut pending, &mut in_flight);
                        }
                    }
                }
                Some(first) = recv(&mut net_events) => {
                    let mut changes = vec![first];
                    if let Some(rx) = net_events.as_mut() {
                        while let Ok(c) = rx.try_recv() {
                            changes.push(c);
                        }
                    }
                    for c in &changes {
                        if let NetChange::Link { index, carrier: Some(up) } = c {
                            log::info!(
                                "netlink: interface {index} carrier {}",
                                if *up { "up" } else { "down" }
                            );
                        }
                    }
                    for i in 0..n {
                        if checks::NETLINK_DRIVEN.contains(&self.checks[i].id()) {
                            if in_flight[i] {
                                rerun[i] = true;
                            } else {
                                self.start_check(i, &mut pending, &mut in_flight);
                            }
                        }
                    }
                }
                Some(done) = pending.next(), if !pending.is_empty() => match done {
                    Finished::Check(i, obs) => {
                        in_flight[i] = false;
                        due[i] = Instant::now() + self.checks[i].interval();
                        if std::mem::take(&mut rerun[i]) {
                            self.start_check(i, &mut pending, &mut in_flight);
                        }
                        if let Some(action) = self.observe(i, obs, healing[i]) {
                            healing[i] = true;
                            let fut = heal_step(self.ctx.clone(), self.checks[i].clone(), i, action);
                            pending.push(Box::pin(fut));
                        }
                    }
                    Finished::Heal { index, action, result, verify } => {
                        healing[index] = false;
                        self.heal_finished(index, action, result, verify);
                    }
                },
            }
        }
    }

    fn start_check(&self, i: usize, pending: &mut Pending, in_flight: &mut [bool]) {
        in_flight[i] = true;
        let ctx = self.ctx.clone();
        let check = self.checks[i].clone();
        pending.push(Box::pin(async move {
            let obs = check.run(&ctx).await;
            Finished::Check(i, obs)
        }));
    }

    /// The dependency of `check` that is failing now, if any (root-cause layering).
    fn failing_dependency(&self, check: CheckId) -> Option<CheckId> {
        checks::depends_on(check).iter().copied().find(|d| {
            self.detector.incident(*d).is_some()
                || matches!(self.detector.last_status(*d), Some(CheckStatus::Failed))
        })
    }

    /// Feeds an observation to the detector and decides on healing; returns the action to
    /// start, with its intent already on disk.
    fn observe(&mut self, i: usize, obs: Observation, healing: bool) -> Option<ActionId> {
        log::debug!("check {}: {:?} {}", obs.check, obs.status, obs.summary);
        if obs.is_failing()
            && let Some(parent) = self.failing_dependency(obs.check)
        {
            // A consequence of a fault further down (e.g. DNS with the link down): it is
            // evidence on that incident, not an incident of its own.
            log::debug!("{} failure is a consequence of {parent}", obs.check);
            self.detector.note_consequence(obs.check, obs.status);
            if let Some(inc) = self.detector.incident_mut(parent) {
                inc.consequences.insert(obs.check, obs.summary.clone());
            }
            return None;
        }
        let check = self.checks[i].hysteresis();
        match self.detector.observe(&obs, check) {
            Transition::Quiet => None,
            Transition::Opened => {
                log::warn!(
                    "incident opened: {} ({}): {}",
                    obs.check,
                    obs.cause,
                    obs.summary
                );
                self.emit(obs.check, EventKind::Opened);
                if healing { None } else { self.plan(obs.check) }
            }
            Transition::StillFailing if !healing => self.plan(obs.check),
            Transition::StillFailing => None,
            Transition::Resolved(mut inc) => {
                log::info!("incident {} resolved by itself: {}", inc.id, obs.summary);
                self.spool_event(&mut inc, EventKind::Resolved);
                None
            }
        }
    }

    /// Decides the next rung of the ladder; records and spools the intent before it starts.
    fn plan(&mut self, id: CheckId) -> Option<ActionId> {
        let mode = self.config.agent.mode;
        let decision = healer::decide(mode, self.detector.incident(id)?);
        match decision {
            Decision::Nothing => None,
            Decision::Escalate => {
                if let Some(inc) = self.detector.incident_mut(id) {
                    inc.escalated = true;
                    if let Some(action) = inc.tried.last().copied() {
                        log::error!(
                            "incident {}: playbook exhausted, escalating to the NOC",
                            inc.id
                        );
                        inc.record(
                            action,
                            ActionOutcome::Escalated,
                            "every action of the playbook was tried; the NOC must act",
                        );
                    }
                }
                self.emit(id, EventKind::Updated);
                None
            }
            Decision::Act(action) => {
                if let Some(inc) = self.detector.incident_mut(id) {
                    inc.tried.push(action);
                    inc.record(
                        action,
                        ActionOutcome::Planned,
                        format!("playbook for {}", inc.cause),
                    );
                }
                // The intent is on disk before the action starts.
                self.emit(id, EventKind::Updated);
                if mode == Mode::DryRun {
                    log::info!("dry_run: would run {action} for {id}; nothing changed");
                    if let Some(inc) = self.detector.incident_mut(id) {
                        inc.record(
                            action,
                            ActionOutcome::Skipped,
                            "dry_run mode: nothing changed",
                        );
                    }
                    self.emit(id, EventKind::Updated);
                    return None;
                }
                log::info!("running {action} for {id}");
                Some(action)
            }
        }
    }

    /// Records a heal step's outcome; resolves the incident when verification passed.
    fn heal_finished(
        &mut self,
        index: usize,
        action: ActionId,
        result: Result<String, actions::ActionError>,
        verify: Option<Observation>,
    ) {
        let id = self.checks[index].id();
        let Some(inc) = self.detector.incident_mut(id) else {
            // Resolved by itself while the action ran; nothing left to record against.
            log::info!("{action} finished after the {id} incident had already cleared");
            return;
        };
        match result {
            Ok(detail) => inc.record(action, ActionOutcome::Done, detail),
            Err(e) => {
                log::warn!("incident {}: {action} failed: {e}", inc.id);
                inc.record(action, ActionOutcome::Failed, e.to_string());
                self.emit(id, EventKind::Updated);
                return;
            }
        }
        match verify {
            Some(obs) if !obs.is_failing() && obs.status != CheckStatus::Unknown => {
                inc.record(action, ActionOutcome::Verified, obs.summary.clone());
                inc.healed_by = Some(action);
                if let Some(mut inc) = self.detector.resolve_healed(id) {
                    log::info!("incident {} healed by {action}: {}", inc.id, obs.summary);
                    self.spool_event(&mut inc, EventKind::Resolved);
                }
            }
            other => {
                let why = other.map_or_else(String::new, |o| o.summary);
                log::warn!("incident {}: {action} did not help: {why}", inc.id);
                inc.record(action, ActionOutcome::NotEffective, why);
                self.emit(id, EventKind::Updated);
            }
        }
    }

    /// Builds and spools an event for the open incident of `check`.
    fn emit(&mut self, check: CheckId, kind: EventKind) {
        let Some(inc) = self.detector.incident_mut(check) else {
            return;
        };
        let event = inc.take_event(kind, self.seq.next(), now());
        push_event(&self.spool, &self.wake_reporter, event);
    }

    fn spool_event(&mut self, inc: &mut Incident, kind: EventKind) {
        let event = inc.take_event(kind, self.seq.next(), now());
        push_event(&self.spool, &self.wake_reporter, event);
    }
}
