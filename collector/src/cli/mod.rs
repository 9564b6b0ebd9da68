//! Command line: `serve`, `incidents`, `device add|revoke|list`, `token add|revoke|list`,
//! `user add|passwd|remove|list`,
//! `killswitch set|clear|list`, `experiment start|list|stop`, `diag request`, `import subscribers|surveys|contacts`, `report`,
//! `network-events`, `correlate` (all straight on the store named by the config) and
//! `check-config`.
//!
//! This file holds the argument grammar's top, the errors and exit codes, and how a command finds
//! its store; one file per command group does the work: [`serve`] (also `check-config`),
//! [`incidents`], [`devices`], [`access`] (API tokens and NOC users), [`remediation`] (kill
//! switches and diagnostics) and [`data`] (imports, the report, network events, correlation).

mod access;
mod data;
mod devices;
mod experiments;
mod incidents;
mod remediation;
mod serve;

pub use access::{RoleArg, TokenCommand, UserCommand};
pub use data::{FormatArg, ImportArgs, KindArg, ReportArgs};
pub use devices::{DeviceCommand, render_devices};
pub use experiments::{ExperimentCommand, ExperimentScopeArgs, render_experiments};
pub use incidents::{IncidentsArgs, StatusArg, action_summary, render_table};
pub use remediation::{DiagCommand, KillswitchCommand, ScopeArgs};
pub use serve::shutdown_signal;

use crate::ServeError;
use crate::config::{CollectorConfig, ConfigError, DEFAULT_CONFIG_PATH, StorageConfig, StorageUrl};
use crate::fleet::valid_id;
use crate::store::{self, OpenMode, Store, StoreError};
use clap::{Args, Parser, Subcommand};
use netmedic_proto::CheckId;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "netmedic-collector",
    version,
    about = "netmedic collector: receives incident reports and heartbeats from netmedic agents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API until SIGTERM or SIGINT.
    Serve {
        /// Configuration file.
        #[arg(long, short, value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        config: PathBuf,
    },
    /// List incidents straight from the database, newest first.
    Incidents(IncidentsArgs),
    /// Validate a configuration file and exit (0 when valid).
    CheckConfig {
        #[arg(value_name = "FILE", default_value = DEFAULT_CONFIG_PATH)]
        file: PathBuf,
    },
    /// Enrol, revoke and list devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Stop all remediation on a device, a region or the whole fleet (delivered in heartbeat
    /// replies).
    #[command(subcommand)]
    Killswitch(KillswitchCommand),
    /// Holdout experiments: a stable share of devices runs a playbook in dry_run (control arm),
    /// so the report can tell what self-healing causes.
    #[command(subcommand)]
    Experiment(ExperimentCommand),
    /// On-demand diagnostics, delivered once in the device's next heartbeat reply.
    #[command(subcommand)]
    Diag(DiagCommand),
    /// API tokens for people and tools (`viewer` reads, `operator` also changes things).
    #[command(subcommand)]
    Token(TokenCommand),
    /// NOC console users: people who log in to the web pages with a password.
    #[command(subcommand)]
    User(UserCommand),
    /// Import subscribers, surveys or contacts from CSV or JSON Lines (upsert by id).
    Import(ImportArgs),
    /// The customer-experience report.
    Report(ReportArgs),
    /// List network events (mass outages).
    NetworkEvents {
        /// Only unresolved events.
        #[arg(long)]
        active: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Run one mass-outage correlation pass now (the server runs one every
    /// `outage.interval_secs`).
    Correlate {
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the store is: a config file, or a database URL.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Configuration file naming the database [default: /etc/netmedic/collector.toml].
    #[arg(long, short, value_name = "FILE", conflicts_with = "db")]
    pub config: Option<PathBuf>,
    /// Database URL instead of a config file (sqlite:///path or postgres://...).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

fn parse_check(s: &str) -> Result<CheckId, String> {
    CheckId::parse(s).ok_or_else(|| {
        let all: Vec<&str> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
        format!("unknown check; expected one of {}", all.join(", "))
    })
}

fn parse_category(s: &str) -> Result<netmedic_proto::Category, String> {
    netmedic_proto::Category::parse(s).ok_or_else(|| {
        let all: Vec<&str> = netmedic_proto::Category::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        format!("unknown category; expected one of {}", all.join(", "))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    InvalidDb(String),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("cannot read the database {url}")]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// Process exit code: 2 for configuration problems (like usage errors), 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::InvalidDb(_) | CliError::Usage(_) => 2,
            _ => 1,
        }
    }
}

/// Runs one command to completion.
pub async fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Serve { config } => serve::serve(&config).await,
        Command::Incidents(args) => incidents::incidents(args).await,
        Command::Device(cmd) => devices::device(cmd).await,
        Command::Killswitch(cmd) => remediation::killswitch(cmd).await,
        Command::Experiment(cmd) => experiments::experiment(cmd).await,
        Command::Diag(cmd) => remediation::diag(cmd).await,
        Command::Token(cmd) => access::token(cmd).await,
        Command::User(cmd) => access::user(cmd).await,
        Command::Import(args) => data::import(args).await,
        Command::Report(args) => data::report(args).await,
        Command::NetworkEvents {
            active,
            json,
            store,
        } => data::network_events(active, json, &store).await,
        Command::Correlate { store } => data::correlate(&store).await,
        Command::CheckConfig { file } => serve::check_config(&file),
    }
}

/// Shortest wait of a command for the database's write lock (milliseconds).
const CLI_BUSY_TIMEOUT_MS: u32 = 30_000;

/// The storage config and heartbeat interval named by `--db` or `--config`.
fn storage_of(args: &StoreArgs) -> Result<(StorageConfig, u32), CliError> {
    match (&args.db, &args.config) {
        (Some(db), _) => Ok((
            StorageConfig::with_url(
                StorageUrl::parse(db).map_err(|e| CliError::InvalidDb(format!("--db: {e}")))?,
            ),
            crate::config::DEFAULT_HEARTBEAT_INTERVAL_SECS,
        )),
        (None, path) => {
            let path = path
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH));
            let c = CollectorConfig::load(&path)?;
            Ok((c.storage, c.fleet.heartbeat_interval_secs))
        }
    }
}

async fn open_store(
    args: &StoreArgs,
    mode: OpenMode,
) -> Result<(std::sync::Arc<dyn Store>, String, u32), CliError> {
    let (mut storage, interval) = storage_of(args)?;
    // A command run beside a busy server may wait for its write lock: longer than a request.
    storage.busy_timeout_ms = storage.busy_timeout_ms.max(CLI_BUSY_TIMEOUT_MS);
    let url = storage.url.to_string();
    let store = store::open(&storage, mode)
        .await
        .map_err(|source| CliError::Store {
            url: url.clone(),
            source,
        })?;
    Ok((store, url, interval))
}

fn check_id(id: &str) -> Result<(), CliError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(CliError::Usage(format!(
            "{id:?} is not a device id (1..=64 of A-Z a-z 0-9 . _ : -)"
        )))
    }
}

/// Opens the store, runs `f` on it, closes it; a store error names the database.
async fn with_store<T, F, Fut>(args: &StoreArgs, mode: OpenMode, f: F) -> Result<T, CliError>
where
    F: FnOnce(std::sync::Arc<dyn Store>) -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let (store, url, _) = open_store(args, mode).await?;
    let r = f(store.clone()).await;
    store.close().await;
    r.map_err(|source| match source {
        StoreError::Conflict(m) => CliError::Failed(m),
        source => CliError::Store { url, source },
    })
}

/// Device-supplied text is hostile: no control characters reach the terminal.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_and_db_conflict() {
        let r = Cli::try_parse_from([
            "netmedic-collector",
            "incidents",
            "--config",
            "a.toml",
            "--db",
            "x.sqlite",
        ]);
        assert!(r.is_err());
    }
}
