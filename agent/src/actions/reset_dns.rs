//! `reset_dns`: rewrites resolv.conf to the provisioned resolvers (`checks.dns
//! .provisioned_resolvers`, else the `dns=` of the DHCP lease), keeping the original for
//! rollback.
//!
//! The original bytes are saved first, durably (temp, fsync, rename, fsync dir), to
//! `<state_dir>/rollback/resolv.conf.orig`; a rollback writes exactly those bytes back and
//! re-reads the file to prove it. `search`, `domain` and `options` lines of the original are
//! kept; only the `nameserver` lines change.
//!
//! ## How the file is written
//! Normally atomically: a temp file in the same directory, fsync, rename over the target,
//! fsync of the directory — a reader sees the old file or the new one, never a mix. But
//! resolv.conf is often a mount point: `ip netns exec` (the lab, containers) bind-mounts
//! `/etc/netns/<ns>/resolv.conf` over it, and renaming over a mount point fails with EBUSY
//! (and would only hide the mount from new processes anyway). So when the target is a mount
//! point (per `/proc/self/mountinfo`), or the rename fails with EBUSY/EXDEV, the file is
//! rewritten in place: write the whole content from offset 0, truncate to its length, fsync.
//! No temp file is ever created next to a bind-mounted file (its directory is the host's).
//! resolv.conf is a few hundred bytes, written with one `write` call; a reader racing it may
//! at worst see the new head with the old tail for an instant — the resolver re-reads the
//! file on its next change, and the verification that follows re-reads it too.
//!
//! ## When it cannot help
//! [`ruled_out`] says so before the healer takes the rung (it records the rung skipped and
//! climbs on or escalates): no resolvers are provisioned; resolv.conf already names exactly
//! the provisioned resolvers (a rewrite would change the comment line, not the resolution —
//! a provisioned resolver that answers SERVFAIL is not fixed by naming it again); or the DNS
//! check found the provisioned resolvers failing too (a `resolver_*` cause while resolv.conf
//! names others: the check blames resolv.conf instead whenever a provisioned resolver answers).
//! [`run`] asks the same right before writing.

use super::Limit;
use super::Settings;
use super::{ActionError, ActionInput, Applied, Undo};
use crate::context::Context;
use crate::site::Site;
use netmedic_proto::CheckId;
use std::io::{Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Not disruptive: only resolv.conf changes, and the original is the undo.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

/// The resolvers to restore.
fn provisioned(site: &Site, s: &Settings) -> Vec<IpAddr> {
    let cfg = &s.dns.provisioned_resolvers;
    if !cfg.is_empty() {
        return cfg.clone();
    }
    site.wan
        .lease_file
        .as_deref()
        .and_then(|p| crate::lease::Lease::read(p).ok().flatten())
        .map(|l| l.dns.into_iter().map(IpAddr::V4).collect())
        .unwrap_or_default()
}

/// The new resolv.conf: the original's `search`/`domain`/`options` lines plus the resolvers.
pub fn render(original: &str, resolvers: &[IpAddr]) -> String {
    let mut out = String::from("# written by netmedic-agent reset_dns (provisioned resolvers)\n");
    for line in original.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if matches!(first, "search" | "domain" | "options") {
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    for r in resolvers {
        out.push_str(&format!("nameserver {r}\n"));
    }
    out
}

fn no_resolvers() -> String {
    "no provisioned resolvers: set checks.dns.provisioned_resolvers or a lease with dns=".into()
}

fn list(resolvers: &[IpAddr]) -> String {
    resolvers
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a resolv.conf of `current` content already names exactly `resolvers` (order and
/// duplicates aside; IPv6 zone ids dropped): writing them again cannot change resolution.
/// Its own small parser: actions do not import checks.
fn same_resolvers(current: &str, resolvers: &[IpAddr]) -> bool {
    use std::collections::BTreeSet;
    let now: BTreeSet<IpAddr> = current
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver")).then_some(())?;
            let addr = words.next()?;
            addr.split('%').next()?.parse().ok()
        })
        .collect();
    let want: BTreeSet<IpAddr> = resolvers.iter().copied().collect();
    now == want
}

/// Why `reset_dns` cannot help the incident described by `input`, if it cannot (see the
/// module doc); `None`: it may help. Reads resolv.conf; an unreadable one is no reason.
pub fn ruled_out(site: &Site, s: &Settings, input: &ActionInput) -> Option<String> {
    let resolvers = provisioned(site, s);
    if resolvers.is_empty() {
        return Some(no_resolvers());
    }
    let path = &s.dns.resolv_conf;
    if let Ok(current) = std::fs::read_to_string(path)
        && same_resolvers(&current, &resolvers)
    {
        return Some(format!(
            "{} already names exactly the provisioned resolvers ({}): rewriting it cannot \
             change how names resolve; the resolvers themselves fail",
            path.display(),
            list(&resolvers)
        ));
    }
    let dns_blames_resolvers = input.check == Some(CheckId::Dns)
        && input.cause.starts_with("resolver_")
        && input
            .evidence
            .get("resolv_conf_matches_provisioned")
            .is_some_and(|v| v == "false");
    dns_blames_resolvers.then(|| {
        format!(
            "the provisioned resolvers ({}) fail as well ({}): the DNS check found none of them \
             answering, so naming them in {} cannot help",
            list(&resolvers),
            input.cause,
            path.display()
        )
    })
}

pub fn run(ctx: &Context, s: &Settings) -> Result<Applied, ActionError> {
    let resolvers = provisioned(&ctx.site, s);
    if resolvers.is_empty() {
        return Err(ActionError::NotApplicable(no_resolvers()));
    }
    let configured = &s.dns.resolv_conf;
    let target = std::fs::canonicalize(configured)
        .map_err(|e| ActionError::Failed(format!("{}: {e}", configured.display())))?;
    let original = std::fs::read(&target)
        .map_err(|e| ActionError::Failed(format!("reading {}: {e}", target.display())))?;
    let text = String::from_utf8_lossy(&original);
    if same_resolvers(&text, &resolvers) {
        return Err(ActionError::NotApplicable(format!(
            "{} already names exactly the provisioned resolvers ({})",
            target.display(),
            list(&resolvers)
        )));
    }
    let new = render(&text, &resolvers);
    let dir = ctx.site.state_dir.join("rollback");
    std::fs::create_dir_all(&dir)
        .map_err(|e| ActionError::Failed(format!("{}: {e}", dir.display())))?;
    let saved = dir.join("resolv.conf.orig");
    crate::fsutil::write_durable(&saved, &original).map_err(|e| {
        ActionError::Failed(format!("saving the original to {}: {e}", saved.display()))
    })?;
    let how = write_config_file(&target, new.as_bytes())
        .map_err(|e| ActionError::Failed(format!("writing {}: {e}", target.display())))?;
    Ok(Applied {
        detail: format!(
            "{} now names {} (written {how}; original saved to {})",
            target.display(),
            list(&resolvers),
            saved.display()
        ),
        undo: Some(Undo::ResolvConf { target, saved }),
    })
}

/// Writes the saved original back, byte for byte, and proves it by reading it again.
pub fn rollback(target: &Path, saved: &Path) -> Result<String, ActionError> {
    let original = std::fs::read(saved).map_err(|e| {
        ActionError::Failed(format!(
            "reading the saved original {}: {e}",
            saved.display()
        ))
    })?;
    let how = write_config_file(target, &original)
        .map_err(|e| ActionError::Failed(format!("restoring {}: {e}", target.display())))?;
    let now = std::fs::read(target)
        .map_err(|e| ActionError::Failed(format!("re-reading {}: {e}", target.display())))?;
    if now != original {
        return Err(ActionError::Failed(format!(
            "{} differs from the saved original after the rollback",
            target.display()
        )));
    }
    let _ = std::fs::remove_file(saved);
    Ok(format!(
        "{} restored to the original ({} bytes, identical; written {how})",
        target.display(),
        original.len()
    ))
}

/// The change was verified: the saved original is no longer needed.
pub fn discard(saved: &Path) {
    let _ = std::fs::remove_file(saved);
}

/// Replaces a config file's content: atomically where possible, in place on a mount point.
pub fn write_config_file(target: &Path, bytes: &[u8]) -> std::io::Result<&'static str> {
    if is_mount_point(target) {
        write_in_place(target, bytes)?;
        return Ok("in place: the file is a mount point");
    }
    match replace_atomically(target, bytes) {
        Ok(()) => Ok("atomically (temp file + rename)"),
        Err(e) if matches!(e.raw_os_error(), Some(16 | 18)) => {
            // EBUSY / EXDEV: a mount point mountinfo did not show us.
            write_in_place(target, bytes)?;
            Ok("in place: rename over it failed")
        }
        Err(e) => Err(e),
    }
}

fn replace_atomically(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp: PathBuf = target.with_file_name(format!(".{name}.netmedic.tmp"));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(target) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)?;
        if let Some(dir) = target.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn write_in_place(target: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new().write(true).open(target)?;
    f.seek(SeekFrom::Start(0))?;
    f.write_all(bytes)?;
    f.set_len(bytes.len() as u64)?;
    f.sync_all()
}

/// Whether `path` is a mount point of this mount namespace (`/proc/self/mountinfo`, field 5,
/// with its octal escapes).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape(m) == want)
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::AgentConfig;

    #[test]
    fn render_keeps_search_and_options() {
        let r = render(
            "# x\nsearch lan\nnameserver 1.2.3.4\noptions timeout:1\n",
            &["100.64.0.1".parse().unwrap()],
        );
        assert!(r.contains("search lan\n"));
        assert!(r.contains("options timeout:1\n"));
        assert!(r.ends_with("nameserver 100.64.0.1\n"));
        assert!(!r.contains("1.2.3.4"));
    }

    fn ruled(c: &AgentConfig, input: &ActionInput) -> Option<String> {
        ruled_out(&c.site(), &c.action_settings(), input)
    }

    fn config(resolv_conf: &Path, provisioned: &str) -> AgentConfig {
        let text = format!(
            "[agent]\nid = \"t\"\n[collector]\nurl = \"http://127.0.0.1:1\"\n\
             [wan]\ninterface = \"wan\"\n[checks.dns]\nresolv_conf = \"{}\"\n\
             provisioned_resolvers = [{provisioned}]\n",
            resolv_conf.display()
        );
        AgentConfig::parse(&text, "t.toml").unwrap()
    }

    fn dns_input(cause: &str, matches: &str) -> ActionInput {
        ActionInput {
            check: Some(CheckId::Dns),
            cause: cause.into(),
            evidence: [(
                "resolv_conf_matches_provisioned".to_string(),
                matches.to_string(),
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn ruled_out_when_it_would_name_the_same_resolvers_or_they_fail_too() {
        let dir = tempfile::tempdir().unwrap();
        let rc = dir.path().join("resolv.conf");
        // The provisioned resolver itself answers SERVFAIL: resolv.conf already names it (in
        // other bytes than `render` writes), so a rewrite changes nothing that matters.
        std::fs::write(&rc, "search lan\nnameserver 192.0.2.53\n").unwrap();
        let c = config(&rc, "\"192.0.2.53\"");
        let why = ruled(&c, &dns_input("resolver_servfail", "true")).unwrap();
        assert!(why.contains("already names exactly"), "{why}");
        // Order and IPv6 zone ids do not matter either.
        let c2 = config(&rc, "\"fe80::1\", \"192.0.2.53\"");
        std::fs::write(&rc, "nameserver 192.0.2.53\nnameserver fe80::1%wan\n").unwrap();
        assert!(ruled(&c2, &dns_input("resolver_timeout", "true")).is_some());
        // Another resolver in use, the provisioned one answering: reset_dns may help.
        std::fs::write(&rc, "nameserver 198.51.100.53\n").unwrap();
        assert_eq!(
            ruled(&c, &dns_input("resolv_conf_not_provisioned", "false")),
            None
        );
        // Another resolver in use and the check blames the resolvers: the provisioned ones
        // fail as well (the check would blame resolv.conf if one of them answered).
        let why = ruled(&c, &dns_input("resolver_timeout", "false")).unwrap();
        assert!(why.contains("fail as well"), "{why}");
        // Nothing provisioned at all (no lease file either).
        let none = config(&rc, "");
        assert!(
            ruled(&none, &dns_input("resolver_timeout", "false"))
                .unwrap()
                .contains("no provisioned resolvers")
        );
    }

    #[test]
    fn unescapes_mountinfo() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/etc/resolv.conf"), "/etc/resolv.conf");
    }

    #[test]
    fn write_and_roll_back_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("resolv.conf");
        let original = b"# odd  spacing \r\nnameserver 192.0.2.99\n\n\x00tail".to_vec();
        std::fs::write(&target, &original).unwrap();
        let saved = dir.path().join("orig");
        crate::fsutil::write_durable(&saved, &original).unwrap();
        write_config_file(&target, b"nameserver 198.51.100.99\n").unwrap();
        write_in_place(&target, b"x").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"x");
        rollback(&target, &saved).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), original);
        assert!(!saved.exists());
    }
}
