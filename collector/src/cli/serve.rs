//! `serve` (the HTTP API until SIGTERM or SIGINT) and `check-config`.

use super::CliError;
use crate::config::CollectorConfig;
use crate::run_server;
use std::path::Path;

/// `serve`: runs the collector until SIGTERM or SIGINT.
pub(super) async fn serve(config: &Path) -> Result<(), CliError> {
    let config = CollectorConfig::load(config)?;
    run_server(&config, shutdown_signal()).await?;
    log::info!("netmedic-collector stopped");
    Ok(())
}

/// `check-config`: loads the file and prints what it configures.
pub(super) fn check_config(file: &Path) -> Result<(), CliError> {
    let cfg = CollectorConfig::load(file)?;
    println!(
        "{}: ok (listen {}, storage {}, heartbeat every {} s)",
        file.display(),
        cfg.server.listen_addr,
        cfg.storage.url,
        cfg.fleet.heartbeat_interval_secs
    );
    Ok(())
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
