//! The `events` load's report batches, encoded from a template so the generator's own CPU stays
//! small beside the collector's on a shared 2-core box.
//!
//! Every batch holds `batch` events: opened/resolved pairs of new incidents, each with its own
//! event id, incident id and sequence number. serde_json encodes one opened and one resolved
//! event per batch with marker values in those three fields; the body is then the template's
//! bytes with the real values spliced in at the markers. The ids are ASCII letters, digits and
//! `-`, so they need no JSON escaping. A unit test holds the spliced body equal (as JSON) to the
//! same batch encoded by serde_json, field by field.

use anyhow::{Result, bail};
use netmedic_proto::{
    Category, CheckId, EventKind, IncidentEvent, ReportBatch, SCHEMA_VERSION, Severity, Timestamp,
};

const EVENT_MARK: &str = "@@netmedic-loadgen-event@@";
const INCIDENT_MARK: &str = "@@netmedic-loadgen-incident@@";
/// A sequence number no other field of the template can contain (timestamps are strings).
const SEQ_MARK: u64 = 9_081_726_354_453_627;

/// One batch's identity: the connection, the connection's batch number, the batch size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchId {
    pub(crate) conn: usize,
    pub(crate) n: u64,
    pub(crate) size: usize,
}

impl BatchId {
    fn event_id(self, k: usize) -> String {
        format!("c{}-b{}-e{k}", self.conn, self.n)
    }
    fn incident_id(self, k: usize) -> String {
        format!("c{}-b{}-i{}", self.conn, self.n, k / 2)
    }
    fn seq(self, k: usize) -> u64 {
        self.n * self.size as u64 + k as u64
    }
}

/// The `k`-th event of a batch, as the generator sends it.
pub(crate) fn event(id: BatchId, k: usize, now: Timestamp) -> IncidentEvent {
    resolver_event(id.event_id(k), id.incident_id(k), id.seq(k), k, now)
}

/// The loads' one event shape: a resolver time-out, opened on even `k`, resolved (healed) on odd.
pub(crate) fn resolver_event(
    event_id: String,
    incident_id: String,
    seq: u64,
    k: usize,
    now: Timestamp,
) -> IncidentEvent {
    let kind = if k.is_multiple_of(2) {
        EventKind::Opened
    } else {
        EventKind::Resolved
    };
    IncidentEvent {
        event_id,
        incident_id,
        seq,
        kind,
        check: CheckId::Dns,
        cause: "resolver_timeout".into(),
        category: Category::DnsFailure,
        severity: Severity::Major,
        started_at: now,
        at: now,
        summary: "resolver 192.0.2.53 times out".into(),
        evidence: [("resolver".to_owned(), "192.0.2.53".to_owned())]
            .into_iter()
            .collect(),
        actions: vec![],
        // Required on a resolved event, absent on an opened one.
        auto_healed: (kind == EventKind::Resolved).then_some(true),
        experiment: None,
    }
}

/// The batch encoded by serde_json event by event: the reference the template must equal.
#[cfg(test)]
fn encode_reference(agent_id: &str, id: BatchId, now: Timestamp) -> Result<Vec<u8>> {
    let batch = ReportBatch {
        schema_version: SCHEMA_VERSION,
        agent_id: agent_id.to_owned(),
        events: (0..id.size).map(|k| event(id, k, now)).collect(),
    };
    Ok(serde_json::to_vec(&batch)?)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Slot {
    EventId,
    IncidentId,
    Seq,
}

/// An event's JSON cut at its three varying fields.
struct EventTemplate {
    /// Literal bytes; `slots[i]` goes between `parts[i]` and `parts[i + 1]`.
    parts: Vec<Vec<u8>>,
    slots: Vec<Slot>,
}

impl EventTemplate {
    fn new(kind_k: usize, now: Timestamp) -> Result<Self> {
        let mut ev = event(
            BatchId {
                conn: 0,
                n: 0,
                size: 2,
            },
            kind_k,
            now,
        );
        ev.event_id = EVENT_MARK.to_owned();
        ev.incident_id = INCIDENT_MARK.to_owned();
        ev.seq = SEQ_MARK;
        let json = serde_json::to_string(&ev)?;
        let seq_mark = SEQ_MARK.to_string();
        let marks = [
            (format!("\"{EVENT_MARK}\""), Slot::EventId),
            (format!("\"{INCIDENT_MARK}\""), Slot::IncidentId),
            (seq_mark, Slot::Seq),
        ];
        let mut found = Vec::new();
        for (mark, slot) in &marks {
            let hits: Vec<usize> = json.match_indices(mark.as_str()).map(|(i, _)| i).collect();
            let [at] = hits[..] else {
                bail!("event template: {slot:?} marker found {} times", hits.len());
            };
            found.push((at, mark.len(), *slot));
        }
        found.sort_by_key(|&(at, _, _)| at);
        let mut parts = Vec::new();
        let mut slots = Vec::new();
        let mut from = 0;
        for (at, len, slot) in found {
            parts.push(json.as_bytes()[from..at].to_vec());
            slots.push(slot);
            from = at + len;
        }
        parts.push(json.as_bytes()[from..].to_vec());
        Ok(Self { parts, slots })
    }

    fn write(&self, out: &mut Vec<u8>, id: BatchId, k: usize) {
        use std::io::Write;
        for (part, slot) in self.parts.iter().zip(&self.slots) {
            out.extend_from_slice(part);
            // Writes into a Vec cannot fail.
            let _ = match slot {
                Slot::EventId => write!(out, "\"c{}-b{}-e{k}\"", id.conn, id.n),
                Slot::IncidentId => write!(out, "\"c{}-b{}-i{}\"", id.conn, id.n, k / 2),
                Slot::Seq => write!(out, "{}", id.seq(k)),
            };
        }
        if let Some(last) = self.parts.last() {
            out.extend_from_slice(last);
        }
    }
}

/// Encodes `id.size` events for `agent_id` at `now` into `out` (cleared first).
pub(crate) fn encode(out: &mut Vec<u8>, agent_id: &str, id: BatchId, now: Timestamp) -> Result<()> {
    let templates = [EventTemplate::new(0, now)?, EventTemplate::new(1, now)?];
    let envelope = serde_json::to_string(&ReportBatch {
        schema_version: SCHEMA_VERSION,
        agent_id: agent_id.to_owned(),
        events: vec![],
    })?;
    let hole = "\"events\":[]";
    let Some(at) = envelope.find(hole) else {
        bail!("batch template: no empty events array in {envelope}");
    };
    let split = at + hole.len() - 1;
    out.clear();
    out.extend_from_slice(&envelope.as_bytes()[..split]);
    for k in 0..id.size {
        if k > 0 {
            out.push(b',');
        }
        templates[k % 2].write(out, id, k);
    }
    out.extend_from_slice(&envelope.as_bytes()[split..]);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(bytes: &[u8]) -> serde_json::Value {
        serde_json::from_slice(bytes).expect("valid JSON")
    }

    #[test]
    fn the_template_body_equals_serde_json_encoding_of_the_same_batch() {
        let now = netmedic_collector::now();
        for (conn, n, size) in [(0, 0, 1), (3, 7, 2), (7, 123_456, 500), (1, 1, 5)] {
            let id = BatchId { conn, n, size };
            let mut body = Vec::new();
            encode(&mut body, "bench-000042", id, now).expect("encodes");
            let reference = encode_reference("bench-000042", id, now).expect("encodes");
            assert_eq!(
                value(&body),
                value(&reference),
                "conn {conn} batch {n} size {size}"
            );
            let batch: ReportBatch = serde_json::from_slice(&body).expect("a report batch");
            assert_eq!(batch.events.len(), size);
        }
    }

    #[test]
    fn every_event_and_incident_of_a_batch_has_its_own_id() {
        let id = BatchId {
            conn: 2,
            n: 9,
            size: 10,
        };
        let mut body = Vec::new();
        encode(&mut body, "bench-000001", id, netmedic_collector::now()).expect("encodes");
        let batch: ReportBatch = serde_json::from_slice(&body).expect("a report batch");
        let events: std::collections::BTreeSet<_> =
            batch.events.iter().map(|e| e.event_id.clone()).collect();
        let incidents: std::collections::BTreeSet<_> =
            batch.events.iter().map(|e| e.incident_id.clone()).collect();
        assert_eq!(events.len(), 10);
        assert_eq!(incidents.len(), 5);
        assert_eq!(batch.events[9].seq, 9 * 10 + 9);
    }
}
