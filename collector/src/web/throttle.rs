//! Login admission: fixed one-minute windows counting attempts for the whole process and per
//! source address (an IPv6 source counts per /64), and a semaphore bounding the password checks
//! that run at once. Each Argon2id check takes ≈ 19 MiB for tens of milliseconds, so without a
//! bound a flood of logins for made-up names holds gigabytes; with it, memory stays at
//! `max_concurrent_logins` × 19 MiB whatever the flood.

use crate::config::WebConfig;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The counting window of the rate limits.
const WINDOW: Duration = Duration::from_secs(60);
/// How long a login waits for a free password check before it gets 503.
pub const VERIFY_WAIT: Duration = Duration::from_secs(2);
/// Source windows kept before expired ones are swept (the global limit bounds new ones).
const MAX_SOURCES: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u32,
}

impl Window {
    fn new(now: Instant) -> Self {
        Self {
            start: now,
            count: 0,
        }
    }

    /// Counts one attempt; `Err(seconds until the window ends)` when over `limit`.
    fn admit(&mut self, now: Instant, limit: u32) -> Result<(), u64> {
        if now.duration_since(self.start) >= WINDOW {
            *self = Self::new(now);
        }
        if self.count >= limit {
            let left = WINDOW.saturating_sub(now.duration_since(self.start));
            return Err(left.as_secs().max(1));
        }
        self.count += 1;
        Ok(())
    }
}

/// Why a login was not admitted, with the `Retry-After` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Too many attempts in this process this minute.
    Global(u64),
    /// Too many attempts from this source this minute.
    Source(u64),
}

/// The login gate of one collector process.
#[derive(Debug)]
pub struct LoginGate {
    verifies: Arc<Semaphore>,
    per_min: u32,
    per_source_per_min: u32,
    global: Mutex<Window>,
    sources: Mutex<HashMap<IpAddr, Window>>,
}

impl LoginGate {
    pub fn new(web: &WebConfig) -> Self {
        Self {
            verifies: Arc::new(Semaphore::new(web.max_concurrent_logins.max(1) as usize)),
            per_min: web.max_logins_per_min,
            per_source_per_min: web.max_logins_per_source_per_min,
            global: Mutex::new(Window::new(Instant::now())),
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one login attempt from `source` (None: unknown, only the global limit applies).
    pub fn admit(&self, source: Option<IpAddr>) -> Result<(), Refused> {
        let now = Instant::now();
        self.global
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .admit(now, self.per_min)
            .map_err(Refused::Global)?;
        let Some(ip) = source.map(source_key) else {
            return Ok(());
        };
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if sources.len() >= MAX_SOURCES {
            sources.retain(|_, w| now.duration_since(w.start) < WINDOW);
        }
        sources
            .entry(ip)
            .or_insert_with(|| Window::new(now))
            .admit(now, self.per_source_per_min)
            .map_err(Refused::Source)
    }

    /// A password-check slot, waiting at most [`VERIFY_WAIT`]; None when all stay busy. The
    /// caller moves the permit into the blocking task, so the slot is held as long as the memory.
    pub async fn verify_slot(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(VERIFY_WAIT, self.verifies.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// The address a source is counted by: IPv4 as is, IPv6 by its /64 (one customer's prefix).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], s[3], 0, 0, 0, 0])
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn gate(per_min: u32, per_source: u32) -> LoginGate {
        LoginGate::new(&WebConfig {
            max_logins_per_min: per_min,
            max_logins_per_source_per_min: per_source,
            ..crate::config::CollectorConfig::default().web
        })
    }

    #[test]
    fn limits_per_source_and_globally() {
        // Every attempt counts globally, refused ones too.
        let g = gate(6, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b2: IpAddr = "2001:db8::2".parse().unwrap();
        assert_eq!(g.admit(Some(a)), Ok(()));
        assert_eq!(g.admit(Some(a)), Ok(()));
        assert!(matches!(g.admit(Some(a)), Err(Refused::Source(s)) if (1..=60).contains(&s)));
        assert_eq!(g.admit(Some(b)), Ok(()));
        assert!(
            matches!(g.admit(Some(b2)), Ok(())),
            "another address of the same /64"
        );
        assert!(matches!(g.admit(Some(b2)), Err(Refused::Source(_))));
        assert!(
            matches!(g.admit(None), Err(Refused::Global(_))),
            "7th attempt"
        );
    }

    #[tokio::test]
    async fn verify_slots_are_bounded() {
        let g = gate(100, 100);
        let one = g.verify_slot().await.unwrap();
        let two = g.verify_slot().await.unwrap();
        assert!(g.verifies.clone().try_acquire_owned().is_err());
        drop((one, two));
        assert!(g.verify_slot().await.is_some());
    }
}
