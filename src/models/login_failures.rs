//! `login_failures`: failed logins, counted per username and per client address over a sliding
//! window. Kept in the database so that every instance behind a load balancer sees them.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::login_failures;
use crate::db::DbConnection;

pub fn record_failure(
    conn: &mut DbConnection,
    username: &str,
    client_ip: &str,
    at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::username.eq(username),
            login_failures::client_ip.eq(client_ip),
            login_failures::failed_at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Serialises attempt reservations until the end of the current transaction. SQLite's write
/// transaction already holds the database's one write lock; PostgreSQL takes a transaction-level
/// advisory lock (shared by every instance on the database).
pub fn lock_for_reservation(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    if let DbConnection::Postgres(pg) = conn {
        pg.batch_execute("SELECT pg_advisory_xact_lock(7277017)")?;
    }
    Ok(())
}

/// Whose failures are counted: one username, or one client address.
#[derive(Debug, Clone, Copy)]
pub enum FailureKey<'a> {
    Username(&'a str),
    Client(&'a str),
}

/// The time of the `nth` most recent failure (0-based) for `key` after `since`.
pub fn nth_recent_failure(
    conn: &mut DbConnection,
    key: FailureKey<'_>,
    since: NaiveDateTime,
    nth: i64,
) -> QueryResult<Option<NaiveDateTime>> {
    let mut query = login_failures::table
        .filter(login_failures::failed_at.gt(since))
        .order(login_failures::failed_at.desc())
        .offset(nth)
        .select(login_failures::failed_at)
        .into_boxed();
    query = match key {
        FailureKey::Username(username) => {
            query.filter(login_failures::username.eq(username.to_owned()))
        }
        FailureKey::Client(ip) => query.filter(login_failures::client_ip.eq(ip.to_owned())),
    };
    query.first(conn).optional()
}

/// A successful login resets the username's count.
pub fn clear_username(conn: &mut DbConnection, username: &str) -> QueryResult<()> {
    diesel::delete(login_failures::table.filter(login_failures::username.eq(username)))
        .execute(conn)?;
    Ok(())
}

/// Drops failures older than the window (housekeeping).
pub fn purge_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(login_failures::table.filter(login_failures::failed_at.le(before))).execute(conn)
}
