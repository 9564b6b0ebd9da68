//! Kill-switch scopes and reasons, checked the same way for the API, the console and the CLI.

use crate::fleet::valid_id;
use crate::store::KillScope;

/// Longest kill-switch reason, in bytes.
pub const MAX_REASON_BYTES: usize = 512;

/// Turns a scope (`fleet`, `region`, `device`) and target into a [`KillScope`]; an empty selector
/// never means "all".
pub fn kill_scope(scope: &str, target: Option<&str>) -> Result<KillScope, String> {
    let target = target.map(str::trim).filter(|t| !t.is_empty());
    match (scope, target) {
        ("fleet", None) => Ok(KillScope::Fleet),
        ("fleet", Some(_)) => Err("the fleet scope takes no target".into()),
        ("region" | "device", None) => Err(format!("the {scope} scope needs a target")),
        ("region", Some(t)) if valid_id(t) => Ok(KillScope::Region(t.to_owned())),
        ("device", Some(t)) if valid_id(t) => Ok(KillScope::Device(t.to_owned())),
        ("region" | "device", Some(t)) => Err(format!(
            "{t:?} is not an identifier (1..=64 of A-Z a-z 0-9 . _ : -)"
        )),
        (other, _) => Err(format!(
            "scope {other:?} is not one of fleet, region, device"
        )),
    }
}

/// A kill-switch reason (already trimmed) is 1..=[`MAX_REASON_BYTES`] bytes of text without
/// control characters: the agents log it and the NOC reads it.
pub fn valid_reason(reason: &str) -> bool {
    !reason.is_empty() && reason.len() <= MAX_REASON_BYTES && !reason.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_need_exactly_the_right_target() {
        assert_eq!(kill_scope("fleet", None), Ok(KillScope::Fleet));
        assert_eq!(kill_scope("fleet", Some("  ")), Ok(KillScope::Fleet));
        assert_eq!(
            kill_scope("region", Some(" north ")),
            Ok(KillScope::Region("north".into()))
        );
        assert_eq!(
            kill_scope("device", Some("cpe-1")),
            Ok(KillScope::Device("cpe-1".into()))
        );
        assert!(kill_scope("fleet", Some("x")).is_err());
        assert!(kill_scope("region", None).is_err());
        assert!(kill_scope("device", Some("")).is_err());
        assert!(kill_scope("device", Some("a b")).is_err());
        assert!(kill_scope("planet", None).is_err());
    }

    #[test]
    fn reasons_are_one_line_of_bounded_text() {
        assert!(valid_reason("maintenance"));
        assert!(valid_reason(&"x".repeat(MAX_REASON_BYTES)));
        assert!(!valid_reason(""));
        assert!(!valid_reason(&"x".repeat(MAX_REASON_BYTES + 1)));
        assert!(!valid_reason("a\nb"));
        assert!(!valid_reason("a\u{1b}[31m"));
    }
}
