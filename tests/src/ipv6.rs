//! [`Ipv6Lab`]: dual stack on top of a running [`Lab`], opt-in (labs without it stay IPv4-only).
//!
//! ```text
//!  [<p>-isp]  access 2001:db8:0:1::1/64; dnsmasq sends router advertisements (SLAAC prefix
//!             2001:db8:0:1::/64, router lifetime 1800 s, unsolicited every 600 s as an ISP's
//!             router would); kea-dhcp6 hands out IA_NA from 2001:db8:0:1::1000-1fff and
//!             IA_PD /56s from 2001:db8:100::/40; the "internet" host 2001:db8:ffff::1 on lo
//!  [<p>-hop6] "the internet beyond a small link": 2001:db8:fffe::2, reached from the ISP over
//!             a veth of MTU 1400 (HOP6_MTU): the ISP forwards IPv6 and answers Packet Too Big
//!             for bigger packets, unless filter_packet_too_big drops those (a blackhole)
//!  [<p>-c<i>] dhcpcd on wan (-6: RA/SLAAC, IA_NA, IA_PD), putting /64 number 0 of its delegated
//!             prefix on `lan` as <prefix>::1/64 — what a home router's DHCPv6 client does;
//!             dnsmasq (RA only) advertising that /64 on `lan`, the CPE's RA daemon
//! ```
//!
//! Why these daemons: dnsmasq does RA and DHCPv6 but no prefix delegation; kea is ISC's
//! maintained DHCPv6 server (isc-dhcp-server is end-of-life) and delegates prefixes. dhcpcd does
//! router discovery, SLAAC, IA_NA and IA_PD and assigns the LAN /64 itself, as on many routers
//! (OpenWrt's odhcp6c is not packaged by Debian). dhcpcd keeps its pidfile, control sockets,
//! DUID and lease under fixed paths (`/run/dhcpcd`, `/var/lib/dhcpcd`): each CPE's dhcpcd runs
//! with both bind-mounted from the lab dir inside its own mount namespace (which `ip netns exec`
//! creates), so CPEs do not collide and nothing lands in the host's directories. Hooks are off
//! (`script /bin/true`): dhcpcd must not touch the host's resolv.conf or hostname.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::error::{LabError, Result, io_ctx};
use crate::lab::{ACCESS_BRIDGE, LAN_IFACE, Lab, WAN_IFACE};
use crate::netns::Netns;
use crate::process::LabProcess;
use crate::wait::wait_for;

/// The ISP's address on the access network (kea and the RAs come from its link-local).
pub const ISP_GATEWAY6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1);
/// The access network's SLAAC prefix.
pub const ACCESS_PREFIX6: &str = "2001:db8:0:1::/64";
/// The pool delegated prefixes come from (one /56 per CPE).
pub const PD_POOL: &str = "2001:db8:100::/40";
/// An "internet" host (answers ICMPv6 echo).
pub const PROBE6_IP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 1);
/// DNS name of [`PROBE6_IP`] (AAAA), served by [`Ipv6Lab::start_dns6`] on [`ISP_GATEWAY6`].
pub const PROBE6_NAME: &str = "probe6.isp.test";

/// The host behind the ISP's small-MTU hop (see [`Ipv6Lab::filter_packet_too_big`]).
pub const HOP6_TARGET: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfffe, 0, 0, 0, 0, 2);
/// The ISP's end of that hop.
const HOP6_ISP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xfffe, 0, 0, 0, 0, 1);
/// The hop's MTU: IPv6 packets above it do not cross.
pub const HOP6_MTU: u32 = 1400;

/// DHCPv6 timers handed out by kea (seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dhcp6Timers {
    pub renew: u32,
    pub rebind: u32,
    pub preferred: u32,
    pub valid: u32,
}

impl Dhcp6Timers {
    /// An ISP's usual timers: nothing renews within a test unless asked to.
    pub const LONG: Dhcp6Timers = Dhcp6Timers {
        renew: 600,
        rebind: 900,
        preferred: 1200,
        valid: 1800,
    };
    /// Short enough for a lease to expire within a test once the server is gone.
    pub const SHORT: Dhcp6Timers = Dhcp6Timers {
        renew: 8,
        rebind: 12,
        preferred: 16,
        valid: 24,
    };
}

/// One CPE's DHCPv6 client.
#[derive(Debug)]
pub struct Cpe6 {
    pub index: usize,
    pub ns: Netns,
    dir: PathBuf,
    conf: PathBuf,
    log: PathBuf,
    dhcpcd: Mutex<Option<LabProcess>>,
    lan_ra: Mutex<Option<LabProcess>>,
}

/// IPv6 for a lab: see the module docs. Stops its daemons on drop (drop it before the lab).
#[derive(Debug)]
pub struct Ipv6Lab {
    isp: Netns,
    /// The namespace behind the small-MTU hop.
    hop: Netns,
    dir: PathBuf,
    timers: Dhcp6Timers,
    ra: Mutex<Option<LabProcess>>,
    kea: Mutex<Option<LabProcess>>,
    dns6: Mutex<Option<LabProcess>>,
    cpes: Vec<Cpe6>,
}

/// dnsmasq arguments for router advertisements only (no DHCP, no DNS) on `iface`, of the /64s
/// it finds there, with `ra_param` (`--ra-param=...`) if given.
fn ra_only_dnsmasq(iface: &str, ra_param: Option<&str>) -> Vec<String> {
    let mut args: Vec<String> = crate::lab::dnsmasq_common()
        .into_iter()
        .map(str::to_string)
        .collect();
    args.extend([
        "--port=0".to_string(),
        format!("--interface={iface}"),
        "--bind-interfaces".to_string(),
        "--enable-ra".to_string(),
        format!("--dhcp-range=::,constructor:{iface},ra-only,64,1h"),
    ]);
    args.extend(ra_param.map(str::to_string));
    args
}

/// Kills the process in `slot`, if any.
fn stop(slot: &Mutex<Option<LabProcess>>) -> Result<()> {
    if let Some(mut p) = lock(slot).take() {
        p.kill()?;
    }
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Ipv6Lab {
    /// Adds IPv6 to `lab` (every CPE) and waits until each CPE has its IPv6 default route, a
    /// delegated prefix and that prefix's /64 on the LAN.
    pub fn start(lab: &Lab, timers: Dhcp6Timers) -> Result<Ipv6Lab> {
        let isp = lab.isp().ns.clone();
        let dir = lab.dir().join("ipv6");
        std::fs::create_dir_all(&dir).map_err(io_ctx(format!("creating {}", dir.display())))?;
        isp.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{ISP_GATEWAY6}/64"),
            "dev",
            ACCESS_BRIDGE,
            "nodad",
        ])?;
        isp.ip(&[
            "-6",
            "addr",
            "add",
            &format!("{PROBE6_IP}/128"),
            "dev",
            "lo",
        ])?;
        isp.ip(&["link", "set", "lo", "up"])?;
        let hop = Netns::create(&format!("{}-hop6", lab.prefix()))?;
        let mut me = Ipv6Lab {
            isp,
            hop,
            dir,
            timers,
            ra: Mutex::new(None),
            kea: Mutex::new(None),
            dns6: Mutex::new(None),
            cpes: Vec::new(),
        };
        // kea binds the bridge's link-local address: wait until DAD has finished with it.
        wait_for(
            "the access bridge's link-local address",
            Duration::from_secs(10),
            Duration::from_millis(100),
            || -> std::result::Result<(), String> {
                let text = me
                    .isp
                    .ip(&["-6", "addr", "show", "dev", ACCESS_BRIDGE, "scope", "link"])
                    .map_err(|e| e.to_string())?;
                if text.contains("inet6") && !text.contains("tentative") {
                    Ok(())
                } else {
                    Err(text)
                }
            },
        )?;
        me.add_hop()?;
        me.start_ra()?;
        me.start_kea()?;
        me.start_dns6()?;
        for cpe in lab.cpes() {
            let cdir = me.dir.join(format!("cpe{}", cpe.index));
            for sub in ["run", "lib"] {
                std::fs::create_dir_all(cdir.join(sub))
                    .map_err(io_ctx(format!("creating {}", cdir.display())))?;
            }
            let conf = cdir.join("dhcpcd.conf");
            std::fs::write(
                &conf,
                format!(
                    "ipv6only\nnoipv4ll\nscript /bin/true\ninterface {WAN_IFACE}\n  ipv6rs\n  ia_na 1\n  ia_pd 2 {LAN_IFACE}/0/64/1\n"
                ),
            )
            .map_err(io_ctx(format!("writing {}", conf.display())))?;
            let c = Cpe6 {
                index: cpe.index,
                ns: cpe.ns.clone(),
                log: lab.log_path(&format!("cpe{}-dhcpcd", cpe.index)),
                dir: cdir,
                conf,
                dhcpcd: Mutex::new(None),
                lan_ra: Mutex::new(None),
            };
            c.start_dhcpcd()?;
            me.cpes.push(c);
        }
        for c in &me.cpes {
            c.wait_ready(Duration::from_secs(30))
                .map_err(|e| LabError::Setup(format!("{e}\n{}", me.diagnostics())))?;
            c.start_lan_ra()?;
        }
        Ok(me)
    }

    /// Links the hop namespace to the ISP with a veth of [`HOP6_MTU`] (before the RAs start:
    /// an interface change would restart dnsmasq's burst of advertisements).
    fn add_hop(&self) -> Result<()> {
        let mtu = HOP6_MTU.to_string();
        self.isp.ip(&[
            "link",
            "add",
            "hop6",
            "mtu",
            &mtu,
            "type",
            "veth",
            "peer",
            "name",
            "up6",
            "mtu",
            &mtu,
            "netns",
            self.hop.name(),
        ])?;
        self.isp.sysctl("net.ipv6.conf.all.forwarding", "1")?;
        for (ns, addr, dev) in [
            (&self.isp, HOP6_ISP, "hop6"),
            (&self.hop, HOP6_TARGET, "up6"),
        ] {
            let cidr = format!("{addr}/64");
            ns.ip(&["-6", "addr", "add", &cidr, "dev", dev, "nodad"])?;
            ns.ip(&["link", "set", dev, "up"])?;
        }
        self.hop.ip(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &HOP6_ISP.to_string(),
        ])?;
        Ok(())
    }

    /// Fault: the ISP drops the ICMPv6 Packet Too Big messages it generates (nftables output
    /// hook), so the small hop becomes a path-MTU blackhole: packets above [`HOP6_MTU`] to
    /// [`HOP6_TARGET`] vanish silently. `false` removes the filter (idempotent).
    pub fn filter_packet_too_big(&self, on: bool) -> Result<()> {
        let table = "nmlab_ptb6";
        let mut script = format!("table inet {table} {{}}\ndelete table inet {table}\n");
        if on {
            script.push_str(&format!(
                "table inet {table} {{\n chain output {{\n  type filter hook output priority 0; policy accept;\n  icmpv6 type packet-too-big drop\n }}\n}}\n"
            ));
        }
        self.isp.nft(&script)
    }

    pub fn cpe(&self, i: usize) -> &Cpe6 {
        &self.cpes[i]
    }

    /// Starts the router advertisements (dnsmasq, RA only) unless they run.
    pub fn start_ra(&self) -> Result<()> {
        let mut slot = lock(&self.ra);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        // Unsolicited every 600 s (RFC 4861's MaxRtrAdvInterval default), router lifetime 1800 s.
        let param = format!("--ra-param={ACCESS_BRIDGE},600,1800");
        let args = ra_only_dnsmasq(ACCESS_BRIDGE, Some(&param));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        *slot = Some(
            self.isp
                .spawn("dnsmasq", &args, self.dir.join("isp-ra.log"))?,
        );
        Ok(())
    }

    /// Waits until no router advertisement went out for `quiet`. dnsmasq advertises every 5-15 s
    /// for a minute after an interface or address change in the ISP namespace, then at the
    /// configured 600 s; every RA makes dhcpcd re-apply its default route, so a test of a local
    /// route fault starts once the router is in its slow rhythm, as an ISP's router is.
    pub fn wait_ra_quiet(&self, quiet: Duration, timeout: Duration) -> Result<()> {
        let log = self.dir.join("isp-ra.log");
        let count = || {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .matches("RTR-ADVERT")
                .count()
        };
        let mut last = (count(), std::time::Instant::now());
        wait_for(
            "router advertisements slow down",
            timeout,
            Duration::from_millis(250),
            || -> std::result::Result<(), String> {
                let n = count();
                if n != last.0 {
                    last = (n, std::time::Instant::now());
                }
                if last.1.elapsed() >= quiet {
                    Ok(())
                } else {
                    Err(format!("{n} RAs sent, the last {:?} ago", last.1.elapsed()))
                }
            },
        )
    }

    /// Stops the router advertisements.
    pub fn stop_ra(&self) -> Result<()> {
        stop(&self.ra)
    }

    /// Starts kea-dhcp6 (IA_NA + IA_PD, leases in memory) unless it runs.
    pub fn start_kea(&self) -> Result<()> {
        let mut slot = lock(&self.kea);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        let t = self.timers;
        let conf = self.dir.join("kea-dhcp6.json");
        let (pd_prefix, pd_len) = PD_POOL.split_once('/').unwrap_or((PD_POOL, "40"));
        let text = format!(
            r#"{{ "Dhcp6": {{
  "interfaces-config": {{ "interfaces": [ "{ACCESS_BRIDGE}" ],
    "service-sockets-max-retries": 20, "service-sockets-retry-wait-time": 250 }},
  "lease-database": {{ "type": "memfile", "persist": false }},
  "server-id": {{ "type": "LL", "persist": false }},
  "renew-timer": {}, "rebind-timer": {}, "preferred-lifetime": {}, "valid-lifetime": {},
  "subnet6": [ {{
    "id": 1, "subnet": "{ACCESS_PREFIX6}", "interface": "{ACCESS_BRIDGE}",
    "pools": [ {{ "pool": "2001:db8:0:1::1000-2001:db8:0:1::1fff" }} ],
    "pd-pools": [ {{ "prefix": "{pd_prefix}", "prefix-len": {pd_len}, "delegated-len": 56 }} ],
    "option-data": [ {{ "name": "dns-servers", "data": "{ISP_GATEWAY6}" }} ]
  }} ],
  "loggers": [ {{ "name": "kea-dhcp6", "output_options": [ {{ "output": "stdout" }} ], "severity": "INFO" }} ]
}} }}
"#,
            t.renew, t.rebind, t.preferred, t.valid
        );
        std::fs::write(&conf, text).map_err(io_ctx(format!("writing {}", conf.display())))?;
        let dir = self.dir.display().to_string();
        let conf_s = conf.display().to_string();
        *slot = Some(self.isp.spawn_with_env(
            "kea-dhcp6",
            &["-c", &conf_s],
            &[("KEA_PIDFILE_DIR", &dir), ("KEA_LOCKFILE_DIR", &dir)],
            self.dir.join("isp-kea.log"),
        )?);
        Ok(())
    }

    /// Starts the ISP's IPv6 resolver (dnsmasq on [`ISP_GATEWAY6`]:53, lab names only, with
    /// the AAAA record [`PROBE6_NAME`]) unless it runs.
    pub fn start_dns6(&self) -> Result<()> {
        let mut slot = lock(&self.dns6);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        let listen = format!("--listen-address={ISP_GATEWAY6}");
        let record = format!("--host-record={PROBE6_NAME},{PROBE6_IP}");
        let mut args = crate::lab::dnsmasq_resolver(&listen);
        args.extend(["--local=/test/", &record]);
        *slot = Some(
            self.isp
                .spawn("dnsmasq", &args, self.dir.join("isp-dns6.log"))?,
        );
        Ok(())
    }

    /// Stops the IPv6 resolver: queries over IPv6 go unanswered.
    pub fn stop_dns6(&self) -> Result<()> {
        stop(&self.dns6)
    }

    /// Stops kea: no renewals, no new delegations; leases run out.
    pub fn stop_kea(&self) -> Result<()> {
        stop(&self.kea)
    }

    /// Drops `percent`% (0-100) of the ICMPv6 echo requests the ISP receives from CPE `i`
    /// (nftables ingress on the ISP end of its WAN veth); neighbour discovery and DHCPv6 pass,
    /// IPv4 is untouched. `0` removes the rule.
    pub fn inject_echo_loss6(&self, i: usize, percent: u8) -> Result<()> {
        if percent > 100 {
            return Err(LabError::Setup(format!(
                "loss {percent}% is more than 100%"
            )));
        }
        let port = format!("cpe{i}");
        let table = format!("nmlab_loss6_{port}");
        let mut script = format!("table netdev {table} {{}}\ndelete table netdev {table}\n");
        if percent > 0 {
            let verdict = if percent == 100 {
                "drop".to_string()
            } else {
                format!("numgen random mod 100 < {percent} drop")
            };
            script.push_str(&format!(
                "table netdev {table} {{\n chain ingress {{\n  type filter hook ingress device \"{port}\" priority 0; policy accept;\n  icmpv6 type echo-request {verdict}\n }}\n}}\n"
            ));
        }
        self.isp.nft(&script)
    }

    /// Logs of the IPv6 daemons, for failure messages.
    pub fn diagnostics(&self) -> String {
        let mut s = format!(
            "--- isp RA\n{}\n--- isp kea\n{}\n",
            crate::process::tail_file(&self.dir.join("isp-ra.log"), 10),
            crate::process::tail_file(&self.dir.join("isp-kea.log"), 10)
        );
        for c in &self.cpes {
            s.push_str(&format!(
                "--- cpe{} dhcpcd\n{}\n",
                c.index,
                crate::process::tail_file(&c.log, 20)
            ));
        }
        s
    }

    /// The agent config for CPE `i`: `[checks.wan6]` on its dhcpcd, `[healing.renew_dhcp6]`.
    pub fn agent_toml(&self, i: usize) -> String {
        let c = &self.cpes[i];
        format!(
            "\n[checks.wan6]\nenabled = true\nlan_interface = \"{LAN_IFACE}\"\nlease6_file = \"{}\"\n\n[healing.renew_dhcp6]\npidfile = \"{}\"\n",
            c.lease6_file().display(),
            c.pidfile().display()
        )
    }
}

impl Drop for Ipv6Lab {
    fn drop(&mut self) {
        for c in &self.cpes {
            let _ = c.stop_lan_ra();
            let _ = c.stop_dhcpcd();
        }
        let _ = self.stop_kea();
        let _ = self.stop_dns6();
        let _ = self.stop_ra();
        // Nothing runs in the hop namespace; deleting it removes its veth pair too.
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", self.hop.name()])
            .status();
    }
}

/// One `ip -6` address: (address, prefix length).
pub type Addr6 = (Ipv6Addr, u8);

impl Cpe6 {
    /// dhcpcd's stored lease (its DHCPv6 REPLY).
    pub fn lease6_file(&self) -> PathBuf {
        self.dir.join("lib").join(format!("{WAN_IFACE}.lease6"))
    }

    /// dhcpcd's pidfile (its manager process).
    pub fn pidfile(&self) -> PathBuf {
        self.dir.join("run").join(format!("{WAN_IFACE}.pid"))
    }

    /// Starts dhcpcd on the WAN (see the module docs) unless it runs.
    pub fn start_dhcpcd(&self) -> Result<()> {
        let mut slot = lock(&self.dhcpcd);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        let script = format!(
            "mount --bind {run} /run/dhcpcd && mount --bind {lib} /var/lib/dhcpcd && exec dhcpcd -6 -B -d -f {conf} {WAN_IFACE}",
            run = self.dir.join("run").display(),
            lib = self.dir.join("lib").display(),
            conf = self.conf.display()
        );
        for d in ["/run/dhcpcd", "/var/lib/dhcpcd"] {
            std::fs::create_dir_all(d).map_err(io_ctx(format!("creating {d}")))?;
        }
        *slot = Some(self.ns.spawn("sh", &["-c", &script], &self.log)?);
        Ok(())
    }

    /// Starts the CPE's RA daemon on the LAN (dnsmasq, RA only, advertising the LAN's /64s as
    /// it finds them on `lan`) unless it runs.
    pub fn start_lan_ra(&self) -> Result<()> {
        let mut slot = lock(&self.lan_ra);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        // A router does not configure itself from its own advertisements (the kernel would take
        // the looped-back RA and add a SLAAC address beside the delegated <prefix>::1).
        self.ns
            .sysctl(&format!("net.ipv6.conf.{LAN_IFACE}.accept_ra"), "0")?;
        let args = ra_only_dnsmasq(LAN_IFACE, None);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.join("lan-ra.log");
        *slot = Some(self.ns.spawn("dnsmasq", &args, log)?);
        Ok(())
    }

    /// Fault: the CPE's RA daemon on the LAN dies.
    pub fn stop_lan_ra(&self) -> Result<()> {
        stop(&self.lan_ra)
    }

    pub fn stop_dhcpcd(&self) -> Result<()> {
        stop(&self.dhcpcd)
    }

    /// The IPv6 default routes: (gateway, protocol) per route.
    pub fn default_routes6(&self) -> Result<Vec<(String, String)>> {
        let text = self.ns.ip(&["-6", "route", "show", "default"])?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let via = w.iter().position(|x| *x == "via").map(|i| w.get(i + 1));
                let proto = w.iter().position(|x| *x == "proto").map(|i| w.get(i + 1));
                Some((
                    via.flatten()?.to_string(),
                    proto.flatten().map_or(String::new(), |p| p.to_string()),
                ))
            })
            .collect())
    }

    /// Deletes every IPv6 default route.
    pub fn delete_default_routes6(&self) -> Result<()> {
        while !self.default_routes6()?.is_empty() {
            self.ns.ip(&["-6", "route", "del", "default"])?;
        }
        Ok(())
    }

    /// Global IPv6 addresses on `dev`.
    pub fn global_addrs6(&self, dev: &str) -> Result<Vec<Addr6>> {
        let text = self
            .ns
            .ip(&["-6", "-o", "addr", "show", "dev", dev, "scope", "global"])?;
        Ok(text
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let i = w.iter().position(|x| *x == "inet6")?;
                let (a, len) = w.get(i + 1)?.split_once('/')?;
                Some((a.parse().ok()?, len.parse().ok()?))
            })
            .collect())
    }

    /// The LAN's /64s (global).
    pub fn lan_prefixes(&self) -> Result<Vec<Addr6>> {
        Ok(self
            .global_addrs6(LAN_IFACE)?
            .into_iter()
            .filter(|(_, l)| *l == 64)
            .collect())
    }

    /// Removes every global /64 from the LAN (the delegated prefix is gone from the LAN).
    pub fn remove_lan_prefix(&self) -> Result<()> {
        for (a, l) in self.lan_prefixes()? {
            self.ns
                .ip(&["-6", "addr", "del", &format!("{a}/{l}"), "dev", LAN_IFACE])?;
        }
        Ok(())
    }

    /// Waits for dhcpcd: IPv6 default route via the WAN, a lease, a /64 on the LAN.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        wait_for(
            &format!("cpe{} dual stack ready", self.index),
            timeout,
            Duration::from_millis(200),
            || -> std::result::Result<(), String> {
                let routes = self.default_routes6().map_err(|e| e.to_string())?;
                let lan = self.lan_prefixes().map_err(|e| e.to_string())?;
                let lease = Path::new(&self.lease6_file()).exists();
                if !routes.is_empty() && !lan.is_empty() && lease {
                    Ok(())
                } else {
                    Err(format!("routes {routes:?}, LAN {lan:?}, lease {lease}"))
                }
            },
        )
    }
}
