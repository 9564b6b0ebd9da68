//! Healing: maps an incident's cause to its playbook — an ordered ladder of actions, least
//! disruptive first — and decides, under the safety rules below, what happens next:
//! act, wait (and say why), pass over a rung, or escalate. [`plan()`] turns the decision into
//! a recorded step, [`step::run`] carries it out (act, verify, roll back), [`finish()`]
//! records how it ended; the daemon loop only schedules them, so every step reaches the spool
//! in order.
//!
//! The decision itself ([`decide()`]) is pure: the daemon gathers the facts (kill switch,
//! advisories, detector state, budget, clock) into [`Facts`] and records what comes back.
//!
//! Safety, rule by rule:
//! 1. *Local before acting*: a collector "upstream outage" advisory stops every action; a
//!    fault proven beyond the gateway (the `upstream_unreachable` incident: the gateway answers,
//!    the ISP's probe targets do not — or the same seen live right before the action) passes
//!    over every disruptive rung (bounce_iface, reboot, restart_service, flush_conntrack).
//! 2. *Budgets*: [`budget`] (persisted, boot-time clock); a rung over budget waits while the
//!    budget reopens within `healing.budget_wait_max_secs` and escalates to the NOC when it
//!    reopens later (a reboot over its 24 h limit); exponential backoff with
//!    jitter between the rungs of one incident; a check+cause that comes back within
//!    `healing.ladder_memory_secs` of its resolution resumes its ladder where it was
//!    ([`HealState::on_opened`]) instead of starting over.
//! 3. *Verify, undo, escalate*: in [`step`]; a step that changed the system is verified or
//!    rolled back even when the agent stops; an exhausted ladder escalates.
//! 4. *Respect the subscriber*: a disruptive rung for a check that is only degraded (service
//!    still up) waits for a maintenance window and a quiet LAN; when the service is already
//!    down (status failed) neither applies.
//! 5. *Visible and stoppable*: modes per agent and per playbook; kill switch (local file and
//!    advisory) here and again right before the action; every wait is recorded (once per
//!    reason) on the incident. A playbook's causes must be listed: an empty list is refused.
//! 6. *Holdout experiments* ([`holdout`]): where the collector puts this device in the control
//!    arm of an experiment covering the incident, the playbook runs in dry run; every incident
//!    records its arm. Rules 1 and 5 still stop both arms.

pub mod budget;
pub mod causes;
pub mod config;
pub mod decide;
pub mod holdout;
pub mod plan;
pub mod playbook;
pub mod state;
pub mod step;

pub use config::{HealingConfig, PlaybookConfig, playbook_problems};
pub use decide::{
    Decision, Facts, backoff, decide, in_window, kill_switch, parse_window, upstream_advisory,
};
pub use holdout::{assign_arm, held_out_by};
pub use plan::{EventSink, finish, plan};
pub use playbook::{Ladder, builtin, ladder};
pub use state::HealState;
pub use step::{Effects, PlannedStep, StepResult, System};

use crate::site::Site;
use std::net::Ipv4Addr;

/// What the healer reads: the site, its own tables (`[healing]`, `[[playbook]]`), the actions'
/// settings and the one fact of a check table it needs, copied there by `config` — the healer
/// never names the assembled config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub site: Site,
    pub healing: HealingConfig,
    pub playbooks: Vec<PlaybookConfig>,
    /// `[checks.icmp] targets`: the ISP's probe targets of the live locality probe.
    pub icmp_targets: Vec<Ipv4Addr>,
    pub actions: crate::actions::Settings,
}

/// The cause the agent gives a fault proven to lie beyond the gateway (icmp: the gateway
/// answers, every ISP probe target is silent).
pub const UPSTREAM_CAUSE: &str = "upstream_unreachable";

#[cfg(test)]
mod tests;
