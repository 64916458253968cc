//! `groups`: the three roles, seeded by `create-user-groups` and `serve` (never by migrations).

use diesel::prelude::*;

use crate::auth::Role;
use crate::db::schema::groups;
use crate::db::DbConnection;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = groups)]
pub struct Group {
    pub id: i64,
    pub name: String,
    pub description: String,
}

/// Creates the role groups that are missing; returns the names created (idempotent).
pub fn ensure_groups(conn: &mut DbConnection) -> QueryResult<Vec<&'static str>> {
    crate::db::write_transaction(conn, |conn| {
        let existing: Vec<String> = groups::table.select(groups::name).load(conn)?;
        let mut created = Vec::new();
        for role in Role::ALL {
            if !existing.iter().any(|n| n == role.name()) {
                diesel::insert_into(groups::table)
                    .values((
                        groups::name.eq(role.name()),
                        groups::description.eq(role.description()),
                    ))
                    .execute(conn)?;
                created.push(role.name());
            }
        }
        Ok(created)
    })
}

pub fn list_groups(conn: &mut DbConnection) -> QueryResult<Vec<Group>> {
    groups::table
        .order(groups::name)
        .select(Group::as_select())
        .load(conn)
}

/// The ids of the groups for `roles` (the groups must exist).
pub fn group_ids(conn: &mut DbConnection, roles: &[Role]) -> QueryResult<Vec<i64>> {
    let names: Vec<&str> = roles.iter().map(|r| r.name()).collect();
    groups::table
        .filter(groups::name.eq_any(names))
        .select(groups::id)
        .load(conn)
}
