//! The incident query (`GET /api/v1/incidents` and the console's incidents page): query
//! parameters as strings in, a store filter, page size and cursor out, or every bad field at once.

use super::paging::parse_limit;
use crate::store::{Cursor, DEFAULT_PAGE_LIMIT, IncidentFilter, ListOrder};
use netmedic_proto::{Category, CheckId, IncidentStatus, Timestamp, Violation};
use serde::Deserialize;

/// Query string of `GET /api/v1/incidents`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentQuery {
    pub status: Option<String>,
    pub category: Option<String>,
    pub check: Option<String>,
    pub agent_id: Option<String>,
    pub customer_id: Option<String>,
    pub region: Option<String>,
    pub access_node: Option<String>,
    /// RFC 3339: incidents that started at or after this instant.
    pub from: Option<String>,
    /// RFC 3339: incidents that started before this instant.
    pub to: Option<String>,
    /// CPE model (subscribers table).
    pub cpe_model: Option<String>,
    /// Firmware (subscribers table, else the device's heartbeat).
    pub firmware: Option<String>,
    /// `newest` (default), `oldest` or `severity` (most severe first, then newest).
    pub order: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// An incident query with bad fields; never empty.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid query parameters")]
pub struct InvalidQuery {
    pub violations: Vec<Violation>,
}

/// Validates an incident query, listing every bad field at once.
pub fn parse_query(
    q: IncidentQuery,
) -> Result<(IncidentFilter, u32, Option<Cursor>), InvalidQuery> {
    let mut violations = Vec::new();
    let mut bad = |field: &str, problem: String| {
        violations.push(Violation {
            field: field.to_owned(),
            problem,
        })
    };
    let status = match q.status.as_deref() {
        None | Some("") => None,
        Some("open") => Some(IncidentStatus::Open),
        Some("resolved") => Some(IncidentStatus::Resolved),
        Some(other) => {
            bad("status", format!("{other:?} is not one of open, resolved"));
            None
        }
    };
    let order = match q.order.as_deref() {
        None | Some("") => ListOrder::default(),
        Some(o) => ListOrder::parse(o).unwrap_or_else(|| {
            bad(
                "order",
                format!("{o:?} is not one of newest, oldest, severity"),
            );
            ListOrder::default()
        }),
    };
    let check = match q.check.as_deref() {
        None | Some("") => None,
        Some(c) => CheckId::parse(c).or_else(|| {
            bad("check", format!("{c:?} is not a known check"));
            None
        }),
    };
    let category = match q.category.as_deref() {
        None | Some("") => None,
        Some(c) => Category::parse(c).or_else(|| {
            bad("category", format!("{c:?} is not a known category"));
            None
        }),
    };
    let mut time = |field: &str, v: Option<&str>| match v {
        None | Some("") => None,
        Some(t) => t.parse::<Timestamp>().ok().or_else(|| {
            bad(field, format!("{t:?} is not an RFC 3339 UTC timestamp"));
            None
        }),
    };
    let from = time("from", q.from.as_deref());
    let to = time("to", q.to.as_deref());
    let limit = parse_limit(q.limit.as_deref()).unwrap_or_else(|v| {
        bad(&v.field, v.problem);
        DEFAULT_PAGE_LIMIT
    });
    let cursor = match q.cursor.as_deref() {
        None | Some("") => None,
        Some(c) => match Cursor::decode(c) {
            Ok(c) if c.fits(order) => Some(c),
            Ok(_) => {
                bad(
                    "cursor",
                    format!(
                        "belongs to a list in another order than {:?}: start from the first page",
                        order.as_str()
                    ),
                );
                None
            }
            Err(_) => {
                bad("cursor", "not a cursor this server issued".into());
                None
            }
        },
    };
    if !violations.is_empty() {
        return Err(InvalidQuery { violations });
    }
    let some = |s: Option<String>| s.filter(|a| !a.is_empty());
    let filter = IncidentFilter {
        status,
        category,
        check,
        agent_id: some(q.agent_id),
        customer_id: some(q.customer_id),
        region: some(q.region),
        access_node: some(q.access_node),
        from,
        to,
        cpe_model: some(q.cpe_model),
        firmware: some(q.firmware),
        order,
    };
    Ok((filter, limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_query_lists_newest_first_with_the_default_page() {
        let (filter, limit, cursor) = parse_query(IncidentQuery::default()).unwrap();
        assert_eq!(filter, IncidentFilter::default());
        assert_eq!(limit, DEFAULT_PAGE_LIMIT);
        assert!(cursor.is_none());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let q = IncidentQuery {
            status: Some("closed".into()),
            check: Some("nope".into()),
            category: Some("weather".into()),
            from: Some("yesterday".into()),
            order: Some("random".into()),
            limit: Some("0".into()),
            cursor: Some("zz".into()),
            ..IncidentQuery::default()
        };
        let e = parse_query(q).unwrap_err();
        let fields: Vec<&str> = e.violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "status", "order", "check", "category", "from", "limit", "cursor"
            ]
        );
    }

    #[test]
    fn filters_are_parsed_and_empty_strings_ignored() {
        let q = IncidentQuery {
            status: Some("open".into()),
            check: Some("dns".into()),
            region: Some("north".into()),
            agent_id: Some(String::new()),
            order: Some("severity".into()),
            limit: Some("7".into()),
            ..IncidentQuery::default()
        };
        let (filter, limit, _) = parse_query(q).unwrap();
        assert_eq!(filter.status, Some(IncidentStatus::Open));
        assert_eq!(filter.check, Some(CheckId::Dns));
        assert_eq!(filter.region.as_deref(), Some("north"));
        assert_eq!(filter.agent_id, None);
        assert_eq!(filter.order, ListOrder::Severity);
        assert_eq!(limit, 7);
    }
}
