//! `api_tokens`: bearer tokens, stored as SHA-256 digests, expiring and revocable.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::new_uuid;
use super::users::User;
use crate::db::schema::{api_tokens, users};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
pub struct ApiToken {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub name: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub last_used_at: Option<NaiveDateTime>,
}

/// `last_used_at` is refreshed at most this often, so a busy token does not write on every call.
pub const LAST_USED_GRANULARITY_SECS: i64 = 60;

pub fn insert_token(
    conn: &mut DbConnection,
    user_id: i64,
    name: &str,
    token_hash: &str,
    valid_days: i64,
) -> QueryResult<ApiToken> {
    let created_at = now();
    let expires_at = created_at + chrono::TimeDelta::days(valid_days);
    let uuid = new_uuid();
    diesel::insert_into(api_tokens::table)
        .values((
            api_tokens::uuid.eq(&uuid),
            api_tokens::user_id.eq(user_id),
            api_tokens::name.eq(name),
            api_tokens::token_hash.eq(token_hash),
            api_tokens::created_at.eq(created_at),
            api_tokens::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    api_tokens::table
        .filter(api_tokens::uuid.eq(&uuid))
        .select(ApiToken::as_select())
        .first(conn)
}

/// The unexpired token with this digest and its active owner, marking it used.
pub fn authenticate_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> QueryResult<Option<(ApiToken, User)>> {
    let at = now();
    let found: Option<(ApiToken, User)> = api_tokens::table
        .inner_join(users::table)
        .filter(api_tokens::token_hash.eq(token_hash))
        .filter(api_tokens::expires_at.gt(at))
        .filter(users::is_active)
        .select((ApiToken::as_select(), User::as_select()))
        .first(conn)
        .optional()?;
    if let Some((token, _)) = &found {
        let stale = token
            .last_used_at
            .is_none_or(|t| (at - t).num_seconds() >= LAST_USED_GRANULARITY_SECS);
        if stale {
            let updated = diesel::update(api_tokens::table.find(token.id))
                .set(api_tokens::last_used_at.eq(at))
                .execute(conn);
            // `last_used_at` is a hint: a database locked by another process must not turn a
            // read into a refusal (nor wait for the lock twice).
            match updated {
                Err(err) if crate::db::is_lock_contention(&err) => {
                    tracing::debug!(error = %err, "last_used_at not refreshed (database busy)");
                }
                other => {
                    other?;
                }
            }
        }
    }
    Ok(found)
}

pub fn list_user_tokens(conn: &mut DbConnection, user_id: i64) -> QueryResult<Vec<ApiToken>> {
    api_tokens::table
        .filter(api_tokens::user_id.eq(user_id))
        .order(api_tokens::uuid.asc())
        .select(ApiToken::as_select())
        .load(conn)
}

/// Revokes one of the user's tokens; returns false when there is no such token of theirs.
pub fn delete_user_token(conn: &mut DbConnection, user_id: i64, uuid: &str) -> QueryResult<bool> {
    let deleted = diesel::delete(
        api_tokens::table
            .filter(api_tokens::user_id.eq(user_id))
            .filter(api_tokens::uuid.eq(uuid)),
    )
    .execute(conn)?;
    Ok(deleted > 0)
}

/// Revokes every token of a user (deactivation).
pub fn delete_all_user_tokens(conn: &mut DbConnection, user_id: i64) -> QueryResult<usize> {
    diesel::delete(api_tokens::table.filter(api_tokens::user_id.eq(user_id))).execute(conn)
}
