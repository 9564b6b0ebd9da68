//! Group-committed writes behind a bounded queue. Handlers `submit` one item each; writer tasks
//! take whatever is queued (up to `max_group_requests`), apply it in one transaction — one fsync
//! for many requests — and answer each request only after that commit. The queue is bounded:
//! when it is full, `submit` fails at once with [`SubmitError::Full`] (→ 429 + `Retry-After`),
//! so overload never grows memory and never becomes a 500.

use crate::metrics::Metrics;
use crate::store::{ItemResult, Store, StoreError, WriteItem, WriteKind, WriteOk};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

/// Most incident events one transaction takes (a group stops growing past this).
const MAX_GROUP_EVENTS: usize = 20_000;

#[derive(Debug)]
struct Job {
    item: WriteItem,
    reply: oneshot::Sender<Result<ItemResult, Arc<StoreError>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the write queue is full")]
    Full,
    #[error("the collector is shutting down")]
    Closed,
    #[error("storage failed")]
    Store(#[source] Arc<StoreError>),
}

/// The handlers' end of the write queue.
#[derive(Debug, Clone)]
pub struct WriteQueue {
    tx: mpsc::Sender<Job>,
    metrics: Arc<Metrics>,
    capacity: usize,
}

/// Starts `writers` writer tasks; they stop when every [`WriteQueue`] clone is dropped and the
/// queue is drained.
pub fn start(
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    capacity: usize,
    max_group: usize,
    writers: usize,
) -> (WriteQueue, Vec<JoinHandle<()>>) {
    let (tx, rx) = mpsc::channel::<Job>(capacity.max(1));
    let rx = Arc::new(Mutex::new(rx));
    let handles = (0..writers.max(1))
        .map(|_| {
            tokio::spawn(writer(
                rx.clone(),
                store.clone(),
                metrics.clone(),
                max_group.max(1),
            ))
        })
        .collect();
    (
        WriteQueue {
            tx,
            metrics,
            capacity: capacity.max(1),
        },
        handles,
    )
}

impl WriteQueue {
    /// Queues one item and waits until it is durable (or refused).
    pub async fn submit(&self, item: WriteItem) -> Result<ItemResult, SubmitError> {
        let (reply, rx) = oneshot::channel();
        match self.tx.try_send(Job { item, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics
                    .inc("netmedic_collector_write_queue_rejected_total", "", 1);
                return Err(SubmitError::Full);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(SubmitError::Closed),
        }
        self.metrics
            .set_queue_depth((self.capacity - self.tx.capacity()) as u64);
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => Err(SubmitError::Store(e)),
            // The writer dropped the job: only on shutdown.
            Err(_) => Err(SubmitError::Closed),
        }
    }
}

/// A writer's metric handles, resolved once (no label parsing per group or item).
struct Counts {
    heartbeats: Counter,
    accepted: Counter,
    duplicates: Counter,
    group_duration: Histogram,
    group_requests: Histogram,
}

impl Counts {
    fn new(metrics: &Metrics) -> Self {
        Self {
            heartbeats: metrics.counter("netmedic_collector_heartbeats_total", ""),
            accepted: metrics.counter("netmedic_collector_events_total", "result=\"accepted\""),
            duplicates: metrics.counter("netmedic_collector_events_total", "result=\"duplicate\""),
            group_duration: metrics
                .histogram_handle("netmedic_collector_write_group_duration_seconds", ""),
            group_requests: metrics.histogram_handle("netmedic_collector_write_group_requests", ""),
        }
    }

    fn count(&self, r: &ItemResult) {
        match r {
            Ok(WriteOk::Report(ack)) => {
                self.accepted.inc_by(u64::from(ack.accepted));
                self.duplicates.inc_by(u64::from(ack.duplicates));
            }
            Ok(WriteOk::Heartbeat(_)) => {
                self.heartbeats.inc();
            }
            Err(_) => {}
        }
    }
}

async fn writer(
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    max_group: usize,
) {
    let counts = Counts::new(&metrics);
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(j) => jobs.push(j),
                None => return,
            }
            let mut events = 0;
            while jobs.len() < max_group && events < MAX_GROUP_EVENTS {
                match rx.try_recv() {
                    Ok(j) => {
                        if let WriteKind::Report(r) = &j.item.kind {
                            events += r.batch.events.len();
                        }
                        jobs.push(j);
                    }
                    Err(_) => break,
                }
            }
            metrics.set_queue_depth(rx.len() as u64);
        }
        commit(&*store, &metrics, &counts, jobs).await;
    }
}

/// Commits a group; if the group fails for a reason other than the database being unavailable,
/// each item is retried alone so one bad item cannot fail its neighbours.
async fn commit(store: &dyn Store, metrics: &Metrics, counts: &Counts, jobs: Vec<Job>) {
    // The items move out of their jobs: a report batch is never copied on its way to storage.
    let (items, replies): (Vec<WriteItem>, Vec<_>) =
        jobs.into_iter().map(|j| (j.item, j.reply)).unzip();
    let started = Instant::now();
    let result = store.write_group(&items).await;
    counts
        .group_duration
        .observe(started.elapsed().as_secs_f64());
    counts.group_requests.observe(items.len() as f64);
    match result {
        Ok(results) => {
            for (reply, r) in replies.into_iter().zip(results) {
                counts.count(&r);
                let _ = reply.send(Ok(r));
            }
        }
        Err(e) => {
            metrics.inc("netmedic_collector_write_errors_total", "", 1);
            if items.len() == 1 || matches!(e, StoreError::Unavailable(_)) {
                log::warn!(
                    "write group of {} failed: {}",
                    items.len(),
                    crate::error_chain(&e)
                );
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
                return;
            }
            for (item, reply) in items.iter().zip(replies) {
                let r = store
                    .write_group(std::slice::from_ref(item))
                    .await
                    .map_err(Arc::new)
                    .and_then(|mut v| {
                        v.pop().ok_or_else(|| {
                            Arc::new(StoreError::Corrupt("empty write result".into()))
                        })
                    });
                if let Ok(r) = &r {
                    counts.count(r);
                }
                let _ = reply.send(r);
            }
        }
    }
}
