//! A deadline timer that wakes the process once, at the deadline.
//!
//! tokio's timer wheel parks the runtime until the start of the wheel slot a timer sits in, not
//! until the timer's own deadline: a timer 10 s away sits in a 4 s slot and is moved down a level
//! at that slot's start, then again at a 64 ms slot's start, so it costs two or three wake-ups
//! instead of one. For the scheduler, which sleeps between check runs all day, that was most of
//! the agent's idle wake-ups beyond its probes. A `timerfd` armed for the deadline and polled
//! through tokio's reactor wakes exactly once. Without a timerfd (no reactor, an odd kernel)
//! it falls back to tokio's sleep.

use crate::afd::owned_async_fd;
use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// `TimerFd` for tokio's `AsyncFd` (which wants `AsRawFd`).
#[derive(Debug)]
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl crate::afd::Owned for Fd {}

/// One re-armable deadline (one timerfd for the timer's whole life).
#[derive(Debug)]
pub struct Deadline {
    fd: Option<AsyncFd<Fd>>,
    /// The deadline the timerfd is armed for, until its expiry is read.
    armed: Option<Instant>,
}

impl Default for Deadline {
    fn default() -> Self {
        Self::new()
    }
}

impl Deadline {
    pub fn new() -> Self {
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()
        .and_then(|t| owned_async_fd(Fd(t)).ok());
        Self { fd, armed: None }
    }

    /// Completes at `due` (at once when it is past). Cancel-safe: a dropped wait leaves the
    /// timer armed, and the next wait for the same deadline reuses it.
    pub async fn until(&mut self, due: Instant) {
        let now = Instant::now();
        if due <= now {
            return;
        }
        let Some(fd) = &self.fd else {
            return tokio::time::sleep_until(due).await;
        };
        if self.armed != Some(due) {
            let after = Expiration::OneShot(TimeSpec::from_duration(due - now));
            if fd
                .get_ref()
                .0
                .set(after, TimerSetTimeFlags::empty())
                .is_err()
            {
                self.armed = None;
                return tokio::time::sleep_until(due).await;
            }
            self.armed = Some(due);
        }
        loop {
            let Ok(mut ready) = fd.readable().await else {
                self.armed = None;
                return tokio::time::sleep_until(due).await;
            };
            // `wait` reads the expiry count; not expired yet (a stale readiness) is WouldBlock.
            match ready.try_io(|f| f.get_ref().0.wait().map_err(std::io::Error::from)) {
                Ok(_) => {
                    self.armed = None;
                    return;
                }
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn completes_at_the_deadline_and_rearms() {
        let mut d = Deadline::new();
        assert!(d.fd.is_some(), "no timerfd on this kernel");
        for ms in [30, 10] {
            let due = Instant::now() + Duration::from_millis(ms);
            d.until(due).await;
            assert!(Instant::now() >= due);
        }
        // A wait dropped before its deadline, then one for an earlier deadline: the timer is
        // re-armed for the new one.
        let far = Instant::now() + Duration::from_secs(3600);
        let _ = tokio::time::timeout(Duration::from_millis(5), d.until(far)).await;
        let near = Instant::now() + Duration::from_millis(10);
        tokio::time::timeout(Duration::from_secs(10), d.until(near))
            .await
            .expect("the re-armed deadline fired");
        assert!(Instant::now() >= near);
        // A past deadline completes at once.
        d.until(Instant::now()).await;
    }
}
