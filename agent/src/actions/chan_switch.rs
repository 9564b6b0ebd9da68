//! `chan_switch`: moves the access point away from a busy channel with a channel switch
//! announcement (`CHAN_SWITCH <cs_count> <freq>` through hostapd's control interface): the
//! clients that understand the announcement follow the AP, the others reconnect.
//!
//! The target is one of `checks.wifi_ap.chan_switch_channels` in the AP's band, never the
//! current channel and never a DFS channel (a switch there would start a channel availability
//! check and hand the channel to the radar logic). Channels the radio's survey shows quieter
//! than the current one come first (quietest first), then channels it has no data for, in the
//! configured order; a channel the survey shows no quieter is not a target. No target: not
//! applicable.
//!
//! Verified here through `STATUS` (the AP's `freq` becomes the target within
//! [`SWITCH_WAIT`]); the healer then re-runs `wifi_ap`, and when the new channel is no better
//! the switch is rolled back ([`rollback`]: the same announcement back to the old frequency).
//!
//! Disruptive: every client is moved or briefly disconnected, so it waits for a quiet radio
//! and a maintenance window like `disassociate_client` (a busy channel is a degraded service,
//! never a down one).

use super::{ActionError, Applied, Limit, Undo};
use crate::hostapd::{self, CtrlClient};
use crate::nl80211::{self, ChannelSurvey};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Disruptive: the clients change channel or reconnect.
pub const DISRUPTIVE: bool = true;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 2,
    window_secs: 3600,
};

/// How long the switch may take to show in `STATUS` (the announcement counts down beacons).
pub const SWITCH_WAIT: Duration = Duration::from_secs(10);

/// What this action reads from `[checks.wifi_ap]`.
struct Settings {
    ctrl_path: PathBuf,
    client_socket_dir: PathBuf,
    interface: String,
    request_timeout: Duration,
    channels: Vec<u32>,
    cs_count: u32,
}

/// The settings this action reads (one place, for the config refactoring to adapt).
fn settings(s: &super::Settings) -> Settings {
    let c = &s.wifi;
    Settings {
        ctrl_path: c.ctrl_dir.join(&c.interface),
        client_socket_dir: c.client_socket_dir.clone(),
        interface: c.interface.clone(),
        request_timeout: Duration::from_millis(c.request_timeout_ms),
        channels: c.chan_switch_channels.clone(),
        cs_count: c.chan_switch_cs_count,
    }
}

/// The AP's state and frequency from `STATUS`.
async fn current(cfg: &Settings, client: &CtrlClient) -> Result<(String, u32), ActionError> {
    let timeout = cfg.request_timeout;
    let status = client
        .request("STATUS", timeout)
        .await
        .map_err(|e| ActionError::Failed(format!("STATUS: {e}")))?;
    let s = hostapd::parse_status(&status);
    let freq = s
        .freq_mhz
        .ok_or_else(|| ActionError::Failed("STATUS names no frequency".into()))?;
    Ok((s.state, freq))
}

/// The targets in order of preference (see the module doc).
pub fn targets(
    allowed_channels: &[u32],
    current_freq_mhz: u32,
    survey: &[ChannelSurvey],
) -> Vec<u32> {
    let share = |f: u32| {
        survey
            .iter()
            .find(|c| c.freq_mhz == f)
            .and_then(|c| nl80211::busy_share_pct(None, c))
    };
    let here = share(current_freq_mhz);
    let mut known: Vec<(u32, u32)> = Vec::new();
    let mut unknown: Vec<u32> = Vec::new();
    for &ch in allowed_channels {
        let Some(f) = nl80211::freq_of(ch, current_freq_mhz) else {
            continue;
        };
        if f == current_freq_mhz
            || nl80211::is_dfs_channel(f)
            || known.iter().any(|k| k.1 == f)
            || unknown.contains(&f)
        {
            continue;
        }
        match (share(f), here) {
            (Some(s), Some(h)) if s < h => known.push((s, f)),
            (Some(_), Some(_)) => {}
            (Some(s), None) => known.push((s, f)),
            (None, _) => unknown.push(f),
        }
    }
    known.sort_by_key(|k| k.0);
    known.into_iter().map(|k| k.1).chain(unknown).collect()
}

/// Announces the switch to `freq` and waits until `STATUS` shows it.
async fn switch(cfg: &Settings, client: &CtrlClient, freq: u32) -> Result<(), ActionError> {
    client
        .request(
            &format!("CHAN_SWITCH {} {freq}", cfg.cs_count),
            cfg.request_timeout,
        )
        .await
        .map_err(|e| ActionError::Failed(format!("CHAN_SWITCH to {freq} MHz: {e}")))?;
    let until = Instant::now() + SWITCH_WAIT;
    loop {
        match current(cfg, client).await {
            Ok((state, f)) if state == "ENABLED" && f == freq => return Ok(()),
            Ok(_) | Err(_) if Instant::now() < until => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Ok((state, f)) => {
                return Err(ActionError::Failed(format!(
                    "announced {freq} MHz, but the AP is {state} on {f} MHz after {SWITCH_WAIT:?}"
                )));
            }
            Err(e) => return Err(e),
        }
    }
}

fn connect(cfg: &Settings) -> Result<CtrlClient, ActionError> {
    CtrlClient::connect(&cfg.ctrl_path, &cfg.client_socket_dir)
        .map_err(|e| ActionError::Failed(e.to_string()))
}

pub async fn run(s: &super::Settings) -> Result<Applied, ActionError> {
    let cfg = &settings(s);
    let client = connect(cfg)?;
    let (state, from) = current(cfg, &client).await?;
    if state != "ENABLED" {
        return Err(ActionError::NotApplicable(format!(
            "the AP is {state}, not ENABLED"
        )));
    }
    let survey = nl80211::survey(&cfg.interface, cfg.request_timeout)
        .await
        .unwrap_or_else(|e| {
            log::info!("chan_switch: no survey ({e}); choosing by the configured order");
            Vec::new()
        });
    let to = *targets(&cfg.channels, from, &survey)
        .first()
        .ok_or_else(|| {
            ActionError::NotApplicable(format!(
                "no quieter channel among checks.wifi_ap.chan_switch_channels {:?}",
                cfg.channels
            ))
        })?;
    switch(cfg, &client, to).await?;
    let ch = |f: u32| nl80211::channel_of(f).map_or(format!("{f} MHz"), |c| c.to_string());
    Ok(Applied {
        detail: format!(
            "switched channel {} → {} ({from} → {to} MHz)",
            ch(from),
            ch(to)
        ),
        undo: Some(Undo::Channel { freq_mhz: from }),
    })
}

/// Switches back to `freq_mhz` (the channel before the action).
pub async fn rollback(s: &super::Settings, freq_mhz: u32) -> Result<String, ActionError> {
    let cfg = &settings(s);
    let client = connect(cfg)?;
    switch(cfg, &client, freq_mhz).await?;
    Ok(format!("switched back to {freq_mhz} MHz"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(freq: u32, busy_pct: u64) -> ChannelSurvey {
        ChannelSurvey {
            freq_mhz: freq,
            active_ms: Some(1000),
            busy_ms: Some(busy_pct * 10),
            noise_dbm: None,
        }
    }

    #[test]
    fn quieter_channels_first_then_unknown_ones() {
        let survey = [s(2437, 80), s(2412, 30), s(2462, 90), s(2422, 10)];
        // 6 is busy at 80 %: 3 (10 %) before 1 (30 %), 11 (90 %) is no target, 9 unknown.
        assert_eq!(
            targets(&[1, 6, 11, 9, 3], 2437, &survey),
            [2422, 2412, 2452]
        );
        // Without a survey: the configured order, minus the current channel.
        assert_eq!(targets(&[1, 6, 11], 2437, &[]), [2412, 2462]);
        // Equal shares (what mac80211_hwsim reports everywhere): no target among them.
        assert_eq!(
            targets(&[1, 6], 2437, &[s(2437, 12), s(2412, 12)]),
            Vec::<u32>::new()
        );
    }

    #[test]
    fn never_to_a_dfs_channel_or_another_band() {
        assert_eq!(targets(&[36, 52, 100, 149, 6], 5180, &[]), [5745]);
        assert_eq!(targets(&[36, 6], 2412, &[]), [2437]);
        assert_eq!(targets(&[6, 6, 6], 2412, &[]), [2437]);
    }
}
