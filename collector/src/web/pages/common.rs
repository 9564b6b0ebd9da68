//! What several console pages share: the storage-error and not-found pages, the cached
//! experience report, the `?done=` notice of a completed action, and small display helpers.

use crate::AppState;
use crate::analytics::{Effect, Report, ReportParams};
use crate::store::StoreError;
use crate::web::session::{NocSession, error_page};
use crate::web::visible;
use axum::http::StatusCode;
use axum::response::Response;
use netmedic_proto::Timestamp;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the cached experience report of the overview and the experience page is reused.
const REPORT_MAX_AGE: Duration = Duration::from_secs(300);
/// The default window of the experience report (days back from now).
pub(super) const REPORT_DAYS: i64 = 30;
/// Rows per page of the incident list.
pub(super) const PAGE_ROWS: u32 = 50;

/// 503/500 page for a storage error.
pub(super) fn store_error(session: &NocSession, e: &StoreError) -> Response {
    log::warn!("console: {}", crate::error_chain(e));
    match e {
        StoreError::InvalidCursor => error_page(
            Some(session),
            StatusCode::BAD_REQUEST,
            "Bad page link",
            "This page link is not one the collector issued.",
        ),
        StoreError::Corrupt(_) => error_page(
            Some(session),
            StatusCode::INTERNAL_SERVER_ERROR,
            "Stored data unreadable",
            "Some stored data could not be read; see the collector log.",
        ),
        _ => error_page(
            Some(session),
            StatusCode::SERVICE_UNAVAILABLE,
            "Database unavailable",
            "The collector cannot reach its database right now. Try again shortly.",
        ),
    }
}

pub(super) fn not_found(session: &NocSession, what: &str) -> Response {
    error_page(Some(session), StatusCode::NOT_FOUND, "Not found", what)
}

#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    #[serde(default)]
    pub(super) done: Option<String>,
}

/// The default report, recomputed in the background when older than [`REPORT_MAX_AGE`]; `None`
/// until the first computation finished (the page says so instead of waiting).
pub(super) fn cached_report(state: &AppState) -> Option<(u64, Arc<Report>)> {
    let cached = state
        .console
        .report
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let stale = cached
        .as_ref()
        .is_none_or(|(at, _)| at.elapsed() > REPORT_MAX_AGE);
    if stale {
        let mut running = state
            .console
            .report_running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !*running {
            *running = true;
            let state = state.clone();
            tokio::spawn(async move {
                let now = crate::now();
                let from =
                    Timestamp::from_unix_millis(now.unix_millis() - REPORT_DAYS * 86_400_000);
                let params = ReportParams::from_config(&state.experience, from, None);
                match state.store.report(&params).await {
                    Ok(r) => {
                        *state
                            .console
                            .report
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) =
                            Some((Instant::now(), Arc::new(r)));
                    }
                    Err(e) => log::warn!("console report: {}", crate::error_chain(&e)),
                }
                *state
                    .console
                    .report_running
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = false;
            });
        }
    }
    cached.map(|(at, r)| (at.elapsed().as_secs(), r))
}

pub(super) fn effect_text(e: Option<&Effect>, unit: &str) -> String {
    match e {
        None => "—".into(),
        Some(e) => format!(
            "{:.1}{unit} [{:.1}, {:.1}]",
            e.estimate, e.ci_low, e.ci_high
        ),
    }
}

#[derive(Debug)]
pub(super) struct Opt {
    pub(super) value: String,
    pub(super) label: String,
    pub(super) selected: bool,
}

pub(super) fn options(values: &[&str], current: Option<&str>, any: &str) -> Vec<Opt> {
    let mut out = vec![Opt {
        value: String::new(),
        label: any.to_owned(),
        selected: current.is_none_or(str::is_empty),
    }];
    out.extend(values.iter().map(|v| Opt {
        value: (*v).to_owned(),
        label: v.replace('_', " "),
        selected: current == Some(*v),
    }));
    out
}

pub(super) fn opt_text(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "—".to_owned(), visible)
}
