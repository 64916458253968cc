//! `groups`: the three roles, seeded by `create-user-groups` and `serve` (never by migrations).

use std::fmt;

use diesel::prelude::*;
use serde::{Deserialize, Serialize};

use crate::db::schema::groups;
use crate::db::DbConnection;

/// The three roles, stored as groups of the same name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Doctor,
    Researcher,
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Doctor, Role::Researcher, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::Researcher => "researcher",
            Role::Admin => "admin",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Role::Doctor => "Clinicians: upload their own images and label them with diagnoses",
            Role::Researcher => "Read every image de-identified; curate labels, diseases and codes",
            Role::Admin => "Manage users and groups; full access to everything",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u8 {
        match self {
            Role::Doctor => 1,
            Role::Researcher => 2,
            Role::Admin => 4,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of roles; a user with several has the union of their permissions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoleSet(u8);

impl RoleSet {
    pub const fn empty() -> Self {
        RoleSet(0)
    }

    pub fn with(mut self, role: Role) -> Self {
        self.0 |= role.bit();
        self
    }

    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    pub fn intersects(self, other: RoleSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn names(self) -> Vec<&'static str> {
        Role::ALL
            .into_iter()
            .filter(|r| self.contains(*r))
            .map(Role::name)
            .collect()
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<I: IntoIterator<Item = Role>>(iter: I) -> Self {
        iter.into_iter().fold(RoleSet::empty(), RoleSet::with)
    }
}

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
