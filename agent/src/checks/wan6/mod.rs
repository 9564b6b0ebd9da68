//! `wan6`: the IPv6 half of the WAN. A router answers on the WAN (router solicitation →
//! advertisement), an IPv6 default route goes via the WAN, the WAN holds a global address, and
//! (when the CPE routes a delegated prefix) the DHCPv6 lease holds an unexpired prefix whose /64
//! is on the LAN interface, where the CPE's own RA daemon advertises it (a solicitation on the
//! LAN gets its answer). Its failures are category `ipv6_degraded`: an incident of its own
//! that neither hides nor duplicates the IPv4 checks' (which never look at IPv6).

pub mod ra;

use super::{Context, Observation, check_settings, common_problems};
use crate::lease6::{DelegatedPrefix, Lease6, lan_address};
use crate::net6::{Addr6, DefaultRoute6};
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use ra::{RaMemory, RouterAdvert};
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Every cause this check reports besides `ok`.
pub const CAUSES: &[&str] = &[
    "ra_missing",
    "ipv6_default_route_missing",
    "no_global_ipv6",
    "prefix_delegation_missing",
    "lan_prefix_missing",
    "lan_ra_missing",
    "wan_interface_missing",
    "lan_interface_missing",
    "netlink_error",
    "no_icmp_socket",
    "lease6_unreadable",
];

/// `[checks.wan6]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Wan6Config {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// How long a run waits for a router advertisement after its solicitation. Routers may
    /// delay a solicited advertisement up to 3.5 s (RFC 4861 MIN_DELAY_BETWEEN_RAS + jitter).
    pub ra_wait_ms: u64,
    /// An RA heard (a listener keeps the last one) within this long counts; older, the run
    /// solicits one. Soliciting makes the CPE's own client re-apply the RA too, so the check
    /// solicits only when the router has been quiet this long.
    pub ra_max_age_secs: u64,
    /// The WAN must hold a global address (SLAAC or DHCPv6 IA_NA).
    pub require_global_address: bool,
    /// The LAN interface (bridge) that carries the delegated prefix's /64. Empty: the CPE does
    /// not route a delegated prefix and prefix delegation is not checked.
    pub lan_interface: String,
    /// The DHCPv6 client's stored lease (dhcpcd: `/var/lib/dhcpcd/<wan>.lease6`): the delegated
    /// prefix and its lifetimes. Unset: only the LAN's global /64 is checked.
    pub lease6_file: Option<PathBuf>,
    /// Which /64 of the delegated prefix the LAN gets (dhcpcd `ia_pd 1 lan/<id>/64`); its
    /// address is `<prefix>:<id>::1`.
    pub lan_subnet_id: u16,
    /// The CPE advertises its LAN /64 on `lan_interface` (its RA daemon: odhcpd, radvd,
    /// dnsmasq): each run solicits there and waits this long for an advertisement of the LAN
    /// prefix from one of the LAN's own link-local addresses. 0: not checked.
    pub lan_ra_wait_ms: u64,
}

impl Default for Wan6Config {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 10,
            fail_threshold: 2,
            ok_threshold: 2,
            ra_wait_ms: 4000,
            ra_max_age_secs: 120,
            require_global_address: true,
            lan_interface: String::new(),
            lease6_file: None,
            lan_subnet_id: 0,
            lan_ra_wait_ms: 2000,
        }
    }
}

check_settings!(Wan6Config);

impl Wan6Config {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "wan6",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
        if self.ra_wait_ms < 100 || self.ra_wait_ms > 10_000 {
            out.push(Problem::new(
                "checks.wan6.ra_wait_ms",
                "must be between 100 and 10000",
            ));
        }
        if self.ra_max_age_secs == 0 || self.ra_max_age_secs > 9000 {
            out.push(Problem::new(
                "checks.wan6.ra_max_age_secs",
                "must be between 1 and 9000 (the longest router lifetime)",
            ));
        }
        if self.lan_ra_wait_ms > 10_000 {
            out.push(Problem::new(
                "checks.wan6.lan_ra_wait_ms",
                "must be between 0 (not checked) and 10000",
            ));
        }
        if self.lan_interface.len() > 15 || self.lan_interface.contains('/') {
            out.push(Problem::new(
                "checks.wan6.lan_interface",
                "must be an interface name (at most 15 characters)",
            ));
        }
        if let Some(p) = &self.lease6_file
            && !p.is_absolute()
        {
            out.push(Problem::new(
                "checks.wan6.lease6_file",
                "must be an absolute path",
            ));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Wan6Check {
    pub config: Wan6Config,
    pub wan_interface: String,
    pub ra_memory: Arc<RaMemory>,
}

/// What one run saw; [`Wan6Check::judge`] turns it into an observation (unit-tested).
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub ra: Option<RouterAdvert>,
    /// Default routes going out of the WAN.
    pub routes: Vec<DefaultRoute6>,
    pub wan_addrs: Vec<Addr6>,
    /// `None` when no LAN interface is configured.
    pub lan_addrs: Option<Vec<Addr6>>,
    /// The lease's valid delegated prefixes with their seconds left; `None`: no lease file
    /// configured.
    pub delegated: Option<Vec<(DelegatedPrefix, u64)>>,
    /// The advertisements heard on the LAN after a solicitation there; `None`: not checked.
    pub lan_ra: Option<Vec<RouterAdvert>>,
}

/// The /64 prefixes (`net/64`) of the usable global /64 addresses among `addrs`.
fn prefixes64(addrs: &[Addr6]) -> Vec<String> {
    addrs
        .iter()
        .filter(|a| a.usable_global() && a.prefix_len == 64)
        .map(|a| {
            let net = std::net::Ipv6Addr::from(u128::from(a.addr) & !u128::from(u64::MAX));
            format!("{net}/64")
        })
        .collect()
}

/// Whether `ra` is the CPE's own advertisement of its LAN prefix: sent from a link-local
/// address of the LAN interface, carrying one of the LAN's global /64s.
pub fn advertises_lan(ra: &RouterAdvert, lan_addrs: &[Addr6]) -> bool {
    let ours = lan_addrs.iter().any(|a| a.addr == ra.router);
    let expected = prefixes64(lan_addrs);
    ours && ra.prefixes.iter().any(|p| expected.contains(p))
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let v: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

impl Wan6Check {
    pub fn new(site: &Site, config: &Wan6Config) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
            ra_memory: Arc::default(),
        }
    }

    fn obs(&self, status: CheckStatus, cause: &str, summary: String) -> Observation {
        let sev = match status {
            CheckStatus::Failed => Severity::Major,
            _ => Severity::Minor,
        };
        Observation::new(CheckId::Wan6, status, cause, summary)
            .category(Category::Ipv6Degraded)
            .severity(sev)
            .evidence("family", "ipv6")
            .evidence("wan_interface", &self.wan_interface)
    }

    /// Judges one run's facts. Order: router, route, WAN address, delegated prefix, LAN /64.
    pub fn judge(&self, f: &Facts) -> Observation {
        let wan = &self.wan_interface;
        let usable: Vec<&Addr6> = f.wan_addrs.iter().filter(|a| a.usable_global()).collect();
        let with = |mut o: Observation| {
            o = o
                .evidence(
                    "ipv6_default_routes",
                    join(f.routes.iter().map(|r| {
                        format!(
                            "via {} proto {} metric {}{}",
                            r.gateway.map_or("-".into(), |g| g.to_string()),
                            r.protocol,
                            r.metric,
                            r.expires_secs
                                .map_or(String::new(), |e| format!(" expires {e}s"))
                        )
                    })),
                )
                .evidence(
                    "wan_global_ipv6",
                    join(
                        usable
                            .iter()
                            .map(|a| format!("{}/{}", a.addr, a.prefix_len)),
                    ),
                );
            if let Some(ra) = &f.ra {
                o = o
                    .evidence("ra_router", ra.router)
                    .evidence("ra_lifetime_secs", ra.lifetime_secs)
                    .evidence(
                        "ra_flags",
                        format!(
                            "{}{}",
                            if ra.managed { "M" } else { "-" },
                            if ra.other { "O" } else { "-" }
                        ),
                    )
                    .evidence("ra_prefixes", join(&ra.prefixes));
            }
            if let Some(d) = &f.delegated {
                o = o.evidence(
                    "delegated_prefix",
                    join(d.iter().map(|(p, left)| format!("{p} valid {left}s"))),
                );
            }
            if let Some(heard) = &f.lan_ra {
                o = o.evidence(
                    "lan_ra_heard",
                    join(
                        heard
                            .iter()
                            .map(|ra| format!("{} [{}]", ra.router, join(&ra.prefixes))),
                    ),
                );
            }
            if let Some(l) = &f.lan_addrs {
                o = o
                    .evidence("lan_interface", &self.config.lan_interface)
                    .evidence(
                        "lan_global_ipv6",
                        join(
                            l.iter()
                                .filter(|a| a.usable_global())
                                .map(|a| format!("{}/{}", a.addr, a.prefix_len)),
                        ),
                    );
            }
            o
        };
        let wan_route = f.routes.first();
        let Some(ra) = f.ra.as_ref().filter(|ra| ra.lifetime_secs > 0) else {
            let status = if wan_route.is_some() {
                CheckStatus::Degraded
            } else {
                CheckStatus::Failed
            };
            let summary = match (&f.ra, wan_route) {
                (Some(_), _) => format!(
                    "the router on {wan} no longer offers itself as default router (lifetime 0)"
                ),
                (None, Some(_)) => format!(
                    "no router advertisement on {wan}; the IPv6 default route lives on until it expires"
                ),
                (None, None) => {
                    format!("no router advertisement on {wan} and no IPv6 default route")
                }
            };
            return with(self.obs(status, "ra_missing", summary))
                .value("no RA")
                .threshold(format!(
                    "an RA with router lifetime > 0 within {} ms of a solicitation",
                    self.config.ra_wait_ms
                ))
                .hint("the ISP's router sends no advertisements: an access network (BNG) fault; nothing local fixes it");
        };
        let Some(route) = wan_route else {
            return with(self.obs(
                CheckStatus::Failed,
                "ipv6_default_route_missing",
                format!(
                    "router {} advertises on {wan} but there is no IPv6 default route via {wan}",
                    ra.router
                ),
            ))
            .value("no route")
            .threshold(format!("default route via {wan}"))
            .hint("restore_route6 reinstates it from the router advertisement");
        };
        if self.config.require_global_address && usable.is_empty() {
            return with(self.obs(
                CheckStatus::Failed,
                "no_global_ipv6",
                format!("no usable global IPv6 address on {wan}"),
            ))
            .value("no global address")
            .threshold("a global address (SLAAC or DHCPv6), DAD passed")
            .hint("renew_dhcp6 asks the DHCPv6 client again");
        }
        let route_text = format!(
            "via {}",
            route.gateway.map_or("-".into(), |g| g.to_string())
        );
        let Some(lan_addrs) = &f.lan_addrs else {
            return with(Observation::ok(
                CheckId::Wan6,
                format!("IPv6 on {wan}: router {}, default {route_text}", ra.router),
            ))
            .category(Category::Ipv6Degraded)
            .evidence("family", "ipv6")
            .value(route_text);
        };
        let lan = &self.config.lan_interface;
        let lan_global: Vec<&Addr6> = lan_addrs.iter().filter(|a| a.usable_global()).collect();
        let in_prefix = |a: &&Addr6, p: &DelegatedPrefix| a.prefix_len == 64 && p.contains(a.addr);
        match &f.delegated {
            Some(d) if d.is_empty() => {
                return with(self.obs(
                    CheckStatus::Failed,
                    "prefix_delegation_missing",
                    format!("the DHCPv6 lease on {wan} holds no valid delegated prefix"),
                ))
                .value("no delegated prefix")
                .threshold("an IA_PD prefix with valid lifetime left")
                .hint("renew_dhcp6 re-requests the prefix; if the ISP's DHCPv6 server does not delegate, the NOC must");
            }
            Some(d) => {
                let (p, left) = d[0];
                if !lan_global.iter().any(|a| in_prefix(a, &p)) {
                    let expected = lan_address(&p, self.config.lan_subnet_id);
                    return with(self.obs(
                        CheckStatus::Failed,
                        "lan_prefix_missing",
                        format!("delegated prefix {p} ({left} s left) is not on {lan}"),
                    ))
                    .evidence(
                        "lan_address_expected",
                        expected.map_or("-".into(), |a| format!("{a}/64")),
                    )
                    .value("no LAN /64")
                    .threshold(format!("a /64 of {p} on {lan}"))
                    .hint("reapply_lan_prefix puts the /64 back on the LAN");
                }
            }
            None => {
                if !lan_global.iter().any(|a| a.prefix_len == 64) {
                    return with(self.obs(
                        CheckStatus::Failed,
                        "lan_prefix_missing",
                        format!("no global IPv6 /64 on {lan}"),
                    ))
                    .value("no LAN /64")
                    .threshold(format!("a global /64 on {lan}"))
                    .hint("renew_dhcp6 re-requests the delegated prefix");
                }
            }
        }
        if let Some(heard) = &f.lan_ra
            && !heard.iter().any(|ra| advertises_lan(ra, lan_addrs))
        {
            return with(self.obs(
                CheckStatus::Failed,
                "lan_ra_missing",
                format!(
                    "no router advertisement of the LAN prefix on {lan}: LAN clients get no new IPv6 addresses or routes"
                ),
            ))
            .value("no LAN RA")
            .threshold(format!(
                "an RA of {} from {lan} within {} ms of a solicitation",
                join(prefixes64(lan_addrs)),
                self.config.lan_ra_wait_ms
            ))
            .hint("the CPE's RA daemon (odhcpd, radvd, dnsmasq) is down or lost the prefix: list it in [[checks.service.services]] with a [[healing.restart_service]] entry to have it restarted");
        }
        with(Observation::ok(
            CheckId::Wan6,
            format!(
                "IPv6 on {wan}: router {}, default {route_text}, LAN {lan} has {}",
                ra.router,
                join(
                    lan_global
                        .iter()
                        .map(|a| format!("{}/{}", a.addr, a.prefix_len))
                )
            ),
        ))
        .category(Category::Ipv6Degraded)
        .evidence("family", "ipv6")
        .value(route_text)
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let wan = &self.wan_interface;
        let err = |cause: &str, summary: String| {
            self.obs(CheckStatus::Unknown, cause, summary)
                .hint("the agent needs CAP_NET_ADMIN and CAP_NET_RAW")
        };
        let wan_index = match ctx.netlink.link_index(wan).await {
            Ok(Some(i)) => i,
            Ok(None) => {
                return self
                    .obs(
                        CheckStatus::Failed,
                        "wan_interface_missing",
                        format!("WAN interface {wan} does not exist"),
                    )
                    .hint("check wan.interface in agent.toml");
            }
            Err(e) => return err("netlink_error", format!("cannot read interfaces: {e}")),
        };
        self.ra_memory.listen(wan);
        let max_age = Duration::from_secs(self.config.ra_max_age_secs);
        let ra = match self.ra_memory.fresh(max_age) {
            Some((ra, _)) => Some(ra),
            None => {
                let wait = Duration::from_millis(self.config.ra_wait_ms);
                match ra::solicit(wan, wan_index, wait).await {
                    Ok(Some(ra)) => {
                        self.ra_memory.remember(ra.clone());
                        Some(ra)
                    }
                    Ok(None) => None,
                    Err(e) => {
                        return err("no_icmp_socket", format!("cannot solicit a router: {e}"));
                    }
                }
            }
        };
        let routes = match ctx.netlink.default_routes_v6().await {
            Ok(r) => r.into_iter().filter(|r| r.oif == Some(wan_index)).collect(),
            Err(e) => return err("netlink_error", format!("cannot read IPv6 routes: {e}")),
        };
        let wan_addrs = match ctx.netlink.addresses_v6(wan_index).await {
            Ok(a) => a,
            Err(e) => return err("netlink_error", format!("cannot read addresses: {e}")),
        };
        let mut facts = Facts {
            ra,
            routes,
            wan_addrs,
            lan_addrs: None,
            delegated: None,
            lan_ra: None,
        };
        let lan = &self.config.lan_interface;
        if !lan.is_empty() {
            let lan_index = match ctx.netlink.link_index(lan).await {
                Ok(Some(i)) => i,
                Ok(None) => {
                    return self
                        .obs(
                            CheckStatus::Failed,
                            "lan_interface_missing",
                            format!("LAN interface {lan} does not exist"),
                        )
                        .hint("check checks.wan6.lan_interface in agent.toml");
                }
                Err(e) => return err("netlink_error", format!("cannot read interfaces: {e}")),
            };
            facts.lan_addrs = match ctx.netlink.addresses_v6(lan_index).await {
                Ok(a) => Some(a),
                Err(e) => return err("netlink_error", format!("cannot read addresses: {e}")),
            };
            if let Some(path) = &self.config.lease6_file {
                facts.delegated = match Lease6::read(path) {
                    Ok(Some(l)) => Some(l.valid_prefixes(SystemTime::now())),
                    Ok(None) => Some(Vec::new()),
                    Err(e) => {
                        return self
                            .obs(CheckStatus::Unknown, "lease6_unreadable", e.to_string())
                            .hint("checks.wan6.lease6_file must name the DHCPv6 client's lease");
                    }
                };
            }
            let lan_addrs = facts.lan_addrs.as_deref().unwrap_or_default();
            if self.config.lan_ra_wait_ms > 0 && !prefixes64(lan_addrs).is_empty() {
                let wait = Duration::from_millis(self.config.lan_ra_wait_ms);
                facts.lan_ra = match ra::solicit_until(lan, lan_index, wait, |ra| {
                    advertises_lan(ra, lan_addrs)
                })
                .await
                {
                    Ok(heard) => Some(heard),
                    Err(e) => {
                        return err("no_icmp_socket", format!("cannot solicit on {lan}: {e}"));
                    }
                };
            }
        }
        self.judge(&facts)
    }
}

#[cfg(test)]
mod tests;
