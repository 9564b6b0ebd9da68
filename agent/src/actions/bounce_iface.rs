//! `bounce_iface`: takes the WAN interface down and up again through netlink (resets the PHY or
//! the PPP/DHCP state bound to it), then waits for the link to come back and reinstates the
//! IPv4 default route it had (the kernel drops routes via a downed interface and nothing else
//! would put it back until the next DHCP renew).

use super::ActionError;
use crate::checks::Context;
use std::time::Duration;

pub async fn run(ctx: &Context) -> Result<String, ActionError> {
    let ifname = &ctx.config.wan.interface;
    let cfg = &ctx.config.healing.bounce_iface;
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
