//! The home network behind a lab CPE for the `lan_dhcp` and `lan_arp` tests: the CPE's `lan`
//! veth moved into a bridge `br-lan` (as on OpenWrt) that carries the router's LAN address and
//! its own DHCP server, and devices plugged into that bridge from namespaces of their own — a
//! second router serving DHCP on another range (a rogue DHCP server), a host configured with
//! the router's own LAN address (a duplicate IP), hosts that share one client address.
//!
//! ```text
//!  [<p>-c<i>]  br-lan 100.100.<i>.1/24 (MAC 02:6e:6d:01:00:<i>), dnsmasq DHCP .100-.150
//!     ├── lan ── eth0 [<p>-l<i>]  the lab's LAN host
//!     ├── rg<k> ── eth0 [<p>-r<k>]  rogue router 198.51.100.1/24, dnsmasq DHCP .50-.150
//!     ├── dp<k> ── eth0 [<p>-d<k>]  host holding 100.100.<i>.1/24 too
//!     └── sh<k> ── eth0 [<p>-s<k>]  host holding 100.100.<i>.77/24 (two of them: a clash)
//! ```
//!
//! Every device is removed on drop (its process killed by PID, its namespace deleted, which
//! takes its veth pair along); the bridge goes with the CPE namespace.

use crate::error::{LabError, Result};
use crate::netns::{Netns, run_checked};
use crate::process::LabProcess;
use crate::{Cpe, LAN_IFACE, Lab, wait_for};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::Duration;

/// The LAN bridge's name (the agent's `lan_bridge` default).
pub const LAN_BRIDGE: &str = "br-lan";
/// The rogue router's LAN address and DHCP server identifier.
pub const ROGUE_SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The MAC of the `k`-th rogue router / duplicate host (what the evidence must name).
pub fn device_mac(kind: DeviceKind, k: u8) -> String {
    match kind {
        DeviceKind::RogueDhcp => format!("02:52:4f:47:55:{k:02x}"),
        DeviceKind::DuplicateIp => format!("02:44:55:50:00:{k:02x}"),
        DeviceKind::SharedClientIp => format!("02:43:4c:4e:54:{k:02x}"),
    }
}

/// What a device plugged into the LAN does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A second router with its DHCP server on, serving 198.51.100.50-150.
    RogueDhcp,
    /// A host configured with the router's LAN address.
    DuplicateIp,
    /// A client with the static address [`HomeLan::shared_client_ip`]: plug two for a clash.
    SharedClientIp,
}

fn bridge_mac(cpe: &Cpe) -> String {
    format!("02:6e:6d:01:00:{:02x}", cpe.index)
}

fn dnsmasq_dhcp(
    ns: &Netns,
    iface: &str,
    range: &str,
    leases: &std::path::Path,
    log: std::path::PathBuf,
) -> Result<LabProcess> {
    let iface = format!("--interface={iface}");
    let range = format!("--dhcp-range={range}");
    let leases = format!("--dhcp-leasefile={}", leases.display());
    let args = [
        "--conf-file=/dev/null",
        "--keep-in-foreground",
        "--log-facility=-",
        "--log-dhcp",
        "--pid-file=",
        "--user=root",
        "--group=root",
        // DHCP only: no DNS server, no resolv.conf read.
        "--port=0",
        "--no-resolv",
        "--no-hosts",
        &iface,
        &range,
        &leases,
    ];
    let mut p = ns.spawn("dnsmasq", &args, &log)?;
    wait_for(
        &format!("dnsmasq in {} to serve DHCP", ns.name()),
        Duration::from_secs(10),
        Duration::from_millis(50),
        || {
            if !p.is_running() {
                return Err(format!("dnsmasq exited: {}", p.log_tail(10)));
            }
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            if log.contains("DHCP, IP range") {
                Ok(())
            } else {
                Err(p.log_tail(5))
            }
        },
    )?;
    Ok(p)
}

/// The CPE's LAN as a bridge with the router's own DHCP server on it.
#[derive(Debug)]
pub struct HomeLan {
    /// The router's own dnsmasq (DHCP only) on `br-lan`.
    pub router_dhcp: LabProcess,
    /// The bridge's MAC (`02:6e:6d:01:00:<i>`).
    pub bridge_mac: String,
    ns: Netns,
    lan_ip: Ipv4Addr,
    cpe_index: usize,
    prefix: String,
    dir: std::path::PathBuf,
}

impl HomeLan {
    /// Moves the CPE's `lan` into `br-lan` (the LAN address moves with it) and starts the
    /// router's DHCP server there. Call before the agent starts.
    pub fn build(lab: &Lab, cpe: &Cpe) -> Result<Self> {
        let ns = cpe.ns.clone();
        let cidr = format!("{}/24", cpe.lan_ip);
        let mac = bridge_mac(cpe);
        ns.ip(&[
            "link",
            "add",
            LAN_BRIDGE,
            "address",
            &mac,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ns.ip(&["addr", "del", &cidr, "dev", LAN_IFACE])?;
        ns.ip(&["link", "set", LAN_IFACE, "master", LAN_BRIDGE])?;
        ns.ip(&["addr", "add", &cidr, "dev", LAN_BRIDGE])?;
        ns.ip(&["link", "set", LAN_BRIDGE, "up"])?;
        let o = cpe.lan_ip.octets();
        let range = format!(
            "{0}.{1}.{2}.100,{0}.{1}.{2}.150,255.255.255.0,1h",
            o[0], o[1], o[2]
        );
        let router_dhcp = dnsmasq_dhcp(
            &ns,
            LAN_BRIDGE,
            &range,
            &lab.dir().join(format!("cpe{}-br-lan.leases", cpe.index)),
            lab.log_path(&format!("cpe{}-br-lan-dnsmasq", cpe.index)),
        )?;
        // The LAN host still reaches the router through the bridge.
        if !cpe.lan_ns.ping(&cpe.lan_ip.to_string())? {
            return Err(LabError::Setup(format!(
                "LAN host cannot ping {} through {LAN_BRIDGE}",
                cpe.lan_ip
            )));
        }
        Ok(Self {
            router_dhcp,
            bridge_mac: mac,
            ns,
            lan_ip: cpe.lan_ip,
            cpe_index: cpe.index,
            prefix: lab.prefix().to_owned(),
            dir: lab.dir().to_path_buf(),
        })
    }

    /// Plugs device `k` of `kind` into the bridge and waits until it does its harm (the rogue
    /// dnsmasq serves DHCP; the duplicate host holds the router's address).
    pub fn plug(&self, kind: DeviceKind, k: u8) -> Result<LanDevice> {
        let (tag, port) = match kind {
            DeviceKind::RogueDhcp => ("r", format!("rg{k}")),
            DeviceKind::DuplicateIp => ("d", format!("dp{k}")),
            DeviceKind::SharedClientIp => ("s", format!("sh{k}")),
        };
        let name = format!("{}-{tag}{k}", self.prefix);
        let mut dev = LanDevice {
            ns: Netns::from_name(&name),
            process: None,
            mac: device_mac(kind, k),
        };
        // Registered before creation: a half-made device is still removed on drop.
        dev.ns = Netns::create(&name)?;
        run_checked(Command::new("ip").args([
            "link",
            "add",
            &port,
            "netns",
            self.ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &name,
        ]))?;
        self.ns.ip(&["link", "set", &port, "master", LAN_BRIDGE])?;
        self.ns.ip(&["link", "set", &port, "up"])?;
        dev.ns.ip(&["link", "set", "eth0", "address", &dev.mac])?;
        match kind {
            DeviceKind::RogueDhcp => {
                dev.ns
                    .ip(&["addr", "add", &format!("{ROGUE_SERVER}/24"), "dev", "eth0"])?;
                dev.ns.ip(&["link", "set", "eth0", "up"])?;
                dev.process = Some(dnsmasq_dhcp(
                    &dev.ns,
                    "eth0",
                    "198.51.100.50,198.51.100.150,255.255.255.0,1h",
                    &self.dir.join(format!("{name}.leases")),
                    self.dir.join("logs").join(format!("{name}-dnsmasq.log")),
                )?);
            }
            DeviceKind::DuplicateIp => {
                dev.ns
                    .ip(&["addr", "add", &format!("{}/24", self.lan_ip), "dev", "eth0"])?;
                dev.ns.ip(&["link", "set", "eth0", "up"])?;
            }
            DeviceKind::SharedClientIp => {
                let cidr = format!("{}/24", self.shared_client_ip());
                // No duplicate address detection: a static address is just configured.
                dev.ns.ip(&["addr", "add", &cidr, "dev", "eth0"])?;
                dev.ns.ip(&["link", "set", "eth0", "up"])?;
                // A client talks to its gateway: the router learns its address (the
                // neighbour table the agent reads). With a clash, either may answer first.
                dev.ns.ping(&self.lan_ip.to_string())?;
            }
        }
        Ok(dev)
    }

    /// The address every [`DeviceKind::SharedClientIp`] host takes (`.77` of the LAN).
    pub fn shared_client_ip(&self) -> Ipv4Addr {
        let o = self.lan_ip.octets();
        Ipv4Addr::new(o[0], o[1], o[2], 77)
    }

    /// The CPE this LAN belongs to.
    pub fn cpe_index(&self) -> usize {
        self.cpe_index
    }
}

impl Drop for HomeLan {
    fn drop(&mut self) {
        let _ = self.router_dhcp.kill();
    }
}

/// A device plugged into the home LAN; unplugged (process killed, namespace deleted) on drop.
#[derive(Debug)]
pub struct LanDevice {
    /// Its namespace.
    pub ns: Netns,
    /// Its MAC (`eth0`).
    pub mac: String,
    process: Option<LabProcess>,
}

impl LanDevice {
    /// Unplugs it now, reporting problems.
    pub fn unplug(mut self) -> Result<()> {
        self.remove()
    }

    fn remove(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill()?;
        }
        if self.ns.exists() {
            run_checked(Command::new("ip").args(["netns", "del", self.ns.name()]))?;
        }
        Ok(())
    }
}

impl Drop for LanDevice {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            eprintln!("netmedic-lab: unplugging {}: {e}", self.ns.name());
        }
    }
}
