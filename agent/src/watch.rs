//! File and process events that wake checks at once, beside the netlink events of `events.rs`:
//! inotify on the directories of resolv.conf (`dns`) and of the WAN lease file (`wan_address`,
//! `default_route`), and a pidfd per supervised service (`service`).
//!
//! The directories are watched, and the files too: resolv.conf and lease files are usually
//! replaced by a rename, which only a watch on the directory sees, but a file bind-mounted into
//! place (a network namespace's resolv.conf) is written in place, which only a watch on its
//! inode sees (its directory entry lives elsewhere). Each file watch is renewed after every
//! batch, so it follows the file across renames. Bursts (write, close, rename)
//! are debounced for [`DEBOUNCE`] into one wake-up. The WAN DHCP client's hook reaches the agent
//! the same way: it rewrites the lease file, and that rewrite is the event.
//!
//! After the burst the file is read: one rewritten with nothing its checks read changed (see
//! [`Content`]: resolv.conf with the same bytes, a lease renewed for the same address, router
//! and resolvers) sends [`NetChange::Rewritten`], which wakes a check only while it is not ok,
//! so a DHCP renewal of an unchanged lease runs nothing. The first event after a start always
//! counts as a change (nothing was read before it).
//!
//! Process death uses a pidfd (`pidfd_open`, Linux ≥ 5.3): it becomes readable when exactly that
//! process exits, with no race against pid reuse once opened and no privilege needed. The netlink
//! process connector was not chosen (it needs CAP_NET_ADMIN and streams every fork and exit of
//! the system to the agent), nor the pidfile's inode (a killed daemon leaves its pidfile as it
//! was). Without pidfds (older kernel) the `service` check polls at its interval, as before.
//! Polling stays the safety net for every check either way.

use crate::afd::{InotifyFd, owned_async_fd};
use crate::checks::service::{ServiceSpec, find_pid};
use crate::config::AgentConfig;
use crate::events::NetChange;
use crate::lease::Lease;
use netmedic_proto::CheckId;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

/// A burst of file events within this long wakes the checks once.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// How often a directory that could not be watched (not created yet) is tried again.
const REWATCH_EVERY: Duration = Duration::from_secs(30);

/// The first retry after a service was not found or died; it doubles up to the check's interval.
const FIND_RETRY_FIRST: Duration = Duration::from_secs(1);

/// The event sources of one configuration; dropped or [`Watchers::abort`]ed on a reload.
#[derive(Debug, Default)]
pub struct Watchers {
    tasks: Vec<JoinHandle<()>>,
}

impl Watchers {
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.abort();
    }
}

/// One watched file: its directory, its name there, and the checks a change wakes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedFile {
    pub dir: PathBuf,
    pub name: OsString,
    pub checks: Vec<CheckId>,
    /// What of the file its checks read.
    pub reads: Reads,
}

/// What of a watched file its checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// All of its bytes (resolv.conf).
    Bytes,
    /// The DHCP lease in it, whose renewal times alone change nothing the checks would find
    /// while they are ok: `wan_address` judges expiry from them, and an unexpired lease
    /// renewed stays unexpired.
    Lease,
}

/// The largest file compared byte for byte; a larger one counts as changed at every event.
const MAX_COMPARED_BYTES: u64 = 64 * 1024;

/// What the checks read of a watched file at one moment; two equal values mean a rewrite
/// changed nothing they read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Bytes(Vec<u8>),
    /// The lease without `acquired_at_unix` and `lease_secs`; `None`: no lease file.
    Lease(Option<Lease>),
}

impl Content {
    /// Reads `path` as `reads` says; `None` when it cannot be read or compared (which counts as
    /// a change). A missing file is a content of its own (no bytes, no lease).
    pub fn read(path: &Path, reads: Reads) -> Option<Content> {
        match reads {
            Reads::Bytes => match std::fs::metadata(path) {
                Ok(m) if m.len() > MAX_COMPARED_BYTES => None,
                Ok(_) => std::fs::read(path).ok().map(Content::Bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Some(Content::Bytes(Vec::new()))
                }
                Err(_) => None,
            },
            Reads::Lease => Lease::read(path).ok().map(|l| {
                Content::Lease(l.map(|l| Lease {
                    acquired_at_unix: None,
                    lease_secs: None,
                    ..l
                }))
            }),
        }
    }
}

/// The files whose changes wake checks under `config`.
pub fn watched_files(config: &AgentConfig) -> Vec<WatchedFile> {
    let mut out = Vec::new();
    let mut add = |path: &Path, checks: Vec<CheckId>, reads: Reads| {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            out.push(WatchedFile {
                dir: dir.to_path_buf(),
                name: name.to_os_string(),
                checks,
                reads,
            });
        }
    };
    if config.checks.dns.enabled {
        add(
            &config.checks.dns.resolv_conf,
            vec![CheckId::Dns],
            Reads::Bytes,
        );
    }
    if let Some(lease) = &config.wan.lease_file {
        let checks = [CheckId::WanAddress, CheckId::DefaultRoute]
            .into_iter()
            .filter(|c| match c {
                CheckId::WanAddress => config.checks.wan_address.enabled,
                _ => config.checks.default_route.enabled,
            })
            .collect::<Vec<_>>();
        if !checks.is_empty() {
            add(lease, checks, Reads::Lease);
        }
    }
    out
}

/// Starts the file and process watchers for `config`; each sends [`NetChange::Wake`] on `tx`.
pub fn spawn(config: &AgentConfig, tx: &UnboundedSender<NetChange>) -> Watchers {
    let mut tasks = Vec::new();
    let files = watched_files(config);
    if !files.is_empty() {
        tasks.push(tokio::spawn(watch_files(files, tx.clone())));
    }
    let svc = &config.checks.service;
    if svc.enabled {
        let max_retry = Duration::from_secs(svc.interval_secs.max(1));
        for spec in &svc.services {
            tasks.push(tokio::spawn(watch_service(
                spec.clone(),
                max_retry,
                tx.clone(),
            )));
        }
    }
    Watchers { tasks }
}

async fn watch_files(files: Vec<WatchedFile>, tx: UnboundedSender<NetChange>) {
    let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC) {
        Ok(i) => i,
        Err(e) => {
            log::warn!("no inotify ({e}): file changes are found by polling only");
            return;
        }
    };
    // The descriptor is in the reactor only while the watcher waits for a burst's first event:
    // the rest of the burst (a DHCP hook's writes, spread over tens of ms) wakes nobody.
    let mut inotify = InotifyFd(inotify);
    let mut debounce = crate::timer::Deadline::new();
    let dirs: BTreeSet<PathBuf> = files.iter().map(|f| f.dir.clone()).collect();
    // Watch descriptor → directory; a directory missing now is tried again later.
    let mut watched: Vec<(i32, PathBuf)> = Vec::new();
    // Watch descriptor of each file's current inode → index in `files`.
    let mut file_wds: Vec<(i32, usize)> = Vec::new();
    // What each file held at its last event (`None`: not read yet, or unreadable).
    let mut last: Vec<Option<Content>> = vec![None; files.len()];
    let flags = AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MOVED_FROM;
    loop {
        for dir in &dirs {
            if watched.iter().any(|(_, d)| d == dir) {
                continue;
            }
            match inotify.0.add_watch(dir.as_path(), flags) {
                Ok(wd) => {
                    log::debug!("watching {} for changes", dir.display());
                    watched.push((wd.as_raw(), dir.clone()));
                }
                Err(e) => log::debug!("cannot watch {} yet: {e}", dir.display()),
            }
        }
        for (i, f) in files.iter().enumerate() {
            let flags = AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MODIFY;
            if let Ok(wd) = inotify.0.add_watch(f.dir.join(&f.name).as_path(), flags) {
                file_wds.retain(|(_, j)| *j != i);
                file_wds.push((wd.as_raw(), i));
            }
        }
        let all = watched.len() == dirs.len();
        // Registered afresh: events queued meanwhile make it ready at once.
        let fd = match owned_async_fd(inotify) {
            Ok(fd) => fd,
            Err(e) => {
                log::warn!("inotify not pollable ({e}): file changes are found by polling only");
                return;
            }
        };
        let ready = if all {
            Some(fd.readable().await.map(drop))
        } else {
            tokio::time::timeout(REWATCH_EVERY, fd.readable())
                .await
                .ok()
                .map(|r| r.map(drop))
        };
        inotify = fd.into_inner();
        match ready {
            None => continue,
            Some(Ok(())) => {}
            Some(Err(e)) => {
                log::warn!("inotify failed ({e}): file changes are found by polling only");
                return;
            }
        }
        // Debounce: let the burst (write, close, rename) land, then read it all at once. A
        // timerfd wakes once, where a tokio sleep wakes at its wheel slot's start too.
        debounce.until(tokio::time::Instant::now() + DEBOUNCE).await;
        // Indices in `files` of the files the burst touched.
        let mut touched: BTreeSet<usize> = BTreeSet::new();
        loop {
            match inotify.0.read_events() {
                Ok(events) => {
                    for ev in events {
                        let wd = ev.wd.as_raw();
                        if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                            // The directory or file went away: watch it again when it is back.
                            watched.retain(|(w, _)| *w != wd);
                            file_wds.retain(|(w, _)| *w != wd);
                            continue;
                        }
                        if ev.name.is_none()
                            && let Some((_, i)) = file_wds.iter().find(|(w, _)| *w == wd)
                        {
                            touched.insert(*i);
                            continue;
                        }
                        let Some((_, dir)) = watched.iter().find(|(wd, _)| *wd == ev.wd.as_raw())
                        else {
                            continue;
                        };
                        for (i, f) in files.iter().enumerate() {
                            if &f.dir == dir && ev.name.as_deref() == Some(f.name.as_os_str()) {
                                touched.insert(i);
                            }
                        }
                    }
                }
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => {
                    log::warn!("inotify read failed ({e}): file changes are found by polling only");
                    return;
                }
            }
        }
        if !send_wakes(&files, &touched, &mut last, &tx) {
            return;
        }
    }
}

/// Reads the `touched` files and sends, for each check of theirs, [`NetChange::Wake`] if one
/// of its files changed since its last event, else [`NetChange::Rewritten`]; `last` is what
/// each file held then and becomes what it holds now. False once nobody listens.
fn send_wakes(
    files: &[WatchedFile],
    touched: &BTreeSet<usize>,
    last: &mut [Option<Content>],
    tx: &UnboundedSender<NetChange>,
) -> bool {
    let mut wake: BTreeSet<CheckId> = BTreeSet::new();
    let mut rewritten: BTreeSet<CheckId> = BTreeSet::new();
    for &i in touched {
        let f = &files[i];
        let now = Content::read(&f.dir.join(&f.name), f.reads);
        let same = now.is_some() && now == last[i];
        last[i] = now;
        if same {
            rewritten.extend(f.checks.iter().copied());
        } else {
            wake.extend(f.checks.iter().copied());
        }
    }
    for check in &wake {
        log::debug!("file change: waking check {check}");
        if tx.send(NetChange::Wake(*check)).is_err() {
            return false;
        }
    }
    for check in rewritten.difference(&wake) {
        log::debug!("file rewritten, nothing changed for check {check}");
        if tx.send(NetChange::Rewritten(*check)).is_err() {
            return false;
        }
    }
    true
}

/// Watches one service: finds its pid as the `service` check does, opens a pidfd on it and
/// wakes the check when that process exits; then looks for the (restarted) process again.
async fn watch_service(spec: ServiceSpec, max_retry: Duration, tx: UnboundedSender<NetChange>) {
    let mut retry = FIND_RETRY_FIRST;
    loop {
        let pid = match find_pid(&spec) {
            Ok(pid) => pid,
            Err(why) => {
                log::debug!("service {}: not watched yet: {why}", spec.name);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(max_retry);
                continue;
            }
        };
        let pidfd = match open_pidfd(pid) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOSYS) => {
                log::info!(
                    "no pidfd support in this kernel: service {} is checked every {} s only",
                    spec.name,
                    max_retry.as_secs()
                );
                return;
            }
            Err(e) => {
                // Gone between the lookup and the open (ESRCH), or not ours to watch.
                log::debug!("service {}: pidfd_open({pid}): {e}", spec.name);
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(max_retry);
                continue;
            }
        };
        // The pid may have been reused between the lookup and the open: look again.
        if find_pid(&spec) != Ok(pid) {
            continue;
        }
        retry = FIND_RETRY_FIRST;
        log::debug!("service {}: watching pid {pid}", spec.name);
        match owned_async_fd(pidfd) {
            Ok(fd) => {
                // Readable once the process has exited.
                let _ = fd.readable().await;
            }
            Err(e) => {
                log::warn!(
                    "service {}: pidfd not pollable ({e}): checked by polling only",
                    spec.name
                );
                return;
            }
        }
        log::info!("service {} (pid {pid}) exited: checking at once", spec.name);
        if tx.send(NetChange::Wake(CheckId::Service)).is_err() {
            return;
        }
        tokio::time::sleep(retry).await;
    }
}

fn open_pidfd(pid: u32) -> Result<OwnedFd, rustix::io::Errno> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or(rustix::io::Errno::INVAL)?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn watches_the_directories_of_resolv_conf_and_the_lease_file() {
        let mut config: AgentConfig =
            toml::from_str(include_str!("../../config/agent.toml")).unwrap();
        config.checks.dns.enabled = true;
        config.checks.dns.resolv_conf = PathBuf::from("/tmp/x/resolv.conf");
        config.wan.lease_file = Some(PathBuf::from("/run/nm/wan.lease"));
        let files = watched_files(&config);
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].dir, Path::new("/tmp/x"));
        assert_eq!(files[0].name, "resolv.conf");
        assert_eq!(files[0].checks, [CheckId::Dns]);
        assert_eq!(files[1].dir, Path::new("/run/nm"));
        assert_eq!(
            files[1].checks,
            [CheckId::WanAddress, CheckId::DefaultRoute]
        );
        config.checks.dns.enabled = false;
        config.checks.wan_address.enabled = false;
        config.checks.default_route.enabled = false;
        assert!(watched_files(&config).is_empty());
    }

    /// Watches `dir/resolv.conf` for the dns check and calls `poke` until the watcher wakes the
    /// check (5 s deadline); returns what it sent.
    async fn first_wake(dir: &std::path::Path, mut poke: impl FnMut()) -> NetChange {
        let files = vec![WatchedFile {
            dir: dir.to_path_buf(),
            name: "resolv.conf".into(),
            checks: vec![CheckId::Dns],
            reads: Reads::Bytes,
        }];
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(watch_files(files, tx));
        // The task adds its watch concurrently: poke until it sees one.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let got = loop {
            poke();
            if let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                break c;
            }
            assert!(tokio::time::Instant::now() < deadline, "no wake-up");
        };
        task.abort();
        got
    }

    #[tokio::test]
    async fn a_renamed_file_wakes_its_check_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_path_buf();
        let got = first_wake(dir.path(), || {
            std::fs::write(d.join("tmp"), "nameserver 192.0.2.53\n").unwrap();
            std::fs::rename(d.join("tmp"), d.join("resolv.conf")).unwrap();
            std::fs::write(d.join("other"), "x").unwrap();
        })
        .await;
        assert_eq!(got, NetChange::Wake(CheckId::Dns));
    }

    #[tokio::test]
    async fn a_file_written_in_place_wakes_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("resolv.conf"), "nameserver 192.0.2.53\n").unwrap();
        // A hard link elsewhere stands in for a bind mount: same inode, another directory.
        let other = elsewhere.path().join("resolv.conf");
        std::fs::hard_link(dir.path().join("resolv.conf"), &other).unwrap();
        let got = first_wake(dir.path(), || std::fs::write(&other, "").unwrap()).await;
        assert_eq!(got, NetChange::Wake(CheckId::Dns));
    }

    #[tokio::test]
    async fn a_dying_process_wakes_the_service_check() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = owned_async_fd(open_pidfd(child.id()).unwrap()).unwrap();
        let wait = tokio::spawn(async move {
            let _ = fd.readable().await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!wait.is_finished(), "readable before the process exited");
        child.kill().unwrap();
        child.wait().unwrap();
        tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .unwrap()
            .unwrap();
    }

    /// What `send_wakes` sent for the `touched` files.
    fn wakes_for(
        files: &[WatchedFile],
        touched: &[usize],
        last: &mut [Option<Content>],
    ) -> Vec<NetChange> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        assert!(send_wakes(
            files,
            &touched.iter().copied().collect(),
            last,
            &tx
        ));
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.push(c);
        }
        sent
    }

    #[test]
    fn a_renewal_of_the_same_lease_or_the_same_resolv_conf_is_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let (wan, route, dns) = (CheckId::WanAddress, CheckId::DefaultRoute, CheckId::Dns);
        let files = [
            WatchedFile {
                dir: dir.path().to_path_buf(),
                name: "wan.lease".into(),
                checks: vec![wan, route],
                reads: Reads::Lease,
            },
            WatchedFile {
                dir: dir.path().to_path_buf(),
                name: "resolv.conf".into(),
                checks: vec![dns],
                reads: Reads::Bytes,
            },
        ];
        let (lease, resolv) = (dir.path().join("wan.lease"), dir.path().join("resolv.conf"));
        let write_lease = |router: &str, at: u64, secs: u64| {
            let text = format!(
                "interface=wan\nip=100.64.1.2\nsubnet=255.255.255.0\nrouter={router}\n\
                 dns=100.64.0.53\nlease_secs={secs}\nacquired_at_unix={at}\n"
            );
            std::fs::write(&lease, text).unwrap();
        };
        let mut last = vec![None, None];
        // The first event after a start is a change: nothing was read before it.
        write_lease("100.64.1.1", 1000, 120);
        let sent = wakes_for(&files, &[0], &mut last);
        assert_eq!(sent, [NetChange::Wake(wan), NetChange::Wake(route)]);
        // A renewal: new times, same address, router and resolvers.
        write_lease("100.64.1.1", 1060, 3600);
        let sent = wakes_for(&files, &[0], &mut last);
        assert_eq!(
            sent,
            [NetChange::Rewritten(wan), NetChange::Rewritten(route)]
        );
        // A new router, then no lease at all: changes.
        write_lease("100.64.1.254", 1120, 3600);
        let sent = wakes_for(&files, &[0], &mut last);
        assert_eq!(sent, [NetChange::Wake(wan), NetChange::Wake(route)]);
        std::fs::remove_file(&lease).unwrap();
        let sent = wakes_for(&files, &[0], &mut last);
        assert_eq!(sent, [NetChange::Wake(wan), NetChange::Wake(route)]);
        // An unparsable lease always counts as a change.
        std::fs::write(&lease, "acquired_at_unix=yesterday\n").unwrap();
        for _ in 0..2 {
            let sent = wakes_for(&files, &[0], &mut last);
            assert_eq!(sent, [NetChange::Wake(wan), NetChange::Wake(route)]);
        }
        // resolv.conf: the same bytes are a rewrite, an emptied file a change.
        std::fs::write(&resolv, "nameserver 100.64.0.53\n").unwrap();
        assert_eq!(wakes_for(&files, &[1], &mut last), [NetChange::Wake(dns)]);
        assert_eq!(
            wakes_for(&files, &[1], &mut last),
            [NetChange::Rewritten(dns)]
        );
        std::fs::write(&resolv, "").unwrap();
        assert_eq!(wakes_for(&files, &[1], &mut last), [NetChange::Wake(dns)]);
        // One burst, one file changed and one not: each check as its own file says.
        write_lease("100.64.1.254", 1180, 3600);
        wakes_for(&files, &[0], &mut last);
        write_lease("100.64.1.254", 1240, 3600);
        std::fs::write(&resolv, "nameserver 100.64.0.54\n").unwrap();
        let sent = wakes_for(&files, &[0, 1], &mut last);
        assert_eq!(
            sent,
            [
                NetChange::Wake(dns),
                NetChange::Rewritten(wan),
                NetChange::Rewritten(route)
            ]
        );
    }
}
