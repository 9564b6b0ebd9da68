//! `mtu`: the WAN interface's MTU against the provisioned one, and path-MTU blackholes found
//! with don't-fragment probes.
//!
//! A blackhole is a hop that drops packets too big for it without sending ICMP
//! "fragmentation needed": small packets pass, full-size ones vanish, and TCP connections
//! stall after the handshake ("some sites never load"). The probe sends ICMP echo requests of
//! exact IP sizes with the DF bit (`IP_PMTUDISC_DO`, see [`crate::ping::DfProber`]): first the
//! WAN MTU, then, if that is lost but a small one passes, a bisection between them for the
//! largest size that crosses — the value to set the WAN MTU (or clamp the TCP MSS) to.

use super::icmp::wan_gateway;
use super::{Context, Observation, check_settings, common_problems};
use crate::ping::{DfOutcome, DfProber, IP_ICMP_HEADERS};
use crate::site::{Problem, Site};
use futures::TryStreamExt;
use netlink_packet_route::link::LinkAttribute;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "mtu_mismatch",
    "pmtu_blackhole",
    "probe_target_unreachable",
    "path_probe_unavailable",
    "wan_interface_missing",
    "netlink_error",
];

/// `[checks.mtu]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MtuConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The provisioned WAN MTU (1500 Ethernet/DHCP, 1492 PPPoE); 0 = do not compare.
    pub expected_mtu: u32,
    /// Where to send the DF probes (an ISP probe target); unset = the WAN gateway.
    pub target: Option<Ipv4Addr>,
    /// Run the path-MTU probe at all.
    pub probe_path: bool,
    /// How long each probe waits for its reply.
    pub probe_timeout_ms: u64,
    /// Probes per size before the size counts as lost (tolerates random loss).
    pub probe_attempts: u32,
    /// The smallest IP packet size probed; if even that is lost the target is unreachable and
    /// the path MTU unknown.
    pub min_probe_bytes: u32,
}

impl Default for MtuConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 300,
            fail_threshold: 2,
            ok_threshold: 2,
            expected_mtu: 0,
            target: None,
            probe_path: true,
            probe_timeout_ms: 1000,
            probe_attempts: 2,
            min_probe_bytes: 576,
        }
    }
}

check_settings!(MtuConfig);

impl MtuConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "mtu",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.expected_mtu != 0 && !(576..=9216).contains(&self.expected_mtu) {
            out.push(Problem::new(
                "checks.mtu.expected_mtu",
                "must be 0 (do not check) or between 576 and 9216",
            ));
        }
        if let Some(t) = self.target
            && (t.is_unspecified() || t.is_multicast() || t.is_broadcast() || t.is_loopback())
        {
            out.push(Problem::new(
                "checks.mtu.target",
                format!("{t} is not a unicast probe target"),
            ));
        }
        probe_problems("mtu", self.probe_timeout_ms, self.probe_attempts, out);
        if !(68..=1500).contains(&self.min_probe_bytes) {
            out.push(Problem::new(
                "checks.mtu.min_probe_bytes",
                "must be between 68 and 1500",
            ));
        }
    }
}

/// Validates the DF probe settings of `[checks.<check>]` (`mtu`, `mtu6`).
pub(crate) fn probe_problems(check: &str, timeout_ms: u64, attempts: u32, out: &mut Vec<Problem>) {
    if timeout_ms == 0 || timeout_ms > 10_000 {
        out.push(Problem::new(
            format!("checks.{check}.probe_timeout_ms"),
            "must be between 1 and 10000",
        ));
    }
    if attempts == 0 || attempts > 10 {
        out.push(Problem::new(
            format!("checks.{check}.probe_attempts"),
            "must be between 1 and 10",
        ));
    }
}

/// What probing a path found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMtu {
    /// Largest IP packet size that got an echo reply.
    pub largest_passing: Option<u32>,
    /// Smallest size that was lost (or refused), if any.
    pub smallest_failing: Option<u32>,
    /// A router said "fragmentation needed" (path-MTU discovery works), with its MTU.
    pub frag_needed_mtu: Option<u16>,
    /// Sizes probed, in order, with what happened.
    pub trail: Vec<(u32, &'static str)>,
}

/// Finds the largest passing size in `floor..=top` given a probe `passes(size)`; probes `top`
/// first, then `floor`, then bisects. Generic so the search is unit-tested without sockets.
pub async fn search<F>(floor: u32, top: u32, mut passes: F) -> PathMtu
where
    F: AsyncFnMut(u32) -> (bool, &'static str, Option<u16>),
{
    let mut r = PathMtu {
        largest_passing: None,
        smallest_failing: None,
        frag_needed_mtu: None,
        trail: Vec::new(),
    };
    let mut probe = async |size: u32, r: &mut PathMtu| {
        let (ok, what, frag) = passes(size).await;
        r.trail.push((size, what));
        if frag.is_some() {
            r.frag_needed_mtu = frag;
        }
        if ok {
            r.largest_passing = Some(r.largest_passing.map_or(size, |l| l.max(size)));
        } else {
            r.smallest_failing = Some(r.smallest_failing.map_or(size, |s| s.min(size)));
        }
        ok
    };
    if probe(top, &mut r).await || floor >= top || !probe(floor, &mut r).await {
        return r;
    }
    let (mut lo, mut hi) = (floor, top);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if probe(mid, &mut r).await {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    r
}

/// The MTU of an interface, via rtnetlink.
async fn link_mtu(ctx: &Context, name: &str) -> Result<Option<u32>, String> {
    let mut links = ctx
        .netlink
        .handle()
        .link()
        .get()
        .match_name(name.to_string())
        .execute();
    match links.try_next().await {
        Ok(Some(msg)) => Ok(msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(m) => Some(*m),
            _ => None,
        })),
        Ok(None) => Ok(None),
        Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == 19 => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

#[derive(Debug, Clone)]
pub struct MtuCheck {
    pub config: MtuConfig,
    pub wan_interface: String,
}

impl MtuCheck {
    pub fn new(site: &Site, config: &MtuConfig) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        let expected = match self.config.expected_mtu {
            0 => "not provisioned".to_string(),
            m => m.to_string(),
        };
        Observation::new(CheckId::Mtu, status, cause, summary).threshold(format!(
            "WAN MTU = {expected}; DF probes of the WAN MTU cross the path"
        ))
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let c = &self.config;
        let mut ev = BTreeMap::new();
        ev.insert("wan_interface".to_string(), self.wan_interface.clone());
        let mtu = match link_mtu(ctx, &self.wan_interface).await {
            Ok(Some(m)) => m,
            Ok(None) => {
                let mut o = self.obs(
                    CheckStatus::Unknown,
                    "wan_interface_missing",
                    format!("WAN interface {} does not exist", self.wan_interface),
                );
                o.evidence = ev;
                return o;
            }
            Err(e) => {
                let mut o = self.obs(
                    CheckStatus::Unknown,
                    "netlink_error",
                    format!("cannot read the WAN MTU: {e}"),
                );
                o.evidence = ev;
                return o.hint("the agent needs CAP_NET_ADMIN");
            }
        };
        ev.insert("wan_mtu".to_string(), mtu.to_string());
        ev.insert("expected_mtu".to_string(), c.expected_mtu.to_string());

        // Path probe (evidence even when the MTU itself is wrong).
        let mut path = None;
        let mut path_problem = None;
        if c.probe_path {
            let target = match c.target {
                Some(t) => Some((t, "checks.mtu.target")),
                None => wan_gateway(ctx).await,
            };
            match target {
                None => path_problem = Some("no probe target (no gateway known)".to_string()),
                Some((t, source)) => {
                    ev.insert("probe_target".to_string(), format!("{t} (from {source})"));
                    match DfProber::new() {
                        Err(e) => path_problem = Some(e.to_string()),
                        Ok(mut prober) => {
                            let timeout = Duration::from_millis(c.probe_timeout_ms);
                            let attempts = c.probe_attempts;
                            let floor = c.min_probe_bytes.clamp(IP_ICMP_HEADERS, mtu);
                            let found = search(floor, mtu, async |size| {
                                let mut last = "lost";
                                let mut frag = None;
                                for _ in 0..attempts {
                                    let outcome = prober.probe(t, size, timeout).await;
                                    match outcome {
                                        Ok(DfOutcome::Reply) => return (true, "reply", frag),
                                        Ok(DfOutcome::Timeout) => last = "lost",
                                        Ok(DfOutcome::FragNeeded(m)) => {
                                            frag = Some(m);
                                            last = "frag_needed";
                                            break;
                                        }
                                        Ok(DfOutcome::LocalTooBig) => {
                                            last = "too_big_locally";
                                            break;
                                        }
                                        Err(_) => {
                                            last = "send_error";
                                            break;
                                        }
                                    }
                                }
                                (false, last, frag)
                            })
                            .await;
                            ev.insert(
                                "probes".to_string(),
                                found
                                    .trail
                                    .iter()
                                    .map(|(s, w)| format!("{s}:{w}"))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                            );
                            ev.insert(
                                "largest_passing_bytes".to_string(),
                                found
                                    .largest_passing
                                    .map_or("none".to_string(), |v| v.to_string()),
                            );
                            if let Some(m) = found.frag_needed_mtu {
                                ev.insert("icmp_frag_needed_mtu".to_string(), m.to_string());
                            }
                            path = Some(found);
                        }
                    }
                }
            }
        }
        if let Some(p) = &path_problem {
            ev.insert("path_probe".to_string(), p.clone());
        }

        let value = match path.as_ref().and_then(|p| p.largest_passing) {
            Some(l) => format!("MTU {mtu}, largest DF packet through {l}"),
            None => format!("MTU {mtu}"),
        };

        // 1. The interface itself is misconfigured.
        if c.expected_mtu != 0 && mtu != c.expected_mtu {
            let too_big = mtu > c.expected_mtu;
            let mut o = self
                .obs(
                    if too_big {
                        CheckStatus::Failed
                    } else {
                        CheckStatus::Degraded
                    },
                    "mtu_mismatch",
                    if too_big {
                        format!(
                            "WAN MTU {mtu} is above the provisioned {}: full-size packets are dropped or fragmented",
                            c.expected_mtu
                        )
                    } else {
                        format!(
                            "WAN MTU {mtu} is below the provisioned {}: works, but wastes capacity",
                            c.expected_mtu
                        )
                    },
                )
                .category(Category::LocalMisconfig)
                .value(value)
                .hint("set_mtu restores the provisioned MTU");
            o.evidence = ev;
            return o;
        }
        let Some(found) = path else {
            let mut o = if c.probe_path {
                self.obs(
                    CheckStatus::Unknown,
                    "path_probe_unavailable",
                    format!(
                        "WAN MTU {mtu} as provisioned; path not probed: {}",
                        path_problem.unwrap_or_default()
                    ),
                )
                .hint("grant the agent CAP_NET_RAW; default_route explains a missing gateway")
            } else {
                self.obs(
                    CheckStatus::Ok,
                    "ok",
                    format!("WAN MTU {mtu} as provisioned"),
                )
            };
            o.value = value;
            o.evidence = ev;
            return o;
        };
        let mut o = match (found.largest_passing, found.frag_needed_mtu) {
            (Some(l), _) if l >= mtu => self.obs(
                CheckStatus::Ok,
                "ok",
                format!("packets of the full WAN MTU ({mtu}) cross the path"),
            ),
            (None, _) => self
                .obs(
                    CheckStatus::Unknown,
                    "probe_target_unreachable",
                    "the probe target answers no DF probe, not even the smallest".to_string(),
                )
                .hint("icmp and default_route tell whether the target is reachable at all"),
            (Some(l), Some(m)) => self.obs(
                CheckStatus::Ok,
                "ok",
                format!(
                    "path MTU {l} is below the WAN MTU {mtu}, and a router signals it (ICMP frag needed, MTU {m}): path-MTU discovery works"
                ),
            ),
            (Some(l), None) => self
                .obs(
                    CheckStatus::Failed,
                    "pmtu_blackhole",
                    format!(
                        "path-MTU blackhole: packets above {l} bytes are silently dropped on the way (WAN MTU {mtu}, no ICMP frag needed)"
                    ),
                )
                .category(Category::Intermittent)
                .severity(Severity::Major)
                .hint(format!(
                    "set_mtu to {l} (or clamp the TCP MSS to {}) works around it; report the hop to the ISP's network team",
                    l.saturating_sub(40)
                )),
        };
        o.value = value;
        o.evidence = ev;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_search(floor: u32, top: u32, limit: Option<u32>) -> PathMtu {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(search(floor, top, async |s| {
            let ok = limit.is_some_and(|l| s <= l);
            (ok, if ok { "reply" } else { "lost" }, None)
        }))
    }

    #[test]
    fn search_finds_the_largest_passing_size() {
        let r = run_search(576, 1500, Some(1500));
        assert_eq!(r.largest_passing, Some(1500));
        assert_eq!(r.trail, [(1500, "reply")], "one probe when all is well");

        let r = run_search(576, 1500, Some(1400));
        assert_eq!(r.largest_passing, Some(1400));
        assert_eq!(r.smallest_failing, Some(1401));
        assert!(r.trail.len() <= 13, "{:?}", r.trail);

        let r = run_search(576, 1500, Some(576));
        assert_eq!(r.largest_passing, Some(576));

        let r = run_search(576, 1500, None);
        assert_eq!(r.largest_passing, None);
        assert_eq!(r.trail.len(), 2, "top and floor only");
    }

    #[test]
    fn config_problems() {
        let mut p = Vec::new();
        MtuConfig::default().problems(&mut p);
        assert!(p.is_empty(), "{p:?}");
        MtuConfig {
            expected_mtu: 100,
            probe_attempts: 0,
            target: Some(Ipv4Addr::BROADCAST),
            ..MtuConfig::default()
        }
        .problems(&mut p);
        let f: Vec<_> = p.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            f,
            [
                "checks.mtu.expected_mtu",
                "checks.mtu.target",
                "checks.mtu.probe_attempts"
            ]
        );
    }
}
