//! Fuzz target: any bytes as a DNS response to the dns check's query (and as resolv.conf). The
//! check's parsing and interpretation never panic.
#![no_main]

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;
use netmedic_agent::checks::dns::{interpret, parse_resolv_conf};
use std::str::FromStr as _;

fuzz_target!(|data: &[u8]| {
    let _ = parse_resolv_conf(&String::from_utf8_lossy(data));
    let Ok(resp) = Message::from_vec(data) else {
        return;
    };
    let Ok(qname) = Name::from_str("probe.isp.example.") else {
        return;
    };
    // The id and question the response claims, and a fixed one: both paths of `interpret`.
    let _ = interpret(&resp, resp.metadata.id, &qname, RecordType::A, 1.0);
    if let Some(q) = resp.queries.first() {
        let _ = interpret(&resp, resp.metadata.id, q.name(), q.query_type(), 1.0);
    }
});
