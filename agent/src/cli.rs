//! Command line: `run`, `check` and `check-config`, parsed by hand to keep the CPE binary small.

use crate::checks::Observation;
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
    netmedic-agent check [--config FILE] [--json] [--only CHECK] [--cycles N]
    netmedic-agent check-config [FILE]
    netmedic-agent --version

The default config is /etc/netmedic/agent.toml.
`check` exits 0 when all checks pass, 1 when any is degraded or unknown, 2 when any failed,
3 when the configuration is invalid. `--cycles N` runs the checks N times back to back and
shows the last pass (the benchmark divides CPU time by it).";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
    },
    Check {
        config: PathBuf,
        json: bool,
        only: Option<CheckId>,
        /// Passes run back to back (1 unless `--cycles`).
        cycles: u32,
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
    let mut cycles = None;
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
            "--cycles" => {
                let v = value("--cycles")?;
                cycles = Some(
                    v.parse::<u32>()
                        .ok()
                        .filter(|n| (1..=100_000).contains(n))
                        .ok_or_else(|| format!("--cycles {v:?}: must be 1 ..= 100000"))?,
                );
            }
            s if !s.starts_with('-') && positional.is_none() => positional = Some(PathBuf::from(s)),
            s => return Err(format!("unexpected argument {s:?}")),
        }
        i += 1;
    }
    match sub {
        Some("run") if positional.is_none() && !json && only.is_none() && cycles.is_none() => {
            Ok(Command::Run { config })
        }
        Some("check") if positional.is_none() => Ok(Command::Check {
            config,
            json,
            only,
            cycles: cycles.unwrap_or(1),
        }),
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

/// `cycles` passes (at least one) of every enabled check (or just `only`); the last pass's
/// observations.
pub async fn check_once(
    config: AgentConfig,
    only: Option<CheckId>,
    cycles: u32,
) -> Result<Vec<Observation>, crate::net::NetError> {
    let config = Arc::new(config);
    let pinger = Pinger::new().ok();
    let ctx = Context {
        site: Arc::new(config.site()),
        netlink: Netlink::connect()?,
        pinger,
        shared: Default::default(),
    };
    let checks: Vec<_> = config
        .enabled_checks()
        .into_iter()
        .filter(|c| only.is_none_or(|o| o == c.id()))
        .collect();
    let mut out = Vec::new();
    for _ in 0..cycles.max(1) {
        out.clear();
        for check in &checks {
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
                only: Some(CheckId::DefaultRoute),
                cycles: 1,
            }
        );
        assert_eq!(
            parse(&args("check --only icmp --cycles 20")).unwrap(),
            Command::Check {
                config: DEFAULT_PATH.into(),
                json: false,
                only: Some(CheckId::Icmp),
                cycles: 20,
            }
        );
        for bad in ["check --cycles 0", "check --cycles x", "run --cycles 2"] {
            assert!(parse(&args(bad)).is_err(), "{bad}");
        }
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
