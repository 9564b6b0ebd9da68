//! The daemon's background tasks beside the scheduler: delivery and heartbeat ([`Background`],
//! restarted when a reload changes the collector settings) and the SIGHUP listener that loads
//! and validates a new config ([`reload_on_sighup`]).

use crate::config::AgentConfig;
use crate::context::{Context, Shared};
use crate::events::WanBack;
use crate::reporter::{self, Collector, Reporter};
use crate::spool::Spool;
use crate::{heartbeat, logging, notify};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// A validated config from SIGHUP with its collector client, ready to apply.
pub(super) struct Reload {
    pub(super) config: AgentConfig,
    pub(super) collector: Collector,
}

/// The delivery and heartbeat tasks; restarted when a reload changes the collector settings.
pub(super) struct Background {
    delivery: tokio::task::JoinHandle<()>,
    heartbeat: Option<tokio::task::JoinHandle<()>>,
}

impl Background {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spawn(
        config: &Arc<AgentConfig>,
        ctx: &Arc<Context>,
        collector: Collector,
        spool: &Arc<Mutex<Spool>>,
        wake: &Arc<tokio::sync::Notify>,
        started: std::time::Instant,
        first_start: bool,
        wan_back: &WanBack,
    ) -> Self {
        let c = &config.collector;
        let start_delay_max_secs = if first_start {
            c.start_delay_max_secs
        } else {
            0
        };
        let delivery = tokio::spawn(reporter::run(
            Reporter::new(config, collector.clone()),
            spool.clone(),
            wake.clone(),
            Duration::from_secs(c.max_backoff_secs),
            start_delay_max_secs,
            wan_back.subscribe(),
        ));
        let heartbeat = config.heartbeat.enabled.then(|| {
            let first = if first_start {
                reporter::start_delay(start_delay_max_secs)
            } else {
                heartbeat::next_period(config.heartbeat.interval_secs, config.heartbeat.jitter_secs)
            };
            // Local task: diagnostics run checks, whose futures are not `Send`.
            tokio::task::spawn_local(heartbeat::run(
                heartbeat::Heartbeater {
                    collector,
                    config: config.clone(),
                    ctx: ctx.clone(),
                    spool: spool.clone(),
                    started,
                },
                first,
                wan_back.subscribe(),
            ))
        });
        Self {
            delivery,
            heartbeat,
        }
    }

    pub(super) fn abort(&self) {
        self.delivery.abort();
        if let Some(h) = &self.heartbeat {
            h.abort();
        }
    }
}

/// Loads and validates `path` on every SIGHUP; sends what may be applied to the scheduler.
pub(super) async fn reload_on_sighup(
    path: PathBuf,
    mut current: AgentConfig,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Reload>,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot handle SIGHUP ({e}): restart the agent to change its config");
            return;
        }
    };
    while hup.recv().await.is_some() {
        notify::reloading();
        log::info!(message_id = logging::MSG_RELOAD; "SIGHUP: reloading {}", path.display());
        let refused = |why: String| {
            log::error!(
                message_id = logging::MSG_RELOAD;
                "reload refused, keeping the running configuration: {why}"
            );
            notify::ready();
        };
        let config = match AgentConfig::load(&path) {
            Ok(c) => c,
            Err(e) => {
                refused(e.to_string());
                continue;
            }
        };
        if config.agent.id != current.agent.id || config.agent.state_dir != current.agent.state_dir
        {
            refused("agent.id and agent.state_dir can only change with a restart".into());
            continue;
        }
        let collector = match Collector::new(&config, shared.clone()) {
            Ok(c) => c,
            Err(e) => {
                refused(e.to_string());
                continue;
            }
        };
        current = config.clone();
        if tx.send(Reload { config, collector }).is_err() {
            return;
        }
    }
}
