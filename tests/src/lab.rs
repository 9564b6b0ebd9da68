//! [`Lab`]: a small ISP built from real network namespaces (ISP with DHCP/DNS and
//! "internet" hosts, CPEs running udhcpc, one LAN host per CPE), with fault injection
//! and teardown on drop.

use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::error::{LabError, Result, io_ctx};
use crate::lease::Lease;
use crate::netns::{IfAddr, Netns, Route, run_checked};
use crate::process::LabProcess;
use crate::wait::wait_for;

/// Every lab name starts with this, followed by `<pid>x<counter>`.
pub const NAME_PREFIX: &str = "nm";
/// The ISP's gateway on the access network (bridge `access`), also its DHCP and DNS server.
pub const ISP_GATEWAY: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 1);
/// Prefix length of the access network 100.64.0.0/16.
pub const ACCESS_PREFIX_LEN: u8 = 16;
/// First address DHCP hands out.
pub const DHCP_POOL_START: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 10);
/// Last address DHCP hands out.
pub const DHCP_POOL_END: Ipv4Addr = Ipv4Addr::new(100, 64, 1, 254);
/// An "internet" host (answers ping); `probe.isp.test` resolves to it.
pub const PROBE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// DNS name of [`PROBE_IP`].
pub const PROBE_NAME: &str = "probe.isp.test";
/// A second "internet" host (answers ping); `probe2.isp.test` resolves to it.
pub const PROBE2_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// DNS name of [`PROBE2_IP`].
pub const PROBE2_NAME: &str = "probe2.isp.test";
/// An address in the ISP namespace reserved for the collector (bind it there).
pub const COLLECTOR_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// DNS name of [`COLLECTOR_IP`].
pub const COLLECTOR_NAME: &str = "collector.isp.test";
/// The ranges [`Isp::cut_upstream`] blackholes ("the internet", collector included).
pub const UPSTREAM_RANGES: [&str; 3] = ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"];
/// WAN interface name inside every CPE namespace.
pub const WAN_IFACE: &str = "wan";
/// LAN interface name inside every CPE namespace.
pub const LAN_IFACE: &str = "lan";
/// Interface name of the subscriber device inside every LAN namespace.
pub const LAN_HOST_IFACE: &str = "eth0";
/// The bridge in the ISP namespace that all CPE WANs hang off.
pub const ACCESS_BRIDGE: &str = "access";
/// dnsmasq refuses leases shorter than this.
pub const MIN_LEASE_SECS: u32 = 120;
/// Default deadline of [`Lab::wait_ready`] during build.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Most CPEs one lab supports (one /24 LAN each, one DHCP address each).
pub const MAX_CPES: usize = 200;
/// Set this environment variable (to anything) to keep lab directories after teardown.
pub const KEEP_DIR_ENV: &str = "NETMEDIC_LAB_KEEP";

const UDHCPC_SCRIPT: &str = include_str!("../lab/udhcpc.script");
const ETC_NETNS: &str = "/etc/netns";
const POLL: Duration = Duration::from_millis(100);

static LAB_COUNTER: AtomicU32 = AtomicU32::new(0);

/// Configures and builds a [`Lab`]. Get one with [`Lab::builder`].
#[derive(Debug, Clone)]
pub struct LabBuilder {
    cpes: usize,
    lease_secs: u32,
    ready_timeout: Duration,
    wait_ready: bool,
    dns_records: Vec<(String, Ipv4Addr)>,
}

impl Default for LabBuilder {
    fn default() -> Self {
        Self {
            cpes: 1,
            lease_secs: MIN_LEASE_SECS,
            ready_timeout: DEFAULT_READY_TIMEOUT,
            wait_ready: true,
            dns_records: vec![
                (PROBE_NAME.to_owned(), PROBE_IP),
                (PROBE2_NAME.to_owned(), PROBE2_IP),
                (COLLECTOR_NAME.to_owned(), COLLECTOR_IP),
            ],
        }
    }
}

impl LabBuilder {
    /// Number of CPEs (default 1, at most [`MAX_CPES`]).
    pub fn cpes(mut self, n: usize) -> Self {
        self.cpes = n;
        self
    }

    /// DHCP lease time in seconds (default and minimum [`MIN_LEASE_SECS`]; smaller values
    /// are raised to it because dnsmasq would anyway).
    pub fn lease_secs(mut self, secs: u32) -> Self {
        self.lease_secs = secs.max(MIN_LEASE_SECS);
        self
    }

    /// How long `build` waits for every CPE to be ready (default 30 s).
    pub fn ready_timeout(mut self, t: Duration) -> Self {
        self.ready_timeout = t;
        self
    }

    /// Whether `build` waits for [`Lab::wait_ready`] (default true).
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }

    /// Adds an A record to the ISP's DNS (defaults: [`PROBE_NAME`], [`PROBE2_NAME`],
    /// [`COLLECTOR_NAME`]). Other names under `.test` get NXDOMAIN, names elsewhere REFUSED.
    pub fn dns_record(mut self, name: impl Into<String>, ip: Ipv4Addr) -> Self {
        self.dns_records.push((name.into(), ip));
        self
    }

    /// Sweeps stale labs, builds the namespaces, starts dnsmasq (DNS and DHCP) and
    /// udhcpc on every CPE and, unless disabled, waits until every CPE is ready. On error
    /// everything built so far is torn down.
    pub fn build(self) -> Result<Lab> {
        if self.cpes > MAX_CPES {
            return Err(LabError::Setup(format!(
                "{} CPEs requested, at most {MAX_CPES}",
                self.cpes
            )));
        }
        if let Err(e) = Lab::sweep_stale() {
            eprintln!("netmedic-lab: sweeping stale labs: {e}");
        }
        let prefix = format!(
            "{NAME_PREFIX}{}x{}",
            std::process::id(),
            LAB_COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .map_err(io_ctx("creating the lab directory"))?;
        let dir = tmp.path().to_path_buf();
        let script = dir.join("udhcpc.script");
        std::fs::write(&script, UDHCPC_SCRIPT)
            .map_err(io_ctx(format!("writing {}", script.display())))?;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .map_err(io_ctx(format!("chmod {}", script.display())))?;
        std::fs::create_dir_all(dir.join("logs")).map_err(io_ctx("creating the log directory"))?;

        let isp_ns = Netns::from_name(format!("{prefix}-isp"));
        let mut lab = Lab {
            isp: Isp {
                ns: isp_ns,
                dir: dir.clone(),
                lease_secs: self.lease_secs,
                dns_records: self.dns_records.clone(),
                dhcp: Mutex::new(None),
                dns: Mutex::new(None),
            },
            prefix,
            tmp: Some(tmp),
            dir,
            script,
            cpes: Vec::new(),
            created: Vec::new(),
            torn_down: false,
        };
        lab.setup_isp()?;
        for i in 0..self.cpes {
            lab.add_cpe(i)?;
        }
        lab.isp.start_dns()?;
        lab.isp.start_dhcp()?;
        for cpe in &lab.cpes {
            cpe.start_udhcpc()?;
        }
        if self.wait_ready {
            lab.wait_ready(self.ready_timeout)?;
        }
        Ok(lab)
    }
}

/// A running lab. Dropping it (also during a panic) stops every process it started
/// and deletes its namespaces, `/etc/netns` entries and directory.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    script: PathBuf,
    isp: Isp,
    cpes: Vec<Cpe>,
    created: Vec<Netns>,
    torn_down: bool,
}

impl Lab {
    /// A builder with the defaults (1 CPE, 120 s leases, wait until ready).
    pub fn builder() -> LabBuilder {
        LabBuilder::default()
    }

    /// The unique prefix of every namespace (and the temp dir) of this lab, e.g. `nm4242x0`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The lab's private directory (configs, logs, spools, databases). Deleted on drop.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/logs/<name>.log`: where to send a spawned process's output.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.dir.join("logs").join(format!("{name}.log"))
    }

    /// The ISP.
    pub fn isp(&self) -> &Isp {
        &self.isp
    }

    /// CPE number `i` (0-based). Panics if out of range, like slice indexing.
    pub fn cpe(&self, i: usize) -> &Cpe {
        &self.cpes[i]
    }

    /// All CPEs.
    pub fn cpes(&self) -> &[Cpe] {
        &self.cpes
    }

    /// Every namespace this lab created.
    pub fn namespaces(&self) -> &[Netns] {
        &self.created
    }

    /// Waits (up to `timeout` in total) until every CPE holds a DHCP lease (lease file
    /// present, default route via the gateway), its LAN host can ping it, and the ISP's
    /// DNS answers. The error carries the relevant logs.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let remaining = || deadline.saturating_duration_since(Instant::now());
        wait_for("ISP DNS to answer", remaining(), POLL, || {
            let out = self
                .isp
                .ns
                .exec_unchecked(&["busybox", "nslookup", PROBE_NAME, &ISP_GATEWAY.to_string()])
                .map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() && text.contains(&PROBE_IP.to_string()) {
                Ok(())
            } else {
                Err(format!(
                    "nslookup: {} {}",
                    text.trim(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .map_err(|e| self.setup_error(e))?;
        for cpe in &self.cpes {
            let desc = format!(
                "{} to get a DHCP lease, a default route and LAN reachability",
                cpe.ns.name()
            );
            wait_for(&desc, remaining(), POLL, || cpe.readiness())
                .map_err(|e| self.setup_error(e))?;
        }
        Ok(())
    }

    /// Log tails of the lab's own processes (dnsmasq, udhcpc), for error messages.
    pub fn diagnostics(&self) -> String {
        let mut s = format!("lab {} in {}\n", self.prefix, self.dir.display());
        s.push_str(&format!(
            "--- isp dhcp (dnsmasq) ---\n{}\n",
            self.isp.dhcp_log_tail(30)
        ));
        s.push_str(&format!(
            "--- isp dns (dnsmasq) ---\n{}\n",
            self.isp.dns_log_tail(10)
        ));
        for cpe in &self.cpes {
            s.push_str(&format!(
                "--- {} udhcpc ---\n{}\n",
                cpe.ns.name(),
                cpe.udhcpc_log_tail(20)
            ));
        }
        s
    }

    fn setup_error(&self, e: LabError) -> LabError {
        LabError::Setup(format!("{e}\n{}", self.diagnostics()))
    }

    fn create_ns(&mut self, name: &str, resolv_conf: &str) -> Result<Netns> {
        // /etc/netns/<name>/resolv.conf first, so every `ip netns exec` sees it.
        let etc = Path::new(ETC_NETNS).join(name);
        std::fs::create_dir_all(&etc).map_err(io_ctx(format!("creating {}", etc.display())))?;
        let resolv = etc.join("resolv.conf");
        std::fs::write(&resolv, resolv_conf)
            .map_err(io_ctx(format!("writing {}", resolv.display())))?;
        // Registered before creation so a half-made namespace is still deleted.
        self.created.push(Netns::from_name(name));
        Netns::create(name)
    }

    fn setup_isp(&mut self) -> Result<()> {
        let name = self.isp.ns.name().to_owned();
        let ns = self.create_ns(&name, &format!("nameserver {ISP_GATEWAY}\n"))?;
        for ip in [PROBE_IP, PROBE2_IP, COLLECTOR_IP] {
            ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"])?;
        }
        ns.ip(&[
            "link",
            "add",
            ACCESS_BRIDGE,
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ns.ip(&[
            "addr",
            "add",
            &format!("{ISP_GATEWAY}/{ACCESS_PREFIX_LEN}"),
            "dev",
            ACCESS_BRIDGE,
        ])?;
        ns.ip(&["link", "set", ACCESS_BRIDGE, "up"])?;
        Ok(())
    }

    fn add_cpe(&mut self, i: usize) -> Result<()> {
        let cpe_name = format!("{}-c{i}", self.prefix);
        let lan_name = format!("{}-l{i}", self.prefix);
        let ns = self.create_ns(&cpe_name, "")?;
        let lan_ns = self.create_ns(&lan_name, &format!("nameserver {ISP_GATEWAY}\n"))?;
        let isp = self.isp.ns.clone();
        let octet =
            u8::try_from(i).map_err(|_| LabError::Setup(format!("CPE index {i} too large")))?;
        let isp_port = format!("cpe{i}");
        let wan_mac = format!("02:6e:6d:00:00:{octet:02x}");
        let lan_ip = Ipv4Addr::new(100, 100, octet, 1);
        let lan_host_ip = Ipv4Addr::new(100, 100, octet, 2);

        // Both ends are created directly inside their namespaces: nothing in the host ns.
        run_checked(Command::new("ip").args([
            "link",
            "add",
            &isp_port,
            "netns",
            isp.name(),
            "type",
            "veth",
            "peer",
            "name",
            WAN_IFACE,
            "netns",
            ns.name(),
        ]))?;
        isp.ip(&["link", "set", &isp_port, "master", ACCESS_BRIDGE])?;
        isp.ip(&["link", "set", &isp_port, "up"])?;
        ns.ip(&["link", "set", WAN_IFACE, "address", &wan_mac])?;
        ns.ip(&["link", "set", WAN_IFACE, "up"])?;

        run_checked(Command::new("ip").args([
            "link",
            "add",
            LAN_IFACE,
            "netns",
            ns.name(),
            "type",
            "veth",
            "peer",
            "name",
            LAN_HOST_IFACE,
            "netns",
            lan_ns.name(),
        ]))?;
        ns.ip(&["addr", "add", &format!("{lan_ip}/24"), "dev", LAN_IFACE])?;
        ns.ip(&["link", "set", LAN_IFACE, "up"])?;
        lan_ns.ip(&[
            "addr",
            "add",
            &format!("{lan_host_ip}/24"),
            "dev",
            LAN_HOST_IFACE,
        ])?;
        lan_ns.ip(&["link", "set", LAN_HOST_IFACE, "up"])?;
        lan_ns.ip(&["route", "add", "default", "via", &lan_ip.to_string()])?;

        ns.sysctl("net.ipv4.ip_forward", "1")?;
        ns.nft(&format!(
            "table ip nmlab_nat {{\n chain postrouting {{\n  type nat hook postrouting priority srcnat; policy accept;\n  oifname \"{WAN_IFACE}\" masquerade\n }}\n}}\n"
        ))?;

        let cpe_dir = self.dir.join(format!("cpe{i}"));
        std::fs::create_dir_all(&cpe_dir)
            .map_err(io_ctx(format!("creating {}", cpe_dir.display())))?;
        self.cpes.push(Cpe {
            index: i,
            resolv_conf: Path::new(ETC_NETNS).join(ns.name()).join("resolv.conf"),
            lease_file: cpe_dir.join("wan.lease"),
            ns,
            lan_ns,
            wan_mac,
            isp_port,
            lan_ip,
            lan_host_ip,
            isp_ns: isp,
            script: self.script.clone(),
            udhcpc_log: self.dir.join("logs").join(format!("cpe{i}-udhcpc.log")),
            udhcpc: Mutex::new(None),
        });
        Ok(())
    }

    /// Tears the lab down now (the same as dropping it, but reports problems).
    /// Idempotent.
    pub fn teardown(&mut self) -> Result<()> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        let mut problems = Vec::new();
        for cpe in &self.cpes {
            if let Some(mut p) = lock(&cpe.udhcpc).take()
                && let Err(e) = p.kill()
            {
                problems.push(e.to_string());
            }
        }
        for slot in [&self.isp.dhcp, &self.isp.dns] {
            if let Some(mut p) = lock(slot).take()
                && let Err(e) = p.kill()
            {
                problems.push(e.to_string());
            }
        }
        for ns in self.created.iter().rev() {
            if let Err(e) = remove_namespace(ns.name()) {
                problems.push(e.to_string());
            }
        }
        if let Some(tmp) = self.tmp.take() {
            if std::env::var_os(KEEP_DIR_ENV).is_some() {
                eprintln!(
                    "netmedic-lab: keeping {} ({KEEP_DIR_ENV} is set)",
                    tmp.keep().display()
                );
            } else if let Err(e) = tmp.close() {
                problems.push(format!("removing {}: {e}", self.dir.display()));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LabError::Setup(format!(
                "teardown of {}: {}",
                self.prefix,
                problems.join("; ")
            )))
        }
    }

    /// Removes what earlier labs left behind when their process died without tearing
    /// down (SIGKILL, abort): namespaces named `nm<pid>x<n>-*` whose `<pid>` is no longer
    /// alive (their processes are killed first), their `/etc/netns` entries and temp
    /// directories. Labs of live processes are never touched. Returns what was removed.
    pub fn sweep_stale() -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let out = run_checked(Command::new("ip").args(["netns", "list"]))?;
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if is_stale(name) {
                remove_namespace(name)?;
                removed.push(name.to_owned());
            }
        }
        for base in [PathBuf::from(ETC_NETNS), std::env::temp_dir()] {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if is_stale(&name) {
                    let path = entry.path();
                    match std::fs::remove_dir_all(&path) {
                        Ok(()) => removed.push(path.display().to_string()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(io_ctx(format!("removing {}", path.display()))(e)),
                    }
                }
            }
        }
        Ok(removed)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() && !self.torn_down {
            eprintln!(
                "netmedic-lab: tearing down after a panic; diagnostics:\n{}",
                self.diagnostics()
            );
        }
        if let Err(e) = self.teardown() {
            eprintln!("netmedic-lab: {e}");
        }
    }
}

/// The ISP namespace: bridge `access` with [`ISP_GATEWAY`], dnsmasq for DHCP and
/// (separately) DNS, and the "internet" addresses on `lo`.
#[derive(Debug)]
pub struct Isp {
    /// The ISP namespace (spawn the collector here).
    pub ns: Netns,
    dir: PathBuf,
    lease_secs: u32,
    dns_records: Vec<(String, Ipv4Addr)>,
    dhcp: Mutex<Option<LabProcess>>,
    dns: Mutex<Option<LabProcess>>,
}

impl Isp {
    /// Starts the DHCP server (dnsmasq, DHCP only) if it is not running. Leases survive
    /// a restart (lease file in the lab dir).
    pub fn start_dhcp(&self) -> Result<()> {
        let mut slot = lock(&self.dhcp);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        let range = format!(
            "--dhcp-range={DHCP_POOL_START},{DHCP_POOL_END},255.255.0.0,{}s",
            self.lease_secs
        );
        let leases = format!(
            "--dhcp-leasefile={}",
            self.dir.join("isp-dhcp.leases").display()
        );
        let router = format!("--dhcp-option=option:router,{ISP_GATEWAY}");
        let dns = format!("--dhcp-option=option:dns-server,{ISP_GATEWAY}");
        let iface = format!("--interface={ACCESS_BRIDGE}");
        let mut args = dnsmasq_common();
        args.extend([
            "--port=0",
            &iface,
            "--bind-interfaces",
            &range,
            &router,
            &dns,
            &leases,
            "--dhcp-authoritative",
            "--no-ping",
            "--log-dhcp",
        ]);
        *slot = Some(self.ns.spawn(
            "dnsmasq",
            &args,
            self.dir.join("logs").join("isp-dhcp.log"),
        )?);
        Ok(())
    }

    /// Stops the DHCP server (DNS keeps running). CPEs keep their leases until they expire.
    pub fn stop_dhcp(&self) -> Result<()> {
        if let Some(mut p) = lock(&self.dhcp).take() {
            p.kill()?;
        }
        Ok(())
    }

    /// Whether the DHCP server is running.
    pub fn dhcp_running(&self) -> bool {
        lock(&self.dhcp)
            .as_mut()
            .is_some_and(LabProcess::is_running)
    }

    /// Starts the DNS server (dnsmasq on [`ISP_GATEWAY`]:53, lab names only) if it is
    /// not running.
    pub fn start_dns(&self) -> Result<()> {
        let mut slot = lock(&self.dns);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        let listen = format!("--listen-address={ISP_GATEWAY}");
        let records: Vec<String> = self
            .dns_records
            .iter()
            .map(|(name, ip)| format!("--host-record={name},{ip}"))
            .collect();
        let mut args = dnsmasq_resolver(&listen);
        args.push("--local=/test/");
        args.extend(records.iter().map(String::as_str));
        *slot = Some(
            self.ns
                .spawn("dnsmasq", &args, self.dir.join("logs").join("isp-dns.log"))?,
        );
        Ok(())
    }

    /// Stops the DNS server (DHCP keeps running).
    pub fn stop_dns(&self) -> Result<()> {
        if let Some(mut p) = lock(&self.dns).take() {
            p.kill()?;
        }
        Ok(())
    }

    /// Whether the DNS server is running.
    pub fn dns_running(&self) -> bool {
        lock(&self.dns).as_mut().is_some_and(LabProcess::is_running)
    }

    /// The last `lines` lines of the DHCP server's log.
    pub fn dhcp_log_tail(&self, lines: usize) -> String {
        crate::process::tail_file(&self.dir.join("logs").join("isp-dhcp.log"), lines)
    }

    /// The last `lines` lines of the DNS server's log.
    pub fn dns_log_tail(&self, lines: usize) -> String {
        crate::process::tail_file(&self.dir.join("logs").join("isp-dns.log"), lines)
    }

    /// Drops `percent`% (0–100) of the packets the ISP receives from `cpe` (nftables
    /// `netdev` ingress hook on the ISP end of the CPE's veth, random per packet). This
    /// includes DHCP, DNS and ARP from that CPE; replies are not dropped, so a ping
    /// round trip loses about `percent`%. `0` removes the rule. Replaces any earlier setting.
    pub fn inject_loss_percent(&self, cpe: &Cpe, percent: u8) -> Result<()> {
        if percent > 100 {
            return Err(LabError::Setup(format!(
                "loss {percent}% is more than 100%"
            )));
        }
        let table = format!("nmlab_loss_{}", cpe.isp_port);
        let mut script = format!("table netdev {table} {{}}\ndelete table netdev {table}\n");
        if percent > 0 {
            // numgen yields 0..=99; "< 100" is rejected, so 100% is a plain drop.
            let rule = if percent == 100 {
                "drop".to_owned()
            } else {
                format!("numgen random mod 100 < {percent} drop")
            };
            script.push_str(&format!(
                "table netdev {table} {{\n chain ingress {{\n  type filter hook ingress device \"{}\" priority 0; policy accept;\n  {rule}\n }}\n}}\n",
                cpe.isp_port
            ));
        }
        self.ns.nft(&script)
    }

    /// Removes loss injected with [`inject_loss_percent`](Self::inject_loss_percent).
    pub fn clear_loss(&self, cpe: &Cpe) -> Result<()> {
        self.inject_loss_percent(cpe, 0)
    }

    /// Cuts the upstream for every CPE: the ISP drops all packets to [`UPSTREAM_RANGES`]
    /// (the "internet" hosts and [`COLLECTOR_IP`]) that do not come from the ISP itself.
    /// The gateway, DHCP and DNS keep working. Idempotent.
    pub fn cut_upstream(&self) -> Result<()> {
        self.ns.nft(&format!(
            "table inet nmlab_cut {{}}\ndelete table inet nmlab_cut\ntable inet nmlab_cut {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  iif \"lo\" accept\n  ip daddr {{ {} }} drop\n }}\n}}\n",
            UPSTREAM_RANGES.join(", ")
        ))
    }

    /// Undoes [`cut_upstream`](Self::cut_upstream). Idempotent.
    pub fn restore_upstream(&self) -> Result<()> {
        self.ns
            .nft("table inet nmlab_cut {}\ndelete table inet nmlab_cut\n")
    }
}

/// The arguments every lab dnsmasq starts with: no config file, foreground, log to stderr,
/// no pid file, running as root inside its namespace.
pub(crate) fn dnsmasq_common() -> Vec<&'static str> {
    vec![
        "--conf-file=/dev/null",
        "--keep-in-foreground",
        "--log-facility=-",
        "--pid-file=",
        "--user=root",
        "--group=root",
    ]
}

/// A lab resolver's arguments: [`dnsmasq_common`], port 53 on `listen` (`--listen-address=…`)
/// only, no upstream and no hosts file; the caller adds what it answers.
pub(crate) fn dnsmasq_resolver(listen: &str) -> Vec<&str> {
    let mut args = dnsmasq_common();
    args.extend([
        "--port=53",
        listen,
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
    ]);
    args
}

/// One customer router: namespace `<prefix>-c<i>` with `wan` (DHCP via udhcpc) and
/// `lan` (100.100.i.1/24, NAT to `wan`), and its LAN host in `<prefix>-l<i>`
/// (`eth0` 100.100.i.2/24).
#[derive(Debug)]
pub struct Cpe {
    /// 0-based index in the lab.
    pub index: usize,
    /// The CPE namespace (run the agent here).
    pub ns: Netns,
    /// The subscriber device's namespace behind the CPE.
    pub lan_ns: Netns,
    /// Host path of the lease file the udhcpc script writes (same path inside the ns).
    pub lease_file: PathBuf,
    /// Host path of the CPE's resolv.conf (`/etc/netns/<ns>/resolv.conf`); processes in
    /// the namespace started via `ip netns exec` (hence [`Netns::spawn`]) see it as
    /// `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// MAC of `wan` (`02:6e:6d:00:00:<i>`).
    pub wan_mac: String,
    /// Name of the ISP end of the WAN veth, in the ISP namespace (`cpe<i>`).
    pub isp_port: String,
    /// The CPE's LAN address (100.100.i.1).
    pub lan_ip: Ipv4Addr,
    /// The LAN host's address (100.100.i.2).
    pub lan_host_ip: Ipv4Addr,
    isp_ns: Netns,
    script: PathBuf,
    udhcpc_log: PathBuf,
    udhcpc: Mutex<Option<LabProcess>>,
}

impl Cpe {
    /// The current IPv4 address on `wan`, if any.
    pub fn wan_ip(&self) -> Result<Option<Ipv4Addr>> {
        Ok(self.ns.addresses(Some(WAN_IFACE))?.first().map(|a| a.addr))
    }

    /// The lease file's content, `None` if there is no lease file.
    pub fn lease(&self) -> Result<Option<Lease>> {
        Lease::read(&self.lease_file)
    }

    /// The CPE's IPv4 default route, if any.
    pub fn default_route(&self) -> Result<Option<Route>> {
        self.ns.default_route()
    }

    /// All IPv4 addresses in the CPE namespace.
    pub fn addresses(&self) -> Result<Vec<IfAddr>> {
        self.ns.addresses(None)
    }

    /// The CPE's resolv.conf as the namespace sees it.
    pub fn resolv_conf(&self) -> Result<String> {
        std::fs::read_to_string(&self.resolv_conf)
            .map_err(io_ctx(format!("reading {}", self.resolv_conf.display())))
    }

    /// One ping from the CPE namespace.
    pub fn ping(&self, addr: &str) -> Result<bool> {
        self.ns.ping(addr)
    }

    /// Fault: deletes the default route (fails if there is none). Note that a DHCP renew
    /// (at half the lease time) puts it back.
    pub fn delete_default_route(&self) -> Result<()> {
        self.ns.ip(&["route", "del", "default"]).map(drop)
    }

    /// Fault: removes every IPv4 address from `wan` (the default route goes with it).
    pub fn flush_wan_address(&self) -> Result<()> {
        self.ns
            .ip(&["-4", "addr", "flush", "dev", WAN_IFACE])
            .map(drop)
    }

    /// Fault: sets the MTU of `wan`.
    pub fn set_wan_mtu(&self, mtu: u32) -> Result<()> {
        self.ns
            .ip(&["link", "set", WAN_IFACE, "mtu", &mtu.to_string()])
            .map(drop)
    }

    /// The MTU of `wan`.
    pub fn wan_mtu(&self) -> Result<u32> {
        self.ns.mtu(WAN_IFACE)
    }

    /// Fault: takes the ISP end of the WAN veth down, so `wan` loses carrier.
    pub fn drop_wan_carrier(&self) -> Result<()> {
        self.isp_ns
            .ip(&["link", "set", &self.isp_port, "down"])
            .map(drop)
    }

    /// Undoes [`drop_wan_carrier`](Self::drop_wan_carrier).
    pub fn restore_wan_carrier(&self) -> Result<()> {
        self.isp_ns
            .ip(&["link", "set", &self.isp_port, "up"])
            .map(drop)
    }

    /// Whether `wan` has carrier.
    pub fn wan_has_carrier(&self) -> Result<bool> {
        self.ns.has_carrier(WAN_IFACE)
    }

    /// Fault: rewrites the CPE's resolv.conf to `nameserver <ip>` (in place, so processes
    /// already running in the namespace see the change). udhcpc rewrites it on renew.
    pub fn point_resolv_conf_at(&self, ip: Ipv4Addr) -> Result<()> {
        self.write_resolv_conf(&format!(
            "# netmedic lab fault injection\nnameserver {ip}\n"
        ))
    }

    /// Overwrites the CPE's resolv.conf with `content`, in place. (Never replace the
    /// file by renaming: running processes keep seeing the old inode through their bind
    /// mount.)
    pub fn write_resolv_conf(&self, content: &str) -> Result<()> {
        let ctx = || format!("writing {}", self.resolv_conf.display());
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&self.resolv_conf)
            .map_err(io_ctx(ctx()))?;
        f.write_all(content.as_bytes()).map_err(io_ctx(ctx()))
    }

    /// Starts udhcpc on `wan` if it is not running.
    pub fn start_udhcpc(&self) -> Result<()> {
        let mut slot = lock(&self.udhcpc);
        if slot.as_mut().is_some_and(LabProcess::is_running) {
            return Ok(());
        }
        let script = self.script.to_string_lossy().into_owned();
        let lease_file = self.lease_file.to_string_lossy().into_owned();
        let hostname = format!("hostname:cpe{}", self.index);
        let args = [
            "-f", // foreground
            "-i", WAN_IFACE, "-s", &script, "-t", "3", // discover attempts per round
            "-T", "1", // seconds between discovers
            "-A", "2", // seconds to wait after a failed round
            "-x", &hostname,
        ];
        let env = [
            ("NETMEDIC_LEASE_FILE", lease_file.as_str()),
            ("NETMEDIC_RESOLV_CONF", "/etc/resolv.conf"),
        ];
        *slot = Some(
            self.ns
                .spawn_with_env("udhcpc", &args, &env, &self.udhcpc_log)?,
        );
        Ok(())
    }

    /// Stops udhcpc (without releasing the lease; address and route stay).
    pub fn stop_udhcpc(&self) -> Result<()> {
        if let Some(mut p) = lock(&self.udhcpc).take() {
            p.kill()?;
        }
        Ok(())
    }

    /// Asks udhcpc to renew the lease now (SIGUSR1); the script then rewrites address,
    /// default route, resolv.conf and lease file. Wait for the effect with [`wait_for`].
    pub fn renew_lease(&self) -> Result<()> {
        self.signal_udhcpc(Signal::SIGUSR1)
    }

    /// Asks udhcpc to release the lease (SIGUSR2): the script's `deconfig` flushes the
    /// address and removes the lease file. udhcpc then idles until [`renew_lease`](Self::renew_lease).
    pub fn release_lease(&self) -> Result<()> {
        self.signal_udhcpc(Signal::SIGUSR2)
    }

    fn signal_udhcpc(&self, sig: Signal) -> Result<()> {
        let mut slot = lock(&self.udhcpc);
        if let Some(p) = slot.as_mut()
            && p.is_running()
        {
            return p.signal(sig);
        }
        Err(LabError::Setup(format!(
            "udhcpc is not running in {}",
            self.ns.name()
        )))
    }

    /// Whether udhcpc is running.
    pub fn udhcpc_running(&self) -> bool {
        lock(&self.udhcpc)
            .as_mut()
            .is_some_and(LabProcess::is_running)
    }

    /// The last `lines` lines of udhcpc's log (including the script's messages).
    pub fn udhcpc_log_tail(&self, lines: usize) -> String {
        crate::process::tail_file(&self.udhcpc_log, lines)
    }

    /// `Ok(lease)` once the CPE is ready, otherwise what is missing.
    fn readiness(&self) -> std::result::Result<Lease, String> {
        let lease = match self.lease() {
            Ok(Some(l)) => l,
            Ok(None) => return Err("no lease file yet".into()),
            Err(e) => return Err(format!("lease file: {e}")),
        };
        match self.default_route() {
            Ok(Some(r)) if r.gateway == Some(ISP_GATEWAY) => {}
            Ok(r) => return Err(format!("lease {} but default route is {r:?}", lease.ip)),
            Err(e) => return Err(e.to_string()),
        }
        match self.lan_ns.ping(&self.lan_ip.to_string()) {
            Ok(true) => Ok(lease),
            Ok(false) => Err(format!(
                "lease {} and route ok, LAN host cannot ping {}",
                lease.ip, self.lan_ip
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The pid encoded in a lab name `nm<pid>x<n>[-...]`, if `name` is one.
pub(crate) fn owner_pid(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(NAME_PREFIX)?;
    let (pid, rest) = rest.split_once('x')?;
    let counter = rest.split('-').next()?;
    if pid.is_empty() || counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn pid_alive(pid: i32) -> bool {
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

fn is_stale(name: &str) -> bool {
    owner_pid(name).is_some_and(|pid| pid > 0 && !pid_alive(pid))
}

/// Kills every process in the namespace (SIGTERM, then SIGKILL), deletes it and its
/// `/etc/netns` entry. Missing pieces are fine.
fn remove_namespace(name: &str) -> Result<()> {
    let ns = Netns::from_name(name);
    if ns.exists() {
        let me = i32::try_from(std::process::id()).unwrap_or(0);
        let others = || -> Vec<i32> {
            ns.pids()
                .unwrap_or_default()
                .into_iter()
                .filter(|&p| p != me)
                .collect()
        };
        let pids = others();
        if !pids.is_empty() {
            for &p in &pids {
                let _ = kill(Pid::from_raw(p), Signal::SIGTERM);
            }
            let gone = wait_for(
                &format!("processes in {name} to exit"),
                Duration::from_secs(2),
                Duration::from_millis(20),
                || {
                    let left = others();
                    if left.is_empty() {
                        Ok(())
                    } else {
                        Err(format!("{left:?}"))
                    }
                },
            );
            if gone.is_err() {
                for p in others() {
                    let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
                }
            }
        }
        if let Err(e) = run_checked(Command::new("ip").args(["netns", "del", name]))
            && ns.exists()
        {
            return Err(e);
        }
    }
    let etc = Path::new(ETC_NETNS).join(name);
    match std::fs::remove_dir_all(&etc) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_ctx(format!("removing {}", etc.display()))(e)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn owner_pid_parses_lab_names_only() {
        assert_eq!(owner_pid("nm4242x0-isp"), Some(4242));
        assert_eq!(owner_pid("nm4242x17-c3"), Some(4242));
        assert_eq!(owner_pid("nm4242x1-abcDEF"), Some(4242));
        assert_eq!(owner_pid("nm4242x1"), Some(4242));
        assert_eq!(owner_pid("nmx1-isp"), None);
        assert_eq!(owner_pid("nm12ax1-isp"), None);
        assert_eq!(owner_pid("nm12x-isp"), None);
        assert_eq!(owner_pid("netns-foo"), None);
    }
}
