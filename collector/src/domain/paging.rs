//! Page sizes of list queries (`limit=`), validated the same way everywhere.

use crate::store::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use netmedic_proto::Violation;

/// A `limit` query parameter: absent or empty means [`DEFAULT_PAGE_LIMIT`]; anything else must be
/// an integer in `1..=MAX_PAGE_LIMIT`, or it is a violation of the field `limit`.
pub fn parse_limit(limit: Option<&str>) -> Result<u32, Violation> {
    match limit {
        None | Some("") => Ok(DEFAULT_PAGE_LIMIT),
        Some(l) => match l.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
            _ => Err(Violation {
                field: "limit".into(),
                problem: format!("{l:?} is not an integer in 1..={MAX_PAGE_LIMIT}"),
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_default_and_stay_in_range() {
        assert_eq!(parse_limit(None), Ok(DEFAULT_PAGE_LIMIT));
        assert_eq!(parse_limit(Some("")), Ok(DEFAULT_PAGE_LIMIT));
        assert_eq!(parse_limit(Some("1")), Ok(1));
        assert_eq!(parse_limit(Some("500")), Ok(MAX_PAGE_LIMIT));
        for bad in ["0", "501", "-1", "ten", " 5"] {
            let v = parse_limit(Some(bad)).unwrap_err();
            assert_eq!(v.field, "limit");
            assert!(v.problem.contains("1..=500"), "{bad}: {}", v.problem);
        }
    }
}
