//! Who is calling, and what they may do.
//!
//! - [`authenticate`]: a middleware on `/api/v1` that resolves the caller from a bearer token or
//!   the session cookie into a [`CurrentUser`] (kept in request extensions), refuses tokens in the
//!   URL, and applies the CSRF origin check to cookie-authenticated writes.
//! - [`Access`]: the per-route guard, declared where routes are registered.
//! - `password`, `tokens`, `session_store`, `throttle`: the pieces behind them.

pub mod access;
pub mod authenticate;
pub mod password;
pub mod session_store;
pub mod throttle;
pub mod tokens;

use std::fmt;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use serde::{Deserialize, Serialize};

pub use access::Access;
pub use authenticate::authenticate;

use crate::error::ApiError;

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

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthKind {
    Session,
    Token,
}

impl AuthKind {
    pub fn name(self) -> &'static str {
        match self {
            AuthKind::Session => "session",
            AuthKind::Token => "token",
        }
    }
}

/// The authenticated caller, placed in request extensions by [`authenticate`]: the user's row
/// as read while authenticating (so handlers such as `/auth/me` need no second read), its
/// roles, and how it authenticated.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub id: i64,
    pub uuid: String,
    pub username: String,
    pub roles: RoleSet,
    pub auth: AuthKind,
    pub user: std::sync::Arc<crate::models::users::User>,
}

impl CurrentUser {
    pub fn new(user: crate::models::users::User, roles: RoleSet, auth: AuthKind) -> Self {
        CurrentUser {
            id: user.id,
            uuid: user.uuid.clone(),
            username: user.username.clone(),
            roles,
            auth,
            user: std::sync::Arc::new(user),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.contains(Role::Admin)
    }

    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(role)
    }
}

/// Handlers take `CurrentUser` as an argument; a route that has it is behind an [`Access`]
/// guard, so a missing user is a 401.
impl FromRequest for CurrentUser {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<CurrentUser>()
                .cloned()
                .ok_or_else(ApiError::unauthorized),
        )
    }
}
