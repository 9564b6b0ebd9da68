//! systemd `sd_notify` without a library: a datagram of `KEY=VALUE` lines to `$NOTIFY_SOCKET`
//! (a path, or `@name` in the abstract namespace). Without `NOTIFY_SOCKET` (not under systemd,
//! or OpenWrt procd) every call is a no-op.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends `state` (e.g. `READY=1`) to systemd; false when not under systemd or it failed.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let path = path.to_string_lossy().into_owned();
    let sent = if let Some(name) = path.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt as _;
        std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    sent.is_ok()
}

/// `READY=1`: startup finished (or a reload did).
pub fn ready() {
    notify("READY=1\nSTATUS=running");
}

/// `RELOADING=1` with the `MONOTONIC_USEC` systemd ≥ 253 wants for `Type=notify-reload`.
pub fn reloading() {
    notify(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading configuration",
        monotonic_usec()
    ));
}

/// `STOPPING=1`.
pub fn stopping() {
    notify("STOPPING=1");
}

/// Half the watchdog period systemd asks for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is unset or
/// ours), i.e. how often to send `WATCHDOG=1`.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// Sends `WATCHDOG=1` every half period; runs on the agent's single runtime thread, so a
/// blocked scheduler stops the pings and systemd restarts the agent.
pub async fn watchdog(every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        notify("WATCHDOG=1");
    }
}

/// CLOCK_MONOTONIC in microseconds (tokio's clock is not comparable with systemd's).
fn monotonic_usec() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0)
}
