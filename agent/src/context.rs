//! What every part of the agent shares: the [`Context`] checks observe with and actions act
//! through, the [`Shared`] state other tasks feed (clock sample, interface table, collector
//! advisories and holdout experiments, check statuses) and the wall clock ([`now`]).
//!
//! This module sits below `checks`, `actions` and `heal`: it imports none of them, so they can
//! all use it without depending on each other.

use crate::experiment::Assigned;
use crate::net::Netlink;
use crate::ping::Pinger;
use crate::site::Site;
use netmedic_proto::{CheckId, CheckStatus, Timestamp};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A clock reading taken from a collector response: its `Date` header and our clock then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockSample {
    /// The collector's `Date` (second precision).
    pub server: Timestamp,
    /// Our wall clock when the response arrived.
    pub local: Timestamp,
    /// Round trip of that request, to bound the error.
    pub rtt_ms: u64,
}

/// What the collector's latest heartbeat reply asked of this agent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Advisories {
    /// Many devices behind our access node fail: the fault is upstream; take no local
    /// remediation until then. `(network_event_id, until)`.
    pub upstream_outage: Option<(String, Timestamp)>,
    /// Remediation stopped by the NOC (device, region or fleet), with its reason.
    pub kill_switch: Option<String>,
    /// On-demand diagnostics requested and not yet run: `(request_id, checks)`.
    pub diagnostics: Vec<(String, Vec<CheckId>)>,
    /// Holdout experiments in force, with this device's arm in each (replaced by every reply;
    /// not persisted, like the rest of the advisories).
    pub experiments: Vec<Assigned>,
}

/// State that other parts of the agent feed and checks and the healer read.
#[derive(Debug, Default)]
pub struct Shared {
    /// Latest clock sample from the reporter.
    pub clock: Mutex<Option<ClockSample>>,
    /// Interface state kept current by netlink events.
    pub links: Mutex<LinkTable>,
    /// Advisories from the latest heartbeat reply.
    pub advisories: Mutex<Advisories>,
    /// Latest status of each enabled check (the detector's view), for heartbeats.
    pub check_statuses: Mutex<BTreeMap<CheckId, CheckStatus>>,
}

/// Locks `m`; a panic elsewhere while holding it leaves the data as it was, which is still the
/// latest value of these plain snapshots.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Shared {
    pub fn clock_sample(&self) -> Option<ClockSample> {
        *lock(&self.clock)
    }

    pub fn advisories(&self) -> Advisories {
        lock(&self.advisories).clone()
    }

    pub fn set_advisories(&self, a: Advisories) {
        *lock(&self.advisories) = a;
    }

    /// Replaces the holdout experiments in force; returns the previous list.
    pub fn set_experiments(&self, e: Vec<Assigned>) -> Vec<Assigned> {
        std::mem::replace(&mut lock(&self.advisories).experiments, e)
    }

    pub fn check_statuses(&self) -> BTreeMap<CheckId, CheckStatus> {
        lock(&self.check_statuses).clone()
    }

    pub fn set_check_statuses(&self, s: BTreeMap<CheckId, CheckStatus>) {
        *lock(&self.check_statuses) = s;
    }

    pub fn set_clock_sample(&self, s: ClockSample) {
        *lock(&self.clock) = Some(s);
    }
}

/// What checks may use to observe and actions to act.
#[derive(Debug)]
pub struct Context {
    /// The cross-cutting facts of this CPE (agent id, state dir, mode, collector, WAN).
    pub site: Arc<Site>,
    pub netlink: Netlink,
    /// `None` when the ICMP socket could not be opened (no CAP_NET_RAW); checks that need it
    /// then report `unknown` instead of a false failure.
    pub pinger: Option<Pinger>,
    pub shared: Arc<Shared>,
}

/// Current wall-clock time as a wire timestamp.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_unix_millis(ms).unwrap_or(Timestamp::EPOCH)
}

// ---------------------------------------------------------------------------------------------
// The interface table, fed by netlink events and read by the `link` check.

/// One interface as netlink last described it.
#[derive(Debug, Clone, PartialEq)]
pub struct LinkState {
    pub index: u32,
    pub name: String,
    pub admin_up: bool,
    pub carrier: bool,
    /// Kernel operstate, lower case (`up`, `down`, `lowerlayerdown`, `unknown`, ...).
    pub operstate: String,
    pub mtu: u32,
    /// When the carrier last changed, as seen by this agent.
    pub carrier_changed_at: Option<Instant>,
    /// Carrier transitions seen recently (for flap counting).
    pub transitions: VecDeque<Instant>,
    /// All carrier transitions seen since the agent started.
    pub transitions_total: u64,
}

/// An interface as one netlink message describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    pub admin_up: bool,
    pub carrier: bool,
    pub operstate: String,
    pub mtu: u32,
}

/// The interface table, updated from netlink dumps and events.
#[derive(Debug, Default)]
pub struct LinkTable {
    by_index: BTreeMap<u32, LinkState>,
    /// Set once a full dump has been loaded.
    pub loaded: bool,
}

/// What an update changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    New,
    Carrier { up: bool },
    Other,
    Removed,
}

/// Most transitions remembered per interface; older ones only count in `transitions_total`.
const MAX_TRANSITIONS: usize = 64;

impl LinkTable {
    /// Applies a link description (from a dump or an event) observed at `now`.
    pub fn update(&mut self, info: LinkInfo, now: Instant) -> LinkChange {
        let LinkInfo {
            index,
            name,
            admin_up,
            carrier,
            operstate,
            mtu,
        } = info;
        match self.by_index.get_mut(&index) {
            None => {
                self.by_index.insert(
                    index,
                    LinkState {
                        index,
                        name,
                        admin_up,
                        carrier,
                        operstate,
                        mtu,
                        carrier_changed_at: None,
                        transitions: VecDeque::new(),
                        transitions_total: 0,
                    },
                );
                LinkChange::New
            }
            Some(s) => {
                let flipped = s.carrier != carrier;
                s.name = name;
                s.admin_up = admin_up;
                s.carrier = carrier;
                s.operstate = operstate;
                s.mtu = mtu;
                if flipped {
                    s.carrier_changed_at = Some(now);
                    s.transitions_total += 1;
                    s.transitions.push_back(now);
                    while s.transitions.len() > MAX_TRANSITIONS {
                        s.transitions.pop_front();
                    }
                    LinkChange::Carrier { up: carrier }
                } else {
                    LinkChange::Other
                }
            }
        }
    }

    pub fn remove(&mut self, index: u32) -> LinkChange {
        self.by_index.remove(&index);
        LinkChange::Removed
    }

    pub fn by_name(&self, name: &str) -> Option<&LinkState> {
        self.by_index.values().find(|l| l.name == name)
    }

    /// Carrier transitions of `name` within `window` before `now`.
    pub fn flaps(&self, name: &str, window: Duration, now: Instant) -> u32 {
        self.by_name(name).map_or(0, |l| {
            l.transitions
                .iter()
                .filter(|t| now.saturating_duration_since(**t) <= window)
                .count() as u32
        })
    }
}
