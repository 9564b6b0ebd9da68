//! `bounce_iface`: takes the WAN interface down and up again through netlink (resets the PHY or
//! the PPP/DHCP state bound to it), then waits for the link to come back and reinstates the
//! IPv4 default route it had (the kernel drops routes via a downed interface and nothing else
//! would put it back until the next DHCP renew).

use super::ActionError;
use super::Limit;
use super::Settings;
use crate::context::Context;
use crate::site::Problem;
use serde::Deserialize;
use std::time::Duration;

/// Disruptive: the WAN is down for `down_ms`.
pub const DISRUPTIVE: bool = true;

/// Runs allowed within the window unless `[healing.budgets]` says otherwise.
pub const DEFAULT_BUDGET: Limit = Limit {
    max: 4,
    window_secs: 3600,
};

/// `[healing.bounce_iface]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BounceIfaceConfig {
    /// How long the WAN stays down.
    pub down_ms: u64,
    /// How long to wait for the link to come back before giving up on the route.
    pub carrier_wait_secs: u64,
}

impl Default for BounceIfaceConfig {
    fn default() -> Self {
        Self {
            down_ms: 2000,
            carrier_wait_secs: 10,
        }
    }
}

impl BounceIfaceConfig {
    /// Problems of `[healing.bounce_iface]`.
    pub fn problems(&self, out: &mut Vec<Problem>) {
        if self.down_ms > 60_000 {
            out.push(Problem::new(
                "healing.bounce_iface.down_ms",
                "must be at most 60000",
            ));
        }
        if self.carrier_wait_secs > 120 {
            out.push(Problem::new(
                "healing.bounce_iface.carrier_wait_secs",
                "must be at most 120",
            ));
        }
    }
}

pub async fn run(ctx: &Context, s: &Settings) -> Result<String, ActionError> {
    let ifname = &ctx.site.wan.interface;
    let cfg = &s.bounce_iface;
    let index = super::set_mtu::index(ctx, ifname).await?;
    let gateway = ctx
        .netlink
        .default_routes_v4()
        .await
        .ok()
        .and_then(|r| {
            r.iter()
                .find(|r| r.oif == Some(index))
                .and_then(|r| r.gateway)
        })
        .or_else(|| {
            super::restore_route::choose_gateway(ctx)
                .ok()
                .map(|(g, _)| g)
        });
    let link = ctx.netlink.handle().link();
    link.set(rtnetlink::LinkUnspec::new_with_index(index).down().build())
        .execute()
        .await
        .map_err(|e| ActionError::Failed(format!("setting {ifname} down: {e}")))?;
    tokio::time::sleep(Duration::from_millis(cfg.down_ms)).await;
    link.set(rtnetlink::LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|e| ActionError::Failed(format!("setting {ifname} up: {e}")))?;
    // The route can only be added once the link is operational again.
    let mut route = String::from("no gateway known to reinstate");
    if let Some(gw) = gateway {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(cfg.carrier_wait_secs);
        loop {
            match ctx.netlink.add_default_route_v4(gw, index).await {
                Ok(()) => {
                    route = format!("default via {gw} reinstated");
                    break;
                }
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    route = format!("default via {gw} not reinstated: {e}");
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(format!(
        "{ifname} set down for {} ms and up again; {route}",
        cfg.down_ms
    ))
}
