//! The WAN DHCP lease as written by the DHCP client's hook script: `KEY=VALUE` lines.
//!
//! Keys read: `interface`, `ip`, `subnet`, `router`, `dns` (space separated), `lease_secs`,
//! `acquired_at_unix`. Unknown keys are ignored so hook scripts can add their own.
//!
//! The file is local but not trusted to be sane: it is read through a [`MAX_LEASE_BYTES`] cap,
//! `acquired_at_unix` must lie in 1970..=9999 and a `lease_secs` beyond DHCP's 32-bit lease
//! time reads as the infinite lease (`0xffffffff`), so `acquired_at_unix + lease_secs` never
//! overflows whoever computes the expiry.

use std::io::Read as _;
use std::net::Ipv4Addr;
use std::path::Path;

/// The largest lease file read; a real one is a few hundred bytes.
pub const MAX_LEASE_BYTES: u64 = 64 * 1024;
/// DHCP's lease time is 32 bits; all ones means an infinite lease (RFC 2131 §3.3).
pub const INFINITE_LEASE_SECS: u64 = u32::MAX as u64;
/// 9999-12-31T23:59:59Z, the last second a `Timestamp` can carry.
const MAX_UNIX_SECS: i64 = 253_402_300_799;

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
    #[error("{path}: lease file larger than {max} bytes, not read")]
    TooLarge { path: String, max: u64 },
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
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(LeaseError::Read {
                    path: path.display().to_string(),
                    source,
                });
            }
        };
        let mut bytes = Vec::new();
        file.take(MAX_LEASE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| LeaseError::Read {
                path: path.display().to_string(),
                source,
            })?;
        if bytes.len() as u64 > MAX_LEASE_BYTES {
            return Err(LeaseError::TooLarge {
                path: path.display().to_string(),
                max: MAX_LEASE_BYTES,
            });
        }
        let text = String::from_utf8_lossy(&bytes);
        Lease::parse(&text, &path.display().to_string()).map(Some)
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
                    let secs: u64 = value
                        .parse()
                        .map_err(|_| bad(format!("lease_secs: {value:?} is not a number")))?;
                    lease.lease_secs = Some(secs.min(INFINITE_LEASE_SECS));
                }
                "acquired_at_unix" if !value.is_empty() => {
                    let at: i64 = value
                        .parse()
                        .map_err(|_| bad(format!("acquired_at_unix: {value:?} is not a number")))?;
                    if !(0..=MAX_UNIX_SECS).contains(&at) {
                        return Err(bad(format!(
                            "acquired_at_unix: {at} is outside 1970..=9999"
                        )));
                    }
                    lease.acquired_at_unix = Some(at);
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
    fn hostile_times_are_refused_or_bounded() {
        let e = Lease::parse("acquired_at_unix=-9223372036854775808\n", "wan.lease").unwrap_err();
        assert!(e.to_string().contains("outside 1970..=9999"), "{e}");
        let e = Lease::parse("acquired_at_unix=9223372036854775807\n", "wan.lease").unwrap_err();
        assert!(
            e.to_string().starts_with("wan.lease:1: acquired_at_unix"),
            "{e}"
        );
        let l = Lease::parse(
            "lease_secs=18446744073709551615\nacquired_at_unix=253402300799\n",
            "wan.lease",
        )
        .unwrap();
        assert_eq!(l.lease_secs, Some(INFINITE_LEASE_SECS));
        // Whoever adds them cannot overflow.
        let end = l.acquired_at_unix.unwrap() + l.lease_secs.unwrap() as i64;
        assert!(end > 0);
    }

    #[test]
    fn a_huge_lease_file_is_not_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("wan.lease");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(64 << 20).unwrap();
        let e = Lease::read(&p).unwrap_err();
        assert!(matches!(e, LeaseError::TooLarge { .. }), "{e}");
        std::fs::write(&p, "ip=100.64.1.7\n").unwrap();
        assert!(Lease::read(&p).unwrap().is_some());
        assert_eq!(Lease::read(&dir.path().join("none")).unwrap(), None);
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
