//! The step runner: carries out a planned rung — prechecks, act, verify, then roll back a
//! change that did not help or commit one that did.
//!
//! **Stopping.** A step that has begun to change the system is never abandoned half-way: the
//! action itself always runs to its end (`bounce_iface` brings the WAN back up), and when the
//! agent stops during the verification the check runs once more at once — a pass is
//! verified, anything else is rolled back — before the step ends. A step that has not acted
//! yet when the agent stops is skipped.

use super::Settings;
use crate::actions::{self, ActionError, ActionInput, Applied, Undo};
use crate::checks::{self, Check, Observation};
use crate::context::Context;
use futures::future::LocalBoxFuture;
use netmedic_proto::{ActionId, CheckStatus};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A rung the healer decided to take, with what its heal step needs to know.
#[derive(Debug, Clone)]
pub struct PlannedStep {
    pub action: ActionId,
    pub input: ActionInput,
    /// Disruptive on a service that still works: measure the LAN first (busy guard).
    pub busy_guard: bool,
    /// Disruptive: prove the fault is local right before acting.
    pub locality_probe: bool,
}

/// How a heal step ended.
#[derive(Debug, Clone, PartialEq)]
pub enum StepResult {
    /// Refused right before acting; with `pass_over` the ladder climbs past the rung,
    /// otherwise the rung waits.
    Skipped { reason: String, pass_over: bool },
    /// Carrying it out failed.
    Failed(String),
    /// Carried out; `rollback` is the undo of a change that did not pass verification.
    Done {
        detail: String,
        rollback: Option<Result<String, String>>,
    },
}

/// What a heal step (and the scheduler's check runs) do to the world: the real system, or a
/// fake in unit tests.
pub trait Effects {
    /// Runs a check once.
    fn observe<'a>(&'a self, check: &'a Check) -> LocalBoxFuture<'a, Observation>;
    /// The live guards right before acting; `Some((reason, pass_over))` refuses the step.
    fn precheck<'a>(&'a self, step: &'a PlannedStep) -> LocalBoxFuture<'a, Option<(String, bool)>>;
    /// Carries the action out.
    fn act<'a>(&'a self, step: &'a PlannedStep)
    -> LocalBoxFuture<'a, Result<Applied, ActionError>>;
    /// Undoes a change that was not verified.
    fn rollback<'a>(&'a self, undo: &'a Undo) -> LocalBoxFuture<'a, Result<String, ActionError>>;
    /// Keeps a verified change.
    fn commit(&self, undo: &Undo);
}

/// The real system, through the agent's context and the healer's settings.
#[derive(Debug, Clone)]
pub struct System {
    pub ctx: Arc<Context>,
    pub settings: Arc<Settings>,
}

impl Effects for System {
    fn observe<'a>(&'a self, check: &'a Check) -> LocalBoxFuture<'a, Observation> {
        Box::pin(check.run(&self.ctx))
    }

    fn precheck<'a>(&'a self, step: &'a PlannedStep) -> LocalBoxFuture<'a, Option<(String, bool)>> {
        Box::pin(guards(&self.ctx, &self.settings, step))
    }

    fn act<'a>(
        &'a self,
        step: &'a PlannedStep,
    ) -> LocalBoxFuture<'a, Result<Applied, ActionError>> {
        Box::pin(actions::run(
            step.action,
            &self.ctx,
            &self.settings.actions,
            &step.input,
        ))
    }

    fn rollback<'a>(&'a self, undo: &'a Undo) -> LocalBoxFuture<'a, Result<String, ActionError>> {
        Box::pin(actions::rollback(undo, &self.ctx, &self.settings.actions))
    }

    fn commit(&self, undo: &Undo) {
        actions::commit(undo);
    }
}

/// Whether the stop signal is raised.
fn stopping(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

/// Resolves when the stop signal is raised (never if its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs one planned step: prechecks, act, verify by re-running the check (about once a second
/// until it passes, `verify_timeout` ran out or the agent stops) and rolls a change back if it
/// did not pass. Returns how it ended and the last verification run.
pub async fn run(
    fx: &dyn Effects,
    check: &Check,
    step: &PlannedStep,
    verify_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> (StepResult, Option<Observation>) {
    let skip = |reason: String, pass_over: bool| (StepResult::Skipped { reason, pass_over }, None);
    let stop_reason = || "the agent is stopping: nothing was changed".to_string();
    if stopping(&stop) {
        return skip(stop_reason(), false);
    }
    if let Some((reason, pass_over)) = fx.precheck(step).await {
        return skip(reason, pass_over);
    }
    if stopping(&stop) {
        return skip(stop_reason(), false);
    }
    // From here on the system changes: the action runs to its end even if the agent stops.
    let applied = match fx.act(step).await {
        Ok(a) => a,
        Err(e) => return (StepResult::Failed(e.to_string()), None),
    };
    let deadline = Instant::now() + verify_timeout;
    let (verify, passed) = loop {
        let obs = fx.observe(check).await;
        let passed = !obs.is_failing() && obs.status != CheckStatus::Unknown;
        if passed || Instant::now() >= deadline || stopping(&stop) {
            break (Some(obs), passed);
        }
        // Stopping cuts the wait short: the check runs once more at once, then the step ends.
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stopped(&mut stop) => {}
        }
    };
    let rollback = match (&applied.undo, passed) {
        (Some(undo), false) => Some(fx.rollback(undo).await.map_err(|e| e.to_string())),
        (Some(undo), true) => {
            fx.commit(undo);
            None
        }
        (None, _) => None,
    };
    let mut detail = applied.detail;
    if !passed && stopping(&stop) {
        detail.push_str("; verification cut short: the agent is stopping");
    }
    (StepResult::Done { detail, rollback }, verify)
}

/// The live guards of the real system, right before acting: the fault is local (disruptive
/// rungs), the LAN is quiet (disruptive rungs on a working service), and neither the kill
/// switch nor an upstream advisory is in force.
async fn guards(ctx: &Context, settings: &Settings, step: &PlannedStep) -> Option<(String, bool)> {
    let h = &settings.healing;
    if step.locality_probe
        && let Some(why) = upstream_now(ctx, &settings.icmp_targets).await
    {
        return Some((why, true));
    }
    if step.busy_guard {
        let sample = Duration::from_millis(h.busy_sample_ms);
        match lan_bytes_per_sec(&h.busy_interface, sample).await {
            Ok(rate) if rate > h.busy_bytes_per_sec => {
                return Some((
                    format!(
                        "busy: {} carries {rate} bytes/s (threshold {}) and the service still works",
                        h.busy_interface, h.busy_bytes_per_sec
                    ),
                    false,
                ));
            }
            Ok(_) => {}
            Err(e) => {
                return Some((
                    format!(
                        "busy guard cannot measure the LAN ({e}): not acting on a working service"
                    ),
                    false,
                ));
            }
        }
    }
    let adv = ctx.shared.advisories();
    if let Some(why) = super::kill_switch(h, &adv) {
        return Some((format!("kill switch: {why}"), false));
    }
    if let Some(why) = super::upstream_advisory(&adv) {
        return Some((
            format!("upstream outage advisory from the collector: {why}"),
            false,
        ));
    }
    None
}

/// The fault seen live beyond the gateway: the WAN gateway answers, none of the ISP's probe
/// targets (`checks.icmp.targets`) does. `None` when that cannot be shown (no targets).
async fn upstream_now(ctx: &Context, targets: &[Ipv4Addr]) -> Option<String> {
    let pinger = ctx.pinger.as_ref()?;
    if targets.is_empty() {
        return None;
    }
    let (gw, _) = checks::icmp::wan_gateway(ctx).await?;
    let timeout = Duration::from_millis(500);
    if !pinger.probe(gw.into(), 2, timeout, true).await.answered() {
        return None;
    }
    let replies = futures::future::join_all(
        targets
            .iter()
            .map(|t| pinger.probe((*t).into(), 2, timeout, true)),
    )
    .await;
    replies.iter().all(|r| !r.answered()).then(|| {
        format!(
            "gateway {gw} answers but none of the probe targets ({}) does: the fault is upstream, a disruptive action cannot fix it",
            targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        )
    })
}

/// LAN traffic in bytes per second over `sample` (rx + tx of `/sys/class/net/IF/statistics`).
pub async fn lan_bytes_per_sec(ifname: &str, sample: Duration) -> Result<u64, String> {
    let read = || -> Result<u64, String> {
        let mut total = 0u64;
        for f in ["rx_bytes", "tx_bytes"] {
            let p = format!("/sys/class/net/{ifname}/statistics/{f}");
            let v = std::fs::read_to_string(&p).map_err(|e| format!("{p}: {e}"))?;
            total += v.trim().parse::<u64>().map_err(|e| format!("{p}: {e}"))?;
        }
        Ok(total)
    };
    let a = read()?;
    let t = Instant::now();
    tokio::time::sleep(sample).await;
    let b = read()?;
    let secs = t.elapsed().as_secs_f64().max(0.001);
    Ok((b.saturating_sub(a) as f64 / secs) as u64)
}
