//! `flush_conntrack`: empties the connection-tracking table of the agent's network namespace
//! through ctnetlink (`IPCTNL_MSG_CT_DELETE` without a tuple = flush, per address family) — what
//! `conntrack -F` does, without the tool. Established flows re-enter the table with their next
//! packet (TCP loose tracking); the flood of stale entries that filled it is gone.
//!
//! Raising the limit instead is not attempted: `nf_conntrack_max` is global and read-only
//! outside the initial network namespace on current kernels, and a router's RAM bounds it.

use super::ActionError;
use super::Limit;
use super::Settings;
use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, sendto,
    setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use std::os::fd::AsRawFd;

/// Disruptive: established flows lose their NAT state.
pub const DISRUPTIVE: bool = true;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

const NFNL_SUBSYS_CTNETLINK: u16 = 1;
const IPCTNL_MSG_CT_DELETE: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;

/// The flush request for one address family (`AF_INET` 2, `AF_INET6` 10).
pub fn flush_message(family: u8, seq: u32) -> [u8; 20] {
    let mut m = [0u8; 20];
    m[0..4].copy_from_slice(&20u32.to_ne_bytes());
    m[4..6].copy_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid 0 (the kernel), then nfgenmsg: family, version 0, res_id 0.
    m[16] = family;
    m
}

fn flush_family(family: u8, seq: u32) -> Result<(), String> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkNetFilter,
    )
    .map_err(|e| format!("netfilter netlink socket: {e}"))?;
    setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(2, 0))
        .map_err(|e| format!("SO_RCVTIMEO: {e}"))?;
    bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(|e| format!("bind: {e}"))?;
    sendto(
        fd.as_raw_fd(),
        &flush_message(family, seq),
        &NetlinkAddr::new(0, 0),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 512];
    let n = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty()).map_err(|e| format!("recv: {e}"))?;
    if n < 20 || u16::from_ne_bytes([buf[4], buf[5]]) != NLMSG_ERROR {
        return Err(format!("unexpected netlink answer ({n} bytes)"));
    }
    let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    match code {
        0 => Ok(()),
        // ENOENT: nothing tracked for this family.
        -2 => Ok(()),
        e => Err(format!(
            "kernel refused the flush: {}",
            nix::errno::Errno::from_raw(-e)
        )),
    }
}

fn count(s: &Settings) -> Option<u64> {
    let dir = &s.conntrack_proc_dir;
    crate::fsutil::read_proc_u64(&dir.join("nf_conntrack_count"))
        .ok()
        .flatten()
}

pub fn run(s: &Settings) -> Result<String, ActionError> {
    let before = count(s);
    flush_family(2, 1).map_err(|e| ActionError::Failed(format!("IPv4 flush: {e}")))?;
    if let Err(e) = flush_family(10, 2) {
        log::debug!("flush_conntrack: IPv6: {e}");
    }
    let after = count(s);
    let show = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    Ok(format!(
        "connection-tracking table flushed: {} entries before, {} after",
        show(before),
        show(after)
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_layout() {
        let m = super::flush_message(2, 7);
        assert_eq!(u32::from_ne_bytes([m[0], m[1], m[2], m[3]]), 20);
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0102);
        assert_eq!(m[16], 2);
    }
}
