//! Descriptors owned for life, in tokio's reactor: the one place that calls `AsyncFd::new`.
//!
//! tokio deprecates `AsyncFd::new` because it cannot know that its inner value keeps its
//! descriptor open and unchanged. The [`Owned`] types do (an `OwnedFd`, or a nix value that
//! holds one for its whole life: `Inotify`, `TimerFd`), so registering them is sound; the unsafe
//! `register` is denied.

use nix::sys::inotify::Inotify;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use tokio::io::unix::AsyncFd;

/// A descriptor that this value owns, open and unchanged, for its whole life.
pub trait Owned: AsRawFd {}

impl Owned for OwnedFd {}

/// nix's `Inotify` for tokio's `AsyncFd` (which wants `AsRawFd`).
#[derive(Debug)]
pub struct InotifyFd(pub Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Owned for InotifyFd {}

/// `AsyncFd::new` for a value that owns its descriptor (see the module doc).
#[allow(deprecated)]
pub fn owned_async_fd<T: Owned>(inner: T) -> std::io::Result<AsyncFd<T>> {
    AsyncFd::new(inner)
}
