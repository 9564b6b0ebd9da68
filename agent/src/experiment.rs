//! Holdout experiments on this device: the arm it is in for each experiment the collector's
//! heartbeat reply announces, and which experiment covers an incident.
//!
//! The arm is `bucket < control_permille` with `bucket = sha256(salt ":" agent_id)` (first 8
//! bytes, big-endian, mod 1000; the rule and its test vector live in
//! [`netmedic_proto::experiment_hash`]), so it needs no state and survives restarts. The list
//! is not persisted, like the other heartbeat advisories: after a restart the agent treats every
//! incident as configured until the first heartbeat reply (sent at start) brings it back. An
//! experiment missing from a reply has ended: its playbook heals again.
//!
//! The collector is a peer like any other: an experiment with a malformed id or salt, or a
//! control share over [`MAX_CONTROL_PERMILLE`], is refused (logged), and at most
//! [`MAX_EXPERIMENTS`] are taken from one reply.

use crate::text::loggable;
use netmedic_proto::experiment_hash::{
    MAX_CONTROL_PERMILLE, MAX_EXPERIMENT_ID_LEN, bucket_from_sha256, hash_input,
};
use netmedic_proto::{Arm, CheckId, Experiment, ExperimentArm};

/// Most experiments taken from one heartbeat reply; the rest are refused.
pub const MAX_EXPERIMENTS: usize = 32;

/// An experiment and this device's place in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub experiment: Experiment,
    /// 0..1000, from the salted hash of the device id.
    pub bucket: u16,
    pub arm: Arm,
}

impl Assigned {
    /// What an incident covered by this experiment records.
    pub fn record(&self) -> ExperimentArm {
        ExperimentArm {
            experiment_id: self.experiment.id.clone(),
            arm: self.arm,
        }
    }

    /// The log line for this device's arm: `experiment X: this device is in the control arm
    /// (bucket 37 < 50‰)`.
    pub fn describe(&self) -> String {
        let (arm, cmp) = match self.arm {
            Arm::Control => ("control", "<"),
            Arm::Treated => ("treated", ">="),
        };
        format!(
            "experiment {}: this device is in the {arm} arm (bucket {} {cmp} {}‰)",
            self.experiment.id, self.bucket, self.experiment.control_permille
        )
    }
}

/// The device's bucket (0..1000) in an experiment salted with `salt`.
pub fn bucket(salt: &str, agent_id: &str) -> u16 {
    let d = ring::digest::digest(&ring::digest::SHA256, hash_input(salt, agent_id).as_bytes());
    let mut digest = [0u8; 32];
    digest.copy_from_slice(d.as_ref());
    bucket_from_sha256(&digest)
}

/// An identifier as incident records carry them: 1-64 of `A-Za-z0-9._:-`.
fn well_formed(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_EXPERIMENT_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Why an experiment from the collector is refused, if it is.
pub fn problem(e: &Experiment) -> Option<String> {
    if !well_formed(&e.id) {
        return Some(format!(
            "id {:?} is not 1-{MAX_EXPERIMENT_ID_LEN} characters of A-Z a-z 0-9 . _ : -",
            loggable(&e.id)
        ));
    }
    if e.salt.is_empty() || e.salt.len() > MAX_EXPERIMENT_ID_LEN {
        return Some(format!("salt must be 1-{MAX_EXPERIMENT_ID_LEN} bytes"));
    }
    if e.control_permille > MAX_CONTROL_PERMILLE {
        return Some(format!(
            "control_permille {} is over {MAX_CONTROL_PERMILLE}",
            e.control_permille
        ));
    }
    None
}

/// The experiments of a heartbeat reply with this device's arm in each, and a message per
/// refused one (malformed, a repeated id, or beyond [`MAX_EXPERIMENTS`]).
pub fn assign(list: &[Experiment], agent_id: &str) -> (Vec<Assigned>, Vec<String>) {
    let mut out: Vec<Assigned> = Vec::new();
    let mut refused = Vec::new();
    for e in list {
        if let Some(why) = problem(e) {
            refused.push(format!("experiment refused: {why}"));
        } else if out.iter().any(|a| a.experiment.id == e.id) {
            refused.push(format!("experiment {} refused: listed twice", e.id));
        } else if out.len() == MAX_EXPERIMENTS {
            refused.push(format!(
                "experiment {} refused: more than {MAX_EXPERIMENTS} in one reply",
                e.id
            ));
        } else {
            let bucket = bucket(&e.salt, agent_id);
            let arm = if bucket < e.control_permille {
                Arm::Control
            } else {
                Arm::Treated
            };
            out.push(Assigned {
                experiment: e.clone(),
                bucket,
                arm,
            });
        }
    }
    (out, refused)
}

/// What changed between two lists, one log line each: an experiment started or changed (its
/// arm), or ended.
pub fn changes(before: &[Assigned], after: &[Assigned]) -> Vec<String> {
    let mut out = Vec::new();
    for a in after {
        let old = before.iter().find(|b| b.experiment.id == a.experiment.id);
        if old.is_none_or(|b| b.arm != a.arm || b.experiment != a.experiment) {
            out.push(a.describe());
        }
    }
    for b in before {
        if !after.iter().any(|a| a.experiment.id == b.experiment.id) {
            out.push(format!(
                "experiment {} ended: its playbook heals as configured",
                b.experiment.id
            ));
        }
    }
    out
}

/// The first experiment (in the collector's order) that covers an incident of `check`/`cause`
/// planned by the playbook named `playbook`.
pub fn covering<'a>(
    active: &'a [Assigned],
    check: CheckId,
    cause: &str,
    playbook: Option<&str>,
) -> Option<&'a Assigned> {
    active
        .iter()
        .find(|a| a.experiment.covers(check, cause, playbook))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netmedic_proto::ExperimentScope;
    use netmedic_proto::experiment_hash::{TEST_VECTOR_BUCKET, TEST_VECTOR_DIGEST};

    fn exp(id: &str, permille: u16) -> Experiment {
        Experiment {
            id: id.into(),
            scope: ExperimentScope::Playbook { name: "dns".into() },
            control_permille: permille,
            salt: "salt-1".into(),
        }
    }

    #[test]
    fn ring_sha256_matches_the_test_vector() {
        let d = ring::digest::digest(
            &ring::digest::SHA256,
            hash_input("salt-1", "cpe-000001").as_bytes(),
        );
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, TEST_VECTOR_DIGEST);
        assert_eq!(bucket("salt-1", "cpe-000001"), TEST_VECTOR_BUCKET);
    }

    #[test]
    fn the_arm_follows_the_bucket() {
        let (a, refused) = assign(&[exp("half", 500)], "cpe-000001");
        assert!(refused.is_empty());
        assert_eq!(a[0].arm, Arm::Treated, "bucket 505 >= 500");
        assert_eq!(
            a[0].describe(),
            "experiment half: this device is in the treated arm (bucket 505 >= 500‰)"
        );
        // Another device, another bucket: some id lands in the control arm at 500‰.
        let control = (0..100)
            .map(|n| format!("cpe-{n:06}"))
            .find(|id| bucket("salt-1", id) < 500)
            .unwrap();
        let (a, _) = assign(&[exp("half", 500)], &control);
        assert_eq!(a[0].arm, Arm::Control);
        assert!(
            a[0].describe().contains("control arm"),
            "{}",
            a[0].describe()
        );
        assert_eq!(
            a[0].record(),
            ExperimentArm {
                experiment_id: "half".into(),
                arm: Arm::Control
            }
        );
    }

    #[test]
    fn hostile_lists_are_refused_item_by_item() {
        let mut list = vec![
            exp("bad id", 50),
            exp("big", 900),
            Experiment {
                salt: String::new(),
                ..exp("nosalt", 50)
            },
            exp("ok", 50),
            exp("ok", 60),
        ];
        list.extend((0..40).map(|n| exp(&format!("e{n}"), 10)));
        let (a, refused) = assign(&list, "cpe-1");
        assert_eq!(a.len(), MAX_EXPERIMENTS);
        assert_eq!(a[0].experiment.id, "ok");
        assert_eq!(a[0].experiment.control_permille, 50, "the first one wins");
        assert!(refused[0].contains("id"), "{refused:?}");
        assert!(refused[1].contains("over 500"), "{refused:?}");
        assert!(refused[2].contains("salt"), "{refused:?}");
        assert!(refused[3].contains("twice"), "{refused:?}");
        assert_eq!(refused.len(), 4 + 40 - (MAX_EXPERIMENTS - 1));
    }

    #[test]
    fn changes_name_new_changed_and_ended_experiments() {
        let (one, _) = assign(&[exp("a", 0), exp("b", 0)], "cpe-1");
        let (two, _) = assign(&[exp("a", 0), exp("c", 0)], "cpe-1");
        let c = changes(&one, &two);
        assert_eq!(c.len(), 2, "{c:?}");
        assert!(c[0].starts_with("experiment c: this device is in the treated arm"));
        assert!(c[1].starts_with("experiment b ended"));
        assert!(changes(&two, &two).is_empty());
        let (all_control, _) = assign(&[exp("a", 500)], "cpe-000001");
        assert!(changes(&one[..1], &all_control).len() == 1);
        assert!(covering(&two, CheckId::Dns, "resolver_timeout", Some("dns")).is_some());
        assert!(covering(&two, CheckId::Dns, "resolver_timeout", Some("other")).is_none());
    }
}
