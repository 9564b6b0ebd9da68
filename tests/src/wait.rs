//! [`wait_for`]: the one way lab tests wait for a condition (no bare sleeps).

use std::fmt::Display;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// What a [`wait_for`] probe returns: either the awaited value or a description of
/// what it saw instead.
///
/// Implemented for `Option<T>` (`None` = not yet, nothing to report) and for
/// `Result<T, E: Display>` (`Err(e)` = not yet, and `e` is what was seen; it shows up
/// in the timeout error).
pub trait Observation {
    /// The awaited value.
    type Output;
    /// `Ok(value)` when the condition holds, otherwise what was seen.
    fn into_observation(self) -> std::result::Result<Self::Output, String>;
}

impl<T> Observation for Option<T> {
    type Output = T;
    fn into_observation(self) -> std::result::Result<T, String> {
        self.ok_or_else(|| "condition not met (probe returned None)".to_owned())
    }
}

impl<T, E: Display> Observation for std::result::Result<T, E> {
    type Output = T;
    fn into_observation(self) -> std::result::Result<T, String> {
        self.map_err(|e| e.to_string())
    }
}

/// Calls `probe` every `poll` until it yields a value or `timeout` has passed.
///
/// The probe is always called at least once, and once more at the deadline. On
/// timeout the error ([`LabError::Timeout`]) names `desc` and the last thing the
/// probe reported (return `Err(String)` from the probe to make that informative).
///
/// ```no_run
/// # use std::time::Duration;
/// # fn f(lab: &netmedic_lab::Lab) -> Result<(), netmedic_lab::LabError> {
/// let route = netmedic_lab::wait_for(
///     "cpe0 default route",
///     Duration::from_secs(10),
///     Duration::from_millis(100),
///     || match lab.cpe(0).default_route() {
///         Ok(Some(r)) => Ok(r),
///         Ok(None) => Err("no default route".to_owned()),
///         Err(e) => Err(e.to_string()),
///     },
/// )?;
/// # let _ = route; Ok(()) }
/// ```
pub fn wait_for<O, F>(
    desc: &str,
    timeout: Duration,
    poll: Duration,
    mut probe: F,
) -> Result<O::Output>
where
    O: Observation,
    F: FnMut() -> O,
{
    let start = Instant::now();
    let deadline = start + timeout;
    let mut attempts: u64 = 0;
    loop {
        attempts += 1;
        let last_seen = match probe().into_observation() {
            Ok(v) => return Ok(v),
            Err(seen) => seen,
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(LabError::Timeout {
                desc: desc.to_owned(),
                waited: now - start,
                last_seen: format!("{last_seen} (after {attempts} attempts)"),
            });
        }
        std::thread::sleep(poll.min(deadline - now));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn returns_value_once_condition_holds() {
        let mut n = 0;
        let v = wait_for(
            "n reaches 3",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                (n >= 3).then_some(n)
            },
        );
        assert_eq!(v.ok(), Some(3));
    }

    #[test]
    fn timeout_names_desc_and_last_seen() {
        let err = wait_for(
            "the impossible",
            Duration::from_millis(30),
            Duration::from_millis(5),
            || Err::<(), _>("still nothing"),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("the impossible"), "{err}");
        assert!(err.contains("still nothing"), "{err}");
    }
}
