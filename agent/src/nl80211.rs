//! The radio's channel survey over nl80211 (`NL80211_CMD_GET_SURVEY`, what `iw dev <if> survey
//! dump` prints), through the `wl-nl80211` crate: per channel, the time the radio spent on it
//! and the part of that time it sensed the channel busy (its own traffic, the neighbours',
//! interference). hostapd's control interface does not relay the survey; this is the one
//! nl80211 request the agent makes.
//!
//! The counters are cumulative; [`busy_share_pct`] turns two samples of the operating channel
//! into the busy share of the interval between them (the cumulative share when there is no
//! usable earlier sample).
//!
//! The survey needs the cargo feature `wifi` (on by default): a build without it (a router
//! without radios) leaves `wl-nl80211` and its own netlink stack out of the binary, and
//! [`survey`] then fails with [`SurveyError::NotBuilt`]: `wifi_ap` reports no busy share and
//! `chan_switch` chooses by its configured order, as they do when a driver has no survey.

use std::time::Duration;
#[cfg(feature = "wifi")]
use wl_nl80211::{Nl80211Attr, Nl80211Survey, Nl80211SurveyInfo};

/// One channel of a survey dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelSurvey {
    pub freq_mhz: u32,
    /// Time the radio spent on the channel (ms); `None` when the driver does not say.
    pub active_ms: Option<u64>,
    /// Time the channel was sensed busy (ms); `None` when the driver does not say.
    pub busy_ms: Option<u64>,
    pub noise_dbm: Option<i8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SurveyError {
    #[error("no interface {0:?}")]
    NoInterface(String),
    #[error("nl80211: {0}")]
    Netlink(String),
    #[error("nl80211 survey dump timed out after {0:?}")]
    Timeout(Duration),
    #[error("this agent is built without the `wifi` feature (no nl80211 survey)")]
    NotBuilt,
}

/// The survey of every channel the radio of `ifname` reports, within `timeout`.
#[cfg(feature = "wifi")]
pub async fn survey(ifname: &str, timeout: Duration) -> Result<Vec<ChannelSurvey>, SurveyError> {
    use futures::TryStreamExt;
    let index = nix::net::if_::if_nametoindex(ifname)
        .map_err(|_| SurveyError::NoInterface(ifname.to_string()))?;
    let (conn, handle, _) =
        wl_nl80211::new_connection().map_err(|e| SurveyError::Netlink(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let dump = async {
        let mut out = Vec::new();
        let mut replies = handle
            .survey()
            .dump(Nl80211Survey::new(index).build())
            .execute()
            .await;
        while let Some(msg) = replies
            .try_next()
            .await
            .map_err(|e| SurveyError::Netlink(e.to_string()))?
        {
            for attr in msg.payload.attributes {
                if let Nl80211Attr::SurveyInfo(info) = attr
                    && let Some(c) = channel_survey(&info)
                {
                    out.push(c);
                }
            }
        }
        Ok(out)
    };
    let result = tokio::time::timeout(timeout, dump)
        .await
        .unwrap_or(Err(SurveyError::Timeout(timeout)));
    conn.abort();
    result
}

/// Without the `wifi` feature: always [`SurveyError::NotBuilt`].
#[cfg(not(feature = "wifi"))]
pub async fn survey(_ifname: &str, _timeout: Duration) -> Result<Vec<ChannelSurvey>, SurveyError> {
    Err(SurveyError::NotBuilt)
}

/// One channel from the attributes of `NL80211_ATTR_SURVEY_INFO`; `None` without a frequency.
#[cfg(feature = "wifi")]
pub fn channel_survey(info: &[Nl80211SurveyInfo]) -> Option<ChannelSurvey> {
    let mut c = ChannelSurvey::default();
    for i in info {
        match i {
            Nl80211SurveyInfo::Frequency(f) => c.freq_mhz = *f,
            Nl80211SurveyInfo::ActiveTime(t) => c.active_ms = Some(*t),
            Nl80211SurveyInfo::BusyTime(t) => c.busy_ms = Some(*t),
            Nl80211SurveyInfo::Noise(n) => c.noise_dbm = Some(*n),
            _ => {}
        }
    }
    (c.freq_mhz != 0).then_some(c)
}

/// The busy share (percent) of a channel: over the interval since `prev` when both samples
/// have the counters and time advanced, else the cumulative share of `now`; `None` when the
/// driver reports no busy time or no time on the channel.
pub fn busy_share_pct(prev: Option<&ChannelSurvey>, now: &ChannelSurvey) -> Option<u32> {
    let (active, busy) = (now.active_ms?, now.busy_ms?);
    let delta = prev
        .filter(|p| p.freq_mhz == now.freq_mhz)
        .and_then(|p| {
            Some((
                active.checked_sub(p.active_ms?)?,
                busy.checked_sub(p.busy_ms?)?,
            ))
        })
        .filter(|(a, _)| *a > 0);
    let (active, busy) = delta.unwrap_or((active, busy));
    if active == 0 {
        return None;
    }
    Some(u32::try_from((busy.min(active) * 100) / active).unwrap_or(100))
}

/// The 20 MHz channel number of a frequency (2.4, 5 and 6 GHz bands).
pub fn channel_of(freq_mhz: u32) -> Option<u32> {
    match freq_mhz {
        2484 => Some(14),
        2412..=2472 => Some((freq_mhz - 2407) / 5),
        5955..=7115 => Some((freq_mhz - 5950) / 5),
        5000..=5925 => Some((freq_mhz - 5000) / 5),
        _ => None,
    }
}

/// The frequency of `channel` in the band of `band_freq_mhz` (the AP's current frequency).
pub fn freq_of(channel: u32, band_freq_mhz: u32) -> Option<u32> {
    let f = match band_freq_mhz {
        2400..=2500 if channel == 14 => 2484,
        2400..=2500 if (1..=13).contains(&channel) => 2407 + 5 * channel,
        5000..=5925 if (32..=177).contains(&channel) => 5000 + 5 * channel,
        5955..=7115 if (1..=233).contains(&channel) => 5950 + 5 * channel,
        _ => return None,
    };
    Some(f)
}

/// Whether a 5 GHz channel is a DFS channel in the common regulatory domains (52-144): a
/// switch there starts a channel availability check, and radars decide, not the agent.
pub fn is_dfs_channel(freq_mhz: u32) -> bool {
    (5250..=5730).contains(&freq_mhz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(freq: u32, active: u64, busy: u64) -> ChannelSurvey {
        ChannelSurvey {
            freq_mhz: freq,
            active_ms: Some(active),
            busy_ms: Some(busy),
            noise_dbm: Some(-92),
        }
    }

    #[cfg(feature = "wifi")]
    #[test]
    fn attributes_to_a_channel() {
        let c = channel_survey(&[
            Nl80211SurveyInfo::Frequency(2437),
            Nl80211SurveyInfo::Noise(-92),
            Nl80211SurveyInfo::ActiveTime(8000),
            Nl80211SurveyInfo::BusyTime(1000),
        ]);
        assert_eq!(c, Some(s(2437, 8000, 1000)));
        assert_eq!(channel_survey(&[Nl80211SurveyInfo::BusyTime(1)]), None);
    }

    #[test]
    fn busy_share_over_the_interval() {
        // Cumulative without an earlier sample.
        assert_eq!(busy_share_pct(None, &s(2437, 8000, 1000)), Some(12));
        // Over the interval: 9000 of 10000 ms busy.
        assert_eq!(
            busy_share_pct(Some(&s(2437, 8000, 1000)), &s(2437, 18_000, 10_000)),
            Some(90)
        );
        // Another channel, a reset counter or no time: the cumulative share.
        assert_eq!(
            busy_share_pct(Some(&s(2462, 8000, 1000)), &s(2437, 100, 50)),
            Some(50)
        );
        assert_eq!(
            busy_share_pct(Some(&s(2437, 8000, 1000)), &s(2437, 100, 50)),
            Some(50)
        );
        assert_eq!(busy_share_pct(None, &s(2437, 0, 0)), None);
        // Busy above active (a driver bug) is capped.
        assert_eq!(busy_share_pct(None, &s(2437, 10, 20)), Some(100));
        let no_busy = ChannelSurvey {
            busy_ms: None,
            ..s(2437, 10, 0)
        };
        assert_eq!(busy_share_pct(None, &no_busy), None);
    }

    #[test]
    fn channels_and_frequencies() {
        assert_eq!(channel_of(2437), Some(6));
        assert_eq!(channel_of(2484), Some(14));
        assert_eq!(channel_of(5180), Some(36));
        assert_eq!(channel_of(5260), Some(52));
        assert_eq!(channel_of(5975), Some(5));
        assert_eq!(channel_of(900), None);
        assert_eq!(freq_of(11, 2437), Some(2462));
        assert_eq!(freq_of(36, 5260), Some(5180));
        assert_eq!(freq_of(36, 2437), None);
        assert_eq!(freq_of(0, 2437), None);
        assert!(is_dfs_channel(5260) && is_dfs_channel(5720));
        assert!(!is_dfs_channel(5180) && !is_dfs_channel(5745));
    }
}
