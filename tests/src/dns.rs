//! Extra resolvers for DNS fault injection: [`NxdomainResolver`], a dnsmasq in the ISP namespace
//! on a second ISP address that answers NXDOMAIN for every name (a broken or hijacking
//! resolver), and [`DEAD_RESOLVER_IP`], an address where no resolver listens.

use std::net::Ipv4Addr;

use crate::error::Result;
use crate::{ACCESS_BRIDGE, ACCESS_PREFIX_LEN, Lab, LabProcess, Netns, wait_for};

/// The NXDOMAIN resolver's address, on the ISP's access bridge (reachable from every CPE).
pub const NXDOMAIN_RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 53);

/// An "internet" address nothing answers on: the ISP namespace has no route onward and does not
/// forward, so queries sent there vanish (a dead resolver: timeouts, no ICMP).
pub const DEAD_RESOLVER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 53);

/// A dnsmasq answering NXDOMAIN for everything (`--address=/#/`). Stopped, and its address
/// removed, on drop.
#[derive(Debug)]
pub struct NxdomainResolver {
    ns: Netns,
    process: Option<LabProcess>,
}

impl NxdomainResolver {
    /// Adds [`NXDOMAIN_RESOLVER_IP`] to the ISP's access bridge and starts the resolver on it;
    /// returns once it answers.
    pub fn start(lab: &Lab) -> Result<Self> {
        let ns = lab.isp().ns.clone();
        let cidr = format!("{NXDOMAIN_RESOLVER_IP}/{ACCESS_PREFIX_LEN}");
        ns.ip(&["addr", "replace", &cidr, "dev", ACCESS_BRIDGE])?;
        let mut me = Self { ns, process: None };
        let listen = format!("--listen-address={NXDOMAIN_RESOLVER_IP}");
        let mut args = crate::lab::dnsmasq_resolver(&listen);
        args.push("--address=/#/");
        let process = me
            .ns
            .spawn("dnsmasq", &args, lab.log_path("isp-dns-nxdomain"))?;
        me.process = Some(process);
        let server = NXDOMAIN_RESOLVER_IP.to_string();
        wait_for(
            "the NXDOMAIN resolver to answer",
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(50),
            || {
                let out = me
                    .ns
                    .exec_unchecked(&["busybox", "nslookup", crate::PROBE_NAME, &server])
                    .map_err(|e| e.to_string())?;
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                if text.contains("NXDOMAIN") {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        )?;
        Ok(me)
    }

    /// Stops the resolver and removes its address. Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        if let Some(mut p) = self.process.take() {
            p.kill()?;
            let cidr = format!("{NXDOMAIN_RESOLVER_IP}/{ACCESS_PREFIX_LEN}");
            if self.ns.exists() {
                self.ns.ip(&["addr", "del", &cidr, "dev", ACCESS_BRIDGE])?;
            }
        }
        Ok(())
    }
}

impl Drop for NxdomainResolver {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("netmedic-lab: stopping the NXDOMAIN resolver: {e}");
        }
    }
}
