//! IPv6 over netlink: default routes (with their protocol and expiry), addresses with their
//! lifetimes and DAD state, and the two changes the IPv6 actions make (a default route, a LAN
//! address). An extension of [`Netlink`] so the rtnetlink plumbing stays in one handle.

use crate::net::{NetError, Netlink};
use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressScope, CacheInfo,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::RouteMessageBuilder;
use std::net::{IpAddr, Ipv6Addr};

const RT_TABLE_MAIN: u32 = 254;
/// The kernel's "forever" lifetime of an address.
const INFINITY_LIFE_TIME: u32 = u32::MAX;

/// An IPv6 default route (::/0) of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultRoute6 {
    pub gateway: Option<Ipv6Addr>,
    pub oif: Option<u32>,
    pub metric: u32,
    /// Who installed it: `ra` (the kernel or a client from a router advertisement), `static`,
    /// `dhcp`, `kernel`, `boot`...
    pub protocol: String,
    /// Seconds until it expires (RA-learned routes carry the router lifetime); `None`: never.
    pub expires_secs: Option<u32>,
}

/// An IPv6 address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr6 {
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    /// Global scope (usable beyond the link).
    pub global: bool,
    /// Valid lifetime left in seconds; `None`: forever.
    pub valid_secs: Option<u32>,
    /// Preferred lifetime left in seconds; `None`: forever.
    pub preferred_secs: Option<u32>,
    /// Duplicate address detection still runs: not usable yet.
    pub tentative: bool,
    /// Duplicate address detection failed: never usable.
    pub dad_failed: bool,
}

impl Addr6 {
    /// Usable as a source: global, DAD done and passed, lifetime left.
    pub fn usable_global(&self) -> bool {
        self.global && !self.tentative && !self.dad_failed && self.valid_secs != Some(0)
    }
}

fn lifetime(v: u32) -> Option<u32> {
    (v != INFINITY_LIFE_TIME).then_some(v)
}

impl Netlink {
    /// IPv6 default routes of the main table, lowest metric first.
    pub async fn default_routes_v6(&self) -> Result<Vec<DefaultRoute6>, NetError> {
        let query = RouteMessageBuilder::<Ipv6Addr>::new().build();
        let mut stream = self.handle().route().get(query).execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await? {
            if msg.header.address_family != AddressFamily::Inet6
                || msg.header.destination_prefix_length != 0
            {
                continue;
            }
            let mut table = u32::from(msg.header.table);
            let mut route = DefaultRoute6 {
                gateway: None,
                oif: None,
                metric: 0,
                protocol: msg.header.protocol.to_string(),
                expires_secs: None,
            };
            let mut unreachable = false;
            for attr in &msg.attributes {
                match attr {
                    RouteAttribute::Gateway(RouteAddress::Inet6(gw)) => route.gateway = Some(*gw),
                    RouteAttribute::Oif(i) => route.oif = Some(*i),
                    RouteAttribute::Priority(p) => route.metric = *p,
                    RouteAttribute::Table(t) => table = *t,
                    // Dumps report the expiry in the cache info, in USER_HZ (1/100 s) ticks.
                    RouteAttribute::CacheInfo(c) if c.expires > 0 => {
                        route.expires_secs = Some(c.expires / 100);
                    }
                    _ => {}
                }
            }
            // The kernel lists `unreachable default dev lo` placeholders with no oif/gateway.
            if route.oif.is_none() && route.gateway.is_none() {
                unreachable = true;
            }
            if table == RT_TABLE_MAIN && !unreachable {
                out.push(route);
            }
        }
        out.sort_by_key(|r| r.metric);
        Ok(out)
    }

    /// Adds `default via gateway dev oif proto static` to the main table, expiring after
    /// `lifetime_secs` when given (so a route restored from a router advertisement does not
    /// outlive that router's promise). An identical route that exists already counts as success.
    pub async fn add_default_route_v6(
        &self,
        gateway: Ipv6Addr,
        oif: u32,
        lifetime_secs: Option<u32>,
    ) -> Result<(), NetError> {
        let mut builder = RouteMessageBuilder::<Ipv6Addr>::new()
            .gateway(gateway)
            .output_interface(oif)
            .protocol(RouteProtocol::Static);
        if let Some(l) = lifetime_secs {
            builder = builder.expires(l);
        }
        self.add_route(builder.build()).await
    }

    /// IPv6 addresses of interface `index`.
    pub async fn addresses_v6(&self, index: u32) -> Result<Vec<Addr6>, NetError> {
        let mut stream = self
            .handle()
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await? {
            if msg.header.index != index || msg.header.family != AddressFamily::Inet6 {
                continue;
            }
            let mut flags = AddressFlags::from_bits_retain(u32::from(msg.header.flags.bits()));
            let mut addr = None;
            let mut cache = None;
            for attr in &msg.attributes {
                match attr {
                    AddressAttribute::Address(IpAddr::V6(a)) => addr = Some(*a),
                    AddressAttribute::Flags(f) => flags = *f,
                    AddressAttribute::CacheInfo(c) => cache = Some(*c),
                    _ => {}
                }
            }
            let Some(addr) = addr else { continue };
            out.push(Addr6 {
                addr,
                prefix_len: msg.header.prefix_len,
                global: msg.header.scope == AddressScope::Universe,
                valid_secs: cache.and_then(|c| lifetime(c.ifa_valid)),
                preferred_secs: cache.and_then(|c| lifetime(c.ifa_preferred)),
                tentative: flags.contains(AddressFlags::Tentative),
                dad_failed: flags.contains(AddressFlags::Dadfailed),
            });
        }
        Ok(out)
    }

    /// Adds `addr/prefix_len` to interface `index` with the given lifetimes (seconds), or
    /// refreshes the lifetimes of an address that is there already.
    pub async fn add_address_v6(
        &self,
        index: u32,
        addr: Ipv6Addr,
        prefix_len: u8,
        valid_secs: u32,
        preferred_secs: u32,
    ) -> Result<(), NetError> {
        let mut req = self
            .handle()
            .address()
            .add(index, IpAddr::V6(addr), prefix_len)
            .replace();
        let msg = req.message_mut();
        msg.header.flags = AddressHeaderFlags::empty();
        let mut cache = CacheInfo::default();
        cache.ifa_preferred = preferred_secs.min(valid_secs);
        cache.ifa_valid = valid_secs;
        msg.attributes.push(AddressAttribute::CacheInfo(cache));
        req.execute().await.map_err(NetError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_global_needs_dad_done_and_lifetime_left() {
        let a = Addr6 {
            addr: "2001:db8::1".parse().unwrap(),
            prefix_len: 64,
            global: true,
            valid_secs: Some(30),
            preferred_secs: Some(20),
            tentative: false,
            dad_failed: false,
        };
        assert!(a.usable_global());
        assert!(
            !Addr6 {
                tentative: true,
                ..a.clone()
            }
            .usable_global()
        );
        assert!(
            !Addr6 {
                dad_failed: true,
                ..a.clone()
            }
            .usable_global()
        );
        assert!(
            !Addr6 {
                valid_secs: Some(0),
                ..a.clone()
            }
            .usable_global()
        );
        assert!(!Addr6 { global: false, ..a }.usable_global());
        assert_eq!(lifetime(u32::MAX), None);
        assert_eq!(lifetime(7), Some(7));
    }
}
