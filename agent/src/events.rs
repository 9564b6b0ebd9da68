//! Netlink events: subscribes to link, IPv4 address and IPv4 route changes (rtnetlink
//! multicast), keeps the shared link table current and wakes the scheduler so the dependent
//! checks run at once instead of at their next interval.

use crate::context::{LinkChange, LinkInfo, Shared};
use crate::net::{NetError, Netlink};
use futures::StreamExt;
use futures::TryStreamExt;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::MulticastGroup;
use rtnetlink::packet_core::NetlinkPayload;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::mpsc;

/// What changed, as far as the scheduler cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetChange {
    /// A link appeared, vanished or changed; `carrier` is set when the carrier flipped.
    Link {
        index: u32,
        carrier: Option<bool>,
    },
    Address,
    Route,
}

/// Applies one link message to the table.
fn apply(shared: &Shared, msg: &LinkMessage, now: Instant) -> LinkChange {
    let mut name = String::new();
    let mut carrier = None;
    let mut operstate = String::from("unknown");
    let mut mtu = 0;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Carrier(c) => carrier = Some(*c != 0),
            LinkAttribute::OperState(s) => operstate = format!("{s:?}").to_lowercase(),
            LinkAttribute::Mtu(m) => mtu = *m,
            _ => {}
        }
    }
    let flags = msg.header.flags;
    let admin_up = flags.contains(LinkFlags::Up);
    // IFF_LOWER_UP is the carrier as the kernel reports it in flags; prefer the attribute.
    let carrier = carrier.unwrap_or(flags.contains(LinkFlags::LowerUp));
    let mut table = shared
        .links
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    table.update(
        LinkInfo {
            index: msg.header.index,
            name,
            admin_up,
            carrier,
            operstate,
            mtu,
        },
        now,
    )
}

/// Loads every interface into the shared table (a full dump).
pub async fn load_links(netlink: &Netlink, shared: &Shared) -> Result<(), NetError> {
    let mut links = netlink.handle().link().get().execute();
    let now = Instant::now();
    while let Some(msg) = links.try_next().await? {
        apply(shared, &msg, now);
    }
    shared
        .links
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .loaded = true;
    Ok(())
}

/// Subscribes to netlink events; the returned receiver yields a [`NetChange`] per relevant
/// message. The subscription is opened before the initial dump so no change falls in between.
pub async fn watch(
    netlink: &Netlink,
    shared: Arc<Shared>,
) -> Result<mpsc::UnboundedReceiver<NetChange>, NetError> {
    let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
    ])
    .map_err(NetError::Socket)?;
    tokio::spawn(connection);
    load_links(netlink, &shared).await?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                continue;
            };
            let change = match inner {
                RouteNetlinkMessage::NewLink(l) => {
                    let c = apply(&shared, &l, Instant::now());
                    Some(NetChange::Link {
                        index: l.header.index,
                        carrier: match c {
                            LinkChange::Carrier { up } => Some(up),
                            _ => None,
                        },
                    })
                }
                RouteNetlinkMessage::DelLink(l) => {
                    shared
                        .links
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .remove(l.header.index);
                    Some(NetChange::Link {
                        index: l.header.index,
                        carrier: None,
                    })
                }
                RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
                    Some(NetChange::Address)
                }
                RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => {
                    Some(NetChange::Route)
                }
                _ => None,
            };
            if let Some(c) = change
                && tx.send(c).is_err()
            {
                return;
            }
        }
        log::warn!("netlink event stream ended; checks fall back to their intervals");
    });
    Ok(rx)
}
