//! What a heartbeat needs to be answered without a database round trip: the device tokens
//! recently verified (token hash → device) and a snapshot of the fleet-wide advice (kill
//! switches, active experiments, devices with diagnostics pending, whether any network event
//! is active). The store fills both from the database and keeps them true:
//!
//! - in this process, every change that could alter an answer (device revoked, kill switch set
//!   or cleared, diagnostics requested, experiment started or ended, network events changed)
//!   invalidates at once, after its commit: the very next heartbeat takes the database path;
//! - changes made by another process (several collectors on one PostgreSQL database) are seen
//!   within [`HB_CACHE_MAX_AGE`]: a token answers only for that long after the database path
//!   verified it (then the next heartbeat of that device verifies it again), and the snapshot
//!   is re-read every [`SEEN_FLUSH_INTERVAL`](super::shared::SEEN_FLUSH_INTERVAL) and not used
//!   once older than [`HB_CACHE_MAX_AGE`].
//!
//! **The cost does not grow with the fleet.** Tokens are not re-verified in bulk as such: an
//! expired entry is dropped at the next refresh, so the map holds only devices verified in the
//! last few seconds, and the advice is four small reads whatever the fleet's size. (A first
//! version re-verified every cached token each second: with a million devices that is a million
//! index reads a second per collector.) Only the tokens that answered a heartbeat since their
//! verification are read again, in chunks, before they expire ([`HbCache::due`]): a cost that
//! follows the heartbeats the cache answered. The cache therefore serves a device that
//! heartbeats again within [`HB_CACHE_MAX_AGE`] (retries, a reconnect storm, load tests) for as
//! long as it keeps doing so; a fleet on the default five-minute interval takes the database
//! path for every heartbeat, where a writer checks a whole group's tokens in one read and
//! answers from the advice snapshot when it holds nothing for the group's devices.
//!
//! A heartbeat the cache cannot answer (unknown token, another device's id, a region kill
//! switch or an active network event, diagnostics pending) goes the database path, which keeps
//! every denial reason and delivers diagnostics exactly once.

use super::{HeartbeatOk, KillSwitch, kill_advisory};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Oldest verification of a token, or snapshot of the advice, that still answers a heartbeat:
/// the bound on how long another process's revocation or kill switch can go unseen here.
pub const HB_CACHE_MAX_AGE: Duration = Duration::from_secs(3);

/// Age at which a token in use is verified again (by the once-a-second refresh, so it is
/// renewed before [`HB_CACHE_MAX_AGE`]).
const REVERIFY_AGE: Duration = Duration::from_secs(1);

/// Most tokens kept (beyond this, new devices are answered by the database path).
const MAX_TOKENS: usize = 1_000_000;

/// The values of an `IN (...)` list, padded to the next power of two by repeating the last
/// one (which changes no result): the statement's text then takes one of a few shapes, each
/// prepared once per connection and found in its statement cache, instead of one new statement
/// per group size (which also evicts the cached ones).
pub fn padded<T>(values: &[T]) -> impl Iterator<Item = &T> {
    let pad = values.len().next_power_of_two() - values.len();
    values
        .iter()
        .chain(values.last().into_iter().cycle().take(pad))
}

/// The fleet-wide advice of a heartbeat reply, read at `taken`.
#[derive(Debug)]
pub struct Advice {
    pub killswitches: Vec<KillSwitch>,
    pub experiments: Vec<netmedic_proto::Experiment>,
    /// Devices with diagnostics requests not yet delivered.
    pub pending_diagnostics: HashSet<String>,
    /// The latest `until` (unix ms) of the unresolved network events, if any.
    pub outage_until_ms: Option<i64>,
    pub taken: Instant,
}

#[derive(Debug)]
struct TokenEntry {
    agent_id: String,
    verified: Instant,
    /// Answered a heartbeat since `verified`: re-verified before it expires.
    used: AtomicBool,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct HbCache {
    /// Bumped by every invalidation; a fill read before a bump is dropped.
    generation: AtomicU64,
    tokens: RwLock<HashMap<String, TokenEntry>>,
    advice: RwLock<Option<Arc<Advice>>>,
}

impl HbCache {
    /// Read before a database read whose result goes into the cache.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn tokens_write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, TokenEntry>> {
        self.tokens.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Device `agent_id`'s tokens are no longer valid (revoked).
    pub fn revoke_device(&self, agent_id: &str) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.tokens_write().retain(|_, e| e.agent_id != agent_id);
    }

    /// Something behind the advice changed: the next heartbeats read it from the database.
    pub fn advice_changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        *self.advice.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Tokens verified valid by a read that started at `verified`, after `generation`.
    pub fn insert_tokens<'a>(
        &self,
        generation: u64,
        verified: Instant,
        tokens: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) {
        let mut map = self.tokens_write();
        // Checked under the lock: an invalidation either bumped before (dropped here) or
        // removes after.
        if self.generation() != generation {
            return;
        }
        for (token, agent_id) in tokens {
            if map.len() >= MAX_TOKENS && !map.contains_key(token) {
                return;
            }
            map.insert(
                token.to_owned(),
                TokenEntry {
                    agent_id: agent_id.to_owned(),
                    verified,
                    used: AtomicBool::new(false),
                },
            );
        }
    }

    /// Drops the tokens verified longer than [`HB_CACHE_MAX_AGE`] ago (they no longer answer).
    pub fn prune(&self) {
        self.tokens_write()
            .retain(|_, e| e.verified.elapsed() <= HB_CACHE_MAX_AGE);
    }

    /// The tokens to verify again now: those that answered a heartbeat since their
    /// verification and are older than [`REVERIFY_AGE`], so that a device heartbeating
    /// again and again never drops out of the cache. Their number is bounded by the heartbeats
    /// the cache answered, not by the fleet: a device on the five-minute interval is never
    /// in it twice.
    pub fn due(&self) -> Vec<String> {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(_, e)| e.used.load(Ordering::Relaxed) && e.verified.elapsed() >= REVERIFY_AGE)
            .map(|(t, _)| t.clone())
            .collect()
    }

    /// How many tokens the cache holds.
    pub fn token_count(&self) -> usize {
        self.tokens
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// The advice read at `advice.taken`, kept unless something changed since `generation`.
    pub fn set_advice(&self, generation: u64, advice: Advice) {
        let mut slot = self.advice.write().unwrap_or_else(PoisonError::into_inner);
        if self.generation() == generation {
            *slot = Some(Arc::new(advice));
        }
    }

    /// The answer to a heartbeat of `agent_id` carrying the token hash `token`, received at
    /// `now_ms`, when the cache can give it; `None`: ask the database.
    pub fn answer(&self, token: &str, agent_id: &str, now_ms: i64) -> Option<HeartbeatOk> {
        {
            let map = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
            let e = map.get(token)?;
            if e.agent_id != agent_id || e.verified.elapsed() > HB_CACHE_MAX_AGE {
                return None;
            }
            e.used.store(true, Ordering::Relaxed);
        }
        let advice = self.advice_for(agent_id, now_ms)?;
        Some(advice.reply(agent_id))
    }

    /// The advice snapshot when it answers a heartbeat of `agent_id` received at `now_ms`:
    /// fresh, nothing to deliver to the device, no active network event, no region switch.
    /// `None`: the write path must answer (it delivers diagnostics exactly once and reads
    /// regions and outages per device).
    pub fn advice_for(&self, agent_id: &str, now_ms: i64) -> Option<Arc<Advice>> {
        let advice = self
            .advice
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        if advice.taken.elapsed() > HB_CACHE_MAX_AGE
            || advice.pending_diagnostics.contains(agent_id)
            || advice.outage_until_ms.is_some_and(|u| u > now_ms)
            // A region switch needs the device's region (subscribers table): database path.
            || advice.killswitches.iter().any(|k| k.scope == "region")
        {
            return None;
        }
        Some(advice)
    }
}

impl Advice {
    /// The reply to an accepted heartbeat of `agent_id` that [`HbCache::advice_for`] cleared.
    pub fn reply(&self, agent_id: &str) -> HeartbeatOk {
        HeartbeatOk {
            advisories: kill_advisory(&self.killswitches, agent_id, None)
                .into_iter()
                .collect(),
            experiments: self.experiments.clone(),
        }
    }
}

/// The SQL that fills the cache, expanded per backend inside `sql_store!` (`shared.rs`), over
/// the backend's `Conn` and `Db`.
macro_rules! hbcache_sql {
    () => {
        /// Reads again what answers heartbeats from `cache` (see [`HbCache`]): the advice
        /// (kill switches, active experiments, devices with diagnostics pending, the end of
        /// the active network events), drops the expired tokens and verifies again the tokens
        /// in use (see `HbCache::due`).
        ///
        /// [`HbCache`]: $crate::store::hbcache::HbCache
        async fn refresh_hb_cache_in(
            conn: &mut Conn,
            cache: &$crate::store::hbcache::HbCache,
        ) -> Result<()> {
            let generation = cache.generation();
            let taken = std::time::Instant::now();
            let killswitches = load_killswitches(conn).await?;
            let experiments = load_experiments(conn, true)
                .await?
                .into_iter()
                .map(|r| r.experiment)
                .collect();
            let pending: Vec<(String,)> = sqlx::query_as(
                "SELECT DISTINCT agent_id FROM diagnostics_requests WHERE delivered_at IS NULL",
            )
            .fetch_all(&mut *conn)
            .await?;
            let (outage_until_ms,): (Option<i64>,) = sqlx::query_as(
                "SELECT MAX(until_at) FROM network_events WHERE resolved_at IS NULL",
            )
            .fetch_one(&mut *conn)
            .await?;
            cache.set_advice(
                generation,
                $crate::store::hbcache::Advice {
                    killswitches,
                    experiments,
                    pending_diagnostics: pending.into_iter().map(|(a,)| a).collect(),
                    outage_until_ms,
                    taken,
                },
            );
            cache.prune();
            // The tokens in use, verified again in chunks (see `HbCache::due`).
            let due = cache.due();
            for chunk in due.chunks(CHUNK_ROWS) {
                let generation = cache.generation();
                let verified = std::time::Instant::now();
                let mut qb = sqlx::QueryBuilder::<Db>::new(
                    "SELECT token_sha256, agent_id FROM devices
                     WHERE revoked_at IS NULL AND token_sha256 IN (",
                );
                let mut sep = qb.separated(", ");
                for t in $crate::store::hbcache::padded(chunk) {
                    sep.push_bind(t.as_str());
                }
                qb.push(")");
                let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
                cache.insert_tokens(
                    generation,
                    verified,
                    rows.iter().map(|(t, id)| (t.as_str(), id.as_str())),
                );
            }
            Ok(())
        }

        /// Buffers an accepted heartbeat's last-seen update (written once a second, when the
        /// heartbeat is encoded: once per device and flush, not per heartbeat).
        fn record_seen(
            seen: &$crate::store::shared::SeenBuffer,
            token_sha256: &str,
            hb: Heartbeat,
            seen_ms: i64,
        ) {
            seen.record([(
                hb.agent_id.clone(),
                $crate::store::shared::Seen {
                    token_sha256: token_sha256.to_owned(),
                    seen_ms,
                    heartbeat: hb,
                },
            )]);
        }
    };
}

pub(crate) use hbcache_sql;

#[cfg(test)]
mod tests {
    use super::*;
    use netmedic_proto::{Advisory, Timestamp};

    fn advice(switches: Vec<KillSwitch>) -> Advice {
        Advice {
            killswitches: switches,
            experiments: Vec::new(),
            pending_diagnostics: HashSet::from(["pending".to_owned()]),
            outage_until_ms: None,
            taken: Instant::now(),
        }
    }

    fn cache_with(token: &str, agent: &str) -> HbCache {
        let c = HbCache::default();
        c.insert_tokens(c.generation(), Instant::now(), [(token, agent)]);
        c.set_advice(c.generation(), advice(Vec::new()));
        c
    }

    #[test]
    fn in_lists_are_padded_with_their_last_value() {
        let got = |v: &[u8]| padded(v).copied().collect::<Vec<u8>>();
        assert_eq!(got(&[]), Vec::<u8>::new());
        assert_eq!(got(&[1]), [1]);
        assert_eq!(got(&[1, 2, 3]), [1, 2, 3, 3]);
        assert_eq!(got(&[1, 2, 3, 4, 5]), [1, 2, 3, 4, 5, 5, 5, 5]);
    }

    #[test]
    fn answers_only_the_token_s_own_device() {
        let c = cache_with("t1", "a");
        assert_eq!(c.answer("t1", "a", 0), Some(HeartbeatOk::default()));
        assert_eq!(c.answer("t1", "b", 0), None);
        assert_eq!(c.answer("t2", "a", 0), None);
    }

    #[test]
    fn revocation_is_immediate_and_a_stale_fill_is_dropped() {
        let c = cache_with("t1", "a");
        let before = c.generation();
        c.revoke_device("a");
        assert_eq!(c.answer("t1", "a", 0), None);
        // A read that started before the revocation cannot put the token back.
        c.insert_tokens(before, Instant::now(), [("t1", "a")]);
        assert_eq!(c.answer("t1", "a", 0), None);
    }

    #[test]
    fn a_token_answers_only_while_fresh_and_expired_ones_are_dropped() {
        let c = cache_with("t1", "a");
        let old = Instant::now()
            .checked_sub(HB_CACHE_MAX_AGE + Duration::from_millis(10))
            .expect("the clock is past the age");
        c.insert_tokens(c.generation(), old, [("t2", "b")]);
        assert_eq!(c.answer("t2", "b", 0), None, "verified too long ago");
        assert_eq!(c.token_count(), 2);
        c.prune();
        assert_eq!(c.token_count(), 1, "only the fresh token is kept");
        assert!(c.answer("t1", "a", 0).is_some());
    }

    #[test]
    fn only_tokens_in_use_are_due_for_verification_again() {
        let c = HbCache::default();
        c.set_advice(c.generation(), advice(Vec::new()));
        let old = Instant::now()
            .checked_sub(REVERIFY_AGE + Duration::from_millis(10))
            .expect("the clock is past the age");
        c.insert_tokens(c.generation(), old, [("t1", "a"), ("t2", "b")]);
        assert!(c.due().is_empty(), "no heartbeat answered yet");
        assert!(c.answer("t1", "a", 0).is_some());
        assert_eq!(c.due(), vec!["t1".to_owned()]);
        c.insert_tokens(c.generation(), Instant::now(), [("t1", "a")]);
        assert!(c.due().is_empty(), "verified again: neither used nor old");
    }

    #[test]
    fn advice_changes_go_to_the_database_until_read_again() {
        let c = cache_with("t1", "a");
        let before = c.generation();
        c.advice_changed();
        assert_eq!(c.answer("t1", "a", 0), None);
        c.set_advice(before, advice(Vec::new()));
        assert_eq!(
            c.answer("t1", "a", 0),
            None,
            "read before the change: dropped"
        );
        let fleet = KillSwitch {
            scope: "fleet",
            target: String::new(),
            reason: "stop".into(),
            set_at: Timestamp::from_unix_millis(0).expect("valid time"),
        };
        c.set_advice(c.generation(), advice(vec![fleet.clone()]));
        let ok = c.answer("t1", "a", 0).expect("answered");
        assert_eq!(
            ok.advisories,
            vec![Advisory::KillSwitch {
                reason: "stop".into()
            }]
        );
        let region = KillSwitch {
            scope: "region",
            target: "north".into(),
            ..fleet
        };
        c.set_advice(c.generation(), advice(vec![region]));
        assert_eq!(c.answer("t1", "a", 0), None, "region switch: database path");
    }

    #[test]
    fn pending_diagnostics_and_outages_take_the_database_path() {
        let c = cache_with("t1", "pending");
        assert_eq!(c.answer("t1", "pending", 0), None);
        let c = cache_with("t1", "a");
        let mut a = advice(Vec::new());
        a.outage_until_ms = Some(1_000);
        c.set_advice(c.generation(), a);
        assert_eq!(c.answer("t1", "a", 999), None);
        assert!(c.answer("t1", "a", 1_000).is_some(), "the outage ended");
    }
}
