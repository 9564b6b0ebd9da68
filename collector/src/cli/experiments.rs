//! `experiment start|list|stop`: holdout experiments, straight on the store (the server delivers
//! the active ones in its next heartbeat replies).

use super::{CliError, StoreArgs, parse_check, with_store};
use crate::analytics::scope_label;
use crate::domain::{ExperimentError, new_experiment, permille_from_percent};
use crate::now;
use crate::store::{ExperimentRecord, OpenMode};
use clap::{Args, Subcommand};
use netmedic_proto::experiment_hash::MAX_CONTROL_PERMILLE;
use netmedic_proto::{CheckId, ExperimentScope};
use std::io::Write;

/// Exactly one of `--playbook`, `--check` (optionally with `--cause`).
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ExperimentScopeArgs {
    /// Every incident planned by the agent's `[[playbook]]` of this name.
    #[arg(long, value_name = "NAME")]
    pub playbook: Option<String>,
    /// Every incident of this check.
    #[arg(long, value_name = "CHECK", value_parser = parse_check)]
    pub check: Option<CheckId>,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// Start an experiment: a stable share of devices runs the playbook in dry_run.
    Start {
        /// Experiment id (1..=64 of A-Z a-z 0-9 . _ -); never reused.
        #[arg(long, value_name = "ID")]
        id: String,
        #[command(flatten)]
        scope: ExperimentScopeArgs,
        /// With `--check`: only incidents of this cause.
        #[arg(long, value_name = "CAUSE", requires = "check")]
        cause: Option<String>,
        /// Share of devices in the control arm, in percent (0.1 steps), at most 50.
        #[arg(long, value_name = "PERCENT")]
        control_percent: String,
        /// Fixed salt (reproducible arms); random when omitted.
        #[arg(long, value_name = "SALT")]
        salt: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List experiments, active first.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// End an active experiment (kept for the report, no longer delivered).
    Stop {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub(super) async fn experiment(cmd: ExperimentCommand) -> Result<(), CliError> {
    match cmd {
        ExperimentCommand::Start {
            id,
            scope,
            cause,
            control_percent,
            salt,
            store,
        } => {
            let scope = match (scope.playbook, scope.check) {
                (Some(_), _) if cause.is_some() => {
                    return Err(CliError::Usage("--cause needs --check".into()));
                }
                (Some(name), _) => ExperimentScope::Playbook { name },
                (None, Some(check)) => ExperimentScope::Check { check, cause },
                (None, None) => {
                    return Err(CliError::Usage("--playbook or --check is required".into()));
                }
            };
            let permille = permille_from_percent(&control_percent).ok_or_else(|| {
                CliError::Usage(format!(
                    "--control-percent {control_percent:?}: a percentage in 0.1 steps, \
                     0.1..={}",
                    f64::from(MAX_CONTROL_PERMILLE) / 10.0
                ))
            })?;
            let e = new_experiment(&id, scope, permille, salt.as_deref()).map_err(|e| match e {
                ExperimentError::Invalid(v) => CliError::Usage(v.to_string()),
                ExperimentError::Random(r) => CliError::Failed(r.to_string()),
            })?;
            with_store(&store, OpenMode::MustExist, |s| async move {
                s.start_experiment(&e, "cli", now()).await
            })
            .await?;
            eprintln!("experiment {id} started");
            Ok(())
        }
        ExperimentCommand::List { json, store } => {
            let list = with_store(&store, OpenMode::MustExist, |s| async move {
                s.list_experiments().await
            })
            .await?;
            let mut out = std::io::stdout().lock();
            if json {
                let text = serde_json::to_string_pretty(&list)
                    .map_err(|e| CliError::Failed(format!("cannot encode the list: {e}")))?;
                writeln!(out, "{text}")?;
                return Ok(());
            }
            write!(out, "{}", render_experiments(&list))?;
            Ok(())
        }
        ExperimentCommand::Stop { id, store } => {
            let ended = with_store(&store, OpenMode::MustExist, |s| {
                let id = id.clone();
                async move { s.end_experiment(&id, now()).await }
            })
            .await?;
            if !ended {
                return Err(CliError::Failed(format!(
                    "no active experiment has the id {id:?}"
                )));
            }
            eprintln!("experiment {id} stopped");
            Ok(())
        }
    }
}

/// One line per experiment: id, state, scope, control share, started, ended, by whom.
pub fn render_experiments(list: &[ExperimentRecord]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if list.is_empty() {
        out.push_str("(no experiment)\n");
        return out;
    }
    let _ = writeln!(out, "ID\tSTATE\tSCOPE\tCONTROL\tSTARTED\tENDED\tBY\tSALT");
    for r in list {
        let e = &r.experiment;
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{:.1}%\t{}\t{}\t{}\t{}",
            e.id,
            if r.is_active() { "active" } else { "ended" },
            scope_label(&e.scope),
            f64::from(e.control_permille) / 10.0,
            r.started_at,
            r.ended_at.map_or_else(|| "-".to_owned(), |t| t.to_string()),
            super::sanitize(&r.created_by),
            e.salt
        );
    }
    out
}
