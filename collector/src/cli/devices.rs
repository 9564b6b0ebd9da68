//! `device add|import|revoke|list`: enrolment (one device, or a fleet from a file) and
//! revocation of device tokens, the device list.

use super::{CliError, StoreArgs, check_id, open_store, print_secret, sanitize, with_store};
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
    /// Enrol a fleet: FILE has one device per line, `ID` or `ID,CUSTOMER` (an optional header
    /// line `device_id,customer_id`; blank lines and `#` comments are skipped). Every line is
    /// checked first; one bad line writes nothing. The new tokens go to `--tokens-out` as
    /// `device_id,token` lines, a new file of mode 0600 (shown once, stored hashed); a customer
    /// maps the device to it as the subscribers import would. All devices are enrolled in one
    /// transaction; an active device among them refuses the whole file.
    Import {
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        /// Where the tokens are written (must not exist yet).
        #[arg(long, value_name = "PATH")]
        tokens_out: std::path::PathBuf,
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
            let hash = crate::auth::token_sha256(&token);
            let i = id.clone();
            with_store(&store, OpenMode::CreateAndMigrate, |s| async move {
                s.enrol_device(&i, region.as_deref(), &hash, now()).await
            })
            .await?;
            // Only the token on stdout, so scripts can capture it.
            print_secret(&token)?;
            eprintln!(
                "enrolled device {id}; the token above is shown once: store it as the agent's \
                 token_file (mode 0600)"
            );
            Ok(())
        }
        DeviceCommand::Import {
            file,
            tokens_out,
            store,
        } => import(&file, &tokens_out, &store).await,
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

/// Longest customer id (as the subscribers import).
const MAX_CUSTOMER_CHARS: usize = 128;

/// The devices of an import file: (id, customer). Every problem is reported with its line.
pub fn parse_device_file(text: &str) -> Result<Vec<(String, Option<String>)>, Vec<String>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if out.is_empty()
            && problems.is_empty()
            && matches!(
                fields[0].to_ascii_lowercase().as_str(),
                "device_id" | "agent_id" | "id"
            )
        {
            continue;
        }
        if fields.len() > 2 {
            problems.push(format!("line {n}: expected ID or ID,CUSTOMER"));
            continue;
        }
        let id = fields[0];
        if !crate::fleet::valid_id(id) {
            problems.push(format!(
                "line {n}: {:?} is not a device id (1..=64 of A-Z a-z 0-9 . _ : -)",
                sanitize(&id.chars().take(80).collect::<String>())
            ));
            continue;
        }
        let customer = fields
            .get(1)
            .filter(|c| !c.is_empty())
            .map(|c| (*c).to_owned());
        if let Some(c) = &customer
            && (c.chars().count() > MAX_CUSTOMER_CHARS || c.chars().any(char::is_control))
        {
            problems.push(format!(
                "line {n}: customer of {id}: at most {MAX_CUSTOMER_CHARS} characters, no control \
                 characters"
            ));
            continue;
        }
        if let Some(first) = seen.insert(id.to_owned(), n) {
            problems.push(format!("line {n}: device {id} already on line {first}"));
            continue;
        }
        out.push((id.to_owned(), customer));
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// `device import`: validate the file, make the tokens, write them (0600), enrol in one
/// transaction; when that fails the tokens file is removed (its tokens are unusable).
async fn import(
    file: &std::path::Path,
    tokens_out: &std::path::Path,
    store: &StoreArgs,
) -> Result<(), CliError> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = std::fs::read_to_string(file)
        .map_err(|e| CliError::Failed(format!("{}: {e}", file.display())))?;
    let devices = parse_device_file(&text).map_err(|problems| {
        let more = problems.len().saturating_sub(20);
        let mut m = format!("{}: nothing enrolled:\n", file.display());
        for p in problems.iter().take(20) {
            m.push_str(&format!("  {p}\n"));
        }
        if more > 0 {
            m.push_str(&format!("  ... and {more} more\n"));
        }
        CliError::Usage(m.trim_end().to_owned())
    })?;
    if devices.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: no devices in the file",
            file.display()
        )));
    }
    let started = std::time::Instant::now();
    let mut rows = Vec::with_capacity(devices.len());
    let mut tokens = String::with_capacity(devices.len() * 96);
    tokens.push_str("device_id,token\n");
    for (id, customer) in devices {
        let token = crate::auth::new_token().map_err(|e| CliError::Failed(e.to_string()))?;
        tokens.push_str(&format!("{id},{token}\n"));
        rows.push((id, crate::auth::token_sha256(&token), customer));
    }
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tokens_out)
        .map_err(|e| CliError::Failed(format!("{}: {e}", tokens_out.display())))?;
    let written = out
        .write_all(tokens.as_bytes())
        .and_then(|()| out.sync_all());
    drop(out);
    if let Err(e) = written {
        let _ = std::fs::remove_file(tokens_out);
        return Err(CliError::Failed(format!("{}: {e}", tokens_out.display())));
    }
    let made = started.elapsed().as_secs_f64();
    let mut db_secs = 0.0;
    let r = match open_store(store, OpenMode::CreateAndMigrate).await {
        Ok((st, url, _)) => {
            let t = std::time::Instant::now();
            let r = st.enrol_fleet(&rows, now()).await;
            db_secs = t.elapsed().as_secs_f64().max(1e-6);
            st.close().await;
            r.map_err(|source| match source {
                StoreError::Conflict(m) => CliError::Failed(m),
                source => CliError::Store { url, source },
            })
        }
        Err(e) => Err(e),
    };
    let n = match r {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(tokens_out);
            return Err(e);
        }
    };
    let secs = started.elapsed().as_secs_f64().max(1e-6);
    eprintln!(
        "enrolled {n} devices in {secs:.2} s ({:.0} devices/s; making the tokens {made:.2} s, \
         the database {db_secs:.2} s = {:.0} devices/s); their tokens are in {} (mode 0600), \
         shown once: hand each to its device's token_file",
        rows.len() as f64 / secs,
        rows.len() as f64 / db_secs,
        tokens_out.display()
    );
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
