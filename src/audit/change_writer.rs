//! Group commit of changes. A write request hands its change (a closure over the connection,
//! from the `changes` layer) to one writer thread and waits. The writer takes the changes that
//! have arrived together, runs them in one transaction, each in a savepoint of its own, and
//! commits once: one durable commit (one WAL fsync on SQLite) serves the whole batch.
//!
//! - A change that fails (409, 412, 422, ...) rolls back to its savepoint and answers its own
//!   error; the changes before and after it in the batch are kept.
//! - Each request's audit event is written in the same transaction: a change writes its own
//!   through [`crate::history::Change`]; the writer writes the event of a change that failed,
//!   with the status of its error. So no committed change is without its event, and no event
//!   names a change that did not commit.
//! - Nothing is answered before the commit: each request gets its outcome once the batch is
//!   durable, and `503` (`Retry-After`) when the commit fails.
//! - Changes later in a batch see the earlier ones (read-your-writes): two requests creating
//!   one name in one batch give `201` and `409`; two `If-Match` updates of one version give
//!   `200` and `412`.
//! - Bounded: at most [`Limits::max_batch`] changes and [`Limits::max_batch_time`] of work per
//!   commit (the rest go to the next batch); a full queue answers `503` with `Retry-After`.
//!   Uploads stream their file to storage before their row joins a batch.
//!
//! Durability is unchanged: SQLite keeps `synchronous=FULL`, PostgreSQL its defaults
//! (`synchronous_commit=on`). Reads never pass through here.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::ResponseError as _;
use tokio::sync::{mpsc, oneshot};

use super::middleware::current_audit_ticket;
use super::record::{Actor, AuditTicket};
use crate::db::{deadline::Deadline, Db, DbConnection};
use crate::error::ApiError;

/// How big and how long a batch may get.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Changes waiting for the writer, at most; one more is answered 503.
    pub queue: usize,
    /// Changes in one transaction, at most.
    pub max_batch: usize,
    /// Once the changes run in a batch have taken this long, it commits and the changes still
    /// waiting go to the next one: one slow change cannot hold many others for long.
    pub max_batch_time: Duration,
    /// How long a busy writer waits for more changes before starting a batch (only when the
    /// last batch carried several: a lone change is never delayed).
    pub linger: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queue: 2048,
            max_batch: 256,
            max_batch_time: Duration::from_millis(10),
            linger: Duration::from_micros(250),
        }
    }
}

/// Counters of the writer, for measuring the group commit.
#[derive(Debug, Default)]
pub struct ChangeStats {
    /// Changes that committed.
    pub committed: AtomicU64,
    /// Changes that failed on their own (their error was answered; their neighbours kept).
    pub refused: AtomicU64,
    /// Transactions committed (or attempted).
    pub batches: AtomicU64,
    /// Changes lost with a batch that could not commit (answered 503).
    pub failures: AtomicU64,
}

/// The handle requests use; cheap to clone.
#[derive(Clone)]
pub struct ChangeWriter {
    queue: mpsc::Sender<Queued>,
    stats: Arc<ChangeStats>,
    limits: Limits,
}

/// One request's change in the queue, with what the writer needs to audit its failure.
struct Queued {
    job: Box<dyn Job>,
    ticket: Option<Arc<AuditTicket>>,
    actor: Actor,
}

/// A change, type-erased: the writer runs it, then releases its answer.
trait Job: Send {
    /// Runs the change on `conn`, inside its savepoint; on failure, the HTTP status its error
    /// answers.
    fn run(&mut self, conn: &mut DbConnection) -> Result<(), u16>;
    /// Sends the answer: the change's outcome when its batch `committed`, 503 otherwise.
    fn finish(self: Box<Self>, committed: bool);
}

struct Pending<T, F> {
    change: Option<F>,
    outcome: Option<Result<T, ApiError>>,
    answer: oneshot::Sender<Result<T, ApiError>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send,
    F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send,
{
    fn run(&mut self, conn: &mut DbConnection) -> Result<(), u16> {
        let Some(change) = self.change.take() else {
            return Ok(());
        };
        let outcome = change(conn);
        let status = outcome.as_ref().err().map(|e| e.status_code().as_u16());
        self.outcome = Some(outcome);
        status.map_or(Ok(()), Err)
    }

    fn finish(self: Box<Self>, committed: bool) {
        let outcome = match self.outcome {
            // A refused change answers its own error whether or not its batch committed.
            Some(Err(err)) => Err(err),
            Some(Ok(value)) if committed => Ok(value),
            _ => Err(not_committed()),
        };
        let _ = self.answer.send(outcome);
    }
}

fn not_committed() -> ApiError {
    ApiError::Unavailable("the change could not be committed; try again".into())
}

impl ChangeWriter {
    /// Starts the writer thread over `db` (its own pool: the writer never waits behind request
    /// handlers for a connection).
    pub fn start(db: Db, limits: Limits) -> Self {
        let (queue, rx) = mpsc::channel::<Queued>(limits.queue);
        let stats = Arc::new(ChangeStats::default());
        let writer_stats = Arc::clone(&stats);
        let spawned = std::thread::Builder::new()
            .name("change-writer".into())
            .spawn(move || run_writer(db, rx, limits, writer_stats));
        if let Err(err) = spawned {
            tracing::error!(error = %err, "could not start the change writer; writes will answer 503");
        }
        ChangeWriter {
            queue,
            stats,
            limits,
        }
    }

    /// Runs `change` in the next batch and answers its outcome once the batch has committed.
    /// `actor` is the caller, for the event of a change that fails. Call it on the request's
    /// task (the request's audit ticket is taken from there).
    ///
    /// Errors: the change's own; 503 (`Retry-After`) when the queue is full, the writer has
    /// stopped or the batch could not commit.
    pub async fn write<T, F>(&self, actor: Actor, change: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, ApiError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let queued = Queued {
            job: Box::new(Pending {
                change: Some(change),
                outcome: None,
                answer,
            }),
            ticket: current_audit_ticket(),
            actor,
        };
        self.queue.try_send(queued).map_err(|_| {
            ApiError::Unavailable("too many changes are waiting to be written; try again".into())
        })?;
        answered.await.unwrap_or_else(|_| Err(not_committed()))
    }

    pub fn stats(&self) -> &ChangeStats {
        &self.stats
    }

    /// Changes queued and not yet taken by the writer.
    pub fn queue_depth(&self) -> usize {
        self.limits.queue - self.queue.capacity()
    }
}

/// The writer loop: take what has arrived (and what the last batch left), run it as one
/// transaction, release the answers; every 10 s of activity, log the changes per commit.
fn run_writer(db: Db, mut rx: mpsc::Receiver<Queued>, limits: Limits, stats: Arc<ChangeStats>) {
    let mut waiting: VecDeque<Queued> = VecDeque::with_capacity(limits.max_batch);
    let mut busy = false;
    let mut reported = (Instant::now(), 0u64, 0u64);
    loop {
        if waiting.is_empty() {
            match rx.blocking_recv() {
                Some(first) => waiting.push_back(first),
                None => return,
            }
        }
        take_arrived(&mut rx, &mut waiting, limits.max_batch);
        // Under load, wait a moment for the requests already in flight: a commit costs far
        // more than a change, so fuller commits leave more of the disk and CPU for requests.
        if busy && waiting.len() < limits.max_batch {
            std::thread::sleep(limits.linger);
            take_arrived(&mut rx, &mut waiting, limits.max_batch);
        }
        let ran = write_batch(&db, &mut waiting, &limits, &stats);
        busy = ran > 1;
        if reported.0.elapsed() >= Duration::from_secs(10) {
            let (changes, batches) = (
                stats.committed.load(Ordering::Relaxed) + stats.refused.load(Ordering::Relaxed),
                stats.batches.load(Ordering::Relaxed),
            );
            tracing::info!(
                changes = changes - reported.1,
                batches = batches - reported.2,
                mean_batch = (changes - reported.1) as f64 / (batches - reported.2).max(1) as f64,
                "change group commit"
            );
            reported = (Instant::now(), changes, batches);
        }
    }
}

fn take_arrived(rx: &mut mpsc::Receiver<Queued>, waiting: &mut VecDeque<Queued>, max: usize) {
    while waiting.len() < max {
        match rx.try_recv() {
            Ok(next) => waiting.push_back(next),
            Err(_) => break,
        }
    }
}

/// Runs changes from the front of `waiting` in one transaction until the batch is full or has
/// taken [`Limits::max_batch_time`], commits, and answers them. Returns how many it ran.
fn write_batch(
    db: &Db,
    waiting: &mut VecDeque<Queued>,
    limits: &Limits,
    stats: &ChangeStats,
) -> usize {
    let mut ran: Vec<Queued> = Vec::with_capacity(waiting.len().min(limits.max_batch));
    let mut refused = 0u64;
    let committed = match db.get_within(Duration::from_secs(1)) {
        Err(err) => {
            tracing::error!(error = %err, "no connection for the change writer");
            // Fail what is waiting now rather than let it queue behind a dead database.
            ran.extend(waiting.drain(..));
            false
        }
        Ok(mut conn) => {
            let started = Instant::now();
            let limit = db.statement_timeout();
            let outcome = crate::db::write_transaction(&mut conn, |conn| {
                while ran.len() < limits.max_batch && started.elapsed() < limits.max_batch_time {
                    let Some(mut queued) = waiting.pop_front() else {
                        break;
                    };
                    let _deadline = Deadline::start(limit);
                    let run = crate::db::savepoint(conn, |conn| queued.job.run(conn));
                    let failed = match run {
                        Ok(Ok(())) => None,
                        Ok(Err(status)) => Some(status),
                        Err(err) => {
                            // The savepoint itself failed: the transaction is lost.
                            ran.push(queued);
                            return Err(err);
                        }
                    };
                    if let Some(status) = failed {
                        refused += 1;
                        audit_refusal(conn, &queued, status)?;
                    }
                    ran.push(queued);
                }
                Ok::<_, diesel::result::Error>(())
            });
            match outcome {
                Ok(()) => true,
                Err(err) => {
                    tracing::error!(error = %err, changes = ran.len(), "a batch of changes could not be committed");
                    if ran.is_empty() {
                        // The transaction could not even begin (a lock held by another process
                        // past the busy timeout): answer what waits rather than retry forever.
                        ran.extend(waiting.drain(..));
                    }
                    false
                }
            }
        }
    };
    stats.batches.fetch_add(1, Ordering::Relaxed);
    metrics::histogram!(crate::telemetry::CHANGES_PER_COMMIT).record(ran.len() as f64);
    if committed {
        stats.refused.fetch_add(refused, Ordering::Relaxed);
        stats
            .committed
            .fetch_add(ran.len() as u64 - refused, Ordering::Relaxed);
    } else {
        stats.failures.fetch_add(ran.len() as u64, Ordering::Relaxed);
    }
    let count = ran.len();
    for queued in ran {
        queued.job.finish(committed);
    }
    count
}

/// Writes the event of a change that failed with `status`, in the batch's transaction (in a
/// savepoint of its own: should the event not go in, the audit layer writes it instead).
fn audit_refusal(
    conn: &mut DbConnection,
    queued: &Queued,
    status: u16,
) -> diesel::QueryResult<()> {
    let Some(ticket) = &queued.ticket else {
        return Ok(());
    };
    if ticket.written_status().is_some() {
        return Ok(());
    }
    let event = ticket.event_with(status, Some(queued.actor.user_id), queued.actor.auth, None);
    let inserted = crate::db::savepoint(conn, |conn| {
        crate::models::events::insert_event_in_change(conn, &event)
    })?;
    if inserted.is_ok() {
        let ticket = Arc::clone(ticket);
        crate::db::on_commit(move || ticket.mark_written(status));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use actix_web::ResponseError as _;
    use diesel::connection::SimpleConnection as _;
    use diesel::prelude::*;

    use super::*;

    /// An unmigrated SQLite file with one table of unique names.
    fn database() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("changes.db").display());
        let db = Db::connect(&url, 2).unwrap();
        db.get()
            .unwrap()
            .batch_execute("CREATE TABLE names (name TEXT PRIMARY KEY)")
            .unwrap();
        (dir, db)
    }

    /// A change inserting `name` (409 when it exists), then failing with 422 when `fail`.
    fn insert(
        name: &'static str,
        fail: bool,
    ) -> impl FnOnce(&mut DbConnection) -> Result<&'static str, ApiError> + Send {
        move |conn| {
            diesel::sql_query("INSERT INTO names (name) VALUES (?)")
                .bind::<diesel::sql_types::Text, _>(name)
                .execute(conn)
                .map_err(|err| match err {
                    diesel::result::Error::DatabaseError(
                        diesel::result::DatabaseErrorKind::UniqueViolation,
                        _,
                    ) => ApiError::Conflict(format!("{name} exists")),
                    other => other.into(),
                })?;
            if fail {
                return Err(ApiError::field("name", "refused after writing"));
            }
            Ok(name)
        }
    }

    fn names(db: &Db) -> Vec<String> {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            name: String,
        }
        diesel::sql_query("SELECT name FROM names ORDER BY name")
            .load::<Row>(&mut db.get().unwrap())
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect()
    }

    const ACTOR: Actor = Actor {
        user_id: 1,
        auth: "token",
    };

    /// Waits until the writer has taken every queued change.
    async fn until_queue_is(writer: &ChangeWriter, depth: usize) {
        for _ in 0..500 {
            if writer.queue_depth() == depth {
                // Give the writer thread time to reach the lock it will wait on.
                tokio::time::sleep(Duration::from_millis(30)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("queue depth {} never became {depth}", writer.queue_depth());
    }

    #[actix_web::test]
    async fn changes_waiting_together_share_one_commit_and_fail_alone() {
        let (_dir, db) = database();
        let writer = ChangeWriter::start(db.clone(), Limits::default());
        // Hold SQLite's write turn: the writer takes the first change and waits, while the
        // others queue behind it and then run as one batch.
        let turn = crate::db::sqlite_writer();
        let first = tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(ACTOR, insert("first", false)).await }
        });
        until_queue_is(&writer, 0).await;
        let batch: Vec<_> = [("a", false), ("a", false), ("partial", true), ("c", false)]
            .into_iter()
            .map(|(name, fail)| {
                let writer = writer.clone();
                tokio::spawn(async move { writer.write(ACTOR, insert(name, fail)).await })
            })
            .collect();
        until_queue_is(&writer, 4).await;
        drop(turn);

        assert_eq!(first.await.unwrap().unwrap(), "first");
        let mut outcomes = Vec::new();
        for answer in batch {
            outcomes.push(answer.await.unwrap());
        }
        assert_eq!(outcomes[0].as_ref().unwrap(), &"a");
        assert!(matches!(outcomes[1], Err(ApiError::Conflict(_))), "{outcomes:?}");
        assert!(matches!(outcomes[2], Err(ApiError::Validation(_))), "{outcomes:?}");
        assert_eq!(outcomes[3].as_ref().unwrap(), &"c");
        assert_eq!(names(&db), ["a", "c", "first"], "refused changes left nothing");
        let stats = writer.stats();
        assert_eq!(stats.batches.load(Ordering::Relaxed), 2, "one commit per batch");
        assert_eq!(stats.committed.load(Ordering::Relaxed), 3);
        assert_eq!(stats.refused.load(Ordering::Relaxed), 2);
    }

    #[actix_web::test]
    async fn a_full_queue_answers_503_at_once() {
        let (_dir, db) = database();
        let limits = Limits {
            queue: 2,
            ..Limits::default()
        };
        let writer = ChangeWriter::start(db.clone(), limits);
        let turn = crate::db::sqlite_writer();
        let mut answers = vec![tokio::spawn({
            let writer = writer.clone();
            async move { writer.write(ACTOR, insert("first", false)).await }
        })];
        until_queue_is(&writer, 0).await;
        for name in ["second", "third"] {
            let writer = writer.clone();
            answers.push(tokio::spawn(async move {
                writer.write(ACTOR, insert(name, false)).await
            }));
        }
        until_queue_is(&writer, 2).await;
        let refused = writer.write(ACTOR, insert("fourth", false)).await;
        match refused {
            Err(err @ ApiError::Unavailable(_)) => {
                assert_eq!(err.status_code().as_u16(), 503);
                assert!(err.error_response().headers().contains_key("retry-after"));
            }
            other => panic!("expected 503, got {other:?}"),
        }
        drop(turn);
        for answer in answers {
            answer.await.unwrap().unwrap();
        }
        assert_eq!(names(&db), ["first", "second", "third"]);
    }
}
