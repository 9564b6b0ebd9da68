//! `wan_address`: a usable IPv4 address on the WAN; the DHCP lease present and not expired;
//! an IPv6 global address when configured.

use super::{Context, Observation, check_settings, common_problems, now};
use crate::config::{AgentConfig, Problem};
use crate::lease::Lease;
use crate::net::IfAddress;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::PathBuf;

/// Every cause this check reports besides `ok`: the names a `[[playbook]]` may select.
pub const CAUSES: &[&str] = &[
    "wan_no_address",
    "dhcp_lease_expired",
    "dhcp_lease_missing",
    "dhcp_lease_mismatch",
    "wan_no_ipv6",
    "wan_interface_missing",
    "netlink_error",
];

/// `[checks.wan_address]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WanAddressConfig {
    pub enabled: bool,
    pub interval_secs: u64,
    pub fail_threshold: u32,
    pub ok_threshold: u32,
    /// The WAN gets its address by DHCP: a missing or expired lease is a fault. Set false for
    /// a static or PPP WAN.
    pub dhcp: bool,
    /// A global IPv6 address is part of the service: its absence is `degraded`.
    pub require_ipv6: bool,
}

impl Default for WanAddressConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_secs: 10,
            fail_threshold: 2,
            ok_threshold: 2,
            dhcp: true,
            require_ipv6: false,
        }
    }
}

check_settings!(WanAddressConfig);

impl WanAddressConfig {
    pub fn problems(&self, out: &mut Vec<Problem>) {
        common_problems(
            "wan_address",
            self.interval_secs,
            self.fail_threshold,
            self.ok_threshold,
            out,
        );
    }
}

#[derive(Debug, Clone)]
pub struct WanAddressCheck {
    pub config: WanAddressConfig,
    pub wan_interface: String,
    pub lease_file: Option<PathBuf>,
}

/// What the check found, for the pure verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub addresses: Vec<IfAddress>,
    /// `None`: no lease file configured. `Some(None)`: configured but absent.
    pub lease: Option<Option<Lease>>,
    pub now_unix: i64,
}

fn usable_v4(a: &IfAddress) -> bool {
    match a.addr {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_link_local() || v4.is_loopback()),
        IpAddr::V6(_) => false,
    }
}

impl WanAddressCheck {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            config: config.checks.wan_address.clone(),
            wan_interface: config.wan.interface.clone(),
            lease_file: config.wan.lease_file.clone(),
        }
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        let unknown = |why: String| {
            Observation::new(
                CheckId::WanAddress,
                CheckStatus::Unknown,
                "netlink_error",
                why,
            )
            .hint("the agent needs CAP_NET_ADMIN")
        };
        let index = match ctx.netlink.link_index(&self.wan_interface).await {
            Ok(Some(i)) => i,
            // A missing interface is the link check's fault to report.
            Ok(None) => {
                return Observation::new(
                    CheckId::WanAddress,
                    CheckStatus::Failed,
                    "wan_interface_missing",
                    format!("WAN interface {} does not exist", self.wan_interface),
                )
                .severity(Severity::Critical);
            }
            Err(e) => return unknown(format!("cannot read interfaces: {e}")),
        };
        let addresses = match ctx.netlink.addresses(index).await {
            Ok(a) => a,
            Err(e) => return unknown(format!("cannot read addresses: {e}")),
        };
        let lease = match &self.lease_file {
            None => None,
            Some(path) => match Lease::read(path) {
                Ok(l) => Some(l),
                Err(e) => {
                    log::warn!("wan_address: {e}");
                    Some(None)
                }
            },
        };
        self.judge(&Facts {
            addresses,
            lease,
            now_unix: now().unix_secs(),
        })
    }

    /// The verdict on what was found; pure so it is unit-tested without a kernel.
    pub fn judge(&self, f: &Facts) -> Observation {
        let wan = &self.wan_interface;
        let v4: Vec<&IfAddress> = f.addresses.iter().filter(|a| usable_v4(a)).collect();
        let v6_global = f
            .addresses
            .iter()
            .any(|a| matches!(a.addr, IpAddr::V6(_)) && a.global);
        let listed = f
            .addresses
            .iter()
            .map(|a| format!("{}/{}", a.addr, a.prefix_len))
            .collect::<Vec<_>>()
            .join(" ");
        let threshold = if self.config.dhcp {
            "a usable IPv4 address held by an unexpired DHCP lease"
        } else {
            "a usable IPv4 address"
        };
        let base = |o: Observation| {
            o.threshold(threshold)
                .evidence("wan_interface", wan)
                .evidence(
                    "addresses",
                    if listed.is_empty() { "none" } else { &listed },
                )
        };
        let Some(addr) = v4.first() else {
            return base(
                Observation::new(
                    CheckId::WanAddress,
                    CheckStatus::Failed,
                    "wan_no_address",
                    format!("no usable IPv4 address on {wan}"),
                )
                .severity(Severity::Critical)
                .category(Category::NoInternet)
                .value("no address")
                .hint("renew_dhcp asks the DHCP client for a new lease"),
            );
        };
        let value = format!("{}/{}", addr.addr, addr.prefix_len);
        if self.config.dhcp
            && let Some(lease) = &f.lease
        {
            let Some(lease) = lease else {
                return base(
                    Observation::new(
                        CheckId::WanAddress,
                        CheckStatus::Degraded,
                        "dhcp_lease_missing",
                        format!("{wan} has {value} but no DHCP lease is recorded"),
                    )
                    .category(Category::LocalMisconfig)
                    .value(value)
                    .hint(
                        "the DHCP client's hook did not write the lease file, or the client died",
                    ),
                );
            };
            if let (Some(at), Some(secs)) = (lease.acquired_at_unix, lease.lease_secs) {
                let expires = at.saturating_add(secs as i64);
                let left = expires - f.now_unix;
                if left < 0 {
                    return base(
                        Observation::new(
                            CheckId::WanAddress,
                            CheckStatus::Failed,
                            "dhcp_lease_expired",
                            format!("the DHCP lease for {value} expired {} s ago", -left),
                        )
                        .severity(Severity::Critical)
                        .category(Category::NoInternet)
                        .value(value)
                        .evidence("lease_expired_secs_ago", -left)
                        .hint("renew_dhcp; the ISP's DHCP server may be down"),
                    );
                }
                if lease.ip.is_some_and(|ip| IpAddr::V4(ip) != addr.addr) {
                    return base(
                        Observation::new(
                            CheckId::WanAddress,
                            CheckStatus::Degraded,
                            "dhcp_lease_mismatch",
                            format!(
                                "{wan} has {value} but the lease is for {}",
                                lease.ip.map_or("-".into(), |i| i.to_string())
                            ),
                        )
                        .category(Category::LocalMisconfig)
                        .value(value)
                        .hint("renew_dhcp reconciles the address with the lease"),
                    );
                }
                if self.config.require_ipv6 && !v6_global {
                    return base(
                        Observation::new(
                            CheckId::WanAddress,
                            CheckStatus::Degraded,
                            "wan_no_ipv6",
                            format!("no global IPv6 address on {wan}"),
                        )
                        .value(value)
                        .hint("DHCPv6/SLAAC on the WAN did not complete"),
                    );
                }
                return base(
                    Observation::ok(
                        CheckId::WanAddress,
                        format!("{wan} holds {value}, lease valid for {left} s"),
                    )
                    .value(value)
                    .evidence("lease_left_secs", left),
                );
            }
        }
        if self.config.require_ipv6 && !v6_global {
            return base(
                Observation::new(
                    CheckId::WanAddress,
                    CheckStatus::Degraded,
                    "wan_no_ipv6",
                    format!("no global IPv6 address on {wan}"),
                )
                .value(value)
                .hint("DHCPv6/SLAAC on the WAN did not complete"),
            );
        }
        base(Observation::ok(CheckId::WanAddress, format!("{wan} holds {value}")).value(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::causes::assert_declared;

    /// [`WanAddressCheck::judge`], asserting that the cause it reports is declared in `CAUSES`.
    fn judged(c: &WanAddressCheck, f: &Facts) -> Observation {
        let o = c.judge(f);
        assert_declared(&o);
        o
    }
    use std::net::Ipv4Addr;

    fn check() -> WanAddressCheck {
        WanAddressCheck {
            config: WanAddressConfig::default(),
            wan_interface: "wan".into(),
            lease_file: Some("/run/wan.lease".into()),
        }
    }

    fn addr(a: [u8; 4]) -> IfAddress {
        IfAddress {
            addr: IpAddr::V4(Ipv4Addr::from(a)),
            prefix_len: 16,
            global: true,
        }
    }

    fn lease(acquired: i64, secs: u64) -> Lease {
        Lease {
            ip: Some(Ipv4Addr::new(100, 64, 1, 7)),
            router: Some(Ipv4Addr::new(100, 64, 0, 1)),
            lease_secs: Some(secs),
            acquired_at_unix: Some(acquired),
            ..Lease::default()
        }
    }

    #[test]
    fn verdicts() {
        let c = check();
        let ok = Facts {
            addresses: vec![addr([100, 64, 1, 7])],
            lease: Some(Some(lease(1000, 120))),
            now_unix: 1100,
        };
        assert_eq!(judged(&c, &ok).status, CheckStatus::Ok);
        let none = Facts {
            addresses: vec![addr([169, 254, 3, 3])],
            ..ok.clone()
        };
        assert_eq!(judged(&c, &none).cause, "wan_no_address");
        let expired = Facts {
            now_unix: 1200,
            ..ok.clone()
        };
        assert_eq!(judged(&c, &expired).cause, "dhcp_lease_expired");
        let missing = Facts {
            lease: Some(None),
            ..ok.clone()
        };
        assert_eq!(judged(&c, &missing).cause, "dhcp_lease_missing");
        let other = Facts {
            addresses: vec![addr([100, 64, 1, 9])],
            ..ok
        };
        assert_eq!(judged(&c, &other).cause, "dhcp_lease_mismatch");
    }
}
