//! The netmedic lab: a small ISP built from real Linux network namespaces, with fault
//! injection, for the end-to-end tests, the benchmarks (`bench/`) and the demo (see docs/design.md,
//! "The lab").
//!
//! ```text
//!  [<p>-isp]  bridge "access" 100.64.0.1/16, dnsmasq (DHCP 100.64.1.10-254; DNS for
//!             *.isp.test), "internet" 192.0.2.1, 198.51.100.1 and collector 203.0.113.10 on lo
//!      │ veth  cpe<i> (isp, in the bridge) ── wan (cpe, MAC 02:6e:6d:00:00:<i>)
//!  [<p>-c<i>] udhcpc on wan (tests/lab/udhcpc.script), lan 100.100.<i>.1/24, NAT, forwarding
//!      │ veth  lan ── eth0
//!  [<p>-l<i>] eth0 100.100.<i>.2/24, default via 100.100.<i>.1
//! ```
//!
//! `<p>` is `nm<pid>x<counter>`, unique per lab, so tests can run in parallel; labs left
//! behind by dead processes are swept when the next lab is built. Nothing is ever
//! configured in the host's namespace, and the host never sends to non-loopback
//! addresses: use [`Netns::run`] (sockets) or [`Netns::exec`] / [`Netns::spawn`]
//! (processes) to act inside a namespace. Wait with [`wait_for`], never with sleeps.
//!
//! ```no_run
//! # fn main() -> Result<(), netmedic_lab::LabError> {
//! let lab = netmedic_lab::Lab::builder().cpes(2).build()?; // waits until ready
//! let cpe = lab.cpe(0);
//! assert!(cpe.ping("192.0.2.1")?);
//! cpe.delete_default_route()?;
//! # Ok(()) }
//! ```

mod error;
mod http;
mod lab;
mod lease;
mod netns;
mod process;
mod wait;

// Headless Chromium over WebDriver, inside a lab namespace, for the NOC console's tests.
pub mod browser;
pub mod console;
// Spool, firewall-cut, tmpfs and fake-collector helpers of the delivery and daemon tests.
pub mod delivery;
// A hostile collector for the agent hardening tests.
pub mod hostile;
pub mod stack;
// A router-like qemu guest (Wi-Fi radios, reboot, own clock) with its WAN in a lab namespace.
pub mod vm;
// Fault-injection servers for the dns, http and modem_snmp checks.
pub mod dns;
pub mod httpd;
pub mod snmpd;
// Faults and services for the icmp, mtu, conntrack, service and clock checks.
pub mod faults;
// Helpers and timing of the self-healing tests.
pub mod hard_cases;
pub mod heal_faults;
// The home LAN as a bridge, with a rogue DHCP server and a duplicate-IP host to plug in.
pub mod lan;
// Dual stack (RA, DHCPv6 with prefix delegation) for the IPv6 tests.
pub mod ipv6;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod lab_tests;

pub use error::{LabError, Result};
pub use http::{HTTP_TIMEOUT, HttpResponse, http_get, http_post_json, http_request, in_host_netns};
pub use lab::{
    ACCESS_BRIDGE, ACCESS_PREFIX_LEN, COLLECTOR_IP, COLLECTOR_NAME, Cpe, DEFAULT_READY_TIMEOUT,
    DHCP_POOL_END, DHCP_POOL_START, ISP_GATEWAY, Isp, KEEP_DIR_ENV, LAN_HOST_IFACE, LAN_IFACE, Lab,
    LabBuilder, MAX_CPES, MIN_LEASE_SECS, NAME_PREFIX, PROBE_IP, PROBE_NAME, PROBE2_IP,
    PROBE2_NAME, UPSTREAM_RANGES, WAN_IFACE,
};
pub use lease::Lease;
pub use netns::{IfAddr, NETNS_RUN_DIR, Netns, Route};
pub use process::{DEFAULT_GRACE, LabProcess, tail_file};
pub use wait::{Observation, wait_for};
