//! Batched incident events on SQLite and on a real PostgreSQL server: concurrent batches of one
//! device (PostgreSQL runs two writers, whose groups serialise on the device's advisory lock)
//! assemble every event into the incident, and a full batch updating hundreds of stored
//! incidents (read back by key, merged, upserted) stores each event once, also when resent.
//! An update that moves an incident in the lists (category, severity, start) is stored whole,
//! one that does not (resolving, counting an event) leaves the indexed columns as they were
//! (SQLite) — and either way the lists and the detail agree with the events.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestServer, action, backend_stories, batch, detail, event, report, ts};
use netmedic_collector::store::{IncidentFilter, ListOrder};
use netmedic_proto::{
    ActionId, ActionOutcome, Category, EventKind, IncidentStatus, IncidentView, ReportAck, Severity,
};

backend_stories!(
    concurrent_batches_of_one_device_assemble_every_event,
    a_full_batch_updates_every_stored_incident_and_a_resend_stores_nothing,
    every_merge_keeps_the_incident_in_the_right_lists,
);

/// The first page of the incidents `filter` lists.
async fn listed(s: &TestServer, filter: IncidentFilter) -> Vec<IncidentView> {
    s.store()
        .list_incidents(&filter, 50, None)
        .await
        .unwrap()
        .incidents
}

/// One incident through the three forms of the incident write (SQLite; PostgreSQL writes every
/// column each time): an `updated` event that changes its category, severity and start (every
/// column written), a `resolved` event (the status and the unindexed columns) and a later
/// `updated` event (the unindexed columns only). After each, the stored row and the filtered
/// and ordered lists agree with the events.
async fn every_merge_keeps_the_incident_in_the_right_lists(b: Backend) {
    let s = b.start(|_| {}).await;
    let d = "cpe-0220";
    let t = s.enrol(d).await;
    let send = |e| {
        let (s, t) = (&s, &t);
        async move { report(s, t, &batch(d, vec![e])).await.accepted }
    };
    let by = |category: Option<Category>, status: Option<IncidentStatus>, order| IncidentFilter {
        agent_id: Some(d.into()),
        category,
        status,
        order,
        ..IncidentFilter::default()
    };
    assert_eq!(send(event("u-1", "inc-u", 1, EventKind::Opened)).await, 1);
    // Events from u-2 on: another category, severity and start than u-1's.
    let moved = |id: &str, seq, kind| {
        let mut e = event(id, "inc-u", seq, kind);
        e.category = Category::DnsFailure;
        e.severity = Severity::Minor;
        e.started_at = ts(-30);
        e
    };
    assert_eq!(send(moved("u-2", 2, EventKind::Updated)).await, 1);
    let v = detail(&s, d, "inc-u").await.incident;
    assert_eq!(
        (
            v.category,
            v.severity,
            v.started_at,
            v.status,
            v.event_count
        ),
        (
            Category::DnsFailure,
            Severity::Minor,
            ts(-30),
            IncidentStatus::Open,
            2
        )
    );
    let old_category = by(Some(Category::NoInternet), None, ListOrder::Newest);
    assert!(listed(&s, old_category.clone()).await.is_empty());
    let new_category = by(Some(Category::DnsFailure), None, ListOrder::Newest);
    assert_eq!(listed(&s, new_category.clone()).await.len(), 1);
    let open = by(None, Some(IncidentStatus::Open), ListOrder::Newest);
    let page = listed(&s, by(None, None, ListOrder::Severity)).await;
    assert_eq!(page[0].severity, Severity::Minor);
    assert_eq!(listed(&s, open.clone()).await.len(), 1);

    assert_eq!(send(moved("u-3", 3, EventKind::Resolved)).await, 1);
    let v = detail(&s, d, "inc-u").await.incident;
    assert_eq!(
        (v.status, v.resolved_at, v.auto_healed, v.event_count),
        (IncidentStatus::Resolved, Some(ts(30)), Some(true), 3)
    );
    assert!(listed(&s, open.clone()).await.is_empty());
    let done = by(
        Some(Category::DnsFailure),
        Some(IncidentStatus::Resolved),
        ListOrder::Oldest,
    );
    assert_eq!(listed(&s, done.clone()).await.len(), 1);

    let mut later = moved("u-4", 4, EventKind::Updated);
    later.summary = "resolver answers again".into();
    assert_eq!(send(later).await, 1);
    let v = detail(&s, d, "inc-u").await.incident;
    assert_eq!(
        (
            v.summary.as_str(),
            v.event_count,
            v.status,
            v.category,
            v.severity,
            v.started_at
        ),
        (
            "resolver answers again",
            4,
            IncidentStatus::Resolved,
            Category::DnsFailure,
            Severity::Minor,
            ts(-30)
        )
    );
    assert_eq!(listed(&s, done).await.len(), 1);
    assert_eq!(listed(&s, new_category).await[0].summary, v.summary);
    assert!(listed(&s, old_category).await.is_empty());
    assert!(listed(&s, open).await.is_empty());
    s.stop().await;
}

/// Three devices, each with one open incident, then 8 batches of 2 `updated` events per
/// device sent at once (24 requests in flight, one batch resent beside its original), one
/// request per write group so that PostgreSQL's two writers write batches of one device at the
/// same time. Every event ends up counted in its incident exactly once.
async fn concurrent_batches_of_one_device_assemble_every_event(b: Backend) {
    let s = b
        .start(|c| {
            c.ingest.max_group_requests = 1;
            c.ingest.writers = 2;
        })
        .await;
    let devices = ["cpe-0201", "cpe-0202", "cpe-0203"];
    let mut tokens = Vec::new();
    for d in devices {
        let t = s.enrol(d).await;
        let opened = event(&format!("{d}-ev-1"), "inc-c", 1, EventKind::Opened);
        assert_eq!(report(&s, &t, &batch(d, vec![opened])).await.accepted, 1);
        tokens.push(t);
    }
    let mut sends = Vec::new();
    for (d, t) in devices.iter().zip(&tokens) {
        for k in 0..8u64 {
            let seq = 2 + 2 * k;
            let events = vec![
                event(&format!("{d}-ev-{seq}"), "inc-c", seq, EventKind::Updated),
                event(
                    &format!("{d}-ev-{}", seq + 1),
                    "inc-c",
                    seq + 1,
                    EventKind::Updated,
                ),
            ];
            sends.push((batch(d, events), t.clone()));
        }
    }
    // The first batch of the first device once more, in flight with its original.
    sends.push(sends[0].clone());
    let acks: Vec<ReportAck> =
        futures::future::join_all(sends.iter().map(|(batch, token)| report(&s, token, batch)))
            .await;
    let accepted: u32 = acks.iter().map(|a| a.accepted).sum();
    let duplicates: u32 = acks.iter().map(|a| a.duplicates).sum();
    assert_eq!((accepted, duplicates), (48, 2));
    for a in &acks {
        assert_eq!(a.acked_event_ids.len(), 2);
    }
    for d in devices {
        let inc = detail(&s, d, "inc-c").await;
        assert_eq!(inc.incident.event_count, 17, "{d}");
        assert_eq!(inc.incident.status, IncidentStatus::Open, "{d}");
        assert_eq!(inc.events.len(), 17, "{d}");
        assert_eq!(inc.incident.summary, "no default route (event 17)", "{d}");
    }
    assert_eq!(s.count("events").await, 3 * 17);
    assert_eq!(s.count("incidents").await, 3);
    s.stop().await;
}

/// 250 incidents opened in one batch, then resolved in a second one (one of them with an
/// action): every stored incident is read back by its key, merged and written again; the
/// resend of the second batch is acked with every id and stores nothing.
async fn a_full_batch_updates_every_stored_incident_and_a_resend_stores_nothing(b: Backend) {
    let s = b.start(|_| {}).await;
    let d = "cpe-0210";
    let token = s.enrol(d).await;
    let opened: Vec<_> = (0..250)
        .map(|i| event(&format!("o-{i}"), &format!("inc-{i}"), 1, EventKind::Opened))
        .collect();
    let ack = report(&s, &token, &batch(d, opened)).await;
    assert_eq!((ack.accepted, ack.duplicates), (250, 0));
    let mut resolved: Vec<_> = (0..250)
        .map(|i| {
            event(
                &format!("r-{i}"),
                &format!("inc-{i}"),
                2,
                EventKind::Resolved,
            )
        })
        .collect();
    resolved[249].actions = vec![action(ActionId::RestoreRoute, ActionOutcome::Done, 15)];
    let second = batch(d, resolved);
    let ack = report(&s, &token, &second).await;
    assert_eq!((ack.accepted, ack.duplicates), (250, 0));
    let rows = s.total_rows().await;
    let again = report(&s, &token, &second).await;
    assert_eq!((again.accepted, again.duplicates), (0, 250));
    assert_eq!(again.acked_event_ids, ack.acked_event_ids);
    assert_eq!(s.total_rows().await, rows);
    for i in [0, 124, 249] {
        let inc = detail(&s, d, &format!("inc-{i}")).await;
        assert_eq!(inc.incident.status, IncidentStatus::Resolved, "inc-{i}");
        assert_eq!(inc.incident.event_count, 2, "inc-{i}");
        assert_eq!(inc.incident.actions.len(), usize::from(i == 249), "inc-{i}");
    }
    assert_eq!(s.count("events").await, 500);
    assert_eq!(s.count("incidents").await, 250);
    assert_eq!(s.count("incident_actions").await, 1);
    s.stop().await;
}
