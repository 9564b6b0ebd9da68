//! The guest's parts: Debian's kernel (`linux-image-amd64`), the initramfs built by
//! `tests/lab/vm/build-initramfs.sh` (cached under `target/vm-cache/`, keyed by a hash of every
//! input), the statically linked agent, and the ext4 state disk.

use crate::{LabError, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Overrides the agent binary put into the guest (must be statically linked).
pub const AGENT_ENV: &str = "NETMEDIC_VM_AGENT";
/// The target triple the static agent is built for (explicit, so that RUSTFLAGS do not reach
/// build scripts and proc-macros).
pub const AGENT_TARGET: &str = "x86_64-unknown-linux-gnu";
/// How to build the static agent (what `scripts/test.sh` runs).
pub const AGENT_BUILD_HINT: &str = "RUSTFLAGS='-C target-feature=+crt-static' cargo build -p netmedic-agent --target x86_64-unknown-linux-gnu";

/// The directory of the guest's scripts and configs (`tests/lab/vm`).
pub fn lab_vm_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("lab").join("vm")
}

/// The cargo target directory: `$CARGO_TARGET_DIR`, else found from the running test
/// executable (`<target>/debug/deps/<test>`), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(d);
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(t) = exe.ancestors().find(|a| a.join("CACHEDIR.TAG").is_file())
    {
        return t.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
}

/// `target/vm-cache`, created if missing.
pub fn cache_dir() -> Result<PathBuf> {
    let d = target_dir().join("vm-cache");
    std::fs::create_dir_all(&d).map_err(|e| setup(format!("creating {}: {e}", d.display())))?;
    Ok(d)
}

fn setup(msg: String) -> LabError {
    LabError::Setup(format!("VM image: {msg}"))
}

/// The newest Debian kernel installed: `(version, /boot/vmlinuz-<version>)`, with its modules
/// present under `/lib/modules/<version>`.
pub fn kernel() -> Result<(String, PathBuf)> {
    let mut found: Vec<String> = std::fs::read_dir("/boot")
        .map_err(|e| setup(format!("reading /boot: {e}")))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_prefix("vmlinuz-").map(str::to_owned)
        })
        .filter(|v| {
            Path::new("/lib/modules")
                .join(v)
                .join("modules.dep")
                .is_file()
        })
        .collect();
    found.sort_by_key(|a| version_key(a));
    let v = found.pop().ok_or_else(|| {
        setup("no /boot/vmlinuz-* with /lib/modules/<version>: run scripts/setup.sh (linux-image-amd64)".into())
    })?;
    let path = Path::new("/boot").join(format!("vmlinuz-{v}"));
    Ok((v, path))
}

fn version_key(v: &str) -> Vec<u64> {
    v.split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The statically linked agent for the guest: `$NETMEDIC_VM_AGENT`, else
/// `target/x86_64-unknown-linux-gnu/debug/netmedic-agent`. Refuses a dynamically linked one.
pub fn static_agent() -> Result<PathBuf> {
    let path = match std::env::var_os(AGENT_ENV) {
        Some(p) => PathBuf::from(p),
        None => target_dir()
            .join(AGENT_TARGET)
            .join("debug")
            .join("netmedic-agent"),
    };
    let data = std::fs::read(&path).map_err(|e| {
        setup(format!(
            "static agent {}: {e}; build it with: {AGENT_BUILD_HINT}",
            path.display()
        ))
    })?;
    if elf_interpreter(&data)? {
        return Err(setup(format!(
            "{} is dynamically linked (has PT_INTERP); build it with: {AGENT_BUILD_HINT}",
            path.display()
        )));
    }
    Ok(path)
}

/// Whether a 64-bit little-endian ELF file has a program interpreter (is dynamically linked).
pub fn elf_interpreter(data: &[u8]) -> Result<bool> {
    let bad = || setup("not a 64-bit little-endian ELF file".into());
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return Err(bad());
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]);
    let phoff = u64::from_le_bytes(data[32..40].try_into().map_err(|_| bad())?);
    let phentsize = usize::from(u16_at(54));
    let phnum = usize::from(u16_at(56));
    let phoff = usize::try_from(phoff).map_err(|_| bad())?;
    for i in 0..phnum {
        let o = phoff + i * phentsize;
        if o + 4 > data.len() {
            return Err(bad());
        }
        let p_type = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        if p_type == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The kernel qemu boots: the uncompressed ELF `vmlinux` extracted from `bzimage` by
/// `tests/lab/vm/extract-vmlinux.sh` (booted through its PVH entry: no BIOS, no in-guest
/// decompression), cached as `target/vm-cache/vmlinux-<version>-<size>-<mtime>`. Falls back to
/// `bzimage` itself when extraction fails.
pub fn vmlinux(kernel_version: &str, bzimage: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(bzimage)
        .map_err(|e| setup(format!("reading {}: {e}", bzimage.display())))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let cache = cache_dir()?;
    let path = cache.join(format!("vmlinux-{kernel_version}-{}-{mtime}", meta.len()));
    if path.is_file() {
        return Ok(path);
    }
    let script = lab_vm_dir().join("extract-vmlinux.sh");
    let out = Command::new(&script)
        .arg(bzimage)
        .arg(&path)
        .output()
        .map_err(|e| setup(format!("running {}: {e}", script.display())))?;
    if out.status.success() && path.is_file() {
        Ok(path)
    } else {
        eprintln!(
            "netmedic-lab: cannot extract vmlinux ({}), booting {} (slower)",
            String::from_utf8_lossy(&out.stderr).trim(),
            bzimage.display()
        );
        Ok(bzimage.to_path_buf())
    }
}

/// Every file the initramfs is made of (scripts, Debian binaries, the agent); their contents
/// key the cache.
fn inputs(kernel_version: &str, agent: &Path) -> Vec<PathBuf> {
    let dir = lab_vm_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files.push(dir.join("..").join("udhcpc.script"));
    for f in [
        "/bin/busybox",
        "/usr/sbin/hostapd",
        "/usr/sbin/wpa_supplicant",
        "/usr/sbin/iw",
        "/lib/firmware/regulatory.db",
        "/lib/firmware/regulatory.db.p7s",
        "/etc/ssl/certs/ca-certificates.crt",
    ] {
        files.push(PathBuf::from(f));
    }
    files.push(
        Path::new("/lib/modules")
            .join(kernel_version)
            .join("modules.dep"),
    );
    files.push(agent.to_path_buf());
    files
}

/// A hex digest of the inputs (sha256sum over their contents and names).
fn cache_key(kernel_version: &str, agent: &Path) -> Result<String> {
    let files = inputs(kernel_version, agent);
    let out = Command::new("sha256sum")
        .args(&files)
        .output()
        .map_err(|e| setup(format!("running sha256sum: {e}")))?;
    if !out.status.success() {
        return Err(setup(format!(
            "sha256sum failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut sums = String::from_utf8_lossy(&out.stdout).into_owned();
    sums.push_str(kernel_version);
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| setup(format!("running sha256sum: {e}")))?;
    {
        use std::io::Write;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| setup("sha256sum has no stdin".into()))?;
        stdin
            .write_all(sums.as_bytes())
            .map_err(|e| setup(format!("writing to sha256sum: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| setup(format!("running sha256sum: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text.chars().take(16).collect())
}

/// The guest's initramfs for `kernel_version` with `agent`, built once and then taken from
/// `target/vm-cache/initramfs-<key>.cpio`. Older images are removed when a new one is built.
pub fn initramfs(kernel_version: &str, agent: &Path) -> Result<PathBuf> {
    let key = cache_key(kernel_version, agent)?;
    let cache = cache_dir()?;
    let path = cache.join(format!("initramfs-{key}.cpio"));
    if path.is_file() {
        return Ok(path);
    }
    let script = lab_vm_dir().join("build-initramfs.sh");
    let out = Command::new(&script)
        .arg(&path)
        .arg(kernel_version)
        .arg(agent)
        .output()
        .map_err(|e| setup(format!("running {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(setup(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    if let Ok(rd) = std::fs::read_dir(&cache) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("initramfs-") && e.path() != path {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(path)
}

/// Creates a fresh sparse ext4 disk image of `mib` MiB at `path` (the guest's `/data`).
pub fn make_disk(path: &Path, mib: u64) -> Result<()> {
    let f = std::fs::File::create(path)
        .map_err(|e| setup(format!("creating {}: {e}", path.display())))?;
    f.set_len(mib * 1024 * 1024)
        .map_err(|e| setup(format!("sizing {}: {e}", path.display())))?;
    drop(f);
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "netmedic-data"])
        .arg(path)
        .output()
        .map_err(|e| setup(format!("running mkfs.ext4: {e}")))?;
    if !out.status.success() {
        return Err(setup(format!(
            "mkfs.ext4 {} failed: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_interpreter_tells_static_from_dynamic() {
        let dynamic = std::fs::read("/bin/sh").expect("/bin/sh");
        assert!(elf_interpreter(&dynamic).expect("elf"));
        assert!(elf_interpreter(b"#!/bin/sh\n").is_err());
        assert!(elf_interpreter(&[0u8; 10]).is_err());
    }

    #[test]
    fn kernel_versions_sort_numerically() {
        let mut v = vec!["6.1.0-9-amd64", "6.1.0-57-amd64", "6.1.0-10-amd64"];
        v.sort_by_key(|a| version_key(a));
        assert_eq!(v, ["6.1.0-9-amd64", "6.1.0-10-amd64", "6.1.0-57-amd64"]);
    }
}
