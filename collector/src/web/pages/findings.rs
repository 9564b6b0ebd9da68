//! An incident's evidence in a NOC operator's words, for the checks whose raw key-value evidence
//! is hard to read at a glance: the Wi-Fi access point and events (signal, stations, SSID and
//! security drift, an open network shown as a security risk) and the home LAN (a rogue DHCP
//! server's MAC, the devices that claim one address). Other checks have no findings; their
//! evidence table says enough. Every value is made [`visible`] here; the template escapes it.

use crate::web::visible;
use netmedic_proto::CheckId;
use std::collections::BTreeMap;

/// One line of the findings: what, its value, and a badge class (`bad`, `warn` or empty).
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Finding {
    /// A stable id suffix for the page (`finding-<key>`).
    pub(super) key: &'static str,
    pub(super) label: &'static str,
    pub(super) value: String,
    pub(super) class: &'static str,
}

/// The findings of one incident, plus a security warning when the evidence shows one.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Findings {
    pub(super) rows: Vec<Finding>,
    /// Set when the incident exposes the subscriber's network (an open access point).
    pub(super) security_risk: Option<String>,
}

/// Signal at or above this is good for a Wi-Fi client (dBm).
const GOOD_SIGNAL_DBM: i32 = -67;
/// Signal below this is weak: slow and lossy (dBm).
const WEAK_SIGNAL_DBM: i32 = -75;

struct Builder<'e> {
    evidence: &'e BTreeMap<String, String>,
    out: Findings,
}

impl<'e> Builder<'e> {
    fn get(&self, key: &str) -> Option<&'e str> {
        self.evidence
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty() && *v != "?")
    }

    fn push(&mut self, key: &'static str, label: &'static str, value: String, class: &'static str) {
        self.out.rows.push(Finding {
            key,
            label,
            value: visible(&value),
            class,
        });
    }

    /// `now (provisioned P)`, `bad` when they differ.
    fn drift(&mut self, key: &'static str, label: &'static str, now: &str, provisioned: &str) {
        match self.get(provisioned) {
            Some(p) => {
                let v = self.get(now).unwrap_or("?");
                let class = if v == p { "" } else { "bad" };
                self.push(key, label, format!("{v} (provisioned {p})"), class);
            }
            None => {
                if let Some(v) = self.get(now) {
                    self.push(key, label, v.to_owned(), "");
                }
            }
        }
    }

    /// `label: value` when the key is there.
    fn plain(&mut self, key: &'static str, label: &'static str, ev: &str, class: &'static str) {
        if let Some(v) = self.get(ev) {
            self.push(key, label, v.to_owned(), class);
        }
    }
}

/// A signal level with its quality in words.
pub(super) fn signal_text(dbm: &str) -> (String, &'static str) {
    match dbm.trim().parse::<i32>() {
        Ok(d) if d >= GOOD_SIGNAL_DBM => (format!("{d} dBm (good)"), ""),
        Ok(d) if d >= WEAK_SIGNAL_DBM => (format!("{d} dBm (fair)"), "warn"),
        Ok(d) => (format!("{d} dBm (weak)"), "bad"),
        Err(_) => (dbm.to_owned(), ""),
    }
}

/// The findings of an incident of `check` with `evidence`.
pub(super) fn findings(check: CheckId, evidence: &BTreeMap<String, String>) -> Findings {
    let mut b = Builder {
        evidence,
        out: Findings::default(),
    };
    match check {
        CheckId::WifiAp => wifi_ap(&mut b),
        CheckId::WifiEvents => wifi_events(&mut b),
        CheckId::LanDhcp => lan_dhcp(&mut b),
        CheckId::LanArp => lan_arp(&mut b),
        _ => {}
    }
    b.out
}

fn wifi_ap(b: &mut Builder<'_>) {
    if b.get("security_risk") == Some("open_network") {
        b.out.security_risk = Some(visible(&format!(
            "Security risk: the Wi-Fi is open (provisioned {}): anyone nearby can join",
            b.get("provisioned_security").unwrap_or("?")
        )));
    }
    b.drift("security", "Security", "security", "provisioned_security");
    b.drift("ssid", "SSID", "ssid", "provisioned_ssid");
    let channel = match (b.get("channel"), b.get("freq_mhz")) {
        (Some(c), Some(f)) => Some(format!("{c} ({f} MHz)")),
        (Some(c), None) => Some(c.to_owned()),
        _ => None,
    };
    match (channel, b.get("provisioned_channel")) {
        (Some(c), Some(p)) => b.push(
            "channel",
            "Channel",
            format!("{c}, provisioned {p}"),
            "warn",
        ),
        (Some(c), None) => b.push("channel", "Channel", c, ""),
        _ => {}
    }
    b.plain("state", "AP state", "state", "");
    if let Some(s) = b.get("weakest_signal_dbm") {
        let (text, class) = signal_text(s);
        b.push("signal", "Weakest client signal", text, class);
    }
    b.plain(
        "sticky",
        "Stations on a weak signal",
        "sticky_clients",
        "warn",
    );
    if let (Some(c), Some(s)) = (b.get("clients"), b.get("stations")) {
        b.push(
            "clients",
            "Clients",
            format!("{c} authorized of {s} associated"),
            "",
        );
    }
    b.plain(
        "stations",
        "Stations (MAC, signal, rate)",
        "client_list",
        "",
    );
    b.plain("retries", "Failed retransmissions", "tx_retry_failed", "");
    b.plain("error", "hostapd", "error", "bad");
}

fn wifi_events(b: &mut Builder<'_>) {
    b.plain(
        "psk-clients",
        "Stations with a wrong password",
        "clients",
        "warn",
    );
    b.plain("psk-count", "Failed handshakes", "psk_mismatches", "");
    if let Some(r) = b.get("radar_freq") {
        let to = b.get("moved_to").unwrap_or("?");
        b.push(
            "radar",
            "Radar",
            format!("on {r}, AP moved to {to}"),
            "warn",
        );
    }
}

fn lan_dhcp(b: &mut Builder<'_>) {
    if let Some(mac) = b.get("offender_mac") {
        b.push("offender", "Rogue DHCP server MAC", mac.to_owned(), "bad");
    }
    b.plain("server-id", "Its server identifier", "server_id", "bad");
    let offered: Vec<String> = [
        ("offered_address", "address"),
        ("offered_router", "gateway"),
        ("offered_dns", "DNS"),
    ]
    .iter()
    .filter_map(|(k, w)| b.get(k).map(|v| format!("{w} {v}")))
    .collect();
    if !offered.is_empty() {
        b.push("offered", "It offers", offered.join(", "), "");
    }
    b.plain("others", "Other foreign servers", "other_servers", "warn");
}

fn lan_arp(b: &mut Builder<'_>) {
    let router_owned = b.get("conflict") != Some("client_address");
    let label = if router_owned {
        "Router address claimed by another device"
    } else {
        "Client address claimed by two devices"
    };
    b.plain("address", label, "ip", "bad");
    let macs = b.get("offender_macs").or_else(|| b.get("offender_mac"));
    if let Some(m) = macs {
        b.push("macs", "Devices (MAC)", m.replace(',', ", "), "bad");
    }
    b.plain("router-mac", "Router MAC", "router_mac", "");
}

/// One line for an incident list: the most telling finding, or empty.
pub(super) fn headline(check: CheckId, evidence: &BTreeMap<String, String>) -> String {
    let f = findings(check, evidence);
    if let Some(risk) = f.security_risk {
        return risk;
    }
    f.rows
        .iter()
        .find(|r| r.class == "bad")
        .or_else(|| f.rows.iter().find(|r| r.class == "warn"))
        .map(|r| format!("{}: {}", r.label, r.value))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn an_open_ap_is_a_security_risk_with_its_drift() {
        let e = ev(&[
            ("state", "ENABLED"),
            ("ssid", "netmedic-lab"),
            ("security", "open"),
            ("channel", "6"),
            ("freq_mhz", "2437"),
            ("clients", "1"),
            ("stations", "1"),
            ("weakest_signal_dbm", "-82"),
            ("provisioned_security", "wpa2-psk"),
            ("security_risk", "open_network"),
        ]);
        let f = findings(CheckId::WifiAp, &e);
        assert!(f.security_risk.as_deref().unwrap().contains("open"));
        let sec = f.rows.iter().find(|r| r.key == "security").unwrap();
        assert_eq!(sec.value, "open (provisioned wpa2-psk)");
        assert_eq!(sec.class, "bad");
        let sig = f.rows.iter().find(|r| r.key == "signal").unwrap();
        assert_eq!((sig.value.as_str(), sig.class), ("-82 dBm (weak)", "bad"));
        assert!(headline(CheckId::WifiAp, &e).starts_with("Security risk"));
    }

    #[test]
    fn lan_offenders_and_unknown_checks() {
        let e = ev(&[
            ("offender_mac", "02:52:4f:47:55:45"),
            ("server_id", "198.51.100.1"),
        ]);
        assert_eq!(
            headline(CheckId::LanDhcp, &e),
            "Rogue DHCP server MAC: 02:52:4f:47:55:45"
        );
        let e = ev(&[
            ("ip", "100.100.0.50"),
            ("conflict", "client_address"),
            ("offender_macs", "02:00:00:00:00:01,02:00:00:00:00:02"),
        ]);
        let f = findings(CheckId::LanArp, &e);
        assert_eq!(f.rows[0].label, "Client address claimed by two devices");
        assert_eq!(f.rows[1].value, "02:00:00:00:00:01, 02:00:00:00:00:02");
        assert_eq!(findings(CheckId::Dns, &e), Findings::default());
        // Hostile values stay text and visible.
        let e = ev(&[("ssid", "a\u{202e}b"), ("provisioned_ssid", "home")]);
        let f = findings(CheckId::WifiAp, &e);
        assert!(f.rows[0].value.contains("U+202E"), "{:?}", f.rows);
    }

    #[test]
    fn signal_quality_words() {
        assert_eq!(signal_text("-50").0, "-50 dBm (good)");
        assert_eq!(signal_text("-70").1, "warn");
        assert_eq!(signal_text("x").0, "x");
    }
}
