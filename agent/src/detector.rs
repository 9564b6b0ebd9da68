//! Detector: turns a stream of observations into incidents with hysteresis — N consecutive
//! failing runs open an incident, M consecutive passing runs resolve it.
//!
//! Pure logic: no I/O, no clock of its own, so it is tested exhaustively with plain values.

use crate::checks::Observation;
use crate::incident::Incident;
use crate::site::Hysteresis;
use netmedic_proto::{CheckId, CheckStatus};
use std::collections::BTreeMap;

/// What an observation did to its check's incident.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    /// Nothing changed (healthy, or failing below the threshold, or unknown).
    Quiet,
    /// A new incident was opened; it is now in the detector.
    Opened,
    /// The open incident is still failing.
    StillFailing,
    /// The open incident is still failing and its cause was taken over by a new one (see
    /// `TAKES_OVER`): worth an update event of its own.
    CauseChanged,
    /// The open incident cleared by itself (not by an action) and is handed back.
    Resolved(Box<Incident>),
}

/// Causes that take over an open incident of their check when a run reports them: the fault
/// turned out to be another one. A carrier loss that keeps coming back is a flapping link —
/// from then on the incident says so, and the flapping ladder (none: nothing local fixes a
/// flapping line) replaces the carrier-loss ladder, so no action is repeated on every flap.
const TAKES_OVER: &[(CheckId, &str)] = &[(CheckId::Link, "wan_link_flapping")];

#[derive(Debug, Default)]
struct CheckState {
    consecutive_fail: u32,
    consecutive_ok: u32,
    open: Option<Incident>,
    last_status: Option<CheckStatus>,
}

#[derive(Debug, Default)]
pub struct Detector {
    states: BTreeMap<CheckId, CheckState>,
}

impl Detector {
    pub fn observe(&mut self, obs: &Observation, h: Hysteresis) -> Transition {
        let st = self.states.entry(obs.check).or_default();
        st.last_status = Some(obs.status);
        match obs.status {
            // Unknown says nothing about the fault: keep counting where we were.
            CheckStatus::Unknown => Transition::Quiet,
            CheckStatus::Ok => {
                st.consecutive_fail = 0;
                st.consecutive_ok = st.consecutive_ok.saturating_add(1);
                if st.open.is_some() && st.consecutive_ok >= h.ok_threshold {
                    st.open
                        .take()
                        .map_or(Transition::Quiet, |i| Transition::Resolved(Box::new(i)))
                } else {
                    Transition::Quiet
                }
            }
            CheckStatus::Failed | CheckStatus::Degraded => {
                st.consecutive_ok = 0;
                st.consecutive_fail = st.consecutive_fail.saturating_add(1);
                match &mut st.open {
                    Some(inc) => {
                        // Keep the latest evidence; the cause of an open incident stays fixed
                        // so one fault remains one incident — unless the new cause takes over.
                        inc.evidence = obs.evidence.clone();
                        if inc.cause != obs.cause
                            && TAKES_OVER.contains(&(obs.check, obs.cause.as_str()))
                        {
                            inc.cause = obs.cause.clone();
                            inc.category = obs.category;
                            inc.severity = obs.severity;
                            inc.summary = obs.summary.clone();
                            return Transition::CauseChanged;
                        }
                        Transition::StillFailing
                    }
                    None if st.consecutive_fail >= h.fail_threshold => {
                        st.open = Some(Incident::open(obs));
                        Transition::Opened
                    }
                    None => Transition::Quiet,
                }
            }
        }
    }

    pub fn incident(&self, check: CheckId) -> Option<&Incident> {
        self.states.get(&check).and_then(|s| s.open.as_ref())
    }

    pub fn incident_mut(&mut self, check: CheckId) -> Option<&mut Incident> {
        self.states.get_mut(&check).and_then(|s| s.open.as_mut())
    }

    /// Closes an incident that an action fixed and verified; counters restart from healthy.
    pub fn resolve_healed(&mut self, check: CheckId) -> Option<Incident> {
        let st = self.states.get_mut(&check)?;
        st.consecutive_fail = 0;
        st.consecutive_ok = 0;
        st.open.take()
    }

    /// The last status seen for a check.
    pub fn last_status(&self, check: CheckId) -> Option<CheckStatus> {
        self.states.get(&check).and_then(|s| s.last_status)
    }

    /// A passing run while an action for this check's open incident is in flight: remembered
    /// as the last status, but it does not resolve the incident. The heal step verifies by
    /// re-running the check and resolves it crediting the action; resolving here would call a
    /// fault the action fixed "resolved by itself" (the regular run and the verification race
    /// once the fix lands). Returns false (nothing held) when no incident is open or the run
    /// is not a pass: such runs go through [`Self::observe`].
    pub fn hold_pass(&mut self, obs: &Observation) -> bool {
        let Some(st) = self.states.get_mut(&obs.check) else {
            return false;
        };
        if st.open.is_none() || obs.status != CheckStatus::Ok {
            return false;
        }
        st.last_status = Some(obs.status);
        true
    }

    /// Records a failure that is a consequence of another check's fault: remembered as the
    /// last status, but it neither opens nor advances an incident of its own.
    pub fn note_consequence(&mut self, check: CheckId, status: CheckStatus) {
        self.states.entry(check).or_default().last_status = Some(status);
    }

    /// Last status seen per check (for heartbeats and the `check` summary).
    pub fn statuses(&self) -> BTreeMap<CheckId, CheckStatus> {
        self.states
            .iter()
            .filter_map(|(k, s)| s.last_status.map(|v| (*k, v)))
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use netmedic_proto::{Category, Severity, Timestamp};

    /// An observation of `check` with `status` and `cause` (the other fields fixed); the heal
    /// tests open their incidents from it too.
    pub(crate) fn observation(check: CheckId, status: CheckStatus, cause: &str) -> Observation {
        Observation {
            check,
            status,
            cause: cause.into(),
            summary: "s".into(),
            value: String::new(),
            threshold: String::new(),
            hint: String::new(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            evidence: Default::default(),
            at: Timestamp::EPOCH,
        }
    }

    fn obs(status: CheckStatus) -> Observation {
        let cause = if status == CheckStatus::Ok {
            "ok"
        } else {
            "default_route_missing"
        };
        observation(CheckId::DefaultRoute, status, cause)
    }

    const H: Hysteresis = Hysteresis {
        fail_threshold: 2,
        ok_threshold: 3,
    };

    #[test]
    fn opens_after_n_failures_and_resolves_after_m_successes() {
        let mut d = Detector::default();
        assert_eq!(d.observe(&obs(CheckStatus::Failed), H), Transition::Quiet);
        assert_eq!(d.observe(&obs(CheckStatus::Failed), H), Transition::Opened);
        assert_eq!(
            d.observe(&obs(CheckStatus::Failed), H),
            Transition::StillFailing
        );
        assert_eq!(d.observe(&obs(CheckStatus::Ok), H), Transition::Quiet);
        assert_eq!(d.observe(&obs(CheckStatus::Ok), H), Transition::Quiet);
        assert!(matches!(
            d.observe(&obs(CheckStatus::Ok), H),
            Transition::Resolved(_)
        ));
        assert!(d.incident(CheckId::DefaultRoute).is_none());
    }

    #[test]
    fn a_single_blip_opens_nothing_and_unknown_does_not_reset() {
        let mut d = Detector::default();
        d.observe(&obs(CheckStatus::Failed), H);
        d.observe(&obs(CheckStatus::Ok), H);
        assert_eq!(d.observe(&obs(CheckStatus::Failed), H), Transition::Quiet);
        assert_eq!(d.observe(&obs(CheckStatus::Unknown), H), Transition::Quiet);
        assert_eq!(d.observe(&obs(CheckStatus::Failed), H), Transition::Opened);
    }

    #[test]
    fn an_ok_in_the_middle_of_resolution_restarts_the_count() {
        let mut d = Detector::default();
        d.observe(&obs(CheckStatus::Failed), H);
        d.observe(&obs(CheckStatus::Failed), H);
        d.observe(&obs(CheckStatus::Ok), H);
        d.observe(&obs(CheckStatus::Ok), H);
        assert_eq!(
            d.observe(&obs(CheckStatus::Failed), H),
            Transition::StillFailing
        );
        d.observe(&obs(CheckStatus::Ok), H);
        d.observe(&obs(CheckStatus::Ok), H);
        assert!(matches!(
            d.observe(&obs(CheckStatus::Ok), H),
            Transition::Resolved(_)
        ));
    }

    #[test]
    fn a_pass_during_a_heal_step_leaves_the_incident_to_the_verification() {
        let h1 = Hysteresis {
            fail_threshold: 2,
            ok_threshold: 1,
        };
        let mut d = Detector::default();
        // Nothing open: nothing held, the run goes to observe.
        assert!(!d.hold_pass(&obs(CheckStatus::Ok)));
        d.observe(&obs(CheckStatus::Failed), h1);
        assert_eq!(d.observe(&obs(CheckStatus::Failed), h1), Transition::Opened);
        // A failing run is not held (it updates the evidence through observe).
        assert!(!d.hold_pass(&obs(CheckStatus::Failed)));
        assert!(!d.hold_pass(&obs(CheckStatus::Unknown)));
        // A pass is held: the incident stays open for the heal step to resolve and credit.
        assert!(d.hold_pass(&obs(CheckStatus::Ok)));
        assert!(d.incident(CheckId::DefaultRoute).is_some());
        assert_eq!(d.last_status(CheckId::DefaultRoute), Some(CheckStatus::Ok));
        assert!(d.resolve_healed(CheckId::DefaultRoute).is_some());
        assert!(!d.hold_pass(&obs(CheckStatus::Ok)));
    }

    #[test]
    fn flapping_takes_over_an_open_carrier_loss_and_never_gives_it_back() {
        let h1 = Hysteresis {
            fail_threshold: 1,
            ok_threshold: 1,
        };
        let link = |status, cause| observation(CheckId::Link, status, cause);
        let mut d = Detector::default();
        d.observe(&link(CheckStatus::Failed, "wan_carrier_lost"), h1);
        let mut flapping = link(CheckStatus::Degraded, "wan_link_flapping");
        flapping.category = Category::Intermittent;
        assert_eq!(d.observe(&flapping, h1), Transition::CauseChanged);
        assert_eq!(d.observe(&flapping, h1), Transition::StillFailing);
        let inc = d.incident(CheckId::Link).unwrap();
        assert_eq!(
            (inc.cause.as_str(), inc.category),
            ("wan_link_flapping", Category::Intermittent)
        );
        // The next carrier loss is one more flap of the same incident.
        d.observe(&link(CheckStatus::Failed, "wan_carrier_lost"), h1);
        assert_eq!(
            d.incident(CheckId::Link).unwrap().cause,
            "wan_link_flapping"
        );
        // Other checks keep the cause they opened with.
        d.observe(&obs(CheckStatus::Failed), H);
        d.observe(&obs(CheckStatus::Failed), H);
        let mut other = obs(CheckStatus::Failed);
        other.cause = "gateway_arp_failed".into();
        d.observe(&other, H);
        assert_eq!(
            d.incident(CheckId::DefaultRoute).unwrap().cause,
            "default_route_missing"
        );
    }

    #[test]
    fn healed_incident_is_handed_back_once() {
        let mut d = Detector::default();
        d.observe(&obs(CheckStatus::Failed), H);
        d.observe(&obs(CheckStatus::Failed), H);
        assert!(d.resolve_healed(CheckId::DefaultRoute).is_some());
        assert!(d.resolve_healed(CheckId::DefaultRoute).is_none());
    }
}
