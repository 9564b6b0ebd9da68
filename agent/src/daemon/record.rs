//! How the daemon records incident events: numbered (a sequence that keeps rising across
//! restarts), spooled durably, logged with their journal fields, and the reporter woken.

use crate::context::now;
use crate::heal::EventSink;
use crate::incident::Incident;
use crate::logging;
use crate::spool::Spool;
use netmedic_proto::{EventKind, IncidentEvent};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Per-agent event sequence numbers, persisted so they keep rising across restarts.
#[derive(Debug)]
pub(super) struct SeqGen {
    path: PathBuf,
    next: u64,
}

impl SeqGen {
    pub(super) fn open(path: PathBuf, floor: u64) -> Self {
        let stored = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| crate::spool::parse_seq(&s))
            .unwrap_or(0);
        Self {
            path,
            next: stored.max(floor.saturating_add(1)).max(1),
        }
    }

    pub(super) fn next(&mut self) -> u64 {
        let n = self.next;
        self.next = self.next.saturating_add(1);
        // Best effort: the spool's own max seq is the floor after a crash, so a lost write here
        // can only repeat numbers of events that were already delivered and deleted.
        let tmp = self.path.with_extension("tmp");
        if std::fs::write(&tmp, self.next.to_string())
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .is_err()
        {
            log::warn!("cannot persist sequence number to {}", self.path.display());
        }
        n
    }
}

/// Incident events go to the spool, numbered, and wake the reporter.
pub(super) struct Recorder {
    pub(super) spool: Arc<Mutex<Spool>>,
    pub(super) seq: SeqGen,
    pub(super) wake_reporter: Arc<tokio::sync::Notify>,
}

impl EventSink for Recorder {
    fn event(&mut self, inc: &mut Incident, kind: EventKind) {
        let event = inc.take_event(kind, self.seq.next(), now());
        push_event(&self.spool, &self.wake_reporter, event);
    }
}

pub(super) fn push_event(spool: &Mutex<Spool>, wake: &tokio::sync::Notify, event: IncidentEvent) {
    let result = spool
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(&event);
    match result {
        Ok(()) => {
            // Durable now: the journal line tells what the spool acknowledged, with fields.
            let last = event.actions.last();
            let message_id = match event.kind {
                EventKind::Opened => logging::MSG_INCIDENT_OPENED,
                EventKind::Resolved => logging::MSG_INCIDENT_RESOLVED,
                _ => logging::MSG_REMEDIATION,
            };
            log::info!(
                check = event.check.as_str(),
                incident_id = event.incident_id.as_str(),
                action = last.map_or("", |a| a.action.as_str()),
                message_id = message_id;
                "spooled event {} ({} seq {}) of incident {}{}",
                event.event_id,
                event.kind,
                event.seq,
                event.incident_id,
                last.map_or_else(String::new, |a| format!(": {} {}", a.action, a.outcome))
            );
            wake.notify_one();
        }
        Err(e) => log::error!(
            "incident {} event {} ({}) dropped: {e}",
            event.incident_id,
            event.event_id,
            event.kind
        ),
    }
}
