//! `reapply_lan_prefix`: puts the LAN's /64 of the delegated prefix back on the LAN interface,
//! from the DHCPv6 lease itself (not from the incident's evidence): the address
//! `<prefix>:<subnet>::1/64` with the lifetimes the lease has left, through netlink.

use super::Settings;
use super::{ActionError, Limit};
use crate::context::Context;
use crate::lease6::{Lease6, lan_address};
use std::time::SystemTime;

/// Not disruptive: adding the missing LAN address interrupts nothing.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

pub async fn run(ctx: &Context, s: &Settings) -> Result<String, ActionError> {
    let cfg = &s.lan_prefix;
    let lan = &cfg.lan_interface;
    if lan.is_empty() {
        return Err(ActionError::NotApplicable(
            "checks.wan6.lan_interface is not set".into(),
        ));
    }
    let path = cfg.lease6_file.as_ref().ok_or_else(|| {
        ActionError::NotApplicable("checks.wan6.lease6_file is not set: no prefix known".into())
    })?;
    let now = SystemTime::now();
    let lease = Lease6::read(path)
        .map_err(|e| ActionError::Failed(e.to_string()))?
        .ok_or_else(|| ActionError::NotApplicable(format!("{} does not exist", path.display())))?;
    let (prefix, valid_left) = lease
        .valid_prefixes(now)
        .into_iter()
        .next()
        .ok_or_else(|| ActionError::NotApplicable("the lease holds no valid prefix".into()))?;
    let addr = lan_address(&prefix, cfg.lan_subnet_id).ok_or_else(|| {
        ActionError::NotApplicable(format!("{prefix} has no /64 number {}", cfg.lan_subnet_id))
    })?;
    let preferred_left = lease.left_secs(prefix.preferred_secs, now);
    let valid = u32::try_from(valid_left).unwrap_or(u32::MAX - 1);
    let preferred = u32::try_from(preferred_left).unwrap_or(u32::MAX - 1);
    let index = ctx
        .netlink
        .link_index(lan)
        .await
        .map_err(|e| ActionError::Failed(e.to_string()))?
        .ok_or_else(|| ActionError::NotApplicable(format!("LAN interface {lan} is missing")))?;
    ctx.netlink
        .add_address_v6(index, addr, 64, valid, preferred)
        .await
        .map_err(|e| ActionError::Failed(format!("adding {addr}/64 to {lan}: {e}")))?;
    Ok(format!(
        "added {addr}/64 of delegated {prefix} to {lan} (valid {valid} s, preferred {preferred} s)"
    ))
}
