//! `icmp`: loss, RTT (average, p95) and jitter to the WAN gateway and to the ISP's probe
//! targets, each judged against degraded and failed thresholds.
//!
//! Echo requests go out `interval_ms` apart without waiting for each other, so one lost probe
//! does not stretch the run. With the default 20 probes a 25% loss crosses the 10% degraded
//! threshold (≥ 2 lost) with probability 0.976; raise `count` where a precise loss figure
//! matters (the lab test uses 200: 25% ± 3.1% one sigma).
//!
//! Adaptive probing: while the last run's verdict was ok, a run first sends a sample of
//! `healthy_count` probes per target; only if the sample shows any sign of trouble (a lost
//! probe, a reply later than `degraded_rtt_ms`, RTT or jitter at a degraded threshold) does the
//! same run go on with the rest of `count` and judge over all of them. After a verdict that was
//! not ok (and on the first run) every run sends the whole `count`. A healthy line costs
//! `healthy_count` probes a run instead of `count`; the loss resolution of `count` probes is
//! kept for the runs that judge a suspected fault (detection latency: docs/perf-agent-cpu.md).

use super::{Context, Observation, check_settings, common_problems, now};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
/// `gateway_unreachable` and `target_unreachable` are `{role}_unreachable`; the daemon turns
/// `target_unreachable` into `upstream_unreachable` when the gateway answers.
pub const CAUSES: &[&str] = &[
    "gateway_unreachable",
    "target_unreachable",
    "upstream_unreachable",
    "packet_loss",
    "high_latency",
    "high_jitter",
    "no_target",
    "no_icmp_socket",
];

/// `[checks.icmp]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IcmpConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// Measure the WAN gateway (from the default route, else the lease, else `wan.gateway`).
    pub include_gateway: bool,
    /// The ISP's probe targets (addresses it operates for this purpose).
    pub targets: Vec<Ipv4Addr>,
    /// Echo requests per target per run.
    pub count: u32,
    /// Echo requests per target of a run after an ok verdict; the run sends the rest of
    /// `count` only when these show a sign of trouble. 0, or `count` and above: always `count`.
    pub healthy_count: u32,
    /// Spacing of the echo requests.
    pub interval_ms: u64,
    /// How long each echo request waits for its reply.
    pub timeout_ms: u64,
    pub degraded_loss_percent: f64,
    pub failed_loss_percent: f64,
    /// Judged against the average RTT of the replies.
    pub degraded_rtt_ms: f64,
    pub failed_rtt_ms: f64,
    /// Mean absolute difference of consecutive RTTs.
    pub degraded_jitter_ms: f64,
    pub failed_jitter_ms: f64,
}

impl Default for IcmpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            fail_threshold: 3,
            ok_threshold: 2,
            include_gateway: true,
            targets: Vec::new(),
            count: 20,
            healthy_count: 3,
            interval_ms: 100,
            timeout_ms: 1000,
            degraded_loss_percent: 10.0,
            failed_loss_percent: 50.0,
            degraded_rtt_ms: 150.0,
            failed_rtt_ms: 1000.0,
            degraded_jitter_ms: 30.0,
            failed_jitter_ms: 150.0,
        }
    }
}

check_settings!(IcmpConfig);

/// Pushes a problem unless `degraded` and `failed` are finite, `0 < degraded <= failed <= max`.
pub(crate) fn threshold_pair(
    check: &str,
    name: &str,
    degraded: f64,
    failed: f64,
    max: f64,
    out: &mut Vec<Problem>,
) {
    let ok = |v: f64| v.is_finite() && v > 0.0 && v <= max;
    if !ok(degraded) {
        out.push(Problem::new(
            format!("checks.{check}.degraded_{name}"),
            format!("must be above 0 and at most {max}"),
        ));
    }
    if !ok(failed) {
        out.push(Problem::new(
            format!("checks.{check}.failed_{name}"),
            format!("must be above 0 and at most {max}"),
        ));
    } else if ok(degraded) && degraded > failed {
        out.push(Problem::new(
            format!("checks.{check}.degraded_{name}"),
            format!("must not exceed failed_{name} ({failed})"),
        ));
    }
}

impl IcmpConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "icmp",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.count == 0 || self.count > 1000 {
            out.push(Problem::new(
                "checks.icmp.count",
                "must be between 1 and 1000",
            ));
        }
        if !(10..=10_000).contains(&self.interval_ms) {
            out.push(Problem::new(
                "checks.icmp.interval_ms",
                "must be between 10 and 10000",
            ));
        }
        if self.timeout_ms == 0 || self.timeout_ms > 10_000 {
            out.push(Problem::new(
                "checks.icmp.timeout_ms",
                "must be between 1 and 10000",
            ));
        }
        if self.healthy_count > 1000 {
            out.push(Problem::new(
                "checks.icmp.healthy_count",
                "must be between 0 and 1000",
            ));
        }
        // An escalated run also waits for the sample's replies before it goes on.
        let sample_wait_ms = self.sample_wait().map_or(0, |d| d.as_millis() as u64);
        let run_ms = u64::from(self.count.saturating_sub(1)).saturating_mul(self.interval_ms)
            + sample_wait_ms
            + self.timeout_ms;
        if self.count > 0 && run_ms > self.interval_secs.saturating_mul(1000) {
            out.push(Problem::new(
                "checks.icmp.count",
                format!(
                    "a run takes up to {run_ms} ms (count × interval_ms + timeout_ms, plus degraded_rtt_ms after a healthy_count sample), longer than interval_secs"
                ),
            ));
        }
        for (i, t) in self.targets.iter().enumerate() {
            if t.is_unspecified() || t.is_multicast() || t.is_broadcast() || t.is_loopback() {
                out.push(Problem::new(
                    format!("checks.icmp.targets[{i}]"),
                    format!("{t} is not a unicast probe target"),
                ));
            }
        }
        if !self.include_gateway && self.targets.is_empty() {
            out.push(Problem::new(
                "checks.icmp.targets",
                "nothing to measure: set include_gateway = true or list targets",
            ));
        }
        threshold_pair(
            "icmp",
            "loss_percent",
            self.degraded_loss_percent,
            self.failed_loss_percent,
            100.0,
            out,
        );
        threshold_pair(
            "icmp",
            "rtt_ms",
            self.degraded_rtt_ms,
            self.failed_rtt_ms,
            60_000.0,
            out,
        );
        threshold_pair(
            "icmp",
            "jitter_ms",
            self.degraded_jitter_ms,
            self.failed_jitter_ms,
            60_000.0,
            out,
        );
    }
}

/// Loss, RTT and jitter of one burst of probes.
#[derive(Debug, Clone, PartialEq)]
pub struct PathStats {
    pub sent: u32,
    pub received: u32,
    pub loss_percent: f64,
    /// `None` when nothing answered.
    pub rtt_avg_ms: Option<f64>,
    pub rtt_p95_ms: Option<f64>,
    /// Mean absolute difference of consecutive RTTs; `None` with fewer than two replies.
    pub jitter_ms: Option<f64>,
}

impl PathStats {
    /// Statistics of `sent` probes whose replies had `rtts_ms` (in sequence order).
    pub fn compute(sent: u32, rtts_ms: &[f64]) -> Self {
        let received = rtts_ms.len() as u32;
        let loss_percent = if sent == 0 {
            0.0
        } else {
            f64::from(sent.saturating_sub(received)) * 100.0 / f64::from(sent)
        };
        let rtt_avg_ms =
            (!rtts_ms.is_empty()).then(|| rtts_ms.iter().sum::<f64>() / rtts_ms.len() as f64);
        let mut sorted = rtts_ms.to_vec();
        sorted.sort_by(f64::total_cmp);
        // Nearest rank: the smallest value with at least 95% of the samples at or below it.
        let rtt_p95_ms = (!sorted.is_empty()).then(|| {
            let rank = (0.95 * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        });
        let jitter_ms = (rtts_ms.len() >= 2).then(|| {
            rtts_ms.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>()
                / (rtts_ms.len() - 1) as f64
        });
        Self {
            sent,
            received,
            loss_percent,
            rtt_avg_ms,
            rtt_p95_ms,
            jitter_ms,
        }
    }
}

/// The judgement of one target: status, cause, what crossed which threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub status: CheckStatus,
    /// `ok`, `unreachable`, `packet_loss`, `high_latency` or `high_jitter`.
    pub cause: &'static str,
    pub detail: String,
}

fn rank(s: CheckStatus) -> u8 {
    match s {
        CheckStatus::Ok => 0,
        CheckStatus::Unknown => 1,
        CheckStatus::Degraded => 2,
        CheckStatus::Failed => 3,
    }
}

impl IcmpConfig {
    /// Judges one target's statistics: loss first (it explains the rest), then RTT, then jitter.
    pub fn judge(&self, s: &PathStats) -> Verdict {
        if s.sent > 0 && s.received == 0 {
            return Verdict {
                status: CheckStatus::Failed,
                cause: "unreachable",
                detail: format!("no reply to {} echo requests", s.sent),
            };
        }
        let mut worst = Verdict {
            status: CheckStatus::Ok,
            cause: "ok",
            detail: String::new(),
        };
        let mut consider = |value: Option<f64>, degraded: f64, failed: f64, cause, what: &str| {
            let Some(v) = value else { return };
            let status = if v >= failed {
                CheckStatus::Failed
            } else if v >= degraded {
                CheckStatus::Degraded
            } else {
                return;
            };
            if rank(status) > rank(worst.status) {
                let limit = if status == CheckStatus::Failed {
                    failed
                } else {
                    degraded
                };
                worst = Verdict {
                    status,
                    cause,
                    detail: format!("{what} {v:.1} ≥ {limit}"),
                };
            }
        };
        consider(
            Some(s.loss_percent),
            self.degraded_loss_percent,
            self.failed_loss_percent,
            "packet_loss",
            "loss %",
        );
        consider(
            s.rtt_avg_ms,
            self.degraded_rtt_ms,
            self.failed_rtt_ms,
            "high_latency",
            "avg RTT ms",
        );
        consider(
            s.jitter_ms,
            self.degraded_jitter_ms,
            self.failed_jitter_ms,
            "high_jitter",
            "jitter ms",
        );
        worst
    }
}

impl IcmpConfig {
    /// Probes per target of a run whose previous verdict was ok: the sample, when it is
    /// smaller than `count`.
    pub fn sample_size(&self) -> Option<u32> {
        (self.healthy_count > 0 && self.healthy_count < self.count).then_some(self.healthy_count)
    }

    /// How long a sample's replies are awaited after its last request before a missing one
    /// counts as a sign: a reply later than `degraded_rtt_ms` is one anyway (at most
    /// `timeout_ms`). `None` without a sample.
    pub fn sample_wait(&self) -> Option<Duration> {
        self.sample_size()?;
        let ms = self.degraded_rtt_ms.clamp(0.0, self.timeout_ms as f64);
        Some(Duration::from_micros((ms * 1000.0) as u64))
    }

    /// Whether a sample (per target: how many were sent, the RTTs of the replies in time)
    /// shows any sign of trouble, so that the run must send the rest of `count`: a lost probe,
    /// one RTT at or above `degraded_rtt_ms`, jitter at or above `degraded_jitter_ms`, or any
    /// verdict but ok.
    pub fn sample_needs_full_run(&self, sample: &[crate::ping::PingResult]) -> bool {
        sample.iter().any(|r| {
            let stats = PathStats::compute(r.sent, &r.rtts_ms);
            r.received < r.sent
                || r.rtts_ms.iter().any(|v| *v >= self.degraded_rtt_ms)
                || stats
                    .jitter_ms
                    .is_some_and(|j| j >= self.degraded_jitter_ms)
                || self.judge(&stats).status != CheckStatus::Ok
        })
    }
}

/// How a run chose its probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunKind {
    /// The last verdict was not ok, or this is the first run: `count` probes.
    Full,
    /// The sample was clean: `healthy_count` probes.
    Sample,
    /// The sample showed a sign: `count` probes in the same run.
    Escalated,
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::Full => "full",
            RunKind::Sample => "sample",
            RunKind::Escalated => "escalated",
        }
    }
}

/// The index of interface `name`: from the interface table the netlink events keep current
/// (the daemon), else asked of the kernel (the `check` command, or before the table's first
/// dump). Saves a netlink request and its wake-ups per run.
async fn wan_index(ctx: &Context, name: &str) -> Option<u32> {
    let known = {
        let links = ctx
            .shared
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        links
            .loaded
            .then(|| links.by_name(name).map(|l| l.index))
            .flatten()
    };
    match known {
        Some(index) => Some(index),
        None => ctx.netlink.link_index(name).await.ok().flatten(),
    }
}

/// The WAN gateway: the IPv4 default route via the WAN interface, else the lease's router,
/// else the provisioned `wan.gateway`. Also says where it came from.
pub(crate) async fn wan_gateway(ctx: &Context) -> Option<(Ipv4Addr, &'static str)> {
    let wan = &ctx.site.wan;
    if let Some(index) = wan_index(ctx, &wan.interface).await
        && let Ok(routes) = ctx.netlink.default_routes_v4().await
        && let Some(gw) = routes
            .iter()
            .filter(|r| r.oif == Some(index))
            .find_map(|r| r.gateway)
    {
        return Some((gw, "default route"));
    }
    if let Some(path) = &wan.lease_file
        && let Ok(Some(lease)) = crate::lease::Lease::read(path)
        && let Some(router) = lease.router
    {
        return Some((router, "lease"));
    }
    wan.gateway.map(|g| (g, "wan.gateway"))
}

fn fmt_ms(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.2}"))
}

#[derive(Debug, Clone)]
pub struct IcmpCheck {
    pub config: IcmpConfig,
    /// The last run's verdict was ok (shared by the clones the scheduler runs; false until the
    /// first run, so that one sends `count`).
    last_ok: Arc<AtomicBool>,
}

impl IcmpCheck {
    pub fn new(_site: &Site, config: &IcmpConfig) -> Self {
        Self {
            config: config.clone(),
            last_ok: Arc::new(AtomicBool::new(false)),
        }
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let o = self.measure(ctx).await;
        self.last_ok
            .store(o.status == CheckStatus::Ok, Ordering::Relaxed);
        o
    }

    fn threshold(&self) -> String {
        let c = &self.config;
        format!(
            "loss < {}% / {}%, avg RTT < {} / {} ms, jitter < {} / {} ms (degraded / failed)",
            c.degraded_loss_percent,
            c.failed_loss_percent,
            c.degraded_rtt_ms,
            c.failed_rtt_ms,
            c.degraded_jitter_ms,
            c.failed_jitter_ms
        )
    }

    fn observation(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        Observation::new(CheckId::Icmp, status, cause, summary)
            .category(Category::SlowOrLossy)
            .threshold(self.threshold())
    }

    async fn measure(&self, ctx: &Context) -> Observation {
        let c = &self.config;
        let mut targets: Vec<(Ipv4Addr, &'static str)> = Vec::new();
        let mut evidence = BTreeMap::new();
        if c.include_gateway {
            match wan_gateway(ctx).await {
                Some((gw, source)) => {
                    evidence.insert("gateway".to_string(), format!("{gw} (from {source})"));
                    targets.push((gw, "gateway"));
                }
                None => {
                    evidence.insert("gateway".to_string(), "none known".to_string());
                }
            }
        }
        for t in &c.targets {
            if !targets.iter().any(|(a, _)| a == t) {
                targets.push((*t, "target"));
            }
        }
        if targets.is_empty() {
            let mut o = self.observation(
                CheckStatus::Unknown,
                "no_target",
                "no gateway known and no probe targets configured".into(),
            );
            o.evidence = evidence;
            return o.hint("default_route and wan_address explain a missing gateway");
        }
        let Some(pinger) = &ctx.pinger else {
            let mut o = self.observation(
                CheckStatus::Unknown,
                "no_icmp_socket",
                "cannot send ICMP echo requests".into(),
            );
            o.evidence = evidence;
            return o.hint("grant the agent CAP_NET_RAW");
        };
        let interval = Duration::from_millis(c.interval_ms);
        let timeout = Duration::from_millis(c.timeout_ms);
        // One series for every target: one timer per probe round, not per target.
        let hosts: Vec<IpAddr> = targets.iter().map(|(ip, _)| IpAddr::V4(*ip)).collect();
        let sample = c
            .sample_size()
            .filter(|_| self.last_ok.load(Ordering::Relaxed))
            .zip(c.sample_wait())
            .map(|(probes, late)| crate::ping::Sample {
                probes,
                late,
                go_on: |s: &[crate::ping::PingResult]| c.sample_needs_full_run(s),
            });
        let sampled = sample.is_some();
        let measured = pinger
            .probe_series_sampled(&hosts, c.count, interval, timeout, sample)
            .await;
        let kind = match (sampled, measured.escalated) {
            (false, _) => RunKind::Full,
            (true, false) => RunKind::Sample,
            (true, true) => RunKind::Escalated,
        };
        let sent = measured.results.first().map_or(0, |r| r.sent);
        log::debug!("icmp run: {}, {sent} probes per target", kind.name());
        evidence.insert("run".to_string(), kind.name().to_string());
        evidence.insert("probes_sent".to_string(), sent.to_string());
        let results = measured.results;

        let mut worst: Option<(Verdict, Ipv4Addr, &str, PathStats)> = None;
        let mut values = Vec::new();
        for ((ip, role), r) in targets.iter().zip(results) {
            let stats = PathStats::compute(r.sent, &r.rtts_ms);
            let verdict = c.judge(&stats);
            evidence.insert(
                format!("{ip}"),
                format!(
                    "{role}: {}/{} replies, loss {:.1}%, rtt avg {} ms p95 {} ms, jitter {} ms",
                    stats.received,
                    stats.sent,
                    stats.loss_percent,
                    fmt_ms(stats.rtt_avg_ms),
                    fmt_ms(stats.rtt_p95_ms),
                    fmt_ms(stats.jitter_ms)
                ),
            );
            evidence.insert(
                format!("{ip}.loss_percent"),
                format!("{:.1}", stats.loss_percent),
            );
            evidence.insert(format!("{ip}.rtt_avg_ms"), fmt_ms(stats.rtt_avg_ms));
            evidence.insert(format!("{ip}.rtt_p95_ms"), fmt_ms(stats.rtt_p95_ms));
            evidence.insert(format!("{ip}.jitter_ms"), fmt_ms(stats.jitter_ms));
            evidence.insert(
                format!("{ip}.rtts_ms"),
                r.rtts_ms
                    .iter()
                    .take(50)
                    .map(|v| format!("{v:.2}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            values.push(format!(
                "{ip} {:.0}% loss {} ms",
                stats.loss_percent,
                stats.rtt_avg_ms.map_or("-".into(), |v| format!("{v:.1}"))
            ));
            if worst
                .as_ref()
                .is_none_or(|(w, ..)| rank(verdict.status) > rank(w.status))
            {
                worst = Some((verdict, *ip, role, stats));
            }
        }
        let value = values.join(", ");
        let Some((verdict, ip, role, stats)) = worst else {
            return self.observation(CheckStatus::Unknown, "no_target", "nothing measured".into());
        };
        evidence.insert("worst".to_string(), ip.to_string());
        evidence.insert(
            "loss_percent".to_string(),
            format!("{:.1}", stats.loss_percent),
        );
        let (cause, summary, hint) = match verdict.cause {
            "ok" => (
                "ok".to_string(),
                format!("{} path(s) healthy", targets.len()),
                "",
            ),
            "unreachable" => (
                format!("{role}_unreachable"),
                format!("{role} {ip} does not answer: {}", verdict.detail),
                if role == "gateway" {
                    "the access link or the ISP's gateway is down or filters ICMP; compare with the probe targets"
                } else {
                    "the gateway answers but the ISP's probe target does not: an upstream fault, not local"
                },
            ),
            "packet_loss" => (
                "packet_loss".to_string(),
                format!(
                    "{:.1}% packet loss to {role} {ip} ({}/{} replies)",
                    stats.loss_percent, stats.received, stats.sent
                ),
                "loss to the gateway points at the access line (modem, cabling, line noise); loss only beyond it at the ISP",
            ),
            "high_latency" => (
                "high_latency".to_string(),
                format!("slow path to {role} {ip}: {}", verdict.detail),
                "high RTT under load is often bufferbloat: check the uplink's utilisation",
            ),
            other => (
                other.to_string(),
                format!("unstable path to {role} {ip}: {}", verdict.detail),
                "jitter hurts calls and games; check the line and the uplink's utilisation",
            ),
        };
        let mut o = self
            .observation(verdict.status, &cause, summary)
            .value(value)
            .hint(hint);
        if verdict.status == CheckStatus::Failed {
            o = o.severity(Severity::Major);
        }
        o.evidence = evidence;
        o.at = now();
        o
    }
}

#[cfg(test)]
mod tests;
