//! The DHCPv6 client's lease: the server's REPLY as the client stored it (dhcpcd writes the
//! raw message to `<dbdir>/<iface>.lease6`), parsed for its IA_NA addresses and IA_PD prefixes.
//! Lifetimes count from the file's modification time, when the client wrote the reply.

use std::net::Ipv6Addr;
use std::path::Path;
use std::time::SystemTime;

/// Larger files are not a lease the agent trusts.
const MAX_LEASE_BYTES: u64 = 64 * 1024;
const OPT_IA_NA: u16 = 3;
const OPT_IAADDR: u16 = 5;
const OPT_STATUS_CODE: u16 = 13;
const OPT_IA_PD: u16 = 25;
const OPT_IAPREFIX: u16 = 26;

#[derive(Debug, thiserror::Error)]
pub enum Lease6Error {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
}

/// A prefix delegated to this router (IA_PD / IAPREFIX).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelegatedPrefix {
    pub prefix: Ipv6Addr,
    pub len: u8,
    pub preferred_secs: u32,
    pub valid_secs: u32,
}

impl DelegatedPrefix {
    /// Whether `addr` lies inside the prefix.
    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        if self.len > 128 {
            return false;
        }
        let mask = if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        };
        u128::from(addr) & mask == u128::from(self.prefix) & mask
    }
}

impl std::fmt::Display for DelegatedPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.prefix, self.len)
    }
}

/// The LAN router's address in /64 number `subnet_id` of `p`: `<prefix>:<subnet_id>::1`.
/// `None` when the prefix is longer than /64 or has fewer /64s than `subnet_id`.
pub fn lan_address(p: &DelegatedPrefix, subnet_id: u16) -> Option<Ipv6Addr> {
    if p.len > 64 {
        return None;
    }
    let room = 64 - u32::from(p.len);
    if room < 16 && u32::from(subnet_id) >= (1u32 << room) {
        return None;
    }
    let net = u128::from(p.prefix) & (u128::MAX << (128 - u32::from(p.len)).min(127));
    let net = if p.len == 0 { 0 } else { net };
    Some(Ipv6Addr::from(net | (u128::from(subnet_id) << 64) | 1))
}

/// A parsed DHCPv6 lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease6 {
    /// When the client wrote it (the lifetimes count from here).
    pub written: SystemTime,
    /// IA_NA addresses with their valid lifetimes.
    pub addresses: Vec<(Ipv6Addr, u32)>,
    pub prefixes: Vec<DelegatedPrefix>,
}

impl Lease6 {
    /// Reads and parses `path`; `Ok(None)` when the file does not exist (no lease).
    pub fn read(path: &Path) -> Result<Option<Lease6>, Lease6Error> {
        let shown = path.display().to_string();
        let io = |source| Lease6Error::Io {
            path: shown.clone(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        if meta.len() > MAX_LEASE_BYTES {
            return Err(Lease6Error::Malformed {
                path: shown,
                reason: format!("{} bytes, more than a lease can be", meta.len()),
            });
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let written = meta.modified().map_err(io)?;
        parse(&bytes, written)
            .map(Some)
            .map_err(|reason| Lease6Error::Malformed {
                path: shown,
                reason,
            })
    }

    /// Seconds `lifetime` has left at `now` (0 when spent).
    pub fn left_secs(&self, lifetime: u32, now: SystemTime) -> u64 {
        let age = now.duration_since(self.written).map_or(0, |d| d.as_secs());
        u64::from(lifetime).saturating_sub(age)
    }

    /// The delegated prefixes still valid at `now`, with their seconds left.
    pub fn valid_prefixes(&self, now: SystemTime) -> Vec<(DelegatedPrefix, u64)> {
        self.prefixes
            .iter()
            .map(|p| (*p, self.left_secs(p.valid_secs, now)))
            .filter(|(_, left)| *left > 0)
            .collect()
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn addr(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    let o: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(Ipv6Addr::from(o))
}

/// The options of a DHCPv6 option area as (code, body) pairs.
fn options(mut b: &[u8]) -> Result<Vec<(u16, &[u8])>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let (Some(code), Some(len)) = (be16(b, 0), be16(b, 2)) else {
            return Err("truncated option header".into());
        };
        let end = 4 + usize::from(len);
        let body = b
            .get(4..end)
            .ok_or_else(|| format!("option {code} runs past the end"))?;
        out.push((code, body));
        b = &b[end..];
    }
    Ok(out)
}

/// Whether an IA's suboptions carry a status code other than success.
fn failed_status(subs: &[(u16, &[u8])]) -> bool {
    subs.iter()
        .any(|(c, body)| *c == OPT_STATUS_CODE && be16(body, 0).is_some_and(|s| s != 0))
}

/// Parses a stored DHCPv6 message (message type, transaction id, options).
pub fn parse(msg: &[u8], written: SystemTime) -> Result<Lease6, String> {
    if msg.len() < 4 {
        return Err("shorter than a DHCPv6 header".into());
    }
    let mut lease = Lease6 {
        written,
        addresses: Vec::new(),
        prefixes: Vec::new(),
    };
    for (code, body) in options(&msg[4..])? {
        if code != OPT_IA_NA && code != OPT_IA_PD {
            continue;
        }
        // IAID, T1, T2, then suboptions.
        let subs = options(body.get(12..).ok_or("truncated IA")?)?;
        if failed_status(&subs) {
            continue;
        }
        for (sub, sb) in subs {
            match (code, sub) {
                (OPT_IA_NA, OPT_IAADDR) => {
                    let (Some(a), Some(valid)) = (addr(sb, 0), be32(sb, 20)) else {
                        return Err("truncated IAADDR".into());
                    };
                    lease.addresses.push((a, valid));
                }
                (OPT_IA_PD, OPT_IAPREFIX) => {
                    let (Some(pref), Some(valid), Some(&len), Some(prefix)) =
                        (be32(sb, 0), be32(sb, 4), sb.get(8), addr(sb, 9))
                    else {
                        return Err("truncated IAPREFIX".into());
                    };
                    if len > 128 {
                        return Err(format!("prefix length {len}"));
                    }
                    if valid > 0 {
                        lease.prefixes.push(DelegatedPrefix {
                            prefix,
                            len,
                            preferred_secs: pref,
                            valid_secs: valid,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    Ok(lease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A REPLY as dhcpcd stored it in the lab: IA_NA 2001:db8:0:1::1000 (20/30 s) and IA_PD
    /// 2001:db8:100::/56 (20/30 s).
    const LAB_REPLY: &str = "07a5f60d 0001000e 00010001 32a41ae9 4256f5b7 910a \
        0002000a 00030001 8efeb8290cea \
        00030028 00000001 0000000a 00000010 \
        00050018 20010db8000000010000000000001000 00000014 0000001e \
        00190029 00000002 0000000a 00000010 \
        001a0019 00000014 0000001e 38 20010db8010000000000000000000000";

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn parses_the_lab_reply() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let l = parse(&hex(LAB_REPLY), t).unwrap();
        assert_eq!(l.addresses, [("2001:db8:0:1::1000".parse().unwrap(), 30)]);
        assert_eq!(l.prefixes.len(), 1);
        let p = l.prefixes[0];
        assert_eq!(p.to_string(), "2001:db8:100::/56");
        assert_eq!((p.preferred_secs, p.valid_secs), (20, 30));
        assert!(p.contains("2001:db8:100:ff::1".parse().unwrap()));
        assert!(!p.contains("2001:db8:101::1".parse().unwrap()));
        assert_eq!(l.valid_prefixes(t + Duration::from_secs(10))[0].1, 20);
        assert!(l.valid_prefixes(t + Duration::from_secs(30)).is_empty());
        assert_eq!(lan_address(&p, 0), Some("2001:db8:100::1".parse().unwrap()));
        assert_eq!(
            lan_address(&p, 0xff),
            Some("2001:db8:100:ff::1".parse().unwrap())
        );
        assert_eq!(lan_address(&p, 0x100), None);
    }

    #[test]
    fn refuses_truncated_messages_and_skips_failed_ias() {
        let t = SystemTime::UNIX_EPOCH;
        let full = hex(LAB_REPLY);
        for cut in [2, 10, full.len() - 3] {
            assert!(parse(&full[..cut], t).is_err(), "cut at {cut}");
        }
        // IA_PD holding only a NoPrefixAvail (6) status.
        let msg = hex("07000001 0019 0012 00000002 00000000 00000000 000d 0002 0006");
        let l = parse(&msg, t).unwrap();
        assert!(l.prefixes.is_empty());
    }
}
