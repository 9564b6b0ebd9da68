//! Fuzz target: any text as a DHCP lease file. Parsing never panics, and whatever it accepts
//! has an expiry (`acquired_at_unix + lease_secs`) that cannot overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmedic_agent::lease::Lease;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(l) = Lease::parse(&text, "fuzz.lease") {
        if let (Some(at), Some(secs)) = (l.acquired_at_unix, l.lease_secs) {
            let secs = i64::try_from(secs).expect("lease_secs fits i64");
            assert!(at >= 0);
            assert!(at.checked_add(secs).is_some());
        }
    }
});
