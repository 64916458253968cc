//! `sessions`: server-side session state behind the cookie. Rows are keyed by the SHA-256 of
//! the session key; ending a session is deleting its row, so a saved cookie is refused after.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::db::schema::sessions;
use crate::db::DbConnection;

/// The session's state (JSON object of strings) if it exists and has not expired.
pub fn load_session(
    conn: &mut DbConnection,
    key_hash: &str,
    at: NaiveDateTime,
) -> QueryResult<Option<String>> {
    sessions::table
        .filter(sessions::key_hash.eq(key_hash))
        .filter(sessions::expires_at.gt(at))
        .select(sessions::state)
        .first(conn)
        .optional()
}

pub fn insert_session(
    conn: &mut DbConnection,
    key_hash: &str,
    user_id: Option<i64>,
    state: &str,
    at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<()> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::key_hash.eq(key_hash),
            sessions::user_id.eq(user_id),
            sessions::state.eq(state),
            sessions::created_at.eq(at),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Updates a live session's state and expiry; returns false when the session is gone.
pub fn update_session(
    conn: &mut DbConnection,
    key_hash: &str,
    state: Option<&str>,
    at: NaiveDateTime,
    expires_at: NaiveDateTime,
) -> QueryResult<bool> {
    let target = sessions::table
        .filter(sessions::key_hash.eq(key_hash))
        .filter(sessions::expires_at.gt(at));
    let updated = match state {
        Some(state) => diesel::update(target)
            .set((
                sessions::state.eq(state),
                sessions::expires_at.eq(expires_at),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set(sessions::expires_at.eq(expires_at))
            .execute(conn)?,
    };
    Ok(updated > 0)
}

pub fn delete_session(conn: &mut DbConnection, key_hash: &str) -> QueryResult<()> {
    diesel::delete(sessions::table.filter(sessions::key_hash.eq(key_hash))).execute(conn)?;
    Ok(())
}

/// Ends every session of a user (deactivation, password change).
pub fn delete_user_sessions(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(conn)
}

pub fn purge_expired_sessions(conn: &mut DbConnection, at: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(at))).execute(conn)
}
