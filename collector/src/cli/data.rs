//! `import` (subscribers, surveys, contacts), `report` (customer experience), `network-events`
//! and `correlate` (mass outages): customer data in, analyses out.

use super::{CliError, StoreArgs, open_store, sanitize};
use crate::config::{CollectorConfig, DEFAULT_CONFIG_PATH};
use crate::now;
use crate::store::{MAX_PAGE_LIMIT, OpenMode};
use clap::{Args, ValueEnum};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Subscribers,
    Surveys,
    Contacts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Csv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(value_enum)]
    pub kind: KindArg,
    /// The file (`-` for stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Default: from the extension (.jsonl/.ndjson → jsonl), else csv.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Any bad row aborts the import and nothing is written.
    #[arg(long)]
    pub strict: bool,
    /// Print the import report as JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Incidents, surveys and contacts at or after this RFC 3339 instant.
    #[arg(long, value_name = "TIME")]
    pub from: Option<netmedic_proto::Timestamp>,
    /// ... and before this one.
    #[arg(long, value_name = "TIME")]
    pub to: Option<netmedic_proto::Timestamp>,
    #[arg(long)]
    pub json: bool,
    /// Configuration file (database, `[experience]` settings) [default: /etc/netmedic/collector.toml].
    #[arg(long, short, value_name = "FILE", conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// Database URL instead of a config file (default `[experience]` settings).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

pub(super) async fn import(args: ImportArgs) -> Result<(), CliError> {
    use crate::import::{ImportError, ImportFormat, ImportKind};
    let kind = match args.kind {
        KindArg::Subscribers => ImportKind::Subscribers,
        KindArg::Surveys => ImportKind::Surveys,
        KindArg::Contacts => ImportKind::Contacts,
    };
    let format = match args.format {
        Some(FormatArg::Csv) => ImportFormat::Csv,
        Some(FormatArg::Jsonl) => ImportFormat::Jsonl,
        None => ImportFormat::guess(&args.file),
    };
    let input: Box<dyn std::io::Read + Send> =
        if args.file.as_os_str() == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(&args.file).map_err(|e| {
                CliError::Usage(format!("cannot open {}: {e}", args.file.display()))
            })?)
        };
    let file = args.file.display().to_string();
    let mut source = crate::import::source(kind, format, input)
        .map_err(|e| CliError::Failed(format!("{file}: {e}")))?;
    // Imports may precede the server's first start.
    let (store, url, _) = open_store(&args.store, OpenMode::CreateAndMigrate).await?;
    let r = store.import(&mut *source, args.strict).await;
    store.close().await;
    let report = match r {
        Ok(r) => r,
        Err(ImportError::Store(source)) => return Err(CliError::Store { url, source }),
        Err(e) => return Err(CliError::Failed(format!("{file}: {e}"))),
    };
    if args.json {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::other)?;
        writeln!(out)?;
        out.flush()?;
    } else {
        let mut err = std::io::stderr().lock();
        for b in &report.bad_rows {
            writeln!(err, "{file}:{}: {}", b.line, sanitize(&b.reason))?;
        }
        if report.bad_rows_not_listed > 0 {
            writeln!(err, "... and {} more bad rows", report.bad_rows_not_listed)?;
        }
        println!("{}", report.summary());
    }
    if !report.committed {
        return Err(CliError::Failed(format!(
            "{file}: {} bad rows; --strict: nothing was imported",
            report.skipped
        )));
    }
    Ok(())
}

pub(super) async fn report(args: ReportArgs) -> Result<(), CliError> {
    let store_args = StoreArgs {
        config: args.config.clone(),
        db: args.db.clone(),
    };
    let cfg = match (&args.db, &args.config) {
        (Some(_), _) => CollectorConfig::default(),
        (None, p) => CollectorConfig::load(
            &p.clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        )?,
    };
    let (store, url, _) = open_store(&store_args, OpenMode::MustExist).await?;
    let params = crate::analytics::ReportParams::from_config(&cfg.experience, args.from, args.to);
    let r = store.report(&params).await;
    store.close().await;
    let report = r.map_err(|source| CliError::Store { url, source })?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        out.write_all(crate::analytics::render(&report).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// `network-events`: mass outages as lines, or as the API's JSON.
pub(super) async fn network_events(
    active: bool,
    json: bool,
    args: &StoreArgs,
) -> Result<(), CliError> {
    let (store, url, _) = open_store(args, OpenMode::MustExist).await?;
    let filter = crate::store::NetworkEventFilter {
        active_only: active,
        from_ms: None,
        to_ms: None,
        limit: MAX_PAGE_LIMIT,
    };
    let r = store.network_events(&filter, json).await;
    store.close().await;
    let events = r.map_err(|source| CliError::Store { url, source })?;
    let mut out = std::io::stdout().lock();
    if json {
        let list = crate::domain::NetworkEventList {
            network_events: events,
        };
        serde_json::to_writer_pretty(&mut out, &list).map_err(std::io::Error::other)?;
        writeln!(out)?;
    } else {
        for e in &events {
            writeln!(
                out,
                "{}  {}  {}  {}  {} devices  {} incidents",
                e.event_id,
                sanitize(&e.access_node),
                e.started_at,
                e.resolved_at
                    .map_or("(ongoing)".to_owned(), |t| t.to_string()),
                e.devices,
                e.incidents
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `correlate`: one mass-outage correlation pass now.
pub(super) async fn correlate(args: &StoreArgs) -> Result<(), CliError> {
    let cfg = match &args.config {
        Some(p) => CollectorConfig::load(p)?,
        None if args.db.is_none() => CollectorConfig::load(&PathBuf::from(DEFAULT_CONFIG_PATH))?,
        None => CollectorConfig::default(),
    };
    let (store, url, _) = open_store(args, OpenMode::MustExist).await?;
    let params = crate::correlate::OutageParams::from_config(&cfg.outage);
    let r = store.correlate(&params, now()).await;
    store.close().await;
    let o = r.map_err(|source| CliError::Store { url, source })?;
    println!(
        "{} network events created, {} incidents joined, {} events resolved",
        o.events_created, o.members_added, o.events_resolved
    );
    Ok(())
}
