//! `netmedic-agent` binary: parses the command line and hands over to the library.

use anyhow::Context as _;
use netmedic_agent::{cli, config::AgentConfig, daemon, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("netmedic-agent: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(64);
        }
    };
    match command {
        cli::Command::Help => emit(&format!("{}\n", cli::USAGE), ExitCode::SUCCESS),
        cli::Command::Version => emit(
            &format!("netmedic-agent {}\n", env!("CARGO_PKG_VERSION")),
            ExitCode::SUCCESS,
        ),
        cli::Command::CheckConfig { config } => match AgentConfig::load(&config) {
            Ok(_) => emit(&format!("{}: ok\n", config.display()), ExitCode::SUCCESS),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(3)
            }
        },
        cli::Command::Check {
            config,
            json,
            only,
            cycles,
        } => {
            let cfg = match AgentConfig::load(&config) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(3);
                }
            };
            match runtime().and_then(|rt| Ok(rt.block_on(cli::check_once(cfg, only, cycles))?)) {
                Ok(obs) => {
                    let text = if json {
                        format!("{:#}\n", cli::to_json(&obs))
                    } else {
                        cli::to_table(&obs)
                    };
                    emit(&text, ExitCode::from(cli::check_exit_code(&obs)))
                }
                Err(e) => {
                    eprintln!("netmedic-agent: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        cli::Command::Run { config } => {
            logging::init();
            match run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    log::error!("{e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Writes a command's output and returns `code`. A reader that went away first (`check --json |
/// head`) is no error of the agent: the rest of the output is dropped quietly (Rust ignores
/// SIGPIPE, so without this the write would panic). Any other write error is reported and the
/// exit code is 74 (EX_IOERR).
fn emit(text: &str, code: ExitCode) -> ExitCode {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => code,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => code,
        Err(e) => {
            eprintln!("netmedic-agent: cannot write to standard output: {e}");
            ExitCode::from(74)
        }
    }
}

/// One thread runs every task (`current_thread`); the blocking pool only serves the few blocking
/// calls (lan_arp's and lan_dhcp's raw-socket probes, the collector's name lookup), at most
/// [`MAX_BLOCKING_THREADS`] at once, so a resolver that hangs cannot grow the agent's threads
/// (and their stacks and malloc arenas) to tokio's default of 512.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .thread_keep_alive(std::time::Duration::from_secs(BLOCKING_KEEP_ALIVE_SECS))
        .build()
        .context("cannot start the async runtime")
}

/// More than the blocking calls that can overlap (one per check using the pool, plus a lookup).
const MAX_BLOCKING_THREADS: usize = 4;

/// An idle blocking thread lives this long (tokio's default: 10 s). Longer than the shipped
/// 60 s of lan_arp and lan_dhcp, so their threads stay parked between runs instead of being
/// created (clone, stack mapping, first-touch faults) and torn down every minute; a parked
/// thread costs no wake-up.
const BLOCKING_KEEP_ALIVE_SECS: u64 = 90;

fn run(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = AgentConfig::load(path)?;
    let rt = runtime()?;
    tokio::task::LocalSet::new()
        .block_on(&rt, daemon::run(cfg, path.to_path_buf(), shutdown_signal()))?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            log::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}
