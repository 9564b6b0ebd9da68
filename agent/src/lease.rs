//! The WAN DHCP lease as written by the DHCP client's hook script: `KEY=VALUE` lines.
//!
//! Keys read: `interface`, `ip`, `subnet`, `router`, `dns` (space separated), `lease_secs`,
//! `acquired_at_unix`. Unknown keys are ignored so hook scripts can add their own.

use std::net::Ipv4Addr;
use std::path::Path;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    pub interface: Option<String>,
    pub ip: Option<Ipv4Addr>,
    pub router: Option<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub lease_secs: Option<u64>,
    pub acquired_at_unix: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("{path}: cannot read lease file: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {problem}")]
    Bad {
        path: String,
        line: usize,
        problem: String,
    },
}

impl Lease {
    /// Reads a lease file; `Ok(None)` when there is none (no lease held).
    pub fn read(path: &Path) -> Result<Option<Lease>, LeaseError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Lease::parse(&text, &path.display().to_string()).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LeaseError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    pub fn parse(text: &str, origin: &str) -> Result<Lease, LeaseError> {
        let mut lease = Lease::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |problem: String| LeaseError::Bad {
                path: origin.to_string(),
                line: i + 1,
                problem,
            };
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("expected KEY=VALUE, got {line:?}")))?;
            let value = value.trim().trim_matches('"');
            let ip = |v: &str| {
                v.parse::<Ipv4Addr>()
                    .map_err(|_| bad(format!("{key}: {v:?} is not an IPv4 address")))
            };
            match key.trim() {
                "interface" => lease.interface = Some(value.to_string()),
                "ip" if !value.is_empty() => lease.ip = Some(ip(value)?),
                // udhcpc may list several routers; the first one is the gateway.
                "router" if !value.is_empty() => {
                    lease.router = value.split_whitespace().next().map(ip).transpose()?
                }
                "dns" => lease.dns = value.split_whitespace().map(ip).collect::<Result<_, _>>()?,
                "lease_secs" if !value.is_empty() => {
                    lease.lease_secs = Some(
                        value
                            .parse()
                            .map_err(|_| bad(format!("lease_secs: {value:?} is not a number")))?,
                    )
                }
                "acquired_at_unix" if !value.is_empty() => {
                    lease.acquired_at_unix =
                        Some(value.parse().map_err(|_| {
                            bad(format!("acquired_at_unix: {value:?} is not a number"))
                        })?)
                }
                _ => {}
            }
        }
        Ok(lease)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_udhcpc_hook_output() {
        let l = Lease::parse(
            "interface=wan\nip=100.64.1.7\nsubnet=255.255.0.0\nrouter=100.64.0.1 100.64.0.2\n\
             dns=100.64.0.1 198.51.100.1\nlease_secs=120\nacquired_at_unix=1795424131\nx-extra=1\n",
            "wan.lease",
        )
        .unwrap();
        assert_eq!(l.router, Some(Ipv4Addr::new(100, 64, 0, 1)));
        assert_eq!(l.dns.len(), 2);
        assert_eq!(l.lease_secs, Some(120));
    }

    #[test]
    fn bad_line_is_located() {
        let e = Lease::parse("ip=100.64.1.7\nrouter=gw\n", "wan.lease").unwrap_err();
        assert_eq!(
            e.to_string(),
            "wan.lease:2: router: \"gw\" is not an IPv4 address"
        );
    }
}
