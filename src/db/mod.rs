//! Database access: one connection type over SQLite and PostgreSQL, an r2d2 pool of it,
//! embedded migrations per backend, and `Db::run`, the only way handlers reach the database
//! (always on the blocking thread pool, never on the async executor).

pub mod schema;

use std::time::Duration;

use anyhow::Context as _;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{self, ManageConnection, Pool, PooledConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

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
}

impl ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        match &self.url {
            DatabaseUrl::Postgres(url) => diesel::PgConnection::establish(url)
                .map(DbConnection::Postgres)
                .map_err(r2d2::Error::ConnectionError),
            DatabaseUrl::Sqlite(path) => {
                let mut conn = diesel::SqliteConnection::establish(path)
                    .map_err(r2d2::Error::ConnectionError)?;
                // WAL lets readers run beside the one writer; FULL sync makes every commit
                // (audit events included) durable before it returns; foreign keys are off by
                // default in SQLite.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
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

/// The pool handed to handlers. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: DbPool,
    backend: Backend,
    /// One permit per pooled connection, handed out first come, first served: requests queue
    /// fairly in async land instead of piling up blocking threads on the pool's condvar, where
    /// wake-ups are unordered and some requests starve.
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    /// The health probe's last outcome.
    health: crate::probe::ProbeCache,
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
        let url = DatabaseUrl::parse(url).map_err(|e| anyhow::anyhow!("DATABASE_URL {e}"))?;
        let backend = match &url {
            DatabaseUrl::Postgres(_) => Backend::Postgres,
            DatabaseUrl::Sqlite(path) => {
                if let Some(dir) = std::path::Path::new(path).parent() {
                    if !dir.as_os_str().is_empty() {
                        std::fs::create_dir_all(dir)
                            .with_context(|| format!("creating {}", dir.display()))?;
                    }
                }
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
            .build_unchecked(ConnectionManager { url, busy_timeout });
        let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(max_size as usize));
        Ok(Db {
            pool,
            backend,
            permits,
            health: Default::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
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
        let permit =
            tokio::time::timeout(Duration::from_secs(5), self.permits.clone().acquire_owned())
                .await
                .map_err(|_| DbError::Busy)?
                .map_err(|e| DbError::Blocking(e.to_string()))?;
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let _permit = permit;
            let mut conn = pool.get().map_err(DbError::from)?;
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
        run_migrations(&mut conn)
    }
}

/// Applies pending migrations of the connection's backend. On PostgreSQL an advisory lock keeps
/// instances that start together from migrating at the same time.
pub fn run_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let applied = match conn {
        DbConnection::Postgres(c) => {
            c.batch_execute("SELECT pg_advisory_lock(7277016)")?;
            let result = c.run_pending_migrations(POSTGRES_MIGRATIONS).map(versions);
            c.batch_execute("SELECT pg_advisory_unlock(7277016)")?;
            result
        }
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    let applied = applied.map_err(|e| anyhow::anyhow!("migration failed: {e}"))?;
    fill_name_keys(conn)?;
    Ok(applied)
}

/// Gives rows written before the folded name keys existed their keys (computed in Rust, so
/// no migration can). A row whose key another row already holds (two names that differed only
/// in case or normalisation) keeps none and is logged: it stays readable, an admin renames it.
pub fn fill_name_keys(conn: &mut DbConnection) -> anyhow::Result<()> {
    use schema::{diseases, labels, users};
    fn fill<F>(conn: &mut DbConnection, table: &str, rows: Vec<(i64, String)>, mut set: F)
    where
        F: FnMut(&mut DbConnection, i64, String) -> QueryResult<usize>,
    {
        for (id, name) in rows {
            if let Err(err) = set(conn, id, crate::text::fold_key(&name)) {
                tracing::warn!(table, id, error = %err, "name key not set (a name equal ignoring case exists); rename this row");
            }
        }
    }
    let rows = users::table
        .filter(users::username_key.is_null())
        .select((users::id, users::username))
        .load(conn)?;
    fill(conn, "users", rows, |conn, id, key| {
        diesel::update(users::table.find(id))
            .set(users::username_key.eq(key))
            .execute(conn)
    });
    let rows = labels::table
        .filter(labels::name_key.is_null())
        .select((labels::id, labels::name))
        .load(conn)?;
    fill(conn, "labels", rows, |conn, id, key| {
        diesel::update(labels::table.find(id))
            .set(labels::name_key.eq(key))
            .execute(conn)
    });
    let rows = diseases::table
        .filter(diseases::name_key.is_null())
        .select((diseases::id, diseases::name))
        .load(conn)?;
    fill(conn, "diseases", rows, |conn, id, key| {
        diesel::update(diseases::table.find(id))
            .set(diseases::name_key.eq(key))
            .execute(conn)
    });
    Ok(())
}

/// Reverts every applied migration (used by the migration round-trip test).
pub fn revert_all_migrations(conn: &mut DbConnection) -> anyhow::Result<Vec<String>> {
    let reverted = match conn {
        DbConnection::Postgres(c) => c.revert_all_migrations(POSTGRES_MIGRATIONS).map(versions),
        DbConnection::Sqlite(c) => c.revert_all_migrations(SQLITE_MIGRATIONS).map(versions),
    };
    reverted.map_err(|e| anyhow::anyhow!("reverting migrations failed: {e}"))
}

fn versions(v: Vec<diesel::migration::MigrationVersion<'_>>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}

/// Runs `f` in a write transaction. On SQLite it begins with `BEGIN IMMEDIATE`, taking the
/// write lock up front (waiting for it under `busy_timeout`): a deferred transaction that reads
/// first and writes later cannot wait for the lock and fails with "database is locked" when
/// another writer got there first. On PostgreSQL it is an ordinary transaction. Transactions
/// opened inside `f` become savepoints.
///
/// Work registered with [`on_commit`] inside the outermost write transaction runs once it has
/// committed, and is dropped when it rolls back.
pub fn write_transaction<T, E, F>(conn: &mut DbConnection, f: F) -> Result<T, E>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
    E: From<diesel::result::Error>,
{
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    if in_transaction(conn)? {
        return conn.transaction(f);
    }
    ON_COMMIT.with_borrow_mut(Vec::clear);
    let outcome = match conn {
        DbConnection::Postgres(_) => conn.transaction(f),
        DbConnection::Sqlite(sqlite) => {
            let _writer = sqlite_writer();
            AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
            let outcome = f(conn);
            if let DbConnection::Sqlite(sqlite) = conn {
                let ended = match &outcome {
                    Ok(_) => AnsiTransactionManager::commit_transaction(sqlite),
                    Err(_) => AnsiTransactionManager::rollback_transaction(sqlite),
                };
                if let Err(err) = ended {
                    ON_COMMIT.with_borrow_mut(Vec::clear);
                    return Err(err.into());
                }
            }
            outcome
        }
    };
    let committed = ON_COMMIT.with_borrow_mut(std::mem::take);
    if outcome.is_ok() {
        committed.into_iter().for_each(|work| work());
    }
    outcome
}

thread_local! {
    /// Work waiting for the outermost write transaction on this thread to commit.
    static ON_COMMIT: std::cell::RefCell<Vec<Box<dyn FnOnce()>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// True while `conn` is inside a transaction.
pub fn in_transaction(conn: &mut DbConnection) -> diesel::QueryResult<bool> {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let depth = match conn {
        DbConnection::Postgres(pg) => {
            AnsiTransactionManager::transaction_manager_status_mut(pg).transaction_depth()?
        }
        DbConnection::Sqlite(sqlite) => {
            AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()?
        }
    };
    Ok(depth.is_some())
}

/// Runs `work` after the current outermost [`write_transaction`] commits (never when it rolls
/// back). Outside one, it is dropped.
pub fn on_commit(work: impl FnOnce() + 'static) {
    ON_COMMIT.with_borrow_mut(|pending| pending.push(Box::new(work)));
}

/// SQLite allows one writer at a time. This process's writers (write transactions and the
/// audit writer) queue for it here, first come first served, instead of in SQLite's busy
/// handler, which polls with growing sleeps (1 to 100 ms) and lets late arrivals overtake: under
/// concurrent writes that polling put the slowest writes hundreds of milliseconds behind. Other
/// processes writing the same file (the CLI next to a server) still wait under `busy_timeout`.
/// One lock per process: a process serves one database (tests, which open many, only queue).
pub fn sqlite_writer() -> parking_lot::FairMutexGuard<'static, ()> {
    static WRITER: parking_lot::FairMutex<()> = parking_lot::const_fair_mutex(());
    WRITER.lock()
}

/// True when a database error means "another transaction holds the lock; try again": SQLite's
/// `SQLITE_BUSY`/`SQLITE_LOCKED` ("database is locked", "database table is locked"), and
/// PostgreSQL's serialization failures, deadlocks and lock time-outs (SQLSTATE 40001, 40P01,
/// 55P03). Answered 503 with `Retry-After`, like an exhausted pool.
pub fn is_lock_contention(err: &diesel::result::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    match err {
        Error::DatabaseError(DatabaseErrorKind::SerializationFailure, _) => true,
        Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("database is locked")
                || message.contains("database table is locked")
                || message.contains("deadlock detected")
                || message.contains("could not obtain lock")
                || message.contains("canceling statement due to lock timeout")
        }
        _ => false,
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
