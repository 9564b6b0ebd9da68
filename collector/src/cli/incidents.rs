//! `incidents`: the incident list straight from the database, as a table or as the API's JSON.

use super::{CliError, parse_category, parse_check};
use crate::config::{CollectorConfig, DEFAULT_CONFIG_PATH, StorageConfig, StorageUrl};
use crate::store::{self, DEFAULT_PAGE_LIMIT, IncidentFilter, MAX_PAGE_LIMIT, OpenMode};
use crate::text::visible;
use clap::{Args, ValueEnum};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentStatus, IncidentView};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct IncidentsArgs {
    /// Configuration file naming the database [default: /etc/netmedic/collector.toml].
    #[arg(long, short, value_name = "FILE", conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// Database URL or path instead of a config file, e.g. sqlite:///var/lib/netmedic/collector.sqlite.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
    /// Print the page as JSON (`IncidentPage`, as the HTTP API returns it).
    #[arg(long)]
    pub json: bool,
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    /// Only incidents of this check (e.g. `default_route`).
    #[arg(long, value_name = "CHECK", value_parser = parse_check)]
    pub check: Option<CheckId>,
    /// Only incidents of this agent.
    #[arg(long, value_name = "AGENT_ID")]
    pub agent_id: Option<String>,
    /// Only incidents of this experience category (e.g. `dns_failure`).
    #[arg(long, value_name = "CATEGORY", value_parser = parse_category)]
    pub category: Option<netmedic_proto::Category>,
    /// Only incidents of this customer (subscribers table).
    #[arg(long, value_name = "ID")]
    pub customer_id: Option<String>,
    /// Only incidents in this region.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Only incidents behind this access node.
    #[arg(long, value_name = "NODE")]
    pub access_node: Option<String>,
    /// Only incidents that started at or after this RFC 3339 instant.
    #[arg(long, value_name = "TIME")]
    pub from: Option<netmedic_proto::Timestamp>,
    /// Only incidents that started before this RFC 3339 instant.
    #[arg(long, value_name = "TIME")]
    pub to: Option<netmedic_proto::Timestamp>,
    /// Maximum number of incidents.
    #[arg(long, short = 'n', value_name = "N", default_value_t = DEFAULT_PAGE_LIMIT,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_LIMIT)))]
    pub limit: u32,
    /// Continue after this cursor (`next_cursor` of a previous `--json` page).
    #[arg(long, value_name = "CURSOR")]
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusArg {
    Open,
    Resolved,
}

pub(super) async fn incidents(args: IncidentsArgs) -> Result<(), CliError> {
    let storage = match (&args.db, &args.config) {
        (Some(db), _) => StorageConfig::with_url(
            StorageUrl::parse(db).map_err(|e| CliError::InvalidDb(format!("--db: {e}")))?,
        ),
        (None, Some(path)) => CollectorConfig::load(path)?.storage,
        (None, None) => CollectorConfig::load(std::path::Path::new(DEFAULT_CONFIG_PATH))?.storage,
    };
    let url = &storage.url;
    let store_err = |source| CliError::Store {
        url: url.to_string(),
        source,
    };
    let cursor = args
        .cursor
        .as_deref()
        .map(store::Cursor::decode)
        .transpose()
        .map_err(store_err)?;
    let store = store::open(&storage, OpenMode::MustExist)
        .await
        .map_err(store_err)?;
    let filter = IncidentFilter {
        status: args.status.map(|s| match s {
            StatusArg::Open => IncidentStatus::Open,
            StatusArg::Resolved => IncidentStatus::Resolved,
        }),
        check: args.check,
        agent_id: args.agent_id.clone(),
        category: args.category,
        customer_id: args.customer_id.clone(),
        region: args.region.clone(),
        access_node: args.access_node.clone(),
        from: args.from,
        to: args.to,
        cpe_model: None,
        firmware: None,
        order: crate::store::ListOrder::Newest,
    };
    let page = store
        .list_incidents(&filter, args.limit, cursor.as_ref())
        .await;
    store.close().await;
    let page = page.map_err(store_err)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &page).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        out.write_all(render_table(&page.incidents).as_bytes())?;
        if let Some(c) = &page.next_cursor {
            writeln!(out, "(more: --cursor {c})")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Final outcome of each action, in the order the actions were first recorded:
/// `restore_route:verified,reboot:skipped`.
pub fn action_summary(v: &IncidentView) -> String {
    let mut last: Vec<(ActionId, ActionOutcome)> = Vec::new();
    for a in &v.actions {
        match last.iter_mut().find(|(id, _)| *id == a.action) {
            Some(entry) => entry.1 = a.outcome,
            None => last.push((a.action, a.outcome)),
        }
    }
    last.iter()
        .map(|(a, o)| format!("{a}:{o}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Renders incidents as an aligned table, one line each, SUMMARY last and unpadded.
pub fn render_table(incidents: &[IncidentView]) -> String {
    const HEAD: [&str; 9] = [
        "STARTED", "AGENT", "INCIDENT", "CHECK", "CATEGORY", "STATUS", "HEALED", "ACTIONS",
        "SUMMARY",
    ];
    let rows: Vec<[String; 9]> = incidents
        .iter()
        .map(|v| {
            let started = v.started_at.to_string();
            // 2026-11-23T08:55:31.123Z -> 2026-11-23T08:55:31Z: seconds are enough for a table.
            let started = match started.get(..19) {
                Some(s) => format!("{s}Z"),
                None => started,
            };
            let actions = action_summary(v);
            [
                started,
                visible(&v.agent_id),
                visible(&v.incident_id),
                v.check.to_string(),
                v.category.to_string(),
                match v.status {
                    IncidentStatus::Open => "open".into(),
                    IncidentStatus::Resolved => "resolved".into(),
                },
                match v.auto_healed {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
                if actions.is_empty() {
                    "-".into()
                } else {
                    actions
                },
                visible(&v.summary),
            ]
        })
        .collect();
    let mut widths = HEAD.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(cell);
                let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEAD);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&cells);
    }
    if rows.is_empty() {
        out.push_str("(no incidents)\n");
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use netmedic_proto::{ActionRecord, Category, Severity, Timestamp};

    #[test]
    fn table_is_aligned_and_summarises_actions() {
        let t = Timestamp::from_unix_millis(1_795_424_131_123).unwrap();
        let act = |action, outcome| ActionRecord {
            action,
            outcome,
            at: t,
            detail: String::new(),
        };
        let v = IncidentView {
            agent_id: "cpe-0001".into(),
            incident_id: "inc-1".into(),
            check: CheckId::DefaultRoute,
            cause: "default_route_missing".into(),
            category: Category::NoInternet,
            severity: Severity::Critical,
            status: IncidentStatus::Resolved,
            started_at: t,
            resolved_at: Some(t),
            auto_healed: Some(true),
            summary: "default route\u{1b}[31m missing \u{202e}txet\u{200b}".into(),
            evidence: Default::default(),
            actions: vec![
                act(ActionId::RestoreRoute, ActionOutcome::Planned),
                act(ActionId::RestoreRoute, ActionOutcome::Done),
                act(ActionId::RestoreRoute, ActionOutcome::Verified),
            ],
            event_count: 2,
            experiment: None,
        };
        let table = render_table(&[v]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 2, "{table}");
        assert!(
            lines[0].starts_with("STARTED               AGENT     INCIDENT"),
            "{table}"
        );
        assert!(
            lines[1].starts_with("2026-11-23T08:55:31Z  cpe-0001  inc-1"),
            "{table}"
        );
        assert!(lines[1].contains("restore_route:verified"), "{table}");
        assert!(!table.contains('\u{1b}'), "{table}");
        assert!(
            lines[1].ends_with("route␛[31m missing ⟨U+202E⟩txet⟨U+200B⟩"),
            "bidi and zero-width characters are shown, not obeyed: {table}"
        );
        let col = |l: &str, h: &str| l.find(h);
        assert_eq!(col(lines[0], "ACTIONS"), col(lines[1], "restore_route"));
        assert!(render_table(&[]).contains("(no incidents)"));
    }
}
