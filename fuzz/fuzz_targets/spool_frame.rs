//! Fuzz target: any bytes as a spool file. The frame reader never panics; what it accepts has
//! a sequence number the agent can count on from.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmedic_agent::spool::{MAX_SEQ, decode_frame, parse_seq};

fuzz_target!(|data: &[u8]| {
    if let Ok(ev) = decode_frame(data) {
        assert!(ev.seq <= MAX_SEQ);
    }
    if let Some(seq) = parse_seq(&String::from_utf8_lossy(data)) {
        assert!(seq.checked_add(1).is_some());
    }
});
