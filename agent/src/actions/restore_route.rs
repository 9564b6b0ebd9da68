//! `restore_route`: reinstates the IPv4 default route via the WAN, with the gateway from the
//! DHCP lease (or the provisioned gateway of a static WAN), through netlink.

use super::ActionError;
use super::Limit;
use crate::context::Context;
use crate::lease::Lease;
use std::net::Ipv4Addr;

/// Not disruptive: adding a missing route interrupts nothing.
pub const DISRUPTIVE: bool = false;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 6,
    window_secs: 3600,
};

/// The gateway to restore: the lease's router, else the provisioned one.
pub fn choose_gateway(ctx: &Context) -> Result<(Ipv4Addr, &'static str), ActionError> {
    let wan = &ctx.site.wan;
    if let Some(path) = &wan.lease_file {
        match Lease::read(path) {
            Ok(Some(Lease {
                router: Some(gw), ..
            })) => return Ok((gw, "dhcp lease")),
            Ok(_) => {}
            Err(e) => log::warn!("restore_route: {e}; falling back to the provisioned gateway"),
        }
    }
    wan.gateway
        .map(|gw| (gw, "provisioned config"))
        .ok_or_else(|| {
            ActionError::NotApplicable(
                "no gateway known: no DHCP lease names a router and wan.gateway is not set".into(),
            )
        })
}

/// The WAN interface's name and index, which a restored default route leaves through.
pub(super) async fn wan_oif(ctx: &Context) -> Result<(&str, u32), ActionError> {
    let ifname = ctx.site.wan.interface.as_str();
    let oif = ctx
        .netlink
        .link_index(ifname)
        .await
        .map_err(|e| ActionError::Failed(e.to_string()))?
        .ok_or_else(|| ActionError::NotApplicable(format!("WAN interface {ifname} is missing")))?;
    Ok((ifname, oif))
}

pub async fn run(ctx: &Context) -> Result<String, ActionError> {
    let (gateway, source) = choose_gateway(ctx)?;
    let (ifname, oif) = wan_oif(ctx).await?;
    ctx.netlink
        .add_default_route_v4(gateway, oif)
        .await
        .map_err(|e| {
            ActionError::Failed(format!("adding default via {gateway} dev {ifname}: {e}"))
        })?;
    Ok(format!(
        "added default via {gateway} dev {ifname} (from {source})"
    ))
}
