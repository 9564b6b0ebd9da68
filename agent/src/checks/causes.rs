//! Causes are a closed vocabulary per check: each check declares the causes it reports
//! (`CAUSES` in its module, gathered by [`super::causes`]); `heal::causes` refuses a
//! `[[playbook]]` that selects none of them. This module holds the checks' test helper.

/// Test helper for the checks' own tests: the observation's cause is `ok` or declared.
#[cfg(test)]
pub fn assert_declared(o: &super::Observation) {
    assert!(
        o.cause == "ok" || super::causes(o.check).contains(&o.cause.as_str()),
        "check {} reports cause {:?}, which its CAUSES does not declare",
        o.check,
        o.cause
    );
}
