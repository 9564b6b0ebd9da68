//! The VM lab: a router-like guest (Debian's kernel, a busybox initramfs, the statically linked
//! agent, two `mac80211_hwsim` radios) run by qemu, with its WAN on a tap device in the
//! namespace lab's ISP namespace. It covers what namespaces cannot: Wi-Fi, a real reboot, the
//! guest's own clock, and an agent under busybox init without systemd.
//!
//! ```text
//!  [<p>-isp] bridge "access" ── tap vmwan<n> (created by qemu, which runs in this namespace)
//!                │ virtio-net
//!  guest  wan (udhcpc) ─ agent (respawned by busybox init, state on /dev/vda = /data)
//!         br-lan 100.100.0.1/24 ── wlan0 (hostapd, WPA2-PSK "netmedic-lab")
//!                                    ~ mac80211_hwsim ~
//!         [guest netns "sta"]        wlan1 (wpa_supplicant) 100.100.0.50/24
//! ```
//!
//! Everything the guest sends leaves it only through the tap, inside the lab's namespace. The
//! harness talks to the guest over a virtio-serial control port ([`ctl`]); the serial console is
//! appended to `target/artifacts/vm/<name>-console.log` (or `$NETMEDIC_ARTIFACTS_DIR/vm/`),
//! across reboots and power cuts. Dropping a [`Vm`] kills qemu (its tap goes with it).

pub mod ctl;
pub mod image;
pub mod qemu;

pub use ctl::GuestOutput;
pub use qemu::{ACCEL_ENV, Accel};

use crate::{LabError, LabProcess, Netns, Result, wait_for};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where test artifacts go when set (the console log lands in its `vm/` subdirectory).
pub const ARTIFACTS_DIR_ENV: &str = "NETMEDIC_ARTIFACTS_DIR";
/// The bridge in the ISP namespace the guest's WAN tap joins.
pub const ISP_BRIDGE: &str = crate::ACCESS_BRIDGE;
/// The guest's LAN bridge address.
pub const GUEST_LAN_IP: &str = "100.100.0.1";
/// The Wi-Fi client's address (in the guest's `sta` namespace).
pub const STA_IP: &str = "100.100.0.50";
/// Default time a guest command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

static VM_COUNTER: AtomicU32 = AtomicU32::new(0);

/// How a [`Vm`] is built.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// Names the artifacts (`<name>-console.log`).
    pub name: String,
    pub memory_mib: u32,
    pub disk_mib: u64,
    /// From qemu's start to the guest's control loop answering (TCG on a busy machine is slow).
    pub boot_timeout: Duration,
}

impl Default for VmOptions {
    fn default() -> Self {
        Self {
            name: "vm".into(),
            memory_mib: 512,
            disk_mib: 64,
            boot_timeout: Duration::from_secs(300),
        }
    }
}

/// A guest CPE run by qemu inside a lab namespace.
#[derive(Debug)]
pub struct Vm {
    ns: Netns,
    opts: VmOptions,
    dir: tempfile::TempDir,
    machine: qemu::Machine,
    tap: String,
    qemu: Option<LabProcess>,
    ctl: Option<ctl::Ctl>,
    boot_id: String,
    boot_times: Vec<Duration>,
    artifacts: PathBuf,
}

/// The artifacts directory for VM tests (created).
pub fn artifacts_dir() -> Result<PathBuf> {
    let base = match std::env::var_os(ARTIFACTS_DIR_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => image::target_dir().join("artifacts"),
    };
    let dir = base.join("vm");
    std::fs::create_dir_all(&dir)
        .map_err(|e| LabError::Setup(format!("creating {}: {e}", dir.display())))?;
    Ok(dir)
}

/// Registers `agent_id` with the stack's collector (`netmedic-collector device add`) and returns
/// the agent's token, for `/data/etc/agent.token` in the guest.
pub fn device_token(stack: &crate::stack::Stack<'_>, agent_id: &str) -> Result<Vec<u8>> {
    let bin = crate::stack::bin_path("netmedic-collector")?;
    let out = std::process::Command::new(&bin)
        .args(["device", "add", agent_id, "--config"])
        .arg(&stack.collector_config)
        .output()
        .map_err(|e| LabError::Setup(format!("running {}: {e}", bin.display())))?;
    if !out.status.success() {
        return Err(LabError::Setup(format!(
            "device add {agent_id}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(out.stdout)
}

/// The `[agent]`, `[collector]` and `[wan]` tables of the guest agent's config: state on the
/// state disk, the namespace lab's collector, the WAN that `rcS` brings up with udhcpc.
pub fn agent_config_base(agent_id: &str) -> String {
    format!(
        r#"# written by the netmedic VM lab
[agent]
id = "{agent_id}"
state_dir = "/data/netmedic"
mode = "enforce"
firmware_version = "vm-lab"

[collector]
url = "http://{}:{}"
token_file = "/data/etc/agent.token"
request_timeout_secs = 5
max_backoff_secs = 2
start_delay_max_secs = 0

[wan]
interface = "wan"
lease_file = "/run/udhcpc.lease"
dhcp_pidfile = "/run/udhcpc.pid"
"#,
        crate::COLLECTOR_IP,
        crate::stack::COLLECTOR_PORT
    )
}

impl Vm {
    /// [`Vm::boot`] with the default options but the artifacts' `name`.
    pub fn boot_named(ns: &Netns, name: &str) -> Result<Self> {
        Self::boot(
            ns,
            VmOptions {
                name: name.into(),
                ..VmOptions::default()
            },
        )
    }

    /// Builds (or takes from the cache) the image, makes a fresh state disk, boots the guest
    /// with its WAN in `ns` (joined to the bridge [`ISP_BRIDGE`]) and waits until its control
    /// loop answers.
    pub fn boot(ns: &Netns, opts: VmOptions) -> Result<Self> {
        let (kver, bzimage) = image::kernel()?;
        let kernel = image::vmlinux(&kver, &bzimage)?;
        let agent = image::static_agent()?;
        let initramfs = image::initramfs(&kver, &agent)?;
        let accel = qemu::choose_accel(&kernel, &initramfs, &image::cache_dir()?)?;
        let n = VM_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = tempfile::Builder::new()
            // Named like a lab (`nm<pid>x<n>-`): if this process dies without dropping the
            // Vm, the next lab's sweep removes the directory (and qemu, with the namespace).
            .prefix(&format!(
                "{}{}x{n}-vm-",
                crate::NAME_PREFIX,
                std::process::id()
            ))
            .tempdir()
            .map_err(|e| LabError::Setup(format!("creating the VM directory: {e}")))?;
        let disk = dir.path().join("data.img");
        image::make_disk(&disk, opts.disk_mib)?;
        let artifacts = artifacts_dir()?;
        let console_log = artifacts.join(format!("{}-console.log", opts.name));
        std::fs::write(&console_log, b"")
            .map_err(|e| LabError::Setup(format!("creating {}: {e}", console_log.display())))?;
        let tap = format!("vmwan{n}");
        let machine = qemu::Machine {
            accel,
            kernel,
            initramfs,
            memory_mib: opts.memory_mib,
            disk: Some(disk),
            console_log,
            ctl_socket: Some(dir.path().join("ctl.sock")),
            wan: Some((tap.clone(), format!("02:6e:6d:00:01:{:02x}", n % 256))),
        };
        let mut vm = Self {
            ns: ns.clone(),
            opts,
            dir,
            machine,
            tap,
            qemu: None,
            ctl: None,
            boot_id: String::new(),
            boot_times: Vec::new(),
            artifacts,
        };
        vm.start()?;
        Ok(vm)
    }

    /// Starts qemu (after [`power_cut`](Self::power_cut)) and waits for the guest.
    pub fn start(&mut self) -> Result<()> {
        if self.qemu.is_some() {
            return Err(LabError::Setup("the VM is already running".into()));
        }
        let started = Instant::now();
        if let Some(sock) = &self.machine.ctl_socket {
            let _ = std::fs::remove_file(sock);
        }
        let args = self.machine.args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let log = self.dir.path().join("qemu.log");
        let mut qemu = self.ns.spawn("qemu-system-x86_64", &args, &log)?;
        qemu.set_grace(Duration::from_secs(2));
        let ns = self.ns.clone();
        let tap = self.tap.clone();
        let tapped = wait_for(
            "qemu creates the WAN tap",
            Duration::from_secs(30),
            Duration::from_millis(50),
            || {
                if !qemu.is_running() {
                    return Err(format!("qemu exited: {}", qemu.log_tail(10)));
                }
                ns.ip(&["link", "set", &tap, "master", ISP_BRIDGE, "up"])
                    .map(drop)
                    .map_err(|e| e.to_string())
            },
        );
        if let Err(e) = tapped {
            let _ = qemu.kill();
            return Err(e);
        }
        let sock = self
            .machine
            .ctl_socket
            .clone()
            .ok_or_else(|| LabError::Setup("no control socket".into()))?;
        let mut ctl = match ctl::Ctl::connect(&sock, Duration::from_secs(30)) {
            Ok(c) => c,
            Err(e) => {
                let _ = qemu.kill();
                return Err(e);
            }
        };
        self.qemu = Some(qemu);
        let boot_id = ctl.wait_ready(None, self.opts.boot_timeout).map_err(|e| {
            LabError::Setup(format!(
                "the guest did not boot: {e}; console:\n{}",
                self.console_tail(30)
            ))
        })?;
        self.ctl = Some(ctl);
        self.boot_id = boot_id;
        self.boot_times.push(started.elapsed());
        Ok(())
    }

    /// The accelerator qemu uses.
    pub fn accel(&self) -> Accel {
        self.machine.accel
    }

    /// The initramfs booted (for its size).
    pub fn initramfs(&self) -> &Path {
        &self.machine.initramfs
    }

    /// Host time from each qemu start or reboot to the guest's control loop answering.
    pub fn boot_times(&self) -> &[Duration] {
        &self.boot_times
    }

    /// The guest's current boot id (`/proc/sys/kernel/random/boot_id`).
    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// The console log (appended across boots).
    pub fn console_log(&self) -> &Path {
        &self.machine.console_log
    }

    /// The last `lines` lines of the console.
    pub fn console_tail(&self, lines: usize) -> String {
        crate::tail_file(&self.machine.console_log, lines)
    }

    /// The tap device's name (in the lab namespace).
    pub fn tap(&self) -> &str {
        &self.tap
    }

    /// qemu's pid while it runs.
    pub fn qemu_pid(&self) -> Option<u32> {
        self.qemu.as_ref().map(LabProcess::pid)
    }

    fn ctl(&mut self) -> Result<&mut ctl::Ctl> {
        self.ctl
            .as_mut()
            .ok_or_else(|| LabError::Setup("the VM is not running".into()))
    }

    /// Runs a shell script in the guest (busybox sh) with a timeout.
    pub fn run_timeout(&mut self, script: &str, timeout: Duration) -> Result<GuestOutput> {
        self.ctl()?.run(script, timeout)
    }

    /// Runs a shell script in the guest and returns its output (and exit code).
    pub fn run(&mut self, script: &str) -> Result<GuestOutput> {
        self.run_timeout(script, COMMAND_TIMEOUT)
    }

    /// Runs a shell script in the guest; a non-zero exit is an error.
    pub fn sh(&mut self, script: &str) -> Result<String> {
        let out = self.run(script)?;
        if out.code != 0 {
            return Err(LabError::Command {
                cmd: format!("(guest) {script}"),
                status: format!("exit status: {}", out.code),
                stderr: out.output.trim().to_owned(),
            });
        }
        Ok(out.output)
    }

    /// Writes `data` to `path` in the guest (atomically: temp file, fsync, rename).
    pub fn copy_in(&mut self, path: &str, data: &[u8], mode: u32) -> Result<()> {
        let b64 = ctl::base64_encode(data);
        let mut body = String::with_capacity(b64.len() + b64.len() / 76 + 1);
        for chunk in b64.as_bytes().chunks(76) {
            body.push_str(&String::from_utf8_lossy(chunk));
            body.push('\n');
        }
        let script = format!(
            "set -e\nmkdir -p \"$(dirname '{path}')\"\nbase64 -d > '{path}.tmp' <<'NETMEDIC_EOF'\n{body}NETMEDIC_EOF\nchmod {mode:o} '{path}.tmp'\nsync '{path}.tmp'\nmv -f '{path}.tmp' '{path}'\nsync\n"
        );
        self.sh(&script).map(drop)
    }

    /// The contents of a guest file.
    pub fn read_file(&mut self, path: &str) -> Result<String> {
        self.sh(&format!("cat '{path}'"))
    }

    /// Waits until `probe` (run against the guest) succeeds; see [`crate::wait_for`].
    pub fn wait<T>(
        &mut self,
        desc: &str,
        timeout: Duration,
        mut probe: impl FnMut(&mut Self) -> std::result::Result<T, String>,
    ) -> Result<T> {
        wait_for(desc, timeout, Duration::from_millis(500), || probe(self))
    }

    /// Fault: deletes the guest's IPv4 default route.
    pub fn delete_default_route(&mut self) -> Result<()> {
        self.sh("ip route del default").map(drop)
    }

    /// The guest's IPv4 default route (`default via ...`), if it has one.
    pub fn default_route(&mut self) -> Result<Option<String>> {
        let out = self.run_timeout("ip route show default", Duration::from_secs(10))?;
        Ok(out
            .output
            .lines()
            .find(|l| l.starts_with("default via"))
            .map(|l| l.trim().to_owned()))
    }

    /// Fault: moves the guest's wall clock by `secs` (CLOCK_REALTIME only; boot time and
    /// monotonic clocks do not move, as on a router whose NTP or RTC jumps).
    pub fn skew_clock(&mut self, secs: i64) -> Result<()> {
        self.sh(&format!(
            "date -u -s \"@$(( $(date +%s) + ({secs}) ))\" >/dev/null"
        ))
        .map(drop)
    }

    /// Sets the guest's wall clock to the host's.
    pub fn sync_clock_to_host(&mut self) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.sh(&format!("date -u -s @{now} >/dev/null")).map(drop)
    }

    /// Power cut: qemu is killed (SIGKILL) — whatever the guest had not flushed is lost.
    pub fn power_cut(&mut self) -> Result<()> {
        self.ctl = None;
        if let Some(mut q) = self.qemu.take() {
            q.signal(nix::sys::signal::Signal::SIGKILL)?;
            if q.wait_exit(Duration::from_secs(10)).is_none() {
                return Err(LabError::Setup(format!(
                    "qemu (pid {}) survived SIGKILL",
                    q.pid()
                )));
            }
        }
        Ok(())
    }

    /// Waits for the guest to come back with a new boot id (after a reboot it started itself
    /// or [`reboot`](Self::reboot)); returns the new id.
    pub fn wait_rebooted(&mut self, timeout: Duration) -> Result<String> {
        let started = Instant::now();
        let old = self.boot_id.clone();
        let id = self.ctl()?.wait_ready(Some(&old), timeout).map_err(|e| {
            LabError::Setup(format!(
                "the guest did not come back after a reboot: {e}; console:\n{}",
                self.console_tail(30)
            ))
        })?;
        self.boot_times.push(started.elapsed());
        self.boot_id = id.clone();
        Ok(id)
    }

    /// Reboots the guest with busybox `reboot` (init's shutdown, then a reset) and waits for it.
    pub fn reboot(&mut self) -> Result<String> {
        // The answer may or may not make it out before the guest goes down.
        let _ = self.run_timeout("reboot", Duration::from_secs(10));
        self.wait_rebooted(self.opts.boot_timeout)
    }

    /// The boot timeout the VM was built with.
    pub fn boot_timeout(&self) -> Duration {
        self.opts.boot_timeout
    }

    /// Copies a guest file into the artifacts directory as `<name>-<suffix>` (best effort).
    pub fn save_artifact(&mut self, guest_path: &str, suffix: &str) -> Option<PathBuf> {
        let text = self
            .run_timeout(&format!("cat '{guest_path}'"), Duration::from_secs(20))
            .ok()?;
        let path = self.artifacts.join(format!("{}-{suffix}", self.opts.name));
        std::fs::write(&path, text.output).ok()?;
        Some(path)
    }

    /// Stops the guest: qemu is killed; the tap disappears with it.
    pub fn shutdown(&mut self) -> Result<()> {
        self.ctl = None;
        if let Some(mut q) = self.qemu.take() {
            q.kill()?;
        }
        Ok(())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "netmedic-lab: VM torn down after a panic; console {}:\n{}",
                self.machine.console_log.display(),
                self.console_tail(40)
            );
        }
        if let Err(e) = self.shutdown() {
            eprintln!("netmedic-lab: stopping the VM: {e}");
        }
    }
}
