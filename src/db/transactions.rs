//! Write transactions: SQLite's one writer at a time, taken up front and in arrival order;
//! work that runs only once a transaction commits; recognising lock contention.

use diesel::prelude::*;

use super::DbConnection;

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
        return savepoint(conn, f)?;
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

/// Runs `f` in a savepoint of the transaction open on `conn` (SQL `SAVEPOINT`; SQLite and
/// PostgreSQL alike): when `f` fails, what it wrote is rolled back (`ROLLBACK TO`) and the
/// work it registered with [`on_commit`] is dropped, while the enclosing transaction goes on.
///
/// The outer `Err` is the savepoint's own failure (it could not be opened, released or rolled
/// back to): the enclosing transaction is then lost and must be rolled back. The inner result
/// is `f`'s.
pub fn savepoint<T, E, F>(conn: &mut DbConnection, f: F) -> diesel::QueryResult<Result<T, E>>
where
    F: FnOnce(&mut DbConnection) -> Result<T, E>,
{
    use diesel::connection::{Connection, TransactionManager};
    type Manager = <DbConnection as Connection>::TransactionManager;
    let registered = ON_COMMIT.with_borrow(Vec::len);
    Manager::begin_transaction(conn)?;
    let outcome = f(conn);
    match &outcome {
        Ok(_) => Manager::commit_transaction(conn)?,
        Err(_) => {
            ON_COMMIT.with_borrow_mut(|pending| pending.truncate(registered));
            Manager::rollback_transaction(conn)?;
        }
    }
    Ok(outcome)
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

/// True when a statement was stopped by its time limit ([`super::deadline`]): PostgreSQL's
/// `statement_timeout` (SQLSTATE 57014, "canceling statement due to statement timeout") or
/// SQLite's interrupt ("interrupted").
pub fn is_statement_timeout(err: &diesel::result::Error) -> bool {
    match err {
        diesel::result::Error::DatabaseError(_, info) => {
            let message = info.message();
            message.contains("canceling statement due to statement timeout")
                || message == "interrupted"
        }
        _ => false,
    }
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
