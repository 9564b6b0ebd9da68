//! Netlink events: subscribes to link, address and route changes (rtnetlink multicast), keeps
//! the shared link table current and wakes the scheduler so the dependent checks run at once
//! instead of at their next interval. A WAN that comes back (carrier up, an address or a default
//! route added, IPv4 or IPv6) also bumps the "WAN back" signal, so the reporter and the heartbeat
//! retry at once instead of sleeping out their backoff. IPv6 messages only feed that signal: the
//! IPv6 checks poll, and an IPv6 address refreshed by every Router Advertisement would otherwise
//! wake the IPv4 checks each time.

use crate::context::{LinkChange, LinkInfo, Shared};
use crate::net::{NetError, Netlink};
use futures::StreamExt;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::RouteMessage;
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
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
    /// Not from netlink: a watched file or process changed (see `watch.rs`); run this check.
    Wake(netmedic_proto::CheckId),
}

/// The "WAN back" signal: a counter bumped on every event that may have restored the WAN path.
/// The reporter and the heartbeat hold receivers (`subscribe`) and retry when it changes.
pub type WanBack = tokio::sync::watch::Sender<u64>;

/// Whether a message may mean the WAN path is back: the WAN's carrier came up, an address was
/// added on the WAN (for IPv6 a global one: the link-local address comes with the carrier), or a
/// default route (IPv4 or IPv6) was added to the main table.
fn wan_back(shared: &Shared, wan: &str, msg: &RouteNetlinkMessage, change: LinkChange) -> bool {
    let wan_index = || {
        shared
            .links
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_name(wan)
            .map(|l| l.index)
    };
    match msg {
        RouteNetlinkMessage::NewLink(l) => {
            change == LinkChange::Carrier { up: true } && wan_index() == Some(l.header.index)
        }
        RouteNetlinkMessage::NewAddress(a) => {
            wan_index() == Some(a.header.index)
                && (a.header.family != AddressFamily::Inet6
                    || a.header.scope == AddressScope::Universe)
        }
        RouteNetlinkMessage::NewRoute(r) => {
            r.header.destination_prefix_length == 0
                && r.header.table == netlink_packet_route::route::RouteHeader::RT_TABLE_MAIN
        }
        _ => false,
    }
}

/// Whether an address or route message is about IPv6 (it only feeds the "WAN back" signal).
fn is_ipv6(msg: &RouteNetlinkMessage) -> bool {
    let addr = |a: &AddressMessage| a.header.family == AddressFamily::Inet6;
    let route = |r: &RouteMessage| r.header.address_family == AddressFamily::Inet6;
    match msg {
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => addr(a),
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => route(r),
        _ => false,
    }
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

/// Subscribes to netlink events; `tx` receives a [`NetChange`] per relevant message, and
/// `back` is bumped when the WAN (`wan`, the interface name) may be back. The subscription is
/// opened before the initial dump so no change falls in between.
pub async fn watch(
    netlink: &Netlink,
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<NetChange>,
    wan: String,
    back: Arc<WanBack>,
) -> Result<(), NetError> {
    let (connection, _handle, mut messages) = rtnetlink::new_multicast_connection(&[
        MulticastGroup::Link,
        MulticastGroup::Ipv4Ifaddr,
        MulticastGroup::Ipv4Route,
        MulticastGroup::Ipv6Ifaddr,
        MulticastGroup::Ipv6Route,
    ])
    .map_err(NetError::Socket)?;
    tokio::spawn(connection);
    load_links(netlink, &shared).await?;
    tokio::spawn(async move {
        while let Some((msg, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(inner) = msg.payload else {
                continue;
            };
            let mut link_change = LinkChange::Other;
            let change = match &inner {
                m if is_ipv6(m) => None,
                RouteNetlinkMessage::NewLink(l) => {
                    let c = apply(&shared, l, Instant::now());
                    link_change = c;
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
            if wan_back(&shared, &wan, &inner, link_change) {
                log::debug!("netlink: the WAN may be back; waking reporter and heartbeat");
                back.send_modify(|n| *n = n.wrapping_add(1));
            }
            if let Some(c) = change
                && tx.send(c).is_err()
            {
                return;
            }
        }
        log::warn!("netlink event stream ended; checks fall back to their intervals");
    });
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::context::LinkInfo;
    use netlink_packet_route::route::RouteHeader;

    fn shared_with_wan() -> Shared {
        let shared = Shared::default();
        shared.links.lock().unwrap().update(
            LinkInfo {
                index: 7,
                name: "wan".into(),
                admin_up: true,
                carrier: true,
                operstate: "up".into(),
                mtu: 1500,
            },
            Instant::now(),
        );
        shared
    }

    #[test]
    fn the_wan_is_back_on_carrier_address_or_default_route() {
        let shared = shared_with_wan();
        let mut link = LinkMessage::default();
        link.header.index = 7;
        let up = LinkChange::Carrier { up: true };
        let msg = RouteNetlinkMessage::NewLink(link.clone());
        assert!(wan_back(&shared, "wan", &msg, up));
        assert!(!wan_back(
            &shared,
            "wan",
            &msg,
            LinkChange::Carrier { up: false }
        ));
        assert!(!wan_back(&shared, "lan", &msg, up));
        let mut addr = AddressMessage::default();
        addr.header.index = 7;
        let msg = RouteNetlinkMessage::NewAddress(addr.clone());
        assert!(wan_back(&shared, "wan", &msg, LinkChange::Other));
        addr.header.index = 8;
        let msg = RouteNetlinkMessage::NewAddress(addr);
        assert!(!wan_back(&shared, "wan", &msg, LinkChange::Other));
        let mut route = RouteMessage::default();
        route.header.table = RouteHeader::RT_TABLE_MAIN;
        let msg = RouteNetlinkMessage::NewRoute(route.clone());
        assert!(wan_back(&shared, "wan", &msg, LinkChange::Other));
        route.header.destination_prefix_length = 24;
        let msg = RouteNetlinkMessage::NewRoute(route.clone());
        assert!(!wan_back(&shared, "wan", &msg, LinkChange::Other));
        let msg = RouteNetlinkMessage::DelRoute(RouteMessage::default());
        assert!(!wan_back(&shared, "wan", &msg, LinkChange::Other));
    }

    #[test]
    fn ipv6_default_routes_and_global_wan_addresses_mean_the_wan_is_back_and_wake_no_check() {
        let shared = shared_with_wan();
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet6;
        route.header.table = RouteHeader::RT_TABLE_MAIN;
        let msg = RouteNetlinkMessage::NewRoute(route.clone());
        assert!(wan_back(&shared, "wan", &msg, LinkChange::Other));
        assert!(is_ipv6(&msg));
        route.header.destination_prefix_length = 64;
        let msg = RouteNetlinkMessage::NewRoute(route);
        assert!(!wan_back(&shared, "wan", &msg, LinkChange::Other));
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet6;
        addr.header.index = 7;
        addr.header.scope = AddressScope::Universe;
        let msg = RouteNetlinkMessage::NewAddress(addr.clone());
        assert!(wan_back(&shared, "wan", &msg, LinkChange::Other));
        assert!(is_ipv6(&msg));
        addr.header.scope = AddressScope::Link;
        let msg = RouteNetlinkMessage::NewAddress(addr);
        assert!(!wan_back(&shared, "wan", &msg, LinkChange::Other));
        let mut v4 = AddressMessage::default();
        v4.header.family = AddressFamily::Inet;
        assert!(!is_ipv6(&RouteNetlinkMessage::NewAddress(v4)));
    }
}
