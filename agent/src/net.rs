//! Netlink access (rtnetlink): read links and IPv4 default routes, reinstate a default route.
//!
//! The only module that talks rtnetlink, so checks and actions speak in plain types.

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressScope};
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::neighbour::{NeighbourAddress, NeighbourAttribute};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};

/// The kernel's main routing table.
const RT_TABLE_MAIN: u32 = 254;
const EEXIST: i32 = 17;

impl Netlink {
    /// Adds `route` (either family). An identical route that already exists counts as success
    /// (another actor may have raced us to the same fix).
    pub(crate) async fn add_route(
        &self,
        route: netlink_packet_route::route::RouteMessage,
    ) -> Result<(), NetError> {
        match self.handle.route().add(route).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == EEXIST => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(#[source] std::io::Error),
    #[error("netlink request failed: {0}")]
    Request(#[from] rtnetlink::Error),
    #[error("interface {0:?} does not exist")]
    NoSuchInterface(String),
}

/// An IPv4 default route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: Option<u32>,
    pub metric: u32,
}

/// An address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddress {
    pub addr: IpAddr,
    pub prefix_len: u8,
    /// Global scope (usable beyond the link).
    pub global: bool,
}

/// The kernel's ARP/NDP cache entry for a neighbour, lower-case state (`reachable`,
/// `stale`, `failed`, `incomplete`, ...) and whether it has a hardware address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub state: String,
    pub lladdr: Option<String>,
}

/// A cheap-to-clone rtnetlink handle.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    /// Opens the netlink socket; its I/O task runs on the current tokio runtime.
    pub fn connect() -> Result<Self, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(NetError::Socket)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// The raw rtnetlink handle, for modules that need a request this wrapper lacks.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Index of an interface by name, `None` when it does not exist.
    pub async fn link_index(&self, name: &str) -> Result<Option<u32>, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(Some(msg.header.index)),
            Ok(None) => Ok(None),
            // The kernel answers ENODEV for an unknown name.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == 19 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Name of an interface by index.
    pub async fn link_name(&self, index: u32) -> Result<Option<String>, NetError> {
        let mut links = self.handle.link().get().match_index(index).execute();
        match links.try_next().await {
            Ok(Some(msg)) => Ok(msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })),
            Ok(None) => Ok(None),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == 19 => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// IPv4 default routes (0.0.0.0/0) of the main table, lowest metric first.
    pub async fn default_routes_v4(&self) -> Result<Vec<DefaultRoute>, NetError> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let mut stream = self.handle.route().get(query).execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await? {
            if msg.header.address_family != AddressFamily::Inet
                || msg.header.destination_prefix_length != 0
            {
                continue;
            }
            let mut table = u32::from(msg.header.table);
            let mut route = DefaultRoute {
                gateway: None,
                oif: None,
                metric: 0,
            };
            for attr in &msg.attributes {
                match attr {
                    RouteAttribute::Gateway(RouteAddress::Inet(gw)) => route.gateway = Some(*gw),
                    RouteAttribute::Oif(i) => route.oif = Some(*i),
                    RouteAttribute::Priority(p) => route.metric = *p,
                    RouteAttribute::Table(t) => table = *t,
                    _ => {}
                }
            }
            if table == RT_TABLE_MAIN {
                out.push(route);
            }
        }
        out.sort_by_key(|r| r.metric);
        Ok(out)
    }

    /// Adds `default via gateway dev oif` to the main table. An identical route that already
    /// exists counts as success (another actor may have raced us to the same fix).
    pub async fn add_default_route_v4(&self, gateway: Ipv4Addr, oif: u32) -> Result<(), NetError> {
        let route = RouteMessageBuilder::<Ipv4Addr>::new()
            .gateway(gateway)
            .output_interface(oif)
            .protocol(RouteProtocol::Static)
            .build();
        self.add_route(route).await
    }

    /// Addresses of interface `index` (IPv4 and IPv6).
    pub async fn addresses(&self, index: u32) -> Result<Vec<IfAddress>, NetError> {
        let mut stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute();
        let mut out = Vec::new();
        while let Some(msg) = stream.try_next().await? {
            if msg.header.index != index {
                continue;
            }
            let global = msg.header.scope == AddressScope::Universe;
            // IFA_LOCAL is the interface's own address on point-to-point links; prefer it.
            let mut addr = None;
            for attr in &msg.attributes {
                match attr {
                    AddressAttribute::Local(a) => addr = Some(*a),
                    AddressAttribute::Address(a) if addr.is_none() => addr = Some(*a),
                    _ => {}
                }
            }
            if let Some(addr) = addr {
                out.push(IfAddress {
                    addr,
                    prefix_len: msg.header.prefix_len,
                    global,
                });
            }
        }
        Ok(out)
    }

    /// The kernel's neighbour (ARP) entry for `ip` on interface `index`, if any.
    pub async fn neighbour_v4(
        &self,
        index: u32,
        ip: Ipv4Addr,
    ) -> Result<Option<Neighbour>, NetError> {
        let mut stream = self
            .handle
            .neighbours()
            .get()
            .set_address_family(AddressFamily::Inet)
            .execute();
        while let Some(msg) = stream.try_next().await? {
            if msg.header.ifindex != index {
                continue;
            }
            let mut dst = None;
            let mut lladdr = None;
            for attr in &msg.attributes {
                match attr {
                    NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => dst = Some(*a),
                    NeighbourAttribute::LinkLayerAddress(mac) if !mac.is_empty() => {
                        lladdr = Some(
                            mac.iter()
                                .map(|b| format!("{b:02x}"))
                                .collect::<Vec<_>>()
                                .join(":"),
                        )
                    }
                    _ => {}
                }
            }
            if dst == Some(ip) {
                return Ok(Some(Neighbour {
                    state: format!("{:?}", msg.header.state).to_lowercase(),
                    lladdr,
                }));
            }
        }
        Ok(None)
    }
}
