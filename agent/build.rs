//! Build script of the agent: links the daemon with packed relative relocations (DT_RELR).
//!
//! A position-independent binary carries one relocation per pointer in its read-only data
//! (vtables, string slices); ld.so applies them at start. `-z pack-relative-relocs` stores them
//! as a bitmap instead of 24-byte records: measured on the release-cpe build, `.rela.dyn` fell
//! from 163 KB to 6 KB, the binary by ~155 KB and its resident read-only segment by ~0.13 MiB
//! (docs/perf-agent-size.md). It is passed here, to this package's binaries only, rather than as
//! a workspace rustflag, which would rebuild every crate of every build directory.
//!
//! It needs binutils ≥ 2.38 or lld at link time and glibc ≥ 2.36 at run time: the link adds a
//! `GLIBC_ABI_DT_RELR` version requirement, so an older ld.so refuses to start the binary with a
//! clear error instead of misrelocating it (and the Debian package's shlibs dependency says
//! `libc6 (>= 2.36)`). Only glibc targets on Linux get it; musl (OpenWrt) links as before.
//! `NETMEDIC_NO_RELR=1` in the environment of the build turns it off, for a build meant for an
//! older glibc.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NETMEDIC_NO_RELR");
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    let opted_out = env::var("NETMEDIC_NO_RELR").is_ok_and(|v| !v.is_empty() && v != "0");
    if os == "linux" && target_env == "gnu" && !opted_out {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
