//! `wan_address`: a usable IPv4 address on the WAN; the DHCP lease present and not expired;
//! an IPv6 global address when configured.
//!
//! ## Lease age and the wall clock
//! The DHCP client's hook stamps the lease with the wall clock (`acquired_at_unix`), which
//! NTP, the subscriber or a dead RTC battery can move by hours. The age of a lease is
//! therefore judged on `CLOCK_BOOTTIME` (as the heal budgets are): when the agent first sees a
//! lease (a new `acquired_at_unix`, length or address), it compares the lease's wall time with
//! its own wall time once — the hook wrote the file moments before, so a jump rarely falls in
//! between — and from then on ages the lease by boottime, which no wall-clock jump moves.

use super::{Context, Observation, check_settings, common_problems, now};
use crate::lease::Lease;
use crate::net::IfAddress;
use crate::site::{Problem, Site};
use netmedic_proto::{Category, CheckId, CheckStatus, Severity};
use serde::Deserialize;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

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
    /// When the current lease was first seen (shared by the clones of this check).
    pub lease_clock: Arc<Mutex<LeaseClock>>,
}

/// What the check found, for the pure verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub addresses: Vec<IfAddress>,
    /// `None`: no lease file configured. `Some(None)`: configured but absent.
    pub lease: Option<Option<Lease>>,
    /// Seconds since the lease was acquired, on a clock wall-clock jumps cannot move
    /// ([`LeaseClock`]); `None` when the lease has no `acquired_at_unix`.
    pub lease_age_secs: Option<i64>,
}

/// Which lease was seen: a renewal changes `acquired_at_unix`, a new lease its address.
type LeaseKey = (Option<i64>, Option<u64>, Option<Ipv4Addr>);

#[derive(Debug, Clone, PartialEq)]
struct Sighting {
    key: LeaseKey,
    /// The lease's age when first seen: our wall clock minus the hook's, compared once.
    age_at_sight_secs: i64,
    /// CLOCK_BOOTTIME (ms) at that moment.
    boot_ms: i64,
}

/// Milliseconds of `CLOCK_BOOTTIME` (suspend included, never moved by the wall clock). The
/// heal budgets read the same clock; checks sit below the healer, so it is read here too.
fn boottime_ms() -> i64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => ts.tv_sec() * 1000 + ts.tv_nsec() / 1_000_000,
        // Never on Linux; a monotonic fallback still cannot jump.
        Err(_) => {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_millis() as i64
        }
    }
}

/// Ages the DHCP lease on `CLOCK_BOOTTIME` from the moment the agent first saw it.
#[derive(Debug, Default)]
pub struct LeaseClock {
    seen: Option<Sighting>,
}

impl LeaseClock {
    /// Seconds since `lease` was acquired, given the wall clock and boottime now; `None`
    /// without an `acquired_at_unix`. Only the first sighting of a lease reads the wall clock.
    pub fn age_secs(&mut self, lease: &Lease, now_unix: i64, boot_ms: i64) -> Option<i64> {
        let acquired = lease.acquired_at_unix?;
        let key = (lease.acquired_at_unix, lease.lease_secs, lease.ip);
        let seen = match &self.seen {
            Some(s) if s.key == key && boot_ms >= s.boot_ms => s,
            _ => self.seen.insert(Sighting {
                key,
                // A lease stamped in our future (the clock went back since): age 0.
                age_at_sight_secs: now_unix.saturating_sub(acquired).max(0),
                boot_ms,
            }),
        };
        Some(seen.age_at_sight_secs + (boot_ms - seen.boot_ms) / 1000)
    }
}

fn usable_v4(a: &IfAddress) -> bool {
    match a.addr {
        IpAddr::V4(v4) => !(v4.is_unspecified() || v4.is_link_local() || v4.is_loopback()),
        IpAddr::V6(_) => false,
    }
}

impl WanAddressCheck {
    pub fn new(site: &Site, config: &WanAddressConfig) -> Self {
        Self {
            config: config.clone(),
            wan_interface: site.wan.interface.clone(),
            lease_file: site.wan.lease_file.clone(),
            lease_clock: Arc::default(),
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
        let lease_age_secs = match &lease {
            Some(Some(l)) => self
                .lease_clock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .age_secs(l, now().unix_secs(), boottime_ms()),
            _ => None,
        };
        self.judge(&Facts {
            addresses,
            lease,
            lease_age_secs,
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
            if let (Some(age), Some(secs)) = (f.lease_age_secs, lease.lease_secs) {
                let left = (secs as i64).saturating_sub(age);
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
            lease_clock: Arc::default(),
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
            lease_age_secs: Some(100),
        };
        assert_eq!(judged(&c, &ok).status, CheckStatus::Ok);
        let none = Facts {
            addresses: vec![addr([169, 254, 3, 3])],
            ..ok.clone()
        };
        assert_eq!(judged(&c, &none).cause, "wan_no_address");
        let expired = Facts {
            lease_age_secs: Some(200),
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

    #[test]
    fn a_wall_clock_jump_does_not_expire_the_lease() {
        // A 1 h lease acquired at wall time 1000, first seen 10 s later (boottime 50 s).
        let l = lease(1000, 3600);
        let mut clock = LeaseClock::default();
        assert_eq!(clock.age_secs(&l, 1010, 50_000), Some(10));
        // Twenty seconds on, NTP steps the wall clock +1 h: the lease is 30 s old, not 3630.
        let age = clock.age_secs(&l, 1030 + 3600, 70_000);
        assert_eq!(age, Some(30));
        let c = check();
        let facts = Facts {
            addresses: vec![addr([100, 64, 1, 7])],
            lease: Some(Some(l.clone())),
            lease_age_secs: age,
        };
        let o = c.judge(&facts);
        assert_eq!(o.status, CheckStatus::Ok, "{o:?}");
        assert_eq!(
            o.evidence.get("lease_left_secs").map(String::as_str),
            Some("3570")
        );
        // ... and a jump back does not stretch it: it still expires after its hour of boottime.
        let age = clock.age_secs(&l, 0, 50_000 + 3_601_000);
        assert_eq!(age, Some(3611));
        let o = c.judge(&Facts {
            lease_age_secs: age,
            ..facts.clone()
        });
        assert_eq!(o.cause, "dhcp_lease_expired");
        // A renewal (new acquired_at) is a new sighting, compared once with the wall clock.
        let renewed = lease(5000, 3600);
        assert_eq!(clock.age_secs(&renewed, 5002, 4_000_000), Some(2));
        // No acquisition time: no age, no expiry verdict.
        let undated = Lease {
            acquired_at_unix: None,
            ..renewed
        };
        assert_eq!(clock.age_secs(&undated, 5002, 4_000_000), None);
    }
}
