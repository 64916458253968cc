//! `users` and their role memberships (`user_groups`).

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::groups::{Role, RoleSet};
use super::{groups, new_uuid};
use crate::db::schema::{groups as groups_t, user_groups, users};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable, Identifiable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub uuid: String,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub password_hash: String,
    pub is_active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

pub struct NewUser<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub full_name: Option<&'a str>,
    pub email: Option<&'a str>,
    pub roles: &'a [Role],
}

/// Fields a PATCH may change; `None` leaves a field as it is.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub full_name: Option<Option<String>>,
    pub email: Option<Option<String>>,
    pub is_active: Option<bool>,
    pub password_hash: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

/// Inserts a user with its roles (the role groups are created when missing). RETURNING with a
/// `Selectable` does not compile for the multi-backend connection, so the row is read back by
/// its server-generated UUID.
pub fn insert_user(conn: &mut DbConnection, new: NewUser<'_>) -> QueryResult<User> {
    crate::db::write_transaction(conn, |conn| {
        let at = now();
        let uuid = new_uuid();
        diesel::insert_into(users::table)
            .values((
                users::uuid.eq(&uuid),
                users::username.eq(crate::text::nfc(new.username)),
                users::username_key.eq(crate::text::fold_key(new.username)),
                users::full_name.eq(new.full_name),
                users::email.eq(new.email),
                users::password_hash.eq(new.password_hash),
                users::is_active.eq(true),
                users::created_at.eq(at),
                users::updated_at.eq(at),
            ))
            .execute(conn)?;
        let user = find_by_uuid(conn, &uuid)?;
        set_roles(conn, user.id, new.roles)?;
        Ok(user)
    })
}

/// Replaces a user's role memberships.
pub fn set_roles(conn: &mut DbConnection, user_id: i64, roles: &[Role]) -> QueryResult<()> {
    groups::ensure_groups(conn)?;
    diesel::delete(user_groups::table.filter(user_groups::user_id.eq(user_id))).execute(conn)?;
    // One row at a time: batch inserts do not compile for the multi-backend connection.
    for group_id in groups::group_ids(conn, roles)? {
        diesel::insert_into(user_groups::table)
            .values((
                user_groups::user_id.eq(user_id),
                user_groups::group_id.eq(group_id),
            ))
            .execute(conn)?;
    }
    Ok(())
}

pub fn update_user(
    conn: &mut DbConnection,
    user_id: i64,
    mut changes: UserChanges,
) -> QueryResult<User> {
    changes.updated_at = Some(now());
    diesel::update(users::table.find(user_id))
        .set(changes)
        .execute(conn)?;
    find_by_id(conn, user_id)
}

pub fn find_by_id(conn: &mut DbConnection, id: i64) -> QueryResult<User> {
    users::table.find(id).select(User::as_select()).first(conn)
}

pub fn find_by_uuid(conn: &mut DbConnection, uuid: &str) -> QueryResult<User> {
    users::table
        .filter(users::uuid.eq(uuid))
        .select(User::as_select())
        .first(conn)
}

/// Usernames are unique ignoring case.
pub fn find_by_username(conn: &mut DbConnection, username: &str) -> QueryResult<Option<User>> {
    users::table
        .filter(users::username_key.eq(crate::text::fold_key(username)))
        .select(User::as_select())
        .first(conn)
        .optional()
}

pub fn username_taken(conn: &mut DbConnection, username: &str) -> QueryResult<bool> {
    Ok(find_by_username(conn, username)?.is_some())
}

/// A page of users in keyset order (`uuid` ascending, after `after`).
pub fn list_users(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<User>> {
    let mut query = users::table
        .select(User::as_select())
        .order(users::uuid.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(users::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}

/// The roles of each user in `user_ids` (users without a role are absent from the map).
pub fn roles_of(conn: &mut DbConnection, user_ids: &[i64]) -> QueryResult<HashMap<i64, RoleSet>> {
    let rows: Vec<(i64, String)> = user_groups::table
        .inner_join(groups_t::table)
        .filter(user_groups::user_id.eq_any(user_ids))
        .select((user_groups::user_id, groups_t::name))
        .load(conn)?;
    let mut map: HashMap<i64, RoleSet> = HashMap::new();
    for (user_id, name) in rows {
        if let Some(role) = Role::from_name(&name) {
            let set = map.entry(user_id).or_default();
            *set = set.with(role);
        }
    }
    Ok(map)
}

/// One user's roles (a fixed-shape query, so its prepared statement is cached).
pub fn roles_of_user(conn: &mut DbConnection, user_id: i64) -> QueryResult<RoleSet> {
    let names: Vec<String> = user_groups::table
        .inner_join(groups_t::table)
        .filter(user_groups::user_id.eq(user_id))
        .select(groups_t::name)
        .load(conn)?;
    Ok(names.iter().filter_map(|n| Role::from_name(n)).collect())
}

/// Whether any active user holds the admin role.
pub fn active_admin_exists(conn: &mut DbConnection) -> QueryResult<bool> {
    let count: i64 = users::table
        .inner_join(user_groups::table.inner_join(groups_t::table))
        .filter(groups_t::name.eq(Role::Admin.name()))
        .filter(users::is_active)
        .count()
        .get_result(conn)?;
    Ok(count > 0)
}

/// `(uuid, username)` of each user in `ids`: how other entities name their creators, read for
/// a whole page in one query.
pub fn user_refs(
    conn: &mut DbConnection,
    ids: &[i64],
) -> QueryResult<HashMap<i64, (String, String)>> {
    let query = users::table.select((users::id, users::uuid, users::username));
    // `=` for one user keeps the statement cached (see `images::assignments_of`).
    let rows: Vec<(i64, String, String)> = match ids {
        [one] => query.filter(users::id.eq(*one)).load(conn)?,
        _ => query.filter(users::id.eq_any(ids)).load(conn)?,
    };
    Ok(rows
        .into_iter()
        .map(|(id, uuid, name)| (id, (uuid, name)))
        .collect())
}
