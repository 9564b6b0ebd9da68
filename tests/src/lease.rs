//! [`Lease`]: the DHCP lease file written by the lab's udhcpc script (`KEY=VALUE` lines).

use std::net::Ipv4Addr;
use std::path::Path;

use crate::error::{Result, io_ctx, parse_err};

/// One DHCP lease as written by `tests/lab/udhcpc.script` on `bound`/`renew`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The interface (`wan`).
    pub interface: String,
    /// The leased address.
    pub ip: Ipv4Addr,
    /// The subnet mask (dotted).
    pub subnet: Ipv4Addr,
    /// The first router of the lease.
    pub router: Option<Ipv4Addr>,
    /// DNS servers, in order.
    pub dns: Vec<Ipv4Addr>,
    /// Lease time in seconds.
    pub lease_secs: u64,
    /// When the script ran (Unix seconds).
    pub acquired_at_unix: i64,
}

impl Lease {
    /// Parses the lease file format.
    pub fn parse(text: &str) -> Result<Self> {
        let get = |key: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim())
        };
        let need =
            |key: &str| get(key).ok_or_else(|| parse_err("lease file", format!("missing {key}=")));
        let ip_of = |key: &str, v: &str| -> Result<Ipv4Addr> {
            v.parse()
                .map_err(|e| parse_err(format!("lease {key}={v}"), e))
        };
        let router = match get("router").filter(|v| !v.is_empty()) {
            Some(v) => Some(ip_of("router", v)?),
            None => None,
        };
        let dns = get("dns")
            .unwrap_or_default()
            .split_whitespace()
            .map(|d| ip_of("dns", d))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            interface: need("interface")?.to_owned(),
            ip: ip_of("ip", need("ip")?)?,
            subnet: ip_of("subnet", need("subnet")?)?,
            router,
            dns,
            lease_secs: need("lease_secs")?
                .parse()
                .map_err(|e| parse_err("lease lease_secs", e))?,
            acquired_at_unix: need("acquired_at_unix")?
                .parse()
                .map_err(|e| parse_err("lease acquired_at_unix", e))?,
        })
    }

    /// Reads and parses a lease file; `Ok(None)` if it does not exist.
    pub fn read(path: &Path) -> Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_ctx(format!("reading {}", path.display()))(e)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_script_output() {
        let l = Lease::parse(
            "interface=wan\nip=100.64.1.174\nsubnet=255.255.0.0\nrouter=100.64.0.1\ndns=100.64.0.1 192.0.2.53\nlease_secs=120\nacquired_at_unix=1795424372\n",
        )
        .unwrap();
        assert_eq!(l.ip, Ipv4Addr::new(100, 64, 1, 174));
        assert_eq!(l.router, Some(Ipv4Addr::new(100, 64, 0, 1)));
        assert_eq!(l.dns.len(), 2);
        assert_eq!(l.lease_secs, 120);
        assert!(Lease::parse("ip=1.2.3.4\n").is_err());
    }
}
