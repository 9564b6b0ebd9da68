//! Holdout experiments: which devices a fleet policy puts in the control arm of a playbook.
//!
//! A device's arm is a pure function of the experiment's salt and the device id, so it survives
//! restarts, needs no per-device state and can be audited with standard tools:
//!
//! ```text
//! printf '%s:%s' "$salt" "$agent_id" | sha256sum   # first 8 bytes, big-endian, mod 1000
//! ```
//!
//! The bucket (0..1000) is below `control_permille` → [`Arm::Control`], else [`Arm::Treated`].
//! This crate does no hashing (no I/O, no crypto dependency): each side computes SHA-256 with its
//! own library over [`hash_input`] and passes the digest to [`arm_from_sha256`]; the test vectors
//! below pin both ends to the same answer.

use serde::{Deserialize, Serialize};

use crate::{CheckId, closed_enum};
use std::fmt;

/// Longest experiment id and salt accepted on the wire.
pub const MAX_EXPERIMENT_ID_LEN: usize = 64;
/// Largest share of a fleet that may be held out (50 %): a holdout is a minority by design.
pub const MAX_CONTROL_PERMILLE: u16 = 500;

closed_enum!(
    /// The arm of an experiment a device is in.
    Arm {
        /// Healing runs as configured.
        Treated => "treated",
        /// The experiment's playbook runs in `dry_run`: detected, planned, reported, not acted on.
        Control => "control",
    }
);

/// Which incidents an experiment covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExperimentScope {
    /// Every incident whose plan comes from the agent's `[[playbook]]` of this name.
    Playbook { name: String },
    /// Every incident of this check, and of this cause when one is given.
    Check {
        check: CheckId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<String>,
    },
}

/// One active experiment, as delivered to agents in the heartbeat reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    /// Stable id chosen by the operator, e.g. `dns-holdout-2026q4`.
    pub id: String,
    pub scope: ExperimentScope,
    /// Share of devices in the control arm, in thousandths (50 = 5 %).
    pub control_permille: u16,
    /// Random salt fixed when the experiment is created; arms are independent across experiments.
    pub salt: String,
}

/// What an incident records about the experiment that covered it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentArm {
    pub experiment_id: String,
    pub arm: Arm,
}

/// The bytes to hash for a device's bucket: `salt ":" agent_id`.
pub fn hash_input(salt: &str, agent_id: &str) -> String {
    format!("{salt}:{agent_id}")
}

/// The device's bucket in 0..1000 from the SHA-256 digest of [`hash_input`].
pub fn bucket_from_sha256(digest: &[u8; 32]) -> u16 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) % 1000) as u16
}

/// The device's arm from the SHA-256 digest of [`hash_input`].
pub fn arm_from_sha256(digest: &[u8; 32], control_permille: u16) -> Arm {
    if bucket_from_sha256(digest) < control_permille {
        Arm::Control
    } else {
        Arm::Treated
    }
}

/// Test vector: `printf 'salt-1:cpe-000001' | sha256sum`, pinned here so that the agent's and the
/// collector's SHA-256 are tested against the same answer (salt `salt-1`, agent `cpe-000001`).
pub const TEST_VECTOR_DIGEST: &str =
    "db05b416c0953d61d437b4bcd0403bf28bf737f806c8b8d0ed4c26910a35692f";
/// The bucket of [`TEST_VECTOR_DIGEST`].
pub const TEST_VECTOR_BUCKET: u16 = 505;

impl Experiment {
    /// Whether this experiment covers an incident of `check`/`cause` planned by `playbook`.
    pub fn covers(&self, check: CheckId, cause: &str, playbook: Option<&str>) -> bool {
        match &self.scope {
            ExperimentScope::Playbook { name } => playbook == Some(name.as_str()),
            ExperimentScope::Check { check: c, cause: k } => {
                *c == check && k.as_deref().is_none_or(|k| k == cause)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex32(s: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }

    #[test]
    fn bucket_is_the_first_eight_bytes_mod_1000() {
        let d = hex32(TEST_VECTOR_DIGEST);
        let first = u64::from_str_radix(&TEST_VECTOR_DIGEST[..16], 16).unwrap();
        assert_eq!(bucket_from_sha256(&d) as u64, first % 1000);
        assert_eq!(bucket_from_sha256(&d), TEST_VECTOR_BUCKET);
        assert_eq!(arm_from_sha256(&d, TEST_VECTOR_BUCKET), Arm::Treated);
        assert_eq!(arm_from_sha256(&d, TEST_VECTOR_BUCKET + 1), Arm::Control);
        assert_eq!(hash_input("salt-1", "cpe-000001"), "salt-1:cpe-000001");
    }

    #[test]
    fn scope_matching() {
        let e = Experiment {
            id: "x".into(),
            scope: ExperimentScope::Check {
                check: CheckId::Dns,
                cause: None,
            },
            control_permille: 50,
            salt: "s".into(),
        };
        assert!(e.covers(CheckId::Dns, "resolv_conf_empty", None));
        assert!(!e.covers(CheckId::Link, "carrier_down", None));
        let p = Experiment {
            scope: ExperimentScope::Playbook { name: "dns".into() },
            ..e
        };
        assert!(p.covers(CheckId::Dns, "any", Some("dns")));
        assert!(!p.covers(CheckId::Dns, "any", None));
        let json = serde_json::to_string(&p.scope).unwrap();
        assert_eq!(json, r#"{"kind":"playbook","name":"dns"}"#);
    }
}
