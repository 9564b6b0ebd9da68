//! `steer_client`: asks a sticky Wi-Fi client (an authorized station below
//! `checks.wifi_ap.sticky_signal_dbm`) to roam, with an 802.11v BSS transition management
//! request (`BSS_TM_REQ <mac>` through hostapd's control interface). The client decides; a
//! client without BSS transition support makes hostapd refuse the request and the ladder climbs
//! to `disassociate_client`.
//!
//! The MACs come from the incident's `sticky_clients` evidence; each must be a MAC address
//! (anything else is refused, never passed on), at most [`MAX_CLIENTS`].

use super::Settings;
use super::{ActionError, ActionInput, Limit};
use crate::hostapd::{CtrlClient, is_mac};
use std::time::Duration;

/// Not disruptive: a request the client may ignore; nobody is disconnected.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 4,
    window_secs: 3600,
};

/// Most clients one run addresses.
pub const MAX_CLIENTS: usize = 8;

/// The sticky clients named by the incident, validated.
pub fn sticky_clients(input: &ActionInput) -> Result<Vec<String>, ActionError> {
    let list = input
        .evidence
        .get("sticky_clients")
        .map(String::as_str)
        .unwrap_or("");
    let mut out = Vec::new();
    for m in list.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        let m = m.to_ascii_lowercase();
        if !is_mac(&m) {
            return Err(ActionError::NotApplicable(format!(
                "sticky_clients holds {m:?}, not a MAC address"
            )));
        }
        if !out.contains(&m) && out.len() < MAX_CLIENTS {
            out.push(m);
        }
    }
    if out.is_empty() {
        return Err(ActionError::NotApplicable(
            "the incident names no sticky client".into(),
        ));
    }
    Ok(out)
}

/// Sends `command <mac>` for each client through hostapd's control interface.
pub async fn per_client(
    s: &Settings,
    input: &ActionInput,
    command: &str,
    verb: &str,
) -> Result<String, ActionError> {
    let macs = sticky_clients(input)?;
    let cfg = &s.wifi;
    let timeout = Duration::from_millis(cfg.request_timeout_ms);
    let client = CtrlClient::connect(&cfg.ctrl_dir.join(&cfg.interface), &cfg.client_socket_dir)
        .map_err(|e| ActionError::Failed(e.to_string()))?;
    let mut done = Vec::new();
    let mut failed = Vec::new();
    for mac in &macs {
        match client.request(&format!("{command} {mac}"), timeout).await {
            Ok(_) => done.push(mac.as_str()),
            Err(e) => failed.push(format!("{mac}: {e}")),
        }
    }
    if done.is_empty() {
        return Err(ActionError::Failed(format!(
            "{command} refused: {}",
            failed.join("; ")
        )));
    }
    let mut detail = format!("{verb} {}", done.join(", "));
    if !failed.is_empty() {
        detail.push_str(&format!("; refused: {}", failed.join("; ")));
    }
    Ok(detail)
}

pub async fn run(s: &Settings, input: &ActionInput) -> Result<String, ActionError> {
    per_client(s, input, "BSS_TM_REQ", "BSS transition requested from").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(list: &str) -> ActionInput {
        ActionInput {
            evidence: [("sticky_clients".to_string(), list.to_string())].into(),
            ..ActionInput::default()
        }
    }

    #[test]
    fn only_mac_addresses_are_used() {
        assert_eq!(
            sticky_clients(&input(
                "02:00:00:00:01:00, 02:00:00:00:01:00,02:00:00:00:02:0A"
            ))
            .unwrap(),
            ["02:00:00:00:01:00", "02:00:00:00:02:0a"]
        );
        assert!(sticky_clients(&input("02:00:00:00:01:00 reason=3")).is_err());
        assert!(sticky_clients(&input("")).is_err());
        assert!(sticky_clients(&ActionInput::default()).is_err());
    }
}
