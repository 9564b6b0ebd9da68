//! Launching qemu: the command line, and the choice between KVM and TCG.
//!
//! KVM is used only when it was seen to work: `/dev/kvm` must open read-write *and* a probe
//! boot must reach the guest's init within [`KVM_PROBE_TIMEOUT`]. On the machines this lab
//! was built on `/dev/kvm` exists but guests hang (silent with SeaBIOS or the PVH entry, right
//! after "Probing EDD" with `-M microvm`), so TCG (software emulation) is the normal case. The
//! verdict is cached in `target/vm-cache/accel-<qemu and kernel>` so only the first run on a
//! machine pays for the probe. `NETMEDIC_VM_ACCEL=kvm|tcg` forces a choice.

use crate::{LabError, Result, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Forces the accelerator (`kvm` or `tcg`).
pub const ACCEL_ENV: &str = "NETMEDIC_VM_ACCEL";
/// How long a KVM probe boot may take to reach the guest's init.
pub const KVM_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// How qemu runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation (`-accel kvm -cpu host`).
    Kvm,
    /// Software emulation (`-accel tcg -cpu max`).
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    fn args(self) -> [&'static str; 4] {
        match self {
            Accel::Kvm => ["-accel", "kvm", "-cpu", "host"],
            Accel::Tcg => ["-accel", "tcg", "-cpu", "max"],
        }
    }
}

/// What qemu boots.
#[derive(Debug, Clone)]
pub struct Machine {
    pub accel: Accel,
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub memory_mib: u32,
    /// The state disk (raw ext4 image); none for a probe.
    pub disk: Option<PathBuf>,
    /// Appended to on every boot (the serial console).
    pub console_log: PathBuf,
    /// The control port's unix socket; none for a probe.
    pub ctl_socket: Option<PathBuf>,
    /// The WAN tap device's name and the NIC's MAC; none for a probe.
    pub wan: Option<(String, String)>,
}

impl Machine {
    /// qemu's arguments (after the program name).
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |items: &[&str]| a.extend(items.iter().map(|s| (*s).to_owned()));
        push(&self.accel.args());
        push(&[
            "-M",
            "pc",
            "-smp",
            "1",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-rtc",
            "base=utc,clock=host",
        ]);
        push(&["-m", &self.memory_mib.to_string()]);
        push(&["-kernel", &self.kernel.display().to_string()]);
        push(&["-initrd", &self.initramfs.display().to_string()]);
        push(&[
            "-append",
            // tsc=unstable: under TCG the TSC is no clock (it jumped by a minute during boot).
            "console=ttyS0 panic=-1 loglevel=5 tsc=unstable",
        ]);
        push(&[
            "-chardev",
            &format!(
                "file,id=console,path={},append=on",
                self.console_log.display()
            ),
            "-serial",
            "chardev:console",
        ]);
        if let Some(disk) = &self.disk {
            // writeback: a guest fsync becomes a flush to the host file; a killed qemu (power
            // cut) loses what the guest had not flushed, like a router losing power.
            push(&[
                "-drive",
                &format!(
                    "file={},format=raw,if=virtio,cache=writeback",
                    disk.display()
                ),
            ]);
        }
        if let Some(sock) = &self.ctl_socket {
            push(&[
                "-device",
                "virtio-serial-pci",
                "-chardev",
                &format!("socket,id=ctl,path={},server=on,wait=off", sock.display()),
                "-device",
                "virtserialport,chardev=ctl,name=netmedic.ctl",
            ]);
        }
        if let Some((tap, mac)) = &self.wan {
            push(&[
                "-netdev",
                &format!("tap,id=wan,ifname={tap},script=no,downscript=no"),
                "-device",
                &format!("virtio-net-pci,netdev=wan,mac={mac}"),
            ]);
        }
        a
    }
}

/// The accelerator to use: forced by [`ACCEL_ENV`], else the cached verdict, else probed.
pub fn choose_accel(kernel: &Path, initramfs: &Path, cache: &Path) -> Result<Accel> {
    match std::env::var(ACCEL_ENV).as_deref() {
        Ok("kvm") => return Ok(Accel::Kvm),
        Ok("tcg") => return Ok(Accel::Tcg),
        Ok(other) if !other.is_empty() => {
            return Err(LabError::Setup(format!(
                "{ACCEL_ENV}={other:?}: expected kvm or tcg"
            )));
        }
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return Ok(Accel::Tcg);
    }
    let version = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let tag: String = format!(
        "{}-{}",
        version
            .split_whitespace()
            .nth(3)
            .unwrap_or("unknown")
            .replace(|c: char| !c.is_ascii_alphanumeric() && c != '.', "_"),
        kernel
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let verdict = cache.join(format!("accel-{tag}"));
    if let Ok(text) = std::fs::read_to_string(&verdict) {
        match text.trim() {
            "kvm" => return Ok(Accel::Kvm),
            "tcg" => return Ok(Accel::Tcg),
            _ => {}
        }
    }
    let accel = if probe_kvm(kernel, initramfs, cache)? {
        Accel::Kvm
    } else {
        Accel::Tcg
    };
    std::fs::write(&verdict, accel.name())
        .map_err(|e| LabError::Setup(format!("writing {}: {e}", verdict.display())))?;
    Ok(accel)
}

/// Boots the guest with KVM, without disk or network, and reports whether its init ran.
fn probe_kvm(kernel: &Path, initramfs: &Path, cache: &Path) -> Result<bool> {
    let console_log = cache.join("kvm-probe-console.log");
    let _ = std::fs::remove_file(&console_log);
    let m = Machine {
        accel: Accel::Kvm,
        kernel: kernel.to_path_buf(),
        initramfs: initramfs.to_path_buf(),
        memory_mib: 512,
        disk: None,
        console_log: console_log.clone(),
        ctl_socket: None,
        wan: None,
    };
    let mut child: Child = Command::new("qemu-system-x86_64")
        .args(m.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| LabError::Setup(format!("starting qemu-system-x86_64: {e}")))?;
    let ok = wait_for(
        "a KVM guest reaches its init",
        KVM_PROBE_TIMEOUT,
        Duration::from_millis(200),
        || {
            let text = std::fs::read_to_string(&console_log).unwrap_or_default();
            if text.contains("netmedic-vm: boot") {
                Ok(())
            } else if let Ok(Some(status)) = child.try_wait() {
                Err(format!("qemu exited: {status}"))
            } else {
                Err("no init yet".to_owned())
            }
        },
    )
    .is_ok();
    let _ = child.kill();
    let _ = child.wait();
    eprintln!(
        "netmedic-lab: KVM probe: {}",
        if ok {
            "the guest booted, using KVM"
        } else {
            "the guest did not reach its init, using TCG"
        }
    );
    Ok(ok)
}
