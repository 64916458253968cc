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
//! That is the route on SQLite. On PostgreSQL each change commits in its own transaction on the
//! request pool, with the same savepoint, refusal event and answer-after-commit rules: measured
//! on PostgreSQL, one writer thread waiting out every statement's round trip in turn was half
//! as fast as concurrent transactions, whose WAL flushes PostgreSQL already shares.
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
    route: Route,
    stats: Arc<ChangeStats>,
    limits: Limits,
}

/// How changes reach the database (see `bench/README.md`, "Group commit of changes", for the
/// measurements behind the choice).
#[derive(Clone)]
enum Route {
    /// SQLite: one writer thread commits the changes that arrive together (one WAL fsync for
    /// many requests; SQLite has one writer at a time anyway).
    Batched(mpsc::Sender<Queued>),
    /// PostgreSQL: each change commits in its own transaction on a connection of the request
    /// pool, as a batch of one. Concurrent commits already share WAL flushes in PostgreSQL,
    /// while one writer thread would wait out every statement's round trip in turn.
    PerRequest(Db),
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
        // A change that panics is a 500 of its own (its savepoint rolls back); the writer and
        // the batch go on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| change(conn)))
            .unwrap_or_else(|_| Err(ApiError::internal(anyhow::anyhow!("the change panicked"))));
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
    /// Changes committed one request at a time on `requests` (the request pool): PostgreSQL.
    pub fn per_request(requests: Db) -> Self {
        ChangeWriter {
            route: Route::PerRequest(requests),
            stats: Arc::default(),
            limits: Limits::default(),
        }
    }

    /// Starts the writer thread over `db` (its own pool: the writer never waits behind request
    /// handlers for a connection): SQLite.
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
            route: Route::Batched(queue),
            stats,
            limits,
        }
    }

    /// Runs `change` in the next batch (or, per request, in its own transaction) and answers
    /// its outcome once it has committed. `actor` is the caller, for the event of a change
    /// that fails. Call it on the request's task (the request's audit ticket is taken from
    /// there).
    ///
    /// Errors: the change's own; 503 (`Retry-After`) when the queue is full (or no pooled
    /// connection frees up within 5 s), the writer has stopped or the commit failed.
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
        match &self.route {
            Route::Batched(queue) => queue.try_send(queued).map_err(|_| {
                ApiError::Unavailable(
                    "too many changes are waiting to be written; try again".into(),
                )
            })?,
            Route::PerRequest(db) => {
                let (stats, limits, limit) =
                    (Arc::clone(&self.stats), self.limits, db.statement_timeout());
                db.run(move |conn| {
                    let mut one = VecDeque::from([queued]);
                    let (ran, committed, refused) = commit_changes(conn, limit, &mut one, &limits);
                    release(ran, committed, refused, &stats);
                    Ok::<_, ApiError>(())
                })
                .await?
            }
        }
        answered.await.unwrap_or_else(|_| Err(not_committed()))
    }

    pub fn stats(&self) -> &ChangeStats {
        &self.stats
    }

    /// Changes queued and not yet taken by the writer (none when changes commit per request).
    pub fn queue_depth(&self) -> usize {
        match &self.route {
            Route::Batched(queue) => self.limits.queue - queue.capacity(),
            Route::PerRequest(_) => 0,
        }
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
        // Should anything else panic, the changes it held answer 503 (their answer channels
        // close) and the writer goes on with the next.
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            write_batch(&db, &mut rx, &mut waiting, &limits, &stats)
        }));
        let ran = written.unwrap_or_else(|_| {
            tracing::error!("the change writer panicked; its batch answers 503");
            0
        });
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
                total_changes = changes,
                total_batches = batches,
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
    rx: &mut mpsc::Receiver<Queued>,
    waiting: &mut VecDeque<Queued>,
    limits: &Limits,
    stats: &ChangeStats,
) -> usize {
    let (mut ran, committed, refused) = match db.get_within(Duration::from_secs(1)) {
        Err(err) => {
            tracing::error!(error = %err, "no connection for the change writer");
            (waiting.drain(..).collect(), false, 0)
        }
        Ok(mut conn) => commit_changes(&mut conn, db.statement_timeout(), waiting, limits),
    };
    if !committed && waiting.is_empty() && refused == 0 {
        // Nothing could be committed (a database down, or locked by another process past the
        // busy timeout): everything queued meanwhile would only wait as long again. It
        // answers 503 now; what arrives later tries afresh.
        while let Ok(queued) = rx.try_recv() {
            ran.push(queued);
        }
    }
    let count = ran.len();
    release(ran, committed, refused, stats);
    count
}

/// Runs changes from the front of `waiting` on `conn` in one write transaction, each in its
/// own savepoint under the statement time `limit`, until `limits` say the batch is full, and
/// commits. Returns the changes run, whether they committed, and how many were refused.
fn commit_changes(
    conn: &mut DbConnection,
    limit: Option<Duration>,
    waiting: &mut VecDeque<Queued>,
    limits: &Limits,
) -> (Vec<Queued>, bool, u64) {
    let mut ran: Vec<Queued> = Vec::with_capacity(waiting.len().min(limits.max_batch));
    let mut refused = 0u64;
    let started = Instant::now();
    let outcome = crate::db::write_transaction(conn, |conn| {
        while ran.len() < limits.max_batch && started.elapsed() < limits.max_batch_time {
            let Some(mut queued) = waiting.pop_front() else {
                break;
            };
            let _deadline = Deadline::start(limit);
            let failed = match crate::db::savepoint(conn, |conn| queued.job.run(conn)) {
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
    if let Err(err) = outcome {
        tracing::error!(error = %err, changes = ran.len(), "changes could not be committed");
        if ran.is_empty() {
            // The transaction could not even begin (a lock held by another process past the
            // busy timeout): answer what waits rather than retry forever.
            ran.extend(waiting.drain(..));
        }
        return (ran, false, refused);
    }
    (ran, true, refused)
}

/// Counts a commit of `ran` and releases each change's answer.
fn release(ran: Vec<Queued>, committed: bool, refused: u64, stats: &ChangeStats) {
    stats.batches.fetch_add(1, Ordering::Relaxed);
    metrics::histogram!(crate::telemetry::CHANGES_PER_COMMIT).record(ran.len() as f64);
    if committed {
        stats.refused.fetch_add(refused, Ordering::Relaxed);
        stats
            .committed
            .fetch_add(ran.len() as u64 - refused, Ordering::Relaxed);
    } else {
        stats
            .failures
            .fetch_add(ran.len() as u64, Ordering::Relaxed);
    }
    for queued in ran {
        queued.job.finish(committed);
    }
}

/// Writes the event of a change that failed with `status`, in the batch's transaction (in a
/// savepoint of its own: should the event not go in, the audit layer writes it instead).
fn audit_refusal(conn: &mut DbConnection, queued: &Queued, status: u16) -> diesel::QueryResult<()> {
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

    /// Takes SQLite's write turn on a thread of its own and holds it until the returned sender
    /// is dropped.
    fn hold_write_turn() -> std::sync::mpsc::Sender<()> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, is_held) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _turn = crate::db::sqlite_writer();
            held.send(()).unwrap();
            let _ = released.recv();
        });
        is_held.recv().unwrap();
        release
    }

    type Answer =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<&'static str, ApiError>>>>;

    /// Hands `writer` the change inserting `name` and returns the answer still to come: the
    /// change is in the queue when this returns (the first poll queues it).
    fn queue(writer: &ChangeWriter, name: &'static str, fail: bool) -> Answer {
        let writer = writer.clone();
        polled(Box::pin(async move {
            writer.write(ACTOR, insert(name, fail)).await
        }))
    }

    /// `answer` polled once: its change is in the queue.
    fn polled(mut answer: Answer) -> Answer {
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(answer.as_mut().poll(&mut context).is_pending());
        answer
    }

    /// Waits until the writer has taken every queued change, and a moment more for it to reach
    /// the write turn it will wait on.
    async fn until_taken(writer: &ChangeWriter) {
        for _ in 0..2500 {
            if writer.queue_depth() == 0 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("the writer never took its changes");
    }

    #[actix_web::test]
    async fn changes_waiting_together_share_one_commit_and_fail_alone() {
        let (_dir, db) = database();
        // No time budget: a loaded test machine must not split the batch.
        let limits = Limits {
            max_batch_time: Duration::from_secs(60),
            ..Limits::default()
        };
        let writer = ChangeWriter::start(db.clone(), limits);
        // Hold SQLite's write turn: the writer takes the first change and waits, while the
        // others queue behind it and then run as one batch.
        let turn = hold_write_turn();
        let first = queue(&writer, "first", false);
        until_taken(&writer).await;
        let batch: Vec<Answer> = [("a", false), ("a", false), ("partial", true), ("c", false)]
            .into_iter()
            .map(|(name, fail)| queue(&writer, name, fail))
            .collect();
        assert_eq!(writer.queue_depth(), 4);
        drop(turn);

        assert_eq!(first.await.unwrap(), "first");
        let mut outcomes = Vec::new();
        for answer in batch {
            outcomes.push(answer.await);
        }
        assert_eq!(outcomes[0].as_ref().unwrap(), &"a");
        assert!(
            matches!(outcomes[1], Err(ApiError::Conflict(_))),
            "{outcomes:?}"
        );
        assert!(
            matches!(outcomes[2], Err(ApiError::Validation(_))),
            "{outcomes:?}"
        );
        assert_eq!(outcomes[3].as_ref().unwrap(), &"c");
        assert_eq!(
            names(&db),
            ["a", "c", "first"],
            "refused changes left nothing"
        );
        let stats = writer.stats();
        assert_eq!(
            stats.batches.load(Ordering::Relaxed),
            2,
            "one commit per batch"
        );
        assert_eq!(stats.committed.load(Ordering::Relaxed), 3);
        assert_eq!(stats.refused.load(Ordering::Relaxed), 2);
    }

    #[actix_web::test]
    async fn a_slow_change_ends_its_batch_early() {
        let (_dir, db) = database();
        let limits = Limits {
            max_batch_time: Duration::from_millis(20),
            ..Limits::default()
        };
        let writer = ChangeWriter::start(db.clone(), limits);
        let turn = hold_write_turn();
        let first = queue(&writer, "first", false);
        until_taken(&writer).await;
        let writer_clone = writer.clone();
        let slow = polled(Box::pin(async move {
            writer_clone
                .write(ACTOR, |conn| {
                    std::thread::sleep(Duration::from_millis(100));
                    insert("slow", false)(conn)
                })
                .await
        }));
        let after = [queue(&writer, "x", false), queue(&writer, "y", false)];
        drop(turn);
        first.await.unwrap();
        slow.await.unwrap();
        for answer in after {
            answer.await.unwrap();
        }
        // Without the budget: first | slow, x, y. With it, slow commits alone, past the budget,
        // and x and y go to later batches.
        let batches = writer.stats().batches.load(Ordering::Relaxed);
        assert!(batches >= 3, "{batches} batches");
        assert_eq!(names(&db), ["first", "slow", "x", "y"]);
    }

    #[actix_web::test]
    async fn a_change_that_panics_is_a_500_of_its_own() {
        let (_dir, db) = database();
        let writer = ChangeWriter::start(db.clone(), Limits::default());
        let turn = hold_write_turn();
        let first = queue(&writer, "first", false);
        until_taken(&writer).await;
        let writer_clone = writer.clone();
        let panicking = polled(Box::pin(async move {
            writer_clone
                .write(ACTOR, |conn| {
                    insert("doomed", false)(conn)?;
                    panic!("a bug in a change")
                })
                .await
        }));
        let after = queue(&writer, "after", false);
        drop(turn);
        first.await.unwrap();
        let err = panicking.await.unwrap_err();
        assert_eq!(err.status_code().as_u16(), 500);
        after.await.unwrap();
        assert_eq!(
            names(&db),
            ["after", "first"],
            "the panicking change left nothing"
        );
        assert_eq!(
            writer.write(ACTOR, insert("later", false)).await.unwrap(),
            "later"
        );
    }

    #[actix_web::test]
    async fn only_committed_changes_run_their_on_commit_work() {
        use std::sync::atomic::AtomicBool;
        let (_dir, db) = database();
        let writer = ChangeWriter::start(db.clone(), Limits::default());
        let (kept, dropped) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let turn = hold_write_turn();
        let first = queue(&writer, "first", false);
        until_taken(&writer).await;
        let answers: Vec<Answer> = [(Arc::clone(&kept), false), (Arc::clone(&dropped), true)]
            .into_iter()
            .map(|(flag, fail)| {
                let writer = writer.clone();
                let answer: Answer = Box::pin(async move {
                    writer
                        .write(ACTOR, move |conn| {
                            crate::db::on_commit(move || flag.store(true, Ordering::SeqCst));
                            insert(if fail { "refused" } else { "kept" }, fail)(conn)
                        })
                        .await
                });
                answer
            })
            .map(polled)
            .collect();
        drop(turn);
        first.await.unwrap();
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await);
        }
        assert!(outcomes[0].is_ok() && outcomes[1].is_err(), "{outcomes:?}");
        assert!(
            kept.load(Ordering::SeqCst),
            "the committed change's work ran"
        );
        assert!(
            !dropped.load(Ordering::SeqCst),
            "the refused change's work was dropped"
        );
    }

    #[actix_web::test]
    async fn a_full_queue_answers_503_at_once() {
        let (_dir, db) = database();
        let limits = Limits {
            queue: 2,
            ..Limits::default()
        };
        let writer = ChangeWriter::start(db.clone(), limits);
        let turn = hold_write_turn();
        let mut answers = vec![queue(&writer, "first", false)];
        until_taken(&writer).await;
        answers.push(queue(&writer, "second", false));
        answers.push(queue(&writer, "third", false));
        assert_eq!(writer.queue_depth(), 2);
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
            answer.await.unwrap();
        }
        assert_eq!(names(&db), ["first", "second", "third"]);
    }
}
