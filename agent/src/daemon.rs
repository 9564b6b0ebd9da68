//! The daemon: schedules check runs and heal steps, feeds the detector, hands failing incidents
//! to [`heal`] and spools every incident event for the reporter; its life cycle (start, reload,
//! stop).
//!
//! **Invariant:** checks never wait on the collector — delivery runs in its own task and only
//! ever reads the spool.
//!
//! Life cycle ([`run`]): systemd `READY=1` once the spool is recovered and the checks scheduled,
//! `WATCHDOG=1` at half `WatchdogSec`; SIGHUP reloads the config (`RELOADING=1`, validated; a
//! bad file or a change that needs a restart — `agent.id`, `agent.state_dir` — keeps the running
//! config and logs why; a good one is applied once in-flight checks and heal steps finished:
//! checks and intervals rebuilt, reporter and heartbeat restarted with the new collector
//! settings, spool, detector state and open incidents kept); SIGTERM/SIGINT stop the same way:
//! nothing new starts, and a heal step in flight ends first — its action runs to its end and a
//! change is verified at once or rolled back (see [`heal::step`]) — before the agent exits.

use crate::checks::Observation;
use crate::checks::{self, Check};
use crate::config::AgentConfig;
use crate::context::{Context, Shared};
use crate::detector::{Detector, Transition};
use crate::events::{self, NetChange, WanBack};
use crate::heal::{self, Effects, EventSink, PlannedStep, StepResult, System};
use crate::incident::Incident;
use crate::net::Netlink;
use crate::ping::Pinger;
use crate::reporter::Collector;
use crate::spool::Spool;
use crate::{logging, notify};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use netmedic_proto::{ActionId, CheckId, CheckStatus, EventKind};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

mod background;
mod record;

use background::{Background, Reload, reload_on_sighup};
use record::{Recorder, SeqGen};

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

struct Agent {
    config: Arc<AgentConfig>,
    ctx: Arc<Context>,
    /// What check runs and heal steps do to the world (the real system outside unit tests).
    fx: Rc<dyn Effects>,
    checks: Vec<Check>,
    detector: Detector,
    events: Recorder,
    /// Healer state: persisted budgets, backoff and ladder memory (see `heal`).
    heal: heal::HealState,
    /// What the healer reads, derived from `config`.
    heal_settings: Arc<heal::Settings>,
}

/// Why the scheduler returned.
enum Exit<R> {
    /// A staged config reload, once nothing was in flight any more.
    Reload(R),
    /// Shutdown, once every heal step in flight had ended.
    Stop,
}

/// After an event revealed a failure, the check runs again this soon to confirm it.
const CONFIRM_AFTER: Duration = Duration::from_secs(1);

/// When a check that started at `started` and finished at `now` runs next: on its own grid
/// `origin + k × interval` (`origin` = when the schedule began), at the first slot that is at
/// least half an interval after the start and not before the end. Fixed rate keeps checks whose
/// intervals are multiples of each other in phase, so they share one wake-up: a run that took
/// 2 s is next due one interval after its slot, not after it ended; a run an event started
/// early (a netlink change, a lease file write) goes back to its slot instead of carrying its
/// own phase, and its own wake-up, from then on; a run longer than its interval waits for the
/// next slot after its end. Between two starts there is at least half an interval (an event
/// run just before its slot skips that slot) and, for a run of at most half its interval, at
/// most one and a half.
fn next_run(origin: Instant, started: Instant, now: Instant, interval: Duration) -> Instant {
    let earliest = now.max(started + interval / 2);
    let step = interval.as_nanos();
    if step == 0 {
        return earliest;
    }
    let slots = earliest
        .saturating_duration_since(origin)
        .as_nanos()
        .div_ceil(step);
    origin + Duration::from_nanos(u64::try_from(slots * step).unwrap_or(u64::MAX))
}

/// Whether `change` runs check `id` at once; `settled`: its last verdict was ok and it has no
/// incident open. A change that altered nothing the check reads ([`NetChange::Same`],
/// [`NetChange::Rewritten`]: a DHCP renewal of an unchanged lease) runs only a check that is
/// not settled, for which it may be the recovery.
fn wakes(change: &NetChange, id: CheckId, settled: bool) -> bool {
    match change {
        NetChange::Wake(w) => *w == id,
        NetChange::Rewritten(w) => *w == id && !settled,
        NetChange::Same => !settled && checks::NETLINK_DRIVEN.contains(&id),
        NetChange::Link { .. } | NetChange::Address | NetChange::Route => {
            checks::NETLINK_DRIVEN.contains(&id)
        }
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

/// Runs the agent until `shutdown` completes; `config_path` is re-read on SIGHUP. Must run
/// inside a [`tokio::task::LocalSet`] (the heartbeat is a local task).
pub async fn run(
    config: AgentConfig,
    config_path: PathBuf,
    shutdown: impl Future<Output = ()>,
) -> Result<(), DaemonError> {
    logging::set_agent_id(&config.agent.id);
    let started = std::time::Instant::now();
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
    let shared = Arc::new(Shared::default());
    let collector = Collector::new(&config, shared.clone())?;
    let pinger = match Pinger::new() {
        Ok(p) => Some(p),
        Err(e) => {
            log::warn!("no ICMP socket ({e}): gateway reachability will read as unknown");
            None
        }
    };
    let ctx = Context {
        site: Arc::new(config.site()),
        netlink: Netlink::connect()?,
        pinger,
        shared: shared.clone(),
    };
    // Netlink, file and process events all wake checks through one channel.
    let (wake_tx, wake_rx) = mpsc::unbounded_channel();
    let wan_back = Arc::new(WanBack::new(0));
    let (iface, back) = (config.wan.interface.clone(), wan_back.clone());
    if let Err(e) = events::watch(&ctx.netlink, shared.clone(), wake_tx.clone(), iface, back).await
    {
        log::warn!("no netlink events ({e}): netlink-driven checks run on their intervals only");
    }
    let mut net_events = Some(wake_rx);
    let mut watchers = crate::watch::spawn(&config, &wake_tx);
    let checks = config.enabled_checks();
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
    let ctx = Arc::new(ctx);
    let mut background = Background::spawn(
        &config,
        &ctx,
        collector,
        &spool,
        &wake_reporter,
        started,
        true,
        &wan_back,
    );
    let (reload_tx, mut reload_rx) = mpsc::unbounded_channel();
    let hup = tokio::spawn(reload_on_sighup(
        config_path,
        (*config).clone(),
        shared.clone(),
        reload_tx,
    ));
    let watchdog = notify::watchdog_interval().map(|every| tokio::spawn(notify::watchdog(every)));
    let heal_settings = Arc::new(config.heal_settings());
    let heal = heal::HealState::open(&heal_settings);
    let mut agent = Agent {
        heal,
        config,
        fx: Rc::new(System {
            ctx: ctx.clone(),
            settings: heal_settings.clone(),
        }),
        heal_settings,
        ctx,
        checks,
        detector: Detector::default(),
        events: Recorder {
            spool,
            seq,
            wake_reporter,
        },
    };
    notify::ready();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Exit::Reload(reload) = agent
        .schedule(&mut net_events, &mut reload_rx, shutdown.as_mut())
        .await
    {
        background.abort();
        background = agent.apply(reload, started, &wan_back);
        watchers.abort();
        watchers = crate::watch::spawn(&agent.config, &wake_tx);
        notify::ready();
    }
    notify::stopping();
    background.abort();
    hup.abort();
    if let Some(w) = watchdog {
        w.abort();
    }
    Ok(())
}

/// What an in-flight future of the scheduler finished with.
enum Finished {
    /// Check `index` ran.
    Check(usize, Observation),
    /// A heal step for check `index` ran (or refused) `action`; `verify` is the last re-run
    /// of the check.
    Heal {
        index: usize,
        action: ActionId,
        result: StepResult,
        verify: Option<Observation>,
    },
}

type Pending = FuturesUnordered<Pin<Box<dyn Future<Output = Finished>>>>;

impl Agent {
    /// The scheduler. Check runs and heal steps are futures polled concurrently, so a slow
    /// check (a loss measurement, a DNS timeout) never delays the reaction to a netlink event;
    /// all state (detector, incidents) is owned and changed here alone.
    ///
    /// Returns a staged config reload once nothing is in flight any more (no check index or
    /// heal step refers to the old catalogue); the caller applies it and calls again. Returns
    /// [`Exit::Stop`] after `shutdown` completed and every heal step in flight ended: stopping
    /// starts nothing new and tells running steps to wrap up (see [`heal::step`]); check runs
    /// still in flight are dropped (a check never changes the system).
    async fn schedule<R>(
        &mut self,
        net_events: &mut Option<mpsc::UnboundedReceiver<NetChange>>,
        reload: &mut mpsc::UnboundedReceiver<R>,
        mut shutdown: Pin<&mut impl Future<Output = ()>>,
    ) -> Exit<R> {
        let n = self.checks.len();
        let mut staged: Option<R> = None;
        let mut stopping = false;
        let (stop_tx, stop_rx) = watch::channel(false);
        // Every check's slots are multiples of its interval after this instant.
        let origin = Instant::now();
        let mut due: Vec<Instant> = vec![origin; n];
        // When each check's run in flight started.
        let mut in_flight: Vec<Option<Instant>> = vec![None; n];
        // A netlink change arrived while the check was running: run it again when it ends.
        let mut rerun = vec![false; n];
        // Runs left to confirm a failure an event revealed, each CONFIRM_AFTER after the last,
        // so fail_threshold is reached in seconds rather than intervals.
        let mut confirm = vec![0u32; n];
        let mut healing = vec![false; n];
        let mut pending: Pending = FuturesUnordered::new();
        let mut deadline = crate::timer::Deadline::new();
        loop {
            if stopping && !healing.contains(&true) {
                return Exit::Stop;
            }
            if pending.is_empty()
                && let Some(r) = staged.take()
            {
                return Exit::Reload(r);
            }
            // With a reload staged or while stopping, nothing new starts: in-flight work drains.
            let quiet = staged.is_some() || stopping;
            let next_due = (0..n)
                .filter(|i| in_flight[*i].is_none() && !quiet)
                .map(|i| due[i])
                .min()
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                // A stop is seen before anything else that is ready at the same time.
                biased;
                () = shutdown.as_mut(), if !stopping => {
                    stopping = true;
                    let steps = healing.iter().filter(|h| **h).count();
                    if steps > 0 {
                        log::info!("shutting down: {steps} heal step(s) in flight finish first");
                    } else {
                        log::info!("shutting down");
                    }
                    let _ = stop_tx.send(true);
                }
                Some(r) = reload.recv(), if !stopping => {
                    // Applied when in-flight work drained; a newer reload replaces it.
                    staged = Some(r);
                }
                () = deadline.until(next_due) => {
                    let now = Instant::now();
                    for i in 0..n {
                        if in_flight[i].is_none() && due[i] <= now && !quiet {
                            self.start_check(i, &mut pending, &mut in_flight);
                        }
                    }
                }
                Some(first) = recv(net_events), if !quiet => {
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
                    let mut ran = Vec::new();
                    for i in 0..n {
                        let id = self.checks[i].id();
                        let settled = self.settled(id);
                        let woken = changes.iter().any(|c| wakes(c, id, settled));
                        if woken {
                            ran.push(id.as_str());
                            confirm[i] = self.checks[i].hysteresis().fail_threshold;
                            if in_flight[i].is_some() {
                                rerun[i] = true;
                            } else {
                                self.start_check(i, &mut pending, &mut in_flight);
                            }
                        }
                    }
                    log::debug!(
                        "changes {changes:?} woke: {}",
                        if ran.is_empty() { "none".to_string() } else { ran.join(", ") }
                    );
                }
                Some(done) = pending.next(), if !pending.is_empty() => match done {
                    Finished::Check(i, obs) => {
                        let started = in_flight[i].take().unwrap_or(origin);
                        due[i] = next_run(origin, started, Instant::now(), self.checks[i].interval());
                        if stopping {
                            // No new incident or step once the agent stops.
                            continue;
                        }
                        if std::mem::take(&mut rerun[i]) && staged.is_none() {
                            self.start_check(i, &mut pending, &mut in_flight);
                        }
                        let (id, failing) = (obs.check, obs.is_failing());
                        let step = self.observe(i, obs, healing[i]);
                        confirm[i] = confirm[i].saturating_sub(1);
                        if failing && confirm[i] > 0 && self.detector.incident(id).is_none() {
                            due[i] = Instant::now() + CONFIRM_AFTER;
                        } else {
                            confirm[i] = 0;
                        }
                        self.ctx.shared.set_check_statuses(self.detector.statuses());
                        if let Some(step) = step {
                            healing[i] = true;
                            self.start_step(i, step, &stop_rx, &mut pending);
                        }
                    }
                    Finished::Heal { index, action, result, verify } => {
                        healing[index] = false;
                        let id = self.checks[index].id();
                        heal::finish(
                            &self.heal_settings,
                            &mut self.detector,
                            &mut self.heal,
                            &mut self.events,
                            id,
                            action,
                            result,
                            verify,
                        );
                    }
                },
            }
        }
    }

    /// Starts a heal step for check `i`; it reports back as [`Finished::Heal`].
    fn start_step(
        &self,
        i: usize,
        step: PlannedStep,
        stop: &watch::Receiver<bool>,
        pending: &mut Pending,
    ) {
        let fx = self.fx.clone();
        let check = self.checks[i].clone();
        let verify_timeout = Duration::from_secs(self.config.healing.verify_timeout_secs);
        let stop = stop.clone();
        pending.push(Box::pin(async move {
            let (result, verify) = heal::step::run(&*fx, &check, &step, verify_timeout, stop).await;
            Finished::Heal {
                index: i,
                action: step.action,
                result,
                verify,
            }
        }));
    }

    /// Applies a validated reload (nothing in flight): new config, context and checks; the
    /// spool, the detector and its open incidents stay. Returns the restarted background tasks.
    fn apply(&mut self, reload: Reload, started: std::time::Instant, back: &WanBack) -> Background {
        let Reload { config, collector } = reload;
        let config = Arc::new(config);
        self.events
            .spool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .set_bounds(config.spool.max_events, config.spool.max_bytes);
        let pinger = match Pinger::new() {
            Ok(p) => Some(p),
            Err(e) => {
                log::warn!("no ICMP socket ({e}): gateway reachability will read as unknown");
                None
            }
        };
        self.ctx = Arc::new(Context {
            site: Arc::new(config.site()),
            netlink: self.ctx.netlink.clone(),
            pinger,
            shared: self.ctx.shared.clone(),
        });
        self.heal_settings = Arc::new(config.heal_settings());
        self.fx = Rc::new(System {
            ctx: self.ctx.clone(),
            settings: self.heal_settings.clone(),
        });
        self.checks = config.enabled_checks();
        self.config = config;
        log::info!(
            message_id = logging::MSG_RELOAD;
            "configuration reloaded: {} mode, checks: {}",
            self.config.agent.mode.as_str(),
            self.checks
                .iter()
                .map(|c| format!("{}/{}s", c.id().as_str(), c.interval().as_secs()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Background::spawn(
            &self.config,
            &self.ctx,
            collector,
            &self.events.spool,
            &self.events.wake_reporter,
            started,
            false,
            back,
        )
    }

    fn start_check(&self, i: usize, pending: &mut Pending, in_flight: &mut [Option<Instant>]) {
        in_flight[i] = Some(Instant::now());
        let fx = self.fx.clone();
        let check = self.checks[i].clone();
        pending.push(Box::pin(async move {
            let obs = fx.observe(&check).await;
            Finished::Check(i, obs)
        }));
    }

    /// Whether `check`'s last verdict was ok and it has no incident open.
    fn settled(&self, check: CheckId) -> bool {
        self.detector.last_status(check) == Some(CheckStatus::Ok)
            && self.detector.incident(check).is_none()
    }

    /// The dependency of `check` that is failing now, if any (root-cause layering).
    fn failing_dependency(&self, check: CheckId) -> Option<CheckId> {
        checks::depends_on(check).iter().copied().find(|d| {
            self.detector.incident(*d).is_some()
                || matches!(self.detector.last_status(*d), Some(CheckStatus::Failed))
        })
    }

    /// The open upstream incident (icmp: gateway answers, ISP targets silent), if any, whose
    /// consequences failures of `check` are.
    fn upstream_parent(&self, check: CheckId) -> Option<CheckId> {
        matches!(
            check,
            CheckId::Http | CheckId::Dns | CheckId::Mtu | CheckId::Clock
        )
        .then_some(CheckId::Icmp)
        .filter(|_| self.upstream_incident_open())
    }

    fn upstream_incident_open(&self) -> bool {
        heal::plan::upstream_incident_open(&self.detector)
    }

    /// Feeds an observation to the detector and decides on healing; returns the step to
    /// start, with its intent already on disk.
    fn observe(&mut self, i: usize, mut obs: Observation, healing: bool) -> Option<PlannedStep> {
        log::debug!("check {}: {:?} {}", obs.check, obs.status, obs.summary);
        // icmp measured the gateway (first, so it would be the cause had it failed) and found
        // only the ISP's targets silent: the fault lies beyond the gateway.
        if obs.check == CheckId::Icmp
            && obs.cause == "target_unreachable"
            && self.config.checks.icmp.include_gateway
        {
            obs.cause = heal::UPSTREAM_CAUSE.to_string();
            obs.category = netmedic_proto::Category::NoInternet;
            obs.hint = "the gateway answers, the ISP's probe targets do not: an upstream fault; no local action can fix it".into();
        }
        if obs.is_failing()
            && let Some(parent) = self
                .failing_dependency(obs.check)
                .or_else(|| self.upstream_parent(obs.check))
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
        if healing && self.detector.hold_pass(&obs) {
            log::debug!(
                "{} passes while its heal step runs: the step's verification resolves it",
                obs.check
            );
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
                if let Some(inc) = self.detector.incident_mut(obs.check) {
                    let experiments = self.ctx.shared.advisories().experiments;
                    heal::assign_arm(&self.heal_settings, &experiments, inc);
                    let resumed =
                        self.heal
                            .on_opened(inc, &self.config.healing, std::time::Instant::now());
                    if resumed > 0 {
                        log::warn!(
                            "incident {}: {} ({}) came back within healing.ladder_memory_secs: the ladder resumes after {resumed} rung(s) already tried",
                            inc.id,
                            obs.check,
                            obs.cause
                        );
                    }
                }
                self.emit(obs.check, EventKind::Opened);
                if healing { None } else { self.plan(obs.check) }
            }
            Transition::CauseChanged => {
                // e.g. a carrier loss that turned out a flapping link: the NOC sees it now.
                self.emit(obs.check, EventKind::Updated);
                if healing { None } else { self.plan(obs.check) }
            }
            Transition::StillFailing if !healing => self.plan(obs.check),
            Transition::StillFailing => None,
            Transition::Resolved(mut inc) => {
                log::info!("incident {} resolved by itself: {}", inc.id, obs.summary);
                self.heal.on_resolved(&inc, std::time::Instant::now());
                self.spool_event(&mut inc, EventKind::Resolved);
                None
            }
        }
    }

    /// Decides and records the next rung for the incident of `id` (see [`heal::plan()`]).
    fn plan(&mut self, id: CheckId) -> Option<PlannedStep> {
        let advisories = self.ctx.shared.advisories();
        heal::plan(
            &self.heal_settings,
            &advisories,
            &mut self.detector,
            &mut self.heal,
            &mut self.events,
            id,
        )
    }

    /// Builds and spools an event for the open incident of `check`.
    fn emit(&mut self, check: CheckId, kind: EventKind) {
        if let Some(inc) = self.detector.incident_mut(check) {
            self.events.event(inc, kind);
        }
    }

    fn spool_event(&mut self, inc: &mut Incident, kind: EventKind) {
        self.events.event(inc, kind);
    }
}

#[cfg(test)]
mod tests;
