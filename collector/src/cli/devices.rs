//! `device add|revoke|list`: enrolment and revocation of device tokens, the device list.

use super::{CliError, StoreArgs, check_id, open_store, sanitize};
use crate::fleet::{DeviceView, offline_before_ms};
use crate::now;
use crate::store::{DeviceFilter, DeviceState, MAX_PAGE_LIMIT, OpenMode, StoreError};
use clap::Subcommand;
use std::io::Write;

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

pub(super) async fn device(cmd: DeviceCommand) -> Result<(), CliError> {
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
