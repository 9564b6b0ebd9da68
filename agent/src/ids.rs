//! Random identifiers for incidents and events (128 bits from the OS, hex encoded).

use std::fmt::Write;

/// A fresh 128-bit random id as 32 lowercase hex characters.
///
/// Falls back to time and a counter only if the OS random source fails, which on Linux means
/// the kernel is broken; ids stay unique within this process either way.
pub fn random_id() -> String {
    let mut buf = [0u8; 16];
    if getrandom::fill(&mut buf).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        buf[..8].copy_from_slice(&(nanos as u64).to_le_bytes());
        buf[8..].copy_from_slice(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    }
    buf.iter().fold(String::with_capacity(32), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A random 16-bit value (ICMP identifiers and the like).
pub fn random_u16() -> u16 {
    let mut buf = [0u8; 2];
    let _ = getrandom::fill(&mut buf);
    u16::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hex_and_distinct() {
        let a = super::random_id();
        let b = super::random_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
