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
pub mod policy;
pub mod session_store;
pub mod throttle;
pub mod tokens;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};

pub use crate::models::groups::{Role, RoleSet};
pub use access::Access;
pub use authenticate::authenticate;

use crate::error::ApiError;

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
    /// The caller as audit events name them.
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor {
            user_id: self.id,
            auth: self.auth.name(),
        }
    }

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

/// A caller for unit tests: user `id` (uuid and username `u{id}`) holding `roles`.
#[cfg(test)]
pub(crate) fn test_user(id: i64, roles: &[Role]) -> CurrentUser {
    let at = chrono::NaiveDateTime::default();
    let row = crate::models::users::User {
        id,
        uuid: format!("u{id}"),
        username: format!("u{id}"),
        full_name: None,
        email: None,
        password_hash: String::new(),
        is_active: true,
        created_at: at,
        updated_at: at,
    };
    CurrentUser::new(row, roles.iter().copied().collect(), AuthKind::Token)
}
