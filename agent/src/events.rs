//! Netlink events: subscribes to link, address and route changes (rtnetlink multicast), keeps
//! the shared link table current and wakes the scheduler so the dependent checks run at once
//! instead of at their next interval. A WAN that comes back (carrier up, an address or a default
//! route added, IPv4 or IPv6) also bumps the "WAN back" signal, so the reporter and the heartbeat
//! retry at once instead of sleeping out their backoff. IPv6 messages only feed that signal: the
//! IPv6 checks poll, and an IPv6 address refreshed by every Router Advertisement would otherwise
//! wake the IPv4 checks each time.
//!
//! An IPv4 address or route message that repeats what the agent last heard about that address
//! or route (a DHCP client's renewal re-adding the same address: `ip addr replace` notifies
//! even when nothing changed; an address whose lifetimes alone moved) is a [`NetChange::Same`]:
//! it wakes only the checks that are not ok at the moment (see [`Known`]).

use crate::context::{LinkChange, LinkInfo, Shared};
use crate::net::{NetError, Netlink};
use futures::StreamExt;
use futures::TryStreamExt;
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAttribute, RouteMessage};
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
    /// An IPv4 address or route message that changed nothing the checks read: wakes the
    /// netlink-driven checks only while they are not ok.
    Same,
    /// Not from netlink: a watched file or process changed (see `watch.rs`); run this check.
    Wake(netmedic_proto::CheckId),
    /// Not from netlink: a watched file was rewritten with nothing this check reads changed
    /// (a lease renewed for the same address, router and resolvers; resolv.conf rewritten with
    /// the same bytes): wakes it only while it is not ok.
    Rewritten(netmedic_proto::CheckId),
}

/// Most addresses and routes remembered; beyond, the memory starts over (every message then
/// counts as a change until it is heard again).
const MAX_KNOWN: usize = 1024;

/// The IPv4 addresses and routes last heard of, without what changes on every refresh
/// (`IFA_CACHEINFO`'s lifetimes and timestamps, a route's cache info and expiry), to tell a
/// message that changes something from one that repeats it. Filled from the events alone: the
/// first message about an address or route counts as a change.
#[derive(Debug, Default)]
pub struct Known {
    addresses: Vec<AddressMessage>,
    routes: Vec<RouteMessage>,
}

impl Known {
    /// Remembers what `msg` says; returns whether it changed anything (a removal always does).
    pub fn apply(&mut self, msg: &RouteNetlinkMessage) -> bool {
        match msg {
            RouteNetlinkMessage::NewAddress(a) => {
                remember(&mut self.addresses, without_address_timers(a), same_address)
            }
            RouteNetlinkMessage::DelAddress(a) => {
                self.addresses.retain(|k| !same_address(k, a));
                true
            }
            RouteNetlinkMessage::NewRoute(r) => {
                remember(&mut self.routes, without_route_timers(r), same_route)
            }
            RouteNetlinkMessage::DelRoute(r) => {
                self.routes.retain(|k| !same_route(k, r));
                true
            }
            _ => true,
        }
    }
}

/// Puts `item` in `known` in place of the entry `same` says it is; whether it differs.
fn remember<T: PartialEq>(known: &mut Vec<T>, item: T, same: fn(&T, &T) -> bool) -> bool {
    match known.iter_mut().find(|k| same(k, &item)) {
        Some(k) if *k == item => false,
        Some(k) => {
            *k = item;
            true
        }
        None => {
            if known.len() >= MAX_KNOWN {
                known.clear();
            }
            known.push(item);
            true
        }
    }
}

fn without_address_timers(a: &AddressMessage) -> AddressMessage {
    let mut a = a.clone();
    a.attributes
        .retain(|x| !matches!(x, AddressAttribute::CacheInfo(_)));
    a
}

fn without_route_timers(r: &RouteMessage) -> RouteMessage {
    let mut r = r.clone();
    r.attributes
        .retain(|x| !matches!(x, RouteAttribute::CacheInfo(_) | RouteAttribute::Expires(_)));
    r
}

/// Whether two address messages are about the same address (interface, family, prefix,
/// address and local address): the kernel's identity of an address.
fn same_address(x: &AddressMessage, y: &AddressMessage) -> bool {
    let id = |a: &AddressMessage| {
        (
            a.header.index,
            a.header.family,
            a.header.prefix_len,
            a.attributes
                .iter()
                .filter(|x| matches!(x, AddressAttribute::Address(_) | AddressAttribute::Local(_)))
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    id(x) == id(y)
}

/// Whether two route messages are about the same route (family, table, destination, TOS,
/// metric): the kernel's identity of a route; the gateway and device are what it says of it.
fn same_route(x: &RouteMessage, y: &RouteMessage) -> bool {
    let id = |r: &RouteMessage| {
        (
            r.header.address_family,
            r.header.table,
            r.header.destination_prefix_length,
            r.header.tos,
            r.attributes
                .iter()
                .filter(|x| {
                    matches!(
                        x,
                        RouteAttribute::Destination(_)
                            | RouteAttribute::Table(_)
                            | RouteAttribute::Priority(_)
                    )
                })
                .cloned()
                .collect::<Vec<_>>(),
        )
    };
    id(x) == id(y)
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
        let mut known = Known::default();
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
                m @ (RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_)) => {
                    Some(if known.apply(m) {
                        NetChange::Address
                    } else {
                        NetChange::Same
                    })
                }
                m @ (RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_)) => {
                    Some(if known.apply(m) {
                        NetChange::Route
                    } else {
                        NetChange::Same
                    })
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

    fn wan_address(ip: [u8; 4], valid_lft: u32) -> RouteNetlinkMessage {
        use netlink_packet_route::address::CacheInfo;
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.index = 7;
        a.header.prefix_len = 24;
        let ip = std::net::IpAddr::from(ip);
        a.attributes.push(AddressAttribute::Address(ip));
        a.attributes.push(AddressAttribute::Local(ip));
        let mut lifetimes = CacheInfo::default();
        lifetimes.ifa_preferred = valid_lft;
        lifetimes.ifa_valid = valid_lft;
        lifetimes.cstamp = 100;
        lifetimes.tstamp = valid_lft;
        a.attributes.push(AddressAttribute::CacheInfo(lifetimes));
        RouteNetlinkMessage::NewAddress(a)
    }

    fn default_route(gateway: [u8; 4]) -> RouteNetlinkMessage {
        use netlink_packet_route::route::RouteAddress;
        let mut r = RouteMessage::default();
        r.header.address_family = AddressFamily::Inet;
        r.header.table = RouteHeader::RT_TABLE_MAIN;
        r.attributes.push(RouteAttribute::Table(254));
        r.attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway.into())));
        r.attributes.push(RouteAttribute::Oif(7));
        RouteNetlinkMessage::NewRoute(r)
    }

    #[test]
    fn a_renewal_that_repeats_the_address_and_route_changes_nothing() {
        let mut known = Known::default();
        // First heard: a change.
        assert!(known.apply(&wan_address([100, 64, 1, 2], 120)));
        assert!(known.apply(&default_route([100, 64, 1, 1])));
        // The renewal: the same address (only its lifetimes moved) and the same route.
        assert!(!known.apply(&wan_address([100, 64, 1, 2], 3600)));
        assert!(!known.apply(&default_route([100, 64, 1, 1])));
        // A new gateway for the same route, a second address: changes.
        assert!(known.apply(&default_route([100, 64, 1, 254])));
        assert!(!known.apply(&default_route([100, 64, 1, 254])));
        assert!(known.apply(&wan_address([100, 64, 1, 3], 120)));
        // A removal always is, and the address heard again after it is too.
        let RouteNetlinkMessage::NewAddress(a) = wan_address([100, 64, 1, 2], 120) else {
            unreachable!()
        };
        assert!(known.apply(&RouteNetlinkMessage::DelAddress(a)));
        assert!(known.apply(&wan_address([100, 64, 1, 2], 120)));
        let RouteNetlinkMessage::NewRoute(r) = default_route([100, 64, 1, 254]) else {
            unreachable!()
        };
        assert!(known.apply(&RouteNetlinkMessage::DelRoute(r)));
        assert!(known.apply(&default_route([100, 64, 1, 254])));
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut known = Known::default();
        for i in 0..=MAX_KNOWN {
            let [a, b] = u16::try_from(i).unwrap().to_be_bytes();
            assert!(known.apply(&wan_address([100, 64, a, b], 120)));
        }
        assert!(known.addresses.len() <= MAX_KNOWN);
    }
}
