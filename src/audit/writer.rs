//! The group-commit writer of audit events. Requests hand their event to one writer thread
//! through a bounded queue and wait; the writer takes every event that has arrived (up to a
//! batch limit), commits them in one transaction, and releases each waiting request. One
//! commit (one fsync) serves many requests, and no request is answered before its event is
//! durable. When events cannot be written (database down, queue full), the waiting requests
//! are told so and answer 503 instead of answering unaudited.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::models::events::{self, NewEvent};

/// Events waiting for the writer, at most.
const QUEUE: usize = 8192;
/// Events in one transaction, at most.
const MAX_BATCH: usize = 512;
/// How long a busy writer waits for more events before committing.
const LINGER: Duration = Duration::from_micros(500);

struct Pending {
    event: NewEvent,
    done: oneshot::Sender<bool>,
}

/// Counters for measuring the group commit.
#[derive(Debug, Default)]
pub struct AuditStats {
    pub events: AtomicU64,
    pub batches: AtomicU64,
    pub failures: AtomicU64,
}

#[derive(Clone)]
pub struct AuditLog {
    queue: mpsc::Sender<Pending>,
    stats: Arc<AuditStats>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the audit log is not keeping up (queue full)")]
    Busy,
    #[error("the audit log could not be written")]
    Unavailable,
}

impl AuditLog {
    /// Starts the writer thread over the given database.
    pub fn start(db: Db) -> Self {
        let (queue, rx) = mpsc::channel::<Pending>(QUEUE);
        let stats = Arc::new(AuditStats::default());
        let writer_stats = Arc::clone(&stats);
        let spawned = std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || run_writer(db, rx, writer_stats));
        if let Err(err) = spawned {
            tracing::error!(error = %err, "could not start the audit writer; requests will answer 503");
        }
        AuditLog { queue, stats }
    }

    /// Queues an event and waits until it is committed.
    pub async fn record(&self, event: NewEvent) -> Result<(), AuditError> {
        let (done, committed) = oneshot::channel();
        self.queue
            .try_send(Pending { event, done })
            .map_err(|_| AuditError::Busy)?;
        match committed.await {
            Ok(true) => Ok(()),
            _ => Err(AuditError::Unavailable),
        }
    }

    pub fn stats(&self) -> &AuditStats {
        &self.stats
    }

    /// Events queued and not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        QUEUE - self.queue.capacity()
    }
}

/// The writer loop: take what has arrived, commit it at once, release the waiters; every 10 s
/// of activity, log how many events each commit carried.
fn run_writer(db: Db, mut rx: mpsc::Receiver<Pending>, stats: Arc<AuditStats>) {
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    let mut rows: Vec<NewEvent> = Vec::with_capacity(MAX_BATCH);
    let mut reported = (std::time::Instant::now(), 0u64, 0u64);
    let mut busy = false;
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        drain(&mut rx, &mut batch);
        // Under load (the last commit carried several events), wait a moment for the requests
        // already in flight: a commit costs far more than an event, so fewer, fuller commits
        // leave more CPU for requests. A lone request is never delayed.
        if busy && batch.len() < MAX_BATCH {
            std::thread::sleep(LINGER);
            drain(&mut rx, &mut batch);
        }
        busy = batch.len() > 1;
        rows.extend(batch.iter().map(|p| p.event.clone()));
        let written = write_batch(&db, &rows);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        metrics::histogram!(crate::telemetry::AUDIT_EVENTS_PER_COMMIT).record(rows.len() as f64);
        let counter = if written {
            &stats.events
        } else {
            &stats.failures
        };
        counter.fetch_add(rows.len() as u64, Ordering::Relaxed);
        for pending in batch.drain(..) {
            let _ = pending.done.send(written);
        }
        rows.clear();
        if reported.0.elapsed() >= Duration::from_secs(10) {
            let (events, batches) = (
                stats.events.load(Ordering::Relaxed),
                stats.batches.load(Ordering::Relaxed),
            );
            tracing::info!(
                events = events - reported.1,
                batches = batches - reported.2,
                mean_batch = (events - reported.1) as f64 / (batches - reported.2).max(1) as f64,
                total_events = events,
                total_batches = batches,
                "audit group commit"
            );
            reported = (std::time::Instant::now(), events, batches);
        }
    }
}

fn drain(rx: &mut mpsc::Receiver<Pending>, batch: &mut Vec<Pending>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

fn write_batch(db: &Db, rows: &[NewEvent]) -> bool {
    // A short retry rides out a dropped connection; a lock held elsewhere was already waited
    // for (the busy timeout) and is not waited for twice; a database that stays down fails the
    // batch.
    for attempt in 0..2 {
        let result = db.get_within(Duration::from_secs(1)).and_then(|mut conn| {
            events::insert_events(&mut conn, rows).map_err(|err| {
                let busy = crate::db::is_lock_contention(&err);
                anyhow::Error::from(err).context(if busy { "busy" } else { "insert" })
            })
        });
        match result {
            Ok(()) => return true,
            Err(err) => {
                tracing::error!(error = %err, attempt, events = rows.len(), "writing audit events failed");
                if err.to_string() == "busy" {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50 << attempt));
            }
        }
    }
    false
}
