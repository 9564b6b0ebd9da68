//! Checks observe the CPE and never change it. One file per check; the closed [`Check`] enum
//! dispatches, so the scheduler, the `check` command and the detector share one catalogue.
//!
//! Each check module provides `XConfig` (its `[checks.x]` table: the common `enabled`,
//! `interval_secs`, `fail_threshold`, `ok_threshold` plus its own thresholds, with
//! `#[serde(default, deny_unknown_fields)]` and a `Default`), `XConfig::problems`, and
//! `XCheck::new(&Site, &XConfig)` / `XCheck::run(&Context) -> Observation`. A check reads its
//! own table and the [`Site`] (the CPE's cross-cutting facts), never the assembled config.

pub mod causes;
pub mod clock;
pub mod conntrack;
pub mod default_route;
pub mod dns;
pub mod dns6;
pub mod http;
pub mod icmp;
pub mod icmp6;
pub mod lan_arp;
pub mod lan_dhcp;
pub mod link;
pub mod modem_snmp;
pub mod mtu;
pub mod mtu6;
pub mod resources;
pub mod service;
pub mod wan6;
pub mod wan_address;
pub mod wifi_ap;
pub mod wifi_events;

use crate::context::{Context, now};
use crate::site::{Hysteresis, Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity, Timestamp};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What one run of a check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub check: CheckId,
    pub status: CheckStatus,
    /// Machine-readable cause (`ok` when healthy), e.g. `default_route_missing`.
    pub cause: String,
    /// One line for a human: what it means.
    pub summary: String,
    /// The headline measured value, e.g. `via 100.64.0.1 dev wan, 0.4 ms`.
    pub value: String,
    /// The threshold the value was judged against.
    pub threshold: String,
    /// What to do about it, when not ok.
    pub hint: String,
    pub category: Category,
    pub severity: Severity,
    /// Everything a NOC engineer needs to see, keyed by name.
    pub evidence: BTreeMap<String, String>,
    pub at: Timestamp,
}

impl Observation {
    /// A new observation; category and severity default from the check and status.
    pub fn new(
        check: CheckId,
        status: CheckStatus,
        cause: impl Into<String>,
        summary: impl Into<String>,
    ) -> Self {
        Self {
            check,
            status,
            cause: cause.into(),
            summary: summary.into(),
            value: String::new(),
            threshold: String::new(),
            hint: String::new(),
            category: Category::default_for(check),
            severity: match status {
                CheckStatus::Failed => Severity::Major,
                _ => Severity::Minor,
            },
            evidence: BTreeMap::new(),
            at: now(),
        }
    }

    pub fn ok(check: CheckId, summary: impl Into<String>) -> Self {
        Self::new(check, CheckStatus::Ok, "ok", summary)
    }

    pub fn value(mut self, v: impl Into<String>) -> Self {
        self.value = v.into();
        self
    }

    pub fn threshold(mut self, t: impl Into<String>) -> Self {
        self.threshold = t.into();
        self
    }

    pub fn hint(mut self, h: impl Into<String>) -> Self {
        self.hint = h.into();
        self
    }

    pub fn category(mut self, c: Category) -> Self {
        self.category = c;
        self
    }

    pub fn severity(mut self, s: Severity) -> Self {
        self.severity = s;
        self
    }

    pub fn evidence(mut self, key: impl Into<String>, value: impl ToString) -> Self {
        self.evidence.insert(key.into(), value.to_string());
        self
    }

    pub fn is_failing(&self) -> bool {
        matches!(self.status, CheckStatus::Failed | CheckStatus::Degraded)
    }
}

/// `[checks.*]`: one table per check of the catalogue; `config` assembles it into `agent.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChecksSection {
    pub link: link::LinkConfig,
    pub wan_address: wan_address::WanAddressConfig,
    pub default_route: default_route::DefaultRouteConfig,
    pub icmp: icmp::IcmpConfig,
    pub dns: dns::DnsConfig,
    pub mtu: mtu::MtuConfig,
    pub http: http::HttpConfig,
    pub conntrack: conntrack::ConntrackConfig,
    pub resources: resources::ResourcesConfig,
    pub service: service::ServiceConfig,
    pub clock: clock::ClockConfig,
    pub modem_snmp: modem_snmp::ModemSnmpConfig,
    pub lan_dhcp: lan_dhcp::LanDhcpConfig,
    pub lan_arp: lan_arp::LanArpConfig,
    pub wan6: wan6::Wan6Config,
    pub icmp6: icmp6::Icmp6Config,
    pub dns6: dns6::Dns6Config,
    pub mtu6: mtu6::Mtu6Config,
    pub wifi_ap: wifi_ap::WifiApConfig,
    pub wifi_events: wifi_events::WifiEventsConfig,
}

impl ChecksSection {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        self.link.problems(out);
        self.wan_address.problems(out);
        self.default_route.problems(out);
        self.icmp.problems(out);
        self.dns.problems(out);
        self.mtu.problems(out);
        self.http.problems(out);
        self.conntrack.problems(out);
        self.resources.problems(out);
        self.service.problems(out);
        self.clock.problems(out);
        self.modem_snmp.problems(out);
        self.lan_dhcp.problems(out);
        self.lan_arp.problems(out);
        self.wan6.problems(out);
        self.icmp6.problems(out);
        self.dns6.problems(out);
        self.mtu6.problems(out);
        if self.wan6.enabled && self.wan_address.require_ipv6 {
            out.push(Problem::new(
                "checks.wan_address.require_ipv6",
                "superseded by [checks.wan6] (require_global_address), which is enabled: set require_ipv6 = false so a missing IPv6 address is one incident, not two",
            ));
        }
        self.wifi_ap.problems(out);
        self.wifi_events.problems(out);
    }
}

/// The settings every check has.
pub trait CheckSettings {
    fn enabled(&self) -> bool;
    fn interval(&self) -> Duration;
    fn hysteresis(&self) -> Hysteresis;
}

/// Implements [`CheckSettings`] for a check config with the four common fields.
macro_rules! check_settings {
    ($t:ty) => {
        impl $crate::checks::CheckSettings for $t {
            fn enabled(&self) -> bool {
                self.enabled
            }
            fn interval(&self) -> std::time::Duration {
                std::time::Duration::from_secs(self.interval_secs)
            }
            fn hysteresis(&self) -> $crate::site::Hysteresis {
                $crate::site::Hysteresis {
                    fail_threshold: self.fail_threshold,
                    ok_threshold: self.ok_threshold,
                }
            }
        }
    };
}
pub(crate) use check_settings;

/// Validates the common fields of `[checks.<name>]`.
pub fn common_problems(
    name: &str,
    interval_secs: u64,
    fail_threshold: u32,
    ok_threshold: u32,
    out: &mut Vec<Problem>,
) {
    if interval_secs == 0 || interval_secs > 86_400 {
        out.push(Problem::new(
            format!("checks.{name}.interval_secs"),
            "must be between 1 and 86400",
        ));
    }
    if fail_threshold == 0 || fail_threshold > 100 {
        out.push(Problem::new(
            format!("checks.{name}.fail_threshold"),
            "must be between 1 and 100",
        ));
    }
    if ok_threshold == 0 || ok_threshold > 100 {
        out.push(Problem::new(
            format!("checks.{name}.ok_threshold"),
            "must be between 1 and 100",
        ));
    }
}

macro_rules! catalogue {
    ($($variant:ident($module:ident :: $check:ident) => $field:ident),+ $(,)?) => {
        /// The catalogue of checks.
        #[derive(Debug, Clone)]
        pub enum Check { $($variant($module::$check)),+ }

        impl Check {
            pub fn id(&self) -> CheckId {
                match self { $(Check::$variant(_) => CheckId::$variant),+ }
            }

            fn settings(&self) -> &dyn CheckSettings {
                match self { $(Check::$variant(c) => &c.config),+ }
            }

            pub async fn run(&self, ctx: &Context) -> Observation {
                match self { $(Check::$variant(c) => c.run(ctx).await),+ }
            }
        }

        /// The enabled checks of `[checks.*]`, in catalogue order.
        pub fn enabled(site: &Site, tables: &ChecksSection) -> Vec<Check> {
            let mut out = Vec::new();
            $(
                if tables.$field.enabled {
                    out.push(Check::$variant($module::$check::new(site, &tables.$field)));
                }
            )+
            out
        }
    };
}

catalogue! {
    Link(link::LinkCheck) => link,
    WanAddress(wan_address::WanAddressCheck) => wan_address,
    DefaultRoute(default_route::DefaultRouteCheck) => default_route,
    Icmp(icmp::IcmpCheck) => icmp,
    Dns(dns::DnsCheck) => dns,
    Mtu(mtu::MtuCheck) => mtu,
    Http(http::HttpCheck) => http,
    Conntrack(conntrack::ConntrackCheck) => conntrack,
    Resources(resources::ResourcesCheck) => resources,
    Service(service::ServiceCheck) => service,
    Clock(clock::ClockCheck) => clock,
    ModemSnmp(modem_snmp::ModemSnmpCheck) => modem_snmp,
    LanDhcp(lan_dhcp::LanDhcpCheck) => lan_dhcp,
    LanArp(lan_arp::LanArpCheck) => lan_arp,
    Wan6(wan6::Wan6Check) => wan6,
    Icmp6(icmp6::Icmp6Check) => icmp6,
    Dns6(dns6::Dns6Check) => dns6,
    Mtu6(mtu6::Mtu6Check) => mtu6,
    WifiAp(wifi_ap::WifiApCheck) => wifi_ap,
    WifiEvents(wifi_events::WifiEventsCheck) => wifi_events,
}

impl Check {
    pub fn interval(&self) -> Duration {
        self.settings().interval()
    }

    pub fn hysteresis(&self) -> Hysteresis {
        self.settings().hysteresis()
    }
}

/// Root-cause layering: the checks whose failure explains a failure of `check`. While one of
/// them fails, `check`'s failures are consequences and open no incident of their own.
pub fn depends_on(check: CheckId) -> &'static [CheckId] {
    use CheckId::*;
    match check {
        Link | Conntrack | Resources | Service | ModemSnmp => &[],
        // The home network does not depend on the WAN.
        LanDhcp | LanArp => &[],
        WifiAp => &[],
        WifiEvents => &[],
        WanAddress => &[Link],
        DefaultRoute => &[Link, WanAddress],
        Icmp | Dns | Mtu | Http | Clock => &[Link, WanAddress, DefaultRoute],
        // IPv6 stands beside IPv4, not on it: only the shared link explains its faults.
        Wan6 => &[Link],
        Icmp6 | Dns6 | Mtu6 => &[Link, Wan6],
    }
}

/// The causes `check` reports besides `ok` (each check declares its own `CAUSES`).
pub fn causes(check: CheckId) -> &'static [&'static str] {
    match check {
        CheckId::Link => link::CAUSES,
        CheckId::WanAddress => wan_address::CAUSES,
        CheckId::DefaultRoute => default_route::CAUSES,
        CheckId::Icmp => icmp::CAUSES,
        CheckId::Dns => dns::CAUSES,
        CheckId::Mtu => mtu::CAUSES,
        CheckId::Http => http::CAUSES,
        CheckId::Conntrack => conntrack::CAUSES,
        CheckId::Resources => resources::CAUSES,
        CheckId::Service => service::CAUSES,
        CheckId::Clock => clock::CAUSES,
        CheckId::ModemSnmp => modem_snmp::CAUSES,
        CheckId::LanDhcp => lan_dhcp::CAUSES,
        CheckId::LanArp => lan_arp::CAUSES,
        CheckId::Wan6 => wan6::CAUSES,
        CheckId::Icmp6 => icmp6::CAUSES,
        CheckId::Dns6 => dns6::CAUSES,
        CheckId::Mtu6 => mtu6::CAUSES,
        CheckId::WifiAp => wifi_ap::CAUSES,
        CheckId::WifiEvents => wifi_events::CAUSES,
    }
}

/// Checks to re-run at once when netlink reports a change (link, address or route). `mtu`:
/// a WAN MTU changed by hand or by a misbehaving script arrives as a link change, so it is
/// judged in seconds instead of at the next 300 s run.
pub const NETLINK_DRIVEN: &[CheckId] = &[
    CheckId::Link,
    CheckId::WanAddress,
    CheckId::DefaultRoute,
    CheckId::Mtu,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layering_is_acyclic_and_points_upward() {
        for c in CheckId::ALL {
            for d in depends_on(*c) {
                assert!(
                    !depends_on(*d).contains(c),
                    "{c} and {d} depend on each other"
                );
                assert_ne!(c, d);
            }
        }
    }
}
