//! Fuzz target: any bytes as JSON into every wire type the agent or the collector decodes, then
//! validation; a decoded and valid value must survive a round trip unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netmedic_proto::{
    DiagnosticsResult, ErrorBody, Heartbeat, HeartbeatReply, Limits, ReportAck, ReportBatch,
};

fn round_trip<T>(v: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let json = serde_json::to_vec(v).expect("a decoded value encodes");
    let back: T = serde_json::from_slice(&json).expect("an encoded value decodes");
    assert_eq!(&back, v);
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    if let Ok(b) = serde_json::from_slice::<ReportBatch>(data) {
        if b.validate(&limits).is_ok() {
            round_trip(&b);
        }
    }
    if let Ok(h) = serde_json::from_slice::<Heartbeat>(data) {
        if h.validate(&limits).is_ok() {
            round_trip(&h);
        }
    }
    if let Ok(d) = serde_json::from_slice::<DiagnosticsResult>(data) {
        if d.validate(&limits).is_ok() {
            round_trip(&d);
        }
    }
    // What the agent reads from a collector's replies.
    if let Ok(r) = serde_json::from_slice::<HeartbeatReply>(data) {
        round_trip(&r);
    }
    let _ = serde_json::from_slice::<ReportAck>(data);
    let _ = serde_json::from_slice::<ErrorBody>(data);
});
