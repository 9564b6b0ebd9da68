//! `killswitch set|clear|list` and `diag request`: stopping remediation and asking devices for
//! on-demand diagnostics.

use super::{CliError, StoreArgs, open_store, parse_check, sanitize};
use crate::domain::{DiagError, MAX_REASON_BYTES, kill_scope, queue_diagnostics, valid_reason};
use crate::now;
use crate::store::{KillScope, OpenMode};
use clap::{Args, Subcommand};
use netmedic_proto::CheckId;
use std::io::Write;

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
        kill_scope(scope, target).map_err(CliError::Usage)
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

pub(super) async fn killswitch(cmd: KillswitchCommand) -> Result<(), CliError> {
    match cmd {
        KillswitchCommand::Set {
            scope,
            reason,
            store,
        } => {
            let scope = scope.scope()?;
            let reason = reason.trim().to_owned();
            if !valid_reason(&reason) {
                return Err(CliError::Usage(format!(
                    "--reason must be 1..={MAX_REASON_BYTES} bytes of text without control characters"
                )));
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

/// `diag request`: queues the checks and prints the request id.
pub(super) async fn diag(cmd: DiagCommand) -> Result<(), CliError> {
    let DiagCommand::Request { id, checks, store } = cmd;
    let (store, url, _) = open_store(&store, OpenMode::MustExist).await?;
    let r = queue_diagnostics(&*store, &id, &checks).await;
    store.close().await;
    match r {
        Ok(request_id) => {
            println!("{request_id}");
            Ok(())
        }
        Err(DiagError::Invalid(m)) => Err(CliError::Usage(m)),
        Err(DiagError::Store(source)) => Err(CliError::Store { url, source }),
    }
}
