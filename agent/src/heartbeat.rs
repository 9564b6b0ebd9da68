//! Heartbeats: every `heartbeat.interval_secs` ± `jitter_secs` a small status report (agent and
//! firmware version, uptime, per-check state, spool depth, dropped count; ≤ 600 bytes on the
//! wire) goes to the collector. Its reply's advisories (upstream outage, kill switch, on-demand
//! diagnostics) are stored in [`Shared`] for the healer and the checks; requested diagnostics
//! are run here and their results logged (the collector has no place for them yet).

use crate::checks::{self, Advisories, Context, Shared, now};
use crate::reporter::{Collector, random_fraction, retry_after};
use crate::spool::Spool;
use netmedic_proto::{Advisory, Heartbeat, HeartbeatReply, SCHEMA_VERSION, paths};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Everything the heartbeat task needs.
#[derive(Debug)]
pub struct Heartbeater {
    pub collector: Collector,
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
/// by the latest reply (absent = cleared); diagnostics requests queue until run.
pub fn apply_advisories(shared: &Shared, advisories: &[Advisory]) -> Advisories {
    let mut a = shared.advisories();
    a.upstream_outage = None;
    a.kill_switch = None;
    for adv in advisories {
        match adv {
            Advisory::UpstreamOutage {
                network_event_id,
                until,
            } => a.upstream_outage = Some((network_event_id.clone(), *until)),
            Advisory::KillSwitch { reason } => a.kill_switch = Some(reason.clone()),
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

/// The next period: `interval ± jitter`, uniform.
pub fn next_period(interval_secs: u64, jitter_secs: u64) -> Duration {
    let base = Duration::from_secs(interval_secs);
    let jitter = Duration::from_secs(jitter_secs).mul_f64(2.0 * random_fraction());
    (base + jitter).saturating_sub(Duration::from_secs(jitter_secs))
}

impl Heartbeater {
    /// Sends one heartbeat; returns how long the collector asked us to wait, if it did.
    pub async fn send_once(&self) -> Result<Option<Duration>, String> {
        let config = &self.ctx.config;
        let hb = build(config, &self.ctx.shared, &self.spool, self.started);
        let resp = self.collector.post_json(paths::HEARTBEATS, &hb).await?;
        let status = resp.status();
        if status.as_u16() == 429 || status.as_u16() == 503 {
            return Ok(retry_after(resp.headers()));
        }
        if !status.is_success() {
            return Err(format!("collector answered {status}"));
        }
        let reply: HeartbeatReply = resp
            .json()
            .await
            .map_err(|e| format!("unreadable heartbeat reply: {e}"))?;
        let before = self.ctx.shared.advisories();
        let now_adv = apply_advisories(&self.ctx.shared, &reply.advisories);
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
        self.run_diagnostics().await;
        Ok(None)
    }

    /// Runs the queued diagnostics requests and logs their results.
    async fn run_diagnostics(&self) {
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
            return;
        }
        let catalogue = checks::enabled(&self.ctx.config);
        for (request_id, wanted) in queued {
            log::info!(
                "diagnostics {request_id}: running {}",
                wanted
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            for id in wanted {
                let Some(check) = catalogue.iter().find(|c| c.id() == id) else {
                    log::warn!(check = id.as_str(); "diagnostics {request_id}: check {id} is not enabled here");
                    continue;
                };
                let obs = check.run(&self.ctx).await;
                log::info!(
                    check = id.as_str();
                    "diagnostics {request_id}: {id} {} ({}): {} [{}]",
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
        }
    }
}

/// The heartbeat loop: runs until the task is dropped.
pub async fn run(hb: Heartbeater, first_delay: Duration) {
    let h = hb.ctx.config.heartbeat.clone();
    tokio::time::sleep(first_delay).await;
    loop {
        let mut wait = next_period(h.interval_secs, h.jitter_secs);
        match hb.send_once().await {
            Ok(None) => log::debug!("heartbeat sent"),
            Ok(Some(after)) => {
                log::warn!("collector busy: next heartbeat in {} s", after.as_secs());
                wait = wait.max(after);
            }
            Err(e) => log::warn!("heartbeat failed: {e}"),
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

    /// A full heartbeat (every check reported, long ids and versions) stays well under 600
    /// bytes on the wire: body (gzip'd when smaller) plus the request head reqwest sends.
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
