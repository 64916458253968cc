//! Database access: one connection type over SQLite and PostgreSQL, an r2d2 pool of it,
//! embedded migrations per backend, and `Db::run`, the only way handlers reach the database
//! (always on the blocking thread pool, never on the async executor).

pub mod deadline;
pub mod migrations;
pub mod schema;
pub mod transactions;

pub use migrations::{fill_name_keys, revert_all_migrations, run_migrations};
pub use transactions::{
    in_transaction, is_lock_contention, is_statement_timeout, on_commit, savepoint, sqlite_writer,
    write_transaction,
};

use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};

/// What can go wrong reaching the database around a query (the query's own errors are
/// diesel's). Handlers' error type converts from it (`ApiError`, in `error.rs`: busy and
/// unreachable are 503, a failed blocking task is 500).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// Every connection stayed in use for the whole wait.
    #[error("the database is busy; try again")]
    Busy,
    /// No connection could be opened or checked out.
    #[error("no database connection: {0}")]
    Pool(#[from] r2d2::PoolError),
    /// The blocking task running the work failed or was cancelled.
    #[error("the blocking database task failed: {0}")]
    Blocking(String),
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
}

/// One connection type for both backends; the variant is chosen from the URL scheme.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

impl DbConnection {
    pub fn backend(&self) -> Backend {
        match self {
            DbConnection::Postgres(_) => Backend::Postgres,
            DbConnection::Sqlite(_) => Backend::Sqlite,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Where the database is, parsed from `DATABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// `postgres://` or `postgresql://`, passed to libpq as is.
    Postgres(String),
    /// `sqlite://PATH`: a file path (relative to the working directory, or absolute).
    Sqlite(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(DatabaseUrl::Postgres(url.to_owned()))
        } else if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() || path.contains(":memory:") {
                return Err("sqlite:// needs a file path (in-memory databases are per connection; use a temp file)".into());
            }
            Ok(DatabaseUrl::Sqlite(path.to_owned()))
        } else {
            Err("must start with sqlite:// or postgres://".into())
        }
    }
}

/// Opens connections of the configured backend and prepares each one (SQLite pragmas).
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    url: DatabaseUrl,
    busy_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for this pool's connections (`None`: the server's).
    statement_timeout: Option<Duration>,
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => {
                let mut conn =
                    diesel::PgConnection::establish(url).map_err(r2d2::Error::ConnectionError)?;
                if let Some(limit) = self.statement_timeout {
                    conn.batch_execute(&format!("SET statement_timeout = {}", limit.as_millis()))
                        .map_err(r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Postgres(conn))
            }
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; FULL sync makes every commit
                // (audit events included) durable before it returns; foreign keys are off by
                // default in SQLite. Temporary files in memory: the statement journal that
                // lets a savepoint roll back (one per change in a group commit) is written
                // there rather than to a temporary file; it is never needed after a crash.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                     PRAGMA temp_store = MEMORY;",
                    self.busy_timeout.as_millis()
                ))
                .map_err(r2d2::Error::QueryError)?;
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        conn.batch_execute("SELECT 1")
            .map_err(r2d2::Error::QueryError)
    }

    /// A connection is dropped rather than pooled again when it was in use on a thread that
    /// is panicking, or when it still holds an open (or failed) transaction: handed to the
    /// next request it would hold SQLite's write lock, and that request's
    /// [`write_transaction`] would only open a savepoint that never commits.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        std::thread::panicking()
            || match conn {
                DbConnection::Postgres(pg) => {
                    AnsiTransactionManager::is_broken_transaction_manager(pg)
                }
                DbConnection::Sqlite(sqlite) => {
                    AnsiTransactionManager::is_broken_transaction_manager(sqlite)
                }
            }
    }
}

pub type DbPool = Pool<ConnectionManager>;
pub type PooledDb = PooledConnection<ConnectionManager>;

/// A snapshot of a [`Db`]'s pool (see [`Db::pool_state`]).
#[derive(Debug, Clone, Copy)]
pub struct PoolState {
    pub in_use: u32,
    pub idle: u32,
    pub waiting: usize,
}

/// See [`Db::startup_lock`].
pub struct StartupLock(StartupHold);

enum StartupHold {
    Postgres(PooledDb),
    /// Closing the file releases the lock.
    File(#[allow(dead_code)] std::fs::File),
}

impl Drop for StartupLock {
    fn drop(&mut self) {
        use diesel::connection::SimpleConnection as _;
        if let StartupHold::Postgres(conn) = &mut self.0 {
            let _ = conn.batch_execute("SELECT pg_advisory_unlock(7277017)");
        }
    }
}

/// Counts a request waiting for a connection while it lives.
struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a std::sync::atomic::AtomicUsize) -> Self {
        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The pool handed to handlers. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    backend: Backend,
    /// One permit per pooled connection, handed out first come, first served: requests queue
    /// fairly in async land instead of piling up blocking threads on the pool's condvar, where
    /// wake-ups are unordered and some requests starve.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// The SQLite file (`None` on PostgreSQL).
    sqlite_path: Option<std::path::PathBuf>,
    /// Requests waiting for a permit now (for `/metrics`).
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// The health probe's last outcome.
    health: crate::probe::ProbeCache,
    /// How long one [`Db::run`] may keep the database busy (`None`: no limit).
    statement_timeout: Option<Duration>,
}

impl Db {
    /// Builds the pool (without opening every connection up front), with SQLite's default
    /// busy timeout of 10 s.
    pub fn connect(url: &str, max_size: u32) -> anyhow::Result<Self> {
        Self::connect_with(url, max_size, Duration::from_secs(10))
    }

    /// Like [`Db::connect`]; on SQLite a statement waits at most `busy_timeout` for a lock
    /// another process holds, then fails as [`is_lock_contention`] recognises.
    pub fn connect_with(url: &str, max_size: u32, busy_timeout: Duration) -> anyhow::Result<Self> {
        Self::connect_limited(url, max_size, busy_timeout, None)
    }

    /// Like [`Db::connect_with`], for request handlers: each [`Db::run`]'s statements stop
    /// after `statement_timeout` (PostgreSQL `statement_timeout`, SQLite [`deadline`]) and
    /// fail; the request answers 503.
    pub fn connect_limited(
        url: &str,
        max_size: u32,
        busy_timeout: Duration,
        statement_timeout: Option<Duration>,
    ) -> anyhow::Result<Self> {
        let url = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))?;
        let sqlite_path = match &url {
            DatabaseUrl::Sqlite(path) => Some(std::path::PathBuf::from(path)),
            DatabaseUrl::Postgres(_) => None,
        };
        let backend = match &url {
            DatabaseUrl::Postgres(_) => Backend::Postgres,
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                }
                deadline::install();
                Backend::Sqlite
            }
        };
        // Unchecked: the service starts (and /health answers 503) while the database is down;
        // commands that need it fail on their first query with the cause.
        let pool = Pool::builder()
            .max_size(max_size)
            .min_idle(None) // keep the whole pool open: no connection set-up under a burst
            .connection_timeout(Duration::from_secs(5))
            .test_on_check_out(false)
            .build_unchecked(ConnectionManager {
                url,
                busy_timeout,
                statement_timeout,
            });
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(max_size as usize));
        Ok(Db {
            pool,
            backend,
            permits,
            sqlite_path,
            waiting: Default::default(),
            health: Default::default(),
            statement_timeout,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// How long one unit of request work may keep the database busy (`None`: no limit): what
    /// [`Db::run`] enforces, and what the change writer enforces per change.
    pub fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    /// The pool now: connections in use, idle connections, and requests waiting for one.
    pub fn pool_state(&self) -> PoolState {
        let state = self.pool.state();
        PoolState {
            in_use: state.connections.saturating_sub(state.idle_connections),
            idle: state.idle_connections,
            waiting: self.waiting.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// Serialises the start-up steps after migrating (groups, code systems, the bundled code
    /// lists, the first admin) among instances that start together on one database, until
    /// the guard drops: on PostgreSQL a session advisory lock held by one connection; on
    /// SQLite an exclusive `flock(2)` on `<database>.startup-lock` beside it (waited for).
    /// Each step checks before it writes, so the instance that waits finds the work done.
    pub fn startup_lock(&self) -> anyhow::Result<StartupLock> {
        use diesel::connection::SimpleConnection as _;
        if let Some(path) = &self.sqlite_path {
            use std::os::fd::AsRawFd as _;
            let mut name = path.as_os_str().to_owned();
            name.push(".startup-lock");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(std::path::PathBuf::from(name))
                .context("opening the start-up lock file")?;
            // SAFETY: `file` is an open descriptor for the whole call.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                anyhow::bail!(
                    "taking the start-up lock: {}",
                    std::io::Error::last_os_error()
                );
            }
            return Ok(StartupLock(StartupHold::File(file)));
        }
        let mut conn = self.get()?;
        // Another instance may hold the lock for as long as its start takes: no statement or
        // lock time limit for this wait (`SET LOCAL` ends with the transaction; the advisory
        // lock is the session's and stays).
        let taken = conn.batch_execute(
            "BEGIN; SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0; \
             SELECT pg_advisory_lock(7277017); COMMIT",
        );
        if let Err(err) = taken {
            let _ = conn.batch_execute("ROLLBACK");
            return Err(err).context("taking the start-up lock");
        }
        Ok(StartupLock(StartupHold::Postgres(conn)))
    }

    /// A connection for synchronous callers (CLI, startup). Handlers use [`Db::run`].
    pub fn get(&self) -> anyhow::Result<PooledDb> {
        self.pool.get().context("getting a database connection")
    }

    /// Like [`Db::get`], giving up after `timeout` (the audit writer must fail fast).
    pub fn get_within(&self, timeout: Duration) -> anyhow::Result<PooledDb> {
        self.pool
            .get_timeout(timeout)
            .context("getting a database connection")
    }

    /// Runs `f` with a pooled connection on the blocking thread pool. `f`'s error type `E`
    /// (handlers use `ApiError`) takes [`DbError`]s too: a wait of more than 5 s for a
    /// connection is [`DbError::Busy`].
    pub async fn run<F, T, E>(&self, f: F) -> Result<T, E>
    where
        F: FnOnce(&mut DbConnection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<DbError> + Send + 'static,
    {
        let permit = {
            let _waiting = Waiting::enter(&self.waiting);
            tokio::time::timeout(Duration::from_secs(5), self.permits.clone().acquire_owned())
                .await
                .map_err(|_| DbError::Busy)?
                .map_err(|e| DbError::Blocking(e.to_string()))?
        };
        let pool = self.pool.clone();
        let limit = self.statement_timeout;
        actix_web::web::block(move || {
            let _permit = permit;
            let mut conn = pool.get().map_err(DbError::from)?;
            let _deadline = deadline::Deadline::start(limit);
            f(&mut conn)
        })
        .await
        .map_err(|e| DbError::Blocking(e.to_string()))?
    }

    /// Like [`Db::run`] for work that only queries: diesel's errors, and [`DbError`]s.
    pub async fn query<F, T>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut DbConnection) -> diesel::QueryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.run(move |conn| f(conn).map_err(DbError::from)).await
    }

    /// Whether the database takes writes now: on SQLite the write lock is taken and released
    /// (`BEGIN IMMEDIATE; ROLLBACK`, waiting at most the busy timeout for another process);
    /// on PostgreSQL, whose writers lock rows rather than the database, a query answers.
    /// Rate-limited by [`crate::probe::ProbeCache`].
    pub async fn is_healthy(&self) -> bool {
        let db = self.clone();
        self.health
            .check(|| async move {
                let probed = db
                    .run(|conn| {
                        match conn {
                            DbConnection::Postgres(pg) => pg.batch_execute("SELECT 1")?,
                            DbConnection::Sqlite(sqlite) => {
                                let _writer = sqlite_writer();
                                sqlite.batch_execute("BEGIN IMMEDIATE; ROLLBACK")?;
                            }
                        }
                        Ok::<_, DbError>(())
                    })
                    .await;
                if let Err(err) = &probed {
                    tracing::warn!(error = %err, "database health probe failed");
                }
                probed.is_ok()
            })
            .await
    }

    /// Applies pending migrations; returns the versions applied.
    pub fn migrate(&self) -> anyhow::Result<Vec<String>> {
        let mut conn = self.get()?;
        // Migrations may rewrite large tables: no request time limit on PostgreSQL.
        let limited =
            matches!(*conn, DbConnection::Postgres(_)) && self.statement_timeout.is_some();
        if limited {
            conn.batch_execute("SET statement_timeout = 0")?;
        }
        let applied = run_migrations(&mut conn);
        if let (true, Some(limit)) = (limited, self.statement_timeout) {
            conn.batch_execute(&format!("SET statement_timeout = {}", limit.as_millis()))?;
        }
        applied
    }
}

/// `at` rounded up to a whole multiple of `unit` (a microsecond, a millisecond): the smallest
/// such instant not before `at`.
pub fn ceil_to(at: chrono::NaiveDateTime, unit: chrono::TimeDelta) -> chrono::NaiveDateTime {
    let floor = chrono::DurationRound::duration_trunc(at, unit).unwrap_or(at);
    if floor == at {
        at
    } else {
        floor + unit
    }
}

/// The current time in UTC, truncated to milliseconds (the precision the API shows) so that both backends store and return
/// exactly the same value.
pub fn now() -> chrono::NaiveDateTime {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::milliseconds(1)).unwrap_or(now)
}
