//! Netlink access (rtnetlink): read links and IPv4 default routes, reinstate a default route.
//!
//! The only module that talks rtnetlink, so checks and actions speak in plain types.

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::link::LinkAttribute;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteProtocol};
use rtnetlink::{Handle, RouteMessageBuilder};
use std::net::Ipv4Addr;

/// The kernel's main routing table.
const RT_TABLE_MAIN: u32 = 254;
const EEXIST: i32 = 17;

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
        match self.handle.route().add(route).execute().await {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code().abs() == EEXIST => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
