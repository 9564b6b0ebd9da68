//! Command line: `run`, `check` and `check-config`, parsed by hand to keep the CPE binary small.

use crate::checks::{self, Observation};
use crate::config::{AgentConfig, DEFAULT_PATH};
use crate::context::Context;
use crate::net::Netlink;
use crate::ping::Pinger;
use netmedic_proto::{CheckId, CheckStatus};
use std::path::PathBuf;
use std::sync::Arc;

pub const USAGE: &str = "\
netmedic-agent — detects and heals CPE faults, reports incidents to the ISP's collector

USAGE:
    netmedic-agent run [--config FILE]
    netmedic-agent check [--config FILE] [--json] [--only CHECK]
    netmedic-agent check-config [FILE]
    netmedic-agent --version

The default config is /etc/netmedic/agent.toml.
`check` exits 0 when all checks pass, 1 when any is degraded or unknown, 2 when any failed,
3 when the configuration is invalid.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
    },
    Check {
        config: PathBuf,
        json: bool,
        only: Option<CheckId>,
    },
    CheckConfig {
        config: PathBuf,
    },
    Version,
    Help,
}

/// Parses arguments (without the program name).
pub fn parse(args: &[String]) -> Result<Command, String> {
    let mut it = args.iter();
    let sub = it.next().map(String::as_str);
    let mut config = PathBuf::from(DEFAULT_PATH);
    let mut json = false;
    let mut only = None;
    let mut positional = None;
    let rest: Vec<&String> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let a = rest[i].as_str();
        let mut value = |name: &str| -> Result<String, String> {
            i += 1;
            rest.get(i)
                .map(|s| s.to_string())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a {
            "--config" | "-c" => config = PathBuf::from(value("--config")?),
            "--json" => json = true,
            "--only" => {
                let v = value("--only")?;
                only = Some(CheckId::parse(&v).ok_or_else(|| {
                    let all: Vec<_> = CheckId::ALL.iter().map(|c| c.as_str()).collect();
                    format!("unknown check {v:?}; checks are: {}", all.join(", "))
                })?);
            }
            s if !s.starts_with('-') && positional.is_none() => positional = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s:?}")),
        }
        i += 1;
    }
    match sub {
        Some("run") if positional.is_none() && !json && only.is_none() => {
            Ok(Command::Run { config })
        }
        Some("check") if positional.is_none() => Ok(Command::Check { config, json, only }),
        Some("check-config") => Ok(Command::CheckConfig {
            config: positional.unwrap_or(config),
        }),
        Some("--version" | "-V" | "version") => Ok(Command::Version),
        Some("--help" | "-h" | "help") | None => Ok(Command::Help),
        Some(other) => Err(format!("unknown command or argument {other:?}")),
    }
}

/// Exit code of `check` for a set of observations.
pub fn check_exit_code(obs: &[Observation]) -> u8 {
    obs.iter()
        .map(|o| match o.status {
            CheckStatus::Ok => 0,
            CheckStatus::Degraded | CheckStatus::Unknown => 1,
            CheckStatus::Failed => 2,
        })
        .max()
        .unwrap_or(0)
}

/// One pass of every enabled check (or just `only`).
pub async fn check_once(
    config: AgentConfig,
    only: Option<CheckId>,
) -> Result<Vec<Observation>, crate::net::NetError> {
    let config = Arc::new(config);
    let pinger = Pinger::new().ok();
    let ctx = Context {
        config: config.clone(),
        netlink: Netlink::connect()?,
        pinger,
        shared: Default::default(),
    };
    let mut out = Vec::new();
    for check in checks::enabled(&config) {
        if only.is_none_or(|o| o == check.id()) {
            out.push(check.run(&ctx).await);
        }
    }
    Ok(out)
}

/// Observations as JSON for machines.
pub fn to_json(obs: &[Observation]) -> serde_json::Value {
    serde_json::Value::Array(
        obs.iter()
            .map(|o| {
                serde_json::json!({
                    "check": o.check,
                    "status": o.status,
                    "cause": o.cause,
                    "summary": o.summary,
                    "value": o.value,
                    "threshold": o.threshold,
                    "hint": o.hint,
                    "category": o.category,
                    "severity": o.severity,
                    "evidence": o.evidence,
                    "at": o.at,
                })
            })
            .collect(),
    )
}

/// Observations as an aligned table for people.
pub fn to_table(obs: &[Observation]) -> String {
    let header = ["CHECK", "STATUS", "VALUE", "THRESHOLD", "MEANING", "HINT"];
    let rows: Vec<[String; 6]> = obs
        .iter()
        .map(|o| {
            [
                o.check.to_string(),
                o.status.to_string(),
                o.value.clone(),
                o.threshold.clone(),
                o.summary.clone(),
                if o.hint.is_empty() {
                    "-".into()
                } else {
                    o.hint.clone()
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for r in &rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn parses_the_documented_surface() {
        assert_eq!(
            parse(&args("run --config /tmp/a.toml")).unwrap(),
            Command::Run {
                config: "/tmp/a.toml".into()
            }
        );
        assert_eq!(
            parse(&args("check --json --only default_route")).unwrap(),
            Command::Check {
                config: DEFAULT_PATH.into(),
                json: true,
                only: Some(CheckId::DefaultRoute)
            }
        );
        assert_eq!(
            parse(&args("check-config x.toml")).unwrap(),
            Command::CheckConfig {
                config: "x.toml".into()
            }
        );
        assert!(
            parse(&args("check --only dsn"))
                .unwrap_err()
                .contains("unknown check")
        );
        assert!(parse(&args("run --bogus")).is_err());
        assert!(parse(&args("run --config")).is_err());
    }
}
