//! [`LabProcess`]: a process the lab started inside a namespace; killed and reaped on drop.

use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::error::{Result, io_ctx, sys_ctx};

/// How long [`LabProcess::kill`] waits after SIGTERM before it sends SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3);

/// A process started by the lab (via [`crate::Netns::spawn`]).
///
/// It runs in its own process group; stdout and stderr go to a log file. On drop it
/// gets SIGTERM (the whole group), then SIGKILL after a grace period, and is reaped.
pub struct LabProcess {
    child: Option<Child>,
    pid: u32,
    desc: String,
    log_path: PathBuf,
    grace: Duration,
    exit: Option<ExitStatus>,
}

impl fmt::Debug for LabProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabProcess")
            .field("pid", &self.pid)
            .field("desc", &self.desc)
            .field("log_path", &self.log_path)
            .field("exit", &self.exit)
            .finish()
    }
}

impl LabProcess {
    pub(crate) fn new(child: Child, desc: String, log_path: PathBuf) -> Self {
        Self {
            pid: child.id(),
            child: Some(child),
            desc,
            log_path,
            grace: DEFAULT_GRACE,
            exit: None,
        }
    }

    /// The process id (also its process-group id).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The command line it was started with.
    pub fn desc(&self) -> &str {
        &self.desc
    }

    /// Where its stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Sets how long [`kill`](Self::kill) (and drop) waits between SIGTERM and SIGKILL.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    /// Whether the process is still running (reaps it if it has exited).
    pub fn is_running(&mut self) -> bool {
        self.poll_exit().is_none()
    }

    /// Its exit status, if it has exited (reaps it).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.poll_exit()
    }

    fn poll_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none()
            && let Some(child) = self.child.as_mut()
        {
            match child.try_wait() {
                Ok(Some(st)) => self.exit = Some(st),
                Ok(None) => {}
                // ECHILD and friends: nothing left to wait for.
                Err(_) => self.child = None,
            }
        }
        self.exit
    }

    /// Sends `sig` to the process group. No-op once the process has been reaped.
    pub fn signal(&mut self, sig: Signal) -> Result<()> {
        if self.poll_exit().is_some() || self.child.is_none() {
            return Ok(());
        }
        match killpg(self.pgid(), sig) {
            Ok(()) | Err(Errno::ESRCH) => Ok(()),
            Err(e) => Err(sys_ctx(format!(
                "killpg({}, {sig}) for `{}`",
                self.pid, self.desc
            ))(e)),
        }
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.pid).unwrap_or(i32::MAX))
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.poll_exit() {
                return Some(st);
            }
            if self.child.is_none() || Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process: SIGTERM to its group, SIGKILL after the grace period, then
    /// reaps it. Idempotent; returns the exit status if one was collected.
    pub fn kill(&mut self) -> Result<Option<ExitStatus>> {
        if let Some(st) = self.poll_exit() {
            // The leader is gone; make sure no stragglers of its group survive.
            let _ = killpg(self.pgid(), Signal::SIGKILL);
            return Ok(Some(st));
        }
        let Some(_) = self.child.as_ref() else {
            return Ok(None);
        };
        self.signal(Signal::SIGTERM)?;
        let grace = self.grace;
        if self.wait_exit(grace).is_none() {
            let _ = killpg(self.pgid(), Signal::SIGKILL);
            if let Some(child) = self.child.as_mut() {
                let st = child
                    .wait()
                    .map_err(io_ctx(format!("waiting for `{}`", self.desc)))?;
                self.exit = Some(st);
            }
        }
        // Children of the leader that ignored SIGTERM.
        let _ = killpg(self.pgid(), Signal::SIGKILL);
        Ok(self.exit)
    }

    /// The last `lines` lines of the process's log (best effort; reads at most 64 KiB).
    pub fn log_tail(&self, lines: usize) -> String {
        tail_file(&self.log_path, lines)
    }
}

impl Drop for LabProcess {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            eprintln!("netmedic-lab: stopping `{}`: {e}", self.desc);
        }
    }
}

/// The last `lines` lines of a text file (best effort: empty string if unreadable).
pub fn tail_file(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > MAX && f.seek(SeekFrom::Start(len - MAX)).is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
