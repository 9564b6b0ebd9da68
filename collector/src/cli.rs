//! Command line: `serve`, `incidents`, `device add|revoke|list`, `token add|revoke|list`,
//! `user add|passwd|remove|list`,
//! `killswitch set|clear|list`, `diag request`, `import subscribers|surveys|contacts`, `report`,
//! `network-events`, `correlate` (all straight on the store named by the config) and
//! `check-config`.

use crate::config::{CollectorConfig, ConfigError, DEFAULT_CONFIG_PATH, StorageConfig, StorageUrl};
use crate::fleet::{DeviceView, offline_before_ms, valid_id};
use crate::store::{
    self, DEFAULT_PAGE_LIMIT, IncidentFilter, MAX_PAGE_LIMIT, OpenMode, StoreError,
};
use crate::store::{DeviceFilter, DeviceState, KillScope, Store};
use crate::{ServeError, now, run_server};
use clap::{Args, Parser, Subcommand, ValueEnum};
use netmedic_proto::{ActionId, ActionOutcome, CheckId, IncidentStatus, IncidentView};
use std::io::Write;
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

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it on stdout (only the token; shown once, stored hashed).
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API token; its next request is refused.
    Revoke {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List API tokens (names and roles, never the tokens).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a NOC user. The password is read from stdin with --password-stdin (one line);
    /// otherwise a strong one is generated and printed on stdout once.
    Add {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password (ends their sessions); same password rules as `add`.
    Passwd {
        #[arg(value_name = "NAME")]
        name: String,
        #[arg(long)]
        password_stdin: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a user and end their sessions (their notes keep their name).
    Remove {
        #[arg(value_name = "NAME")]
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List users and roles.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Operator,
}

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

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Enrol a device and print its new token on stdout (only the token; shown once, stored
    /// hashed). A revoked device is re-enrolled with a new token.
    Add {
        #[arg(value_name = "ID")]
        id: String,
        /// The device's region (until the subscribers import says better).
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a device's token; its next request is refused.
    Revoke {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List devices with their state.
    List {
        #[arg(long, value_name = "STATE", value_parser = ["online", "offline", "never_seen", "revoked"])]
        state: Option<String>,
        #[arg(long, value_name = "REGION")]
        region: Option<String>,
        /// Print JSON (`DevicePage`, as the HTTP API returns it).
        #[arg(long)]
        json: bool,
        #[arg(long, short = 'n', value_name = "N", default_value_t = MAX_PAGE_LIMIT,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_PAGE_LIMIT)))]
        limit: u32,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Exactly one of `--device`, `--region`, `--fleet`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ScopeArgs {
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    #[arg(long)]
    pub fleet: bool,
}

impl ScopeArgs {
    fn scope(&self) -> Result<KillScope, CliError> {
        let (scope, target) = match (&self.device, &self.region, self.fleet) {
            (Some(d), _, _) => ("device", Some(d.as_str())),
            (_, Some(r), _) => ("region", Some(r.as_str())),
            _ => ("fleet", None),
        };
        crate::domain::kill_scope(scope, target).map_err(CliError::Usage)
    }
}

#[derive(Debug, Subcommand)]
pub enum KillswitchCommand {
    Set {
        #[command(flatten)]
        scope: ScopeArgs,
        /// Why (shown to the agent and in its logs).
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    Clear {
        #[command(flatten)]
        scope: ScopeArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum DiagCommand {
    /// Queue checks to run on a device; prints the request id.
    Request {
        #[arg(value_name = "ID")]
        id: String,
        /// Comma-separated check ids, e.g. `dns,icmp`.
        #[arg(long, value_name = "CHECKS", value_delimiter = ',', required = true, value_parser = parse_check)]
        checks: Vec<CheckId>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

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
        Command::Serve { config } => {
            let config = CollectorConfig::load(&config)?;
            run_server(&config, shutdown_signal()).await?;
            log::info!("netmedic-collector stopped");
            Ok(())
        }
        Command::Incidents(args) => incidents(args).await,
        Command::Device(cmd) => device(cmd).await,
        Command::Killswitch(cmd) => killswitch(cmd).await,
        Command::Diag(DiagCommand::Request { id, checks, store }) => {
            let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
            let r = crate::domain::queue_diagnostics(&*store, &id, &checks).await;
            store.close().await;
            match r {
                Ok(request_id) => {
                    println!("{request_id}");
                    Ok(())
                }
                Err(crate::domain::DiagError::Invalid(m)) => Err(CliError::Usage(m)),
                Err(crate::domain::DiagError::Store(source)) => Err(CliError::Store { url, source }),
            }
        }
        Command::Token(cmd) => token(cmd).await,
        Command::User(cmd) => user(cmd).await,
        Command::Import(args) => import(args).await,
        Command::Report(args) => report(args).await,
        Command::NetworkEvents {
            active,
            json,
            store,
        } => {
            let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
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
        Command::Correlate { store: args } => {
            let cfg = match &args.config {
                Some(p) => CollectorConfig::load(p)?,
                None if args.db.is_none() => {
                    CollectorConfig::load(&PathBuf::from(DEFAULT_CONFIG_PATH))?
                }
                None => CollectorConfig::default(),
            };
            let (store, url, _) = open_store(&args, OpenMode::MustExist).await?;
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
        Command::CheckConfig { file } => {
            let cfg = CollectorConfig::load(&file)?;
            println!(
                "{}: ok (listen {}, storage {}, heartbeat every {} s)",
                file.display(),
                cfg.server.listen_addr,
                cfg.storage.url,
                cfg.fleet.heartbeat_interval_secs
            );
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            log::error!("cannot listen for SIGINT: {e}");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => log::info!("SIGINT received, shutting down"),
        () = term => log::info!("SIGTERM received, shutting down"),
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

async fn device(cmd: DeviceCommand) -> Result<(), CliError> {
    match cmd {
        DeviceCommand::Add { id, region, store } => {
            check_id(&id)?;
            if let Some(r) = &region {
                check_id(r).map_err(|_| CliError::Usage(format!("{r:?} is not a region id")))?;
            }
            let token = crate::auth::new_token().map_err(|e| CliError::Failed(e.to_string()))?;
            // Enrolment may precede the server's first start: create and migrate the database.
            let (store, url, _) = open_store(&store, OpenMode::CreateAndMigrate).await?;
            let r = store
                .enrol_device(
                    &id,
                    region.as_deref(),
                    &crate::auth::token_sha256(&token),
                    now(),
                )
                .await;
            store.close().await;
            match r {
                Ok(()) => {}
                Err(StoreError::Conflict(m)) => return Err(CliError::Failed(m)),
                Err(source) => return Err(CliError::Store { url, source }),
            }
            // Only the token on stdout, so scripts can capture it.
            let mut out = std::io::stdout().lock();
            writeln!(out, "{token}")?;
            out.flush()?;
            eprintln!(
                "enrolled device {id}; the token above is shown once: store it as the agent's \
                 token_file (mode 0600)"
            );
            Ok(())
        }
        DeviceCommand::Revoke { id, store } => {
            check_id(&id)?;
            let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
            let r = store.revoke_device(&id, now()).await;
            store.close().await;
            match r {
                Ok(true) => {
                    eprintln!("revoked device {id}: its token is refused from now on");
                    Ok(())
                }
                Ok(false) => Err(CliError::Failed(format!(
                    "no enrolled, active device {id:?}"
                ))),
                Err(source) => Err(CliError::Store { url, source }),
            }
        }
        DeviceCommand::List {
            state,
            region,
            json,
            limit,
            store,
        } => {
            let (store, url, interval) = open_store(&store, OpenMode::MustExist).await?;
            let cutoff = offline_before_ms(now(), interval);
            let mut devices = Vec::new();
            let mut after: Option<String> = None;
            // All pages up to `limit` devices.
            let r = loop {
                let filter = DeviceFilter {
                    state: state.as_deref().and_then(DeviceState::parse),
                    region: region.clone(),
                    after: after.clone(),
                    limit: limit.min(MAX_PAGE_LIMIT),
                    offline_before_ms: cutoff,
                };
                match store.list_devices(&filter).await {
                    Ok(page) => {
                        let full = page.len() == filter.limit as usize;
                        after = page.last().map(|d| d.agent_id.clone());
                        devices.extend(page);
                        if !full || devices.len() >= limit as usize {
                            break Ok(());
                        }
                    }
                    Err(e) => break Err(e),
                }
            };
            store.close().await;
            r.map_err(|source| CliError::Store { url, source })?;
            devices.truncate(limit as usize);
            let views: Vec<DeviceView> = devices
                .into_iter()
                .map(|d| DeviceView::from_record(d, cutoff, false))
                .collect();
            let mut out = std::io::stdout().lock();
            if json {
                let page = crate::fleet::DevicePage {
                    devices: views,
                    next_after: None,
                };
                serde_json::to_writer_pretty(&mut out, &page).map_err(std::io::Error::other)?;
                writeln!(out)?;
            } else {
                out.write_all(render_devices(&views).as_bytes())?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

async fn token(cmd: TokenCommand) -> Result<(), CliError> {
    match cmd {
        TokenCommand::Add { name, role, store } => {
            check_id(&name).map_err(|_| {
                CliError::Usage(format!(
                    "{name:?} is not a token name (1..=64 of A-Z a-z 0-9 . _ : -)"
                ))
            })?;
            let role = role_of(role);
            let token = crate::auth::new_token().map_err(|e| CliError::Failed(e.to_string()))?;
            let (store, url, _) = open_store(&store, OpenMode::CreateAndMigrate).await?;
            let r = store
                .api_token_add(&name, role, &crate::auth::token_sha256(&token), now())
                .await;
            store.close().await;
            match r {
                Ok(()) => {}
                Err(StoreError::Conflict(m)) => return Err(CliError::Failed(m)),
                Err(source) => return Err(CliError::Store { url, source }),
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{token}")?;
            out.flush()?;
            eprintln!(
                "created API token {name} ({}); the token above is shown once: send it as \
                 `Authorization: Bearer <token>`",
                role.as_str()
            );
            Ok(())
        }
        TokenCommand::Revoke { name, store } => {
            let n = name.clone();
            if with_store(&store, OpenMode::MustExist, |s| async move {
                s.api_token_revoke(&n, now()).await
            })
            .await?
            {
                eprintln!("revoked API token {name}");
                Ok(())
            } else {
                Err(CliError::Failed(format!("no active API token {name:?}")))
            }
        }
        TokenCommand::List { store } => {
            let list = with_store(&store, OpenMode::MustExist, |s| async move {
                s.api_token_list().await
            })
            .await?;
            let mut out = std::io::stdout().lock();
            for t in list {
                writeln!(
                    out,
                    "{}  {}  created {}  {}",
                    t.name,
                    t.role.as_str(),
                    t.created_at,
                    t.revoked_at
                        .map_or("active".to_owned(), |r| format!("revoked {r}"))
                )?;
            }
            out.flush()?;
            Ok(())
        }
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

fn role_of(r: RoleArg) -> crate::auth::Role {
    match r {
        RoleArg::Viewer => crate::auth::Role::Viewer,
        RoleArg::Operator => crate::auth::Role::Operator,
    }
}

/// The new password: the first line of stdin, or a generated one (`true`: print it).
fn new_password(from_stdin: bool) -> Result<(String, bool), CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let pw = line.trim_end_matches(['\r', '\n']).to_owned();
        crate::web::password::check_new(&pw).map_err(|e| CliError::Usage(e.to_string()))?;
        Ok((pw, false))
    } else {
        // 96 random bits as 24 hex characters.
        let pw = crate::auth::random_hex(12).map_err(|e| CliError::Failed(e.to_string()))?;
        Ok((pw, true))
    }
}

async fn hash_password(pw: String) -> Result<String, CliError> {
    tokio::task::spawn_blocking(move || crate::web::password::hash(&pw))
        .await
        .map_err(|e| CliError::Failed(e.to_string()))?
        .map_err(|e| CliError::Failed(e.to_string()))
}

async fn user(cmd: UserCommand) -> Result<(), CliError> {
    match cmd {
        UserCommand::Add {
            name,
            role,
            password_stdin,
            store,
        } => {
            check_id(&name).map_err(|_| {
                CliError::Usage(format!(
                    "{name:?} is not a user name (1..=64 of A-Z a-z 0-9 . _ : -)"
                ))
            })?;
            let role = role_of(role);
            let (pw, show) = new_password(password_stdin)?;
            let phc = hash_password(pw.clone()).await?;
            let n = name.clone();
            with_store(&store, OpenMode::CreateAndMigrate, |s| async move {
                s.noc_user_add(&n, role, &phc, now()).await
            })
            .await?;
            if show {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{pw}")?;
                out.flush()?;
            }
            eprintln!(
                "added NOC user {name} ({}){}",
                role.as_str(),
                if show {
                    "; the generated password above is shown once"
                } else {
                    ""
                }
            );
            Ok(())
        }
        UserCommand::Passwd {
            name,
            password_stdin,
            store,
        } => {
            let (pw, show) = new_password(password_stdin)?;
            let phc = hash_password(pw.clone()).await?;
            let n = name.clone();
            if !with_store(&store, OpenMode::MustExist, |s| async move {
                s.noc_user_set_password(&n, &phc, now()).await
            })
            .await?
            {
                return Err(CliError::Failed(format!("no NOC user {name:?}")));
            }
            if show {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{pw}")?;
                out.flush()?;
            }
            eprintln!("new password for {name}; their sessions were ended");
            Ok(())
        }
        UserCommand::Remove { name, store } => {
            let n = name.clone();
            if with_store(&store, OpenMode::MustExist, |s| async move {
                s.noc_user_remove(&n).await
            })
            .await?
            {
                eprintln!("removed NOC user {name}; their sessions were ended");
                Ok(())
            } else {
                Err(CliError::Failed(format!("no NOC user {name:?}")))
            }
        }
        UserCommand::List { store } => {
            let list = with_store(&store, OpenMode::MustExist, |s| async move {
                s.noc_user_list().await
            })
            .await?;
            let mut out = std::io::stdout().lock();
            for u in list {
                writeln!(
                    out,
                    "{}  {}  created {}",
                    u.name,
                    u.role.as_str(),
                    u.created_at
                )?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

async fn import(args: ImportArgs) -> Result<(), CliError> {
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

async fn report(args: ReportArgs) -> Result<(), CliError> {
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

/// Devices as an aligned table.
pub fn render_devices(devices: &[DeviceView]) -> String {
    let mut rows = vec![[
        "DEVICE".to_owned(),
        "STATE".to_owned(),
        "REGION".to_owned(),
        "LAST_SEEN".to_owned(),
        "AGENT".to_owned(),
    ]];
    for d in devices {
        rows.push([
            sanitize(&d.agent_id),
            d.state.clone(),
            d.region.as_deref().map_or("-".into(), sanitize),
            d.last_seen_at.map_or("-".into(), |t| t.to_string()),
            d.agent_version.as_deref().map_or("-".into(), sanitize),
        ]);
    }
    let mut widths = [0usize; 5];
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            line.push_str(c);
            if i + 1 < r.len() {
                line.extend(std::iter::repeat_n(' ', widths[i] - c.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if devices.is_empty() {
        out.push_str("(no devices)\n");
    }
    out
}

async fn killswitch(cmd: KillswitchCommand) -> Result<(), CliError> {
    match cmd {
        KillswitchCommand::Set {
            scope,
            reason,
            store,
        } => {
            let scope = scope.scope()?;
            let reason = reason.trim().to_owned();
            if reason.is_empty() || reason.len() > 512 || reason.chars().any(char::is_control) {
                return Err(CliError::Usage(
                    "--reason must be 1..=512 bytes of text without control characters".into(),
                ));
            }
            let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
            let r = store.set_killswitch(&scope, &reason, now()).await;
            store.close().await;
            r.map_err(|source| CliError::Store { url, source })?;
            eprintln!("kill switch set: {scope:?}");
            Ok(())
        }
        KillswitchCommand::Clear { scope, store } => {
            let scope = scope.scope()?;
            let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
            let r = store.clear_killswitch(&scope).await;
            store.close().await;
            match r {
                Ok(true) => {
                    eprintln!("kill switch cleared: {scope:?}");
                    Ok(())
                }
                Ok(false) => Err(CliError::Failed(format!("no kill switch {scope:?} is set"))),
                Err(source) => Err(CliError::Store { url, source }),
            }
        }
        KillswitchCommand::List { store } => {
            let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
            let r = store.list_killswitches().await;
            store.close().await;
            let list = r.map_err(|source| CliError::Store { url, source })?;
            let mut out = std::io::stdout().lock();
            for k in &list {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    k.scope,
                    if k.target.is_empty() { "-" } else { &k.target },
                    k.set_at,
                    sanitize(&k.reason)
                )?;
            }
            if list.is_empty() {
                writeln!(out, "(no kill switch set)")?;
            }
            Ok(())
        }
    }
}

async fn incidents(args: IncidentsArgs) -> Result<(), CliError> {
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

/// Device-supplied text is hostile: no control characters reach the terminal.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
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
                sanitize(&v.agent_id),
                sanitize(&v.incident_id),
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
                sanitize(&v.summary),
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
    use clap::CommandFactory;
    use netmedic_proto::{ActionRecord, Category, Severity, Timestamp};

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
            summary: "default route\u{1b}[31m missing".into(),
            evidence: Default::default(),
            actions: vec![
                act(ActionId::RestoreRoute, ActionOutcome::Planned),
                act(ActionId::RestoreRoute, ActionOutcome::Done),
                act(ActionId::RestoreRoute, ActionOutcome::Verified),
            ],
            event_count: 2,
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
        let col = |l: &str, h: &str| l.find(h);
        assert_eq!(col(lines[0], "ACTIONS"), col(lines[1], "restore_route"));
        assert!(render_table(&[]).contains("(no incidents)"));
    }
}
