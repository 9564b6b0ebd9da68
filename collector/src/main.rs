//! `netmedic-collector` binary: parses the command line, runs the command from the library and
//! maps errors to exit codes (0 ok, 1 runtime failure, 2 usage or configuration error).

use clap::Parser;
use netmedic_collector::{cli, logging};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("netmedic-collector: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            // `{:#}` prints the whole cause chain on one line.
            eprintln!("netmedic-collector: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}
