//! Checks observe the CPE and never change it. One file per check; the closed [`Check`] enum
//! dispatches, so the scheduler, the `check` command and the detector share one catalogue.

pub mod default_route;

use crate::config::{AgentConfig, Hysteresis};
use crate::net::Netlink;
use crate::ping::Pinger;
use netmedic_proto::{Category, CheckId, CheckStatus, Severity, Timestamp};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// What one run of a check saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub check: CheckId,
    pub status: CheckStatus,
    /// Machine-readable cause (`ok` when healthy), e.g. `default_route_missing`.
    pub cause: String,
    /// One line for a human.
    pub summary: String,
    /// The headline measured value, e.g. `via 100.64.0.1 dev wan, 0.4 ms`.
    pub value: String,
    /// The threshold the value was judged against.
    pub threshold: String,
    /// What to do about it, when not ok.
    pub hint: String,
    pub category: Category,
    pub severity: Severity,
    /// Everything a NOC engineer needs to see, keyed by name.
    pub evidence: BTreeMap<String, String>,
    pub at: Timestamp,
}

impl Observation {
    pub fn is_failing(&self) -> bool {
        matches!(self.status, CheckStatus::Failed | CheckStatus::Degraded)
    }
}

/// What checks may use to observe.
#[derive(Debug)]
pub struct Context {
    pub config: Arc<AgentConfig>,
    pub netlink: Netlink,
    /// `None` when the ICMP socket could not be opened (no CAP_NET_RAW); checks that need it
    /// then report `unknown` instead of a false failure.
    pub pinger: Option<Pinger>,
}

/// The catalogue of checks.
#[derive(Debug, Clone)]
pub enum Check {
    DefaultRoute(default_route::DefaultRouteCheck),
}

impl Check {
    pub fn id(&self) -> CheckId {
        match self {
            Check::DefaultRoute(_) => CheckId::DefaultRoute,
        }
    }

    pub fn interval(&self) -> Duration {
        match self {
            Check::DefaultRoute(c) => Duration::from_secs(c.config.interval_secs),
        }
    }

    pub fn hysteresis(&self) -> Hysteresis {
        match self {
            Check::DefaultRoute(c) => c.config.hysteresis(),
        }
    }

    pub async fn run(&self, ctx: &Context) -> Observation {
        match self {
            Check::DefaultRoute(c) => c.run(ctx).await,
        }
    }
}

/// The enabled checks of a config, in catalogue order.
pub fn enabled(config: &AgentConfig) -> Vec<Check> {
    let mut out = Vec::new();
    if config.checks.default_route.enabled {
        out.push(Check::DefaultRoute(default_route::DefaultRouteCheck {
            config: config.checks.default_route.clone(),
            wan_interface: config.wan.interface.clone(),
        }));
    }
    out
}

/// Current wall-clock time as a wire timestamp.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_unix_millis(ms).unwrap_or(Timestamp::EPOCH)
}
