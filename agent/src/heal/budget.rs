//! Remediation budgets that survive agent restarts, reboots and wall-clock jumps.
//!
//! Every action the healer carries out is charged here before it starts; an action (or the
//! global total) that used up its budget within its window is refused until old charges age
//! out.
//!
//! ## The clock
//! Charges are stamped with `CLOCK_BOOTTIME` (milliseconds since this boot, suspend included):
//! it never jumps when NTP, the subscriber or a dead RTC battery moves the wall clock, and it
//! keeps counting while the agent is stopped, so an agent restart (or crash loop) neither
//! resets nor stretches a window. It restarts at zero on a reboot, so the file also carries the
//! kernel's boot id (`/proc/sys/kernel/random/boot_id`) and the boot-time of the last save:
//! when the boot id differs on load, each charge keeps the age it had at that last save
//! (`saved_at_ms - at_ms`) and is rebased onto the new boot's clock. Time the router spent
//! powered off or booting is therefore *not* counted: after a reboot a window is at worst
//! longer than configured, never shorter — the budget errs on the side of doing less. A reboot
//! the agent itself triggers is charged (and saved) just before it, so its age is exact.
//!
//! The file is small JSON (`heal-budget.json` in `agent.state_dir`) written only when a charge
//! is added or refunded — remediation is rare, so this costs next to no flash — with write
//! temp, fsync, rename, fsync dir. A corrupt file is moved aside (`.corrupt`), logged, and the
//! budget starts empty.

pub use crate::actions::Limit;
use crate::fsutil::write_durable;
use netmedic_proto::ActionId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Charge {
    action: ActionId,
    /// CLOCK_BOOTTIME of the charge, in the frame of `boot_id` (negative after a rebase).
    at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    version: u32,
    boot_id: String,
    saved_at_ms: i64,
    charges: Vec<Charge>,
}

/// A refusal by the budget: why, and when the window lets the action run again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: String,
    /// Seconds until the budget allows the action again (charges only age out: this is exact
    /// unless a reboot intervenes, which only lengthens it); `u64::MAX`: never (max = 0).
    pub reopens_in_secs: u64,
}

/// The persisted budget state.
#[derive(Debug)]
pub struct Budget {
    path: PathBuf,
    boot_id: String,
    charges: Vec<Charge>,
    per_action: BTreeMap<ActionId, Limit>,
    global: Limit,
}

/// Milliseconds of CLOCK_BOOTTIME.
pub fn boottime_ms() -> i64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME) {
        Ok(ts) => ts.tv_sec() * 1000 + ts.tv_nsec() / 1_000_000,
        // Never on Linux; a monotonic fallback keeps the budget working within this run.
        Err(_) => {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            START
                .get_or_init(std::time::Instant::now)
                .elapsed()
                .as_millis() as i64
        }
    }
}

/// This boot's id; empty when unreadable (then every load counts as a new boot: safe).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

impl Budget {
    /// Loads (or starts) the budget at `path` for this boot.
    pub fn open(path: PathBuf, per_action: BTreeMap<ActionId, Limit>, global: Limit) -> Self {
        Self::open_at(path, per_action, global, &boot_id(), boottime_ms())
    }

    /// [`open`](Self::open) with the boot id and clock given (tests).
    pub fn open_at(
        path: PathBuf,
        per_action: BTreeMap<ActionId, Limit>,
        global: Limit,
        boot_id: &str,
        now_ms: i64,
    ) -> Self {
        let mut b = Self {
            path,
            boot_id: boot_id.to_string(),
            charges: Vec::new(),
            per_action,
            global,
        };
        match std::fs::read(&b.path) {
            Ok(bytes) => match serde_json::from_slice::<Stored>(&bytes) {
                Ok(s) if s.boot_id == boot_id && !boot_id.is_empty() => b.charges = s.charges,
                Ok(s) => {
                    // A reboot: keep each charge's age as of the last save.
                    b.charges = s
                        .charges
                        .into_iter()
                        .map(|c| Charge {
                            action: c.action,
                            at_ms: now_ms - (s.saved_at_ms - c.at_ms).max(0),
                        })
                        .collect();
                    b.prune(now_ms);
                    if let Err(e) = b.save(now_ms) {
                        log::warn!("budget: cannot save {}: {e}", b.path.display());
                    }
                }
                Err(e) => {
                    let aside = b.path.with_extension("corrupt");
                    log::error!(
                        "budget: {} is unreadable ({e}); moved to {} and starting empty",
                        b.path.display(),
                        aside.display()
                    );
                    let _ = std::fs::rename(&b.path, &aside);
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!("budget: cannot read {}: {e}", b.path.display()),
        }
        b
    }

    fn limit(&self, action: ActionId) -> Limit {
        self.per_action
            .get(&action)
            .copied()
            .unwrap_or_else(|| crate::actions::default_budget(action))
    }

    fn count_within(&self, action: Option<ActionId>, window_secs: u64, now_ms: i64) -> u32 {
        let since = now_ms - (window_secs as i64).saturating_mul(1000);
        self.charges
            .iter()
            .filter(|c| action.is_none_or(|a| a == c.action) && c.at_ms > since)
            .count() as u32
    }

    /// Why `action` may not run now, or `None` when the budget allows it.
    pub fn refusal(&self, action: ActionId, now_ms: i64) -> Option<String> {
        self.refused(action, now_ms).map(|r| r.reason)
    }

    /// Why `action` may not run now and when the budget lets it run again, or `None` when the
    /// budget allows it.
    pub fn refused(&self, action: ActionId, now_ms: i64) -> Option<Refusal> {
        let l = self.limit(action);
        let used = self.count_within(Some(action), l.window_secs, now_ms);
        let mut out: Option<Refusal> = None;
        if used >= l.max {
            out = Some(Refusal {
                reason: format!(
                    "budget: {action} ran {used} time(s) in the last {} s (limit {})",
                    l.window_secs, l.max
                ),
                reopens_in_secs: self.reopens_in_secs(Some(action), l, now_ms),
            });
        }
        let g = self.global;
        let used = self.count_within(None, g.window_secs, now_ms);
        if used >= g.max {
            let reopens = self.reopens_in_secs(None, g, now_ms);
            match &mut out {
                // Both refuse: the later reopening counts.
                Some(r) => r.reopens_in_secs = r.reopens_in_secs.max(reopens),
                None => {
                    out = Some(Refusal {
                        reason: format!(
                            "budget: {used} action(s) in the last {} s (global limit {})",
                            g.window_secs, g.max
                        ),
                        reopens_in_secs: reopens,
                    })
                }
            }
        }
        out
    }

    /// Seconds (rounded up) until the charges of `action` (all when `None`) within `limit`'s
    /// window drop below its max; `u64::MAX` when the limit allows none at all.
    fn reopens_in_secs(&self, action: Option<ActionId>, limit: Limit, now_ms: i64) -> u64 {
        let window_ms = (limit.window_secs as i64).saturating_mul(1000);
        let since = now_ms - window_ms;
        let mut at: Vec<i64> = self
            .charges
            .iter()
            .filter(|c| action.is_none_or(|a| a == c.action) && c.at_ms > since)
            .map(|c| c.at_ms)
            .collect();
        if limit.max == 0 {
            return u64::MAX;
        }
        let used = at.len() as u32;
        if used < limit.max {
            return 0;
        }
        at.sort_unstable();
        // The oldest `used - max + 1` charges must age out; the last of them decides.
        let decisive = at[(used - limit.max) as usize];
        let ms = (decisive + window_ms - now_ms).max(0) as u64;
        ms.div_ceil(1000)
    }

    /// Charges a run of `action` and persists it before the action starts.
    pub fn charge(&mut self, action: ActionId, now_ms: i64) {
        self.prune(now_ms);
        self.charges.push(Charge {
            action,
            at_ms: now_ms,
        });
        if let Err(e) = self.save(now_ms) {
            log::error!("budget: cannot persist {}: {e}", self.path.display());
        }
    }

    /// Takes back the latest charge of `action` (it was refused right before it started).
    pub fn refund(&mut self, action: ActionId, now_ms: i64) {
        if let Some(pos) = self.charges.iter().rposition(|c| c.action == action) {
            self.charges.remove(pos);
            if let Err(e) = self.save(now_ms) {
                log::error!("budget: cannot persist {}: {e}", self.path.display());
            }
        }
    }

    /// Charges of `action` still within its window (tests, logs).
    pub fn used(&self, action: ActionId, now_ms: i64) -> u32 {
        self.count_within(Some(action), self.limit(action).window_secs, now_ms)
    }

    fn prune(&mut self, now_ms: i64) {
        let longest = self
            .per_action
            .values()
            .map(|l| l.window_secs)
            .chain(
                ActionId::ALL
                    .iter()
                    .map(|a| crate::actions::default_budget(*a).window_secs),
            )
            .chain([self.global.window_secs])
            .max()
            .unwrap_or(0);
        let since = now_ms - (longest as i64).saturating_mul(1000);
        self.charges.retain(|c| c.at_ms > since);
    }

    fn save(&self, now_ms: i64) -> std::io::Result<()> {
        let stored = Stored {
            version: 1,
            boot_id: self.boot_id.clone(),
            saved_at_ms: now_ms,
            charges: self.charges.clone(),
        };
        let bytes = serde_json::to_vec(&stored).map_err(std::io::Error::other)?;
        write_durable(&self.path, &bytes)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn limits() -> BTreeMap<ActionId, Limit> {
        BTreeMap::from([(
            ActionId::Reboot,
            Limit {
                max: 3,
                window_secs: 86_400,
            },
        )])
    }
    const GLOBAL: Limit = Limit {
        max: 5,
        window_secs: 3600,
    };

    #[test]
    fn reboot_limit_survives_restarts_and_reboots() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        let hour = 3_600_000;
        let mut b = Budget::open_at(path.clone(), limits(), GLOBAL, "boot-a", 10 * hour);
        for i in 0..3 {
            assert_eq!(b.refusal(ActionId::Reboot, 10 * hour + i * hour), None);
            b.charge(ActionId::Reboot, 10 * hour + i * hour);
        }
        assert!(b.refusal(ActionId::Reboot, 13 * hour).is_some());
        // Agent restart, same boot: same answer.
        let b = Budget::open_at(path.clone(), limits(), GLOBAL, "boot-a", 13 * hour);
        assert!(b.refusal(ActionId::Reboot, 13 * hour).is_some());
        // A reboot: boottime restarts near zero; the charges keep their ages (0 h, 1 h, 2 h
        // as of the last save at 12 h).
        let b = Budget::open_at(path.clone(), limits(), GLOBAL, "boot-b", 60_000);
        assert!(b.refusal(ActionId::Reboot, 60_000).is_some());
        assert_eq!(b.used(ActionId::Reboot, 60_000), 3);
        // The oldest charge (age 2 h at save) leaves the 24 h window 22 h later.
        assert!(b.refusal(ActionId::Reboot, 60_000 + 22 * hour).is_none());
        assert!(b.refusal(ActionId::Reboot, 60_000 + 21 * hour).is_some());
    }

    #[test]
    fn wall_clock_jumps_do_not_matter_and_global_limit_holds() {
        // The budget never reads the wall clock: only boottime, passed in here.
        let dir = tempfile::tempdir().unwrap();
        let mut b = Budget::open_at(dir.path().join("b.json"), limits(), GLOBAL, "x", 0);
        for i in 0..5 {
            b.charge(ActionId::RestoreRoute, i);
        }
        let r = b.refusal(ActionId::ResetDns, 10).unwrap();
        assert!(r.contains("global"), "{r}");
        b.refund(ActionId::RestoreRoute, 10);
        assert_eq!(b.refusal(ActionId::ResetDns, 10), None);
    }

    #[test]
    fn a_refusal_says_when_the_window_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let hour = 3_600_000;
        let mut b = Budget::open_at(dir.path().join("b.json"), limits(), GLOBAL, "x", 0);
        for i in 0..3 {
            b.charge(ActionId::Reboot, i * hour);
        }
        // At 5 h the oldest reboot (0 h) leaves the 24 h window at 24 h: 19 h from now.
        let r = b.refused(ActionId::Reboot, 5 * hour).unwrap();
        assert_eq!(r.reopens_in_secs, 19 * 3600);
        assert!(r.reason.contains("limit 3"), "{}", r.reason);
        assert_eq!(b.refused(ActionId::Reboot, 24 * hour), None);
        // The global limit (5 per hour) reopens when its oldest charge is an hour old.
        let mut g = Budget::open_at(dir.path().join("g.json"), limits(), GLOBAL, "x", 0);
        for i in 0..5 {
            g.charge(ActionId::RestoreRoute, i * 60_000);
        }
        let r = g.refused(ActionId::ResetDns, 10 * 60_000).unwrap();
        assert_eq!(r.reopens_in_secs, 50 * 60);
        let none = BTreeMap::from([(
            ActionId::Reboot,
            Limit {
                max: 0,
                window_secs: 60,
            },
        )]);
        let z = Budget::open_at(dir.path().join("z.json"), none, GLOBAL, "x", 0);
        assert_eq!(
            z.refused(ActionId::Reboot, 0).unwrap().reopens_in_secs,
            u64::MAX
        );
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.json");
        std::fs::write(&path, b"{not json").unwrap();
        let b = Budget::open_at(path.clone(), limits(), GLOBAL, "x", 0);
        assert_eq!(b.used(ActionId::Reboot, 0), 0);
        assert!(path.with_extension("corrupt").exists());
    }
}
