//! One function per write: create, update, deactivate or delete, revert. Each takes the
//! caller's open transaction, checks the rules a write must keep (unique names, active links,
//! the row version the client read), makes the versioned write and its links, and records the
//! entity's history snapshot (with the request's audit event) through [`Change`]. Handlers,
//! revert and `dummy_data` all write through here, so a revert can never bypass a rule a direct
//! write enforces.
//!
//! Object-level access is the caller's job before calling ([`crate::auth::policy`]); the
//! functions here return `ApiError`s for the rules they keep (409, 412, 422).

pub mod annotations;
pub mod codes;
pub mod datasets;
pub mod images;
pub mod snapshots;
pub mod vocabulary;

pub use crate::history::Change;

use crate::error::ApiError;

/// What a write demands of the row version the client read: RFC 9110 section 13.1.1
/// `If-Match` (parsed by `api::conditional`), or nothing.
#[derive(Debug, Clone, Default)]
pub enum Precondition {
    /// No `If-Match`: the write goes through.
    #[default]
    None,
    /// `If-Match: *`.
    Any,
    /// The versions of the entity tags listed.
    Versions(Vec<i32>),
}

impl Precondition {
    /// 412 unless the entity, now at `version`, satisfies the precondition.
    pub fn check(&self, version: i32) -> Result<(), ApiError> {
        match self {
            Precondition::Versions(v) if !v.contains(&version) => Err(ApiError::PreconditionFailed),
            _ => Ok(()),
        }
    }
}

/// How many times a write is tried against a row that other writes keep changing.
const ATTEMPTS: usize = 16;

/// Runs `attempt` (read the row, check the precondition and the rules, make the versioned
/// write) until it writes. `attempt` answers `Ok(None)` when another change committed between
/// its read and its write (PostgreSQL runs such writes side by side; SQLite never does, its
/// writers queue): it then runs again on the row as it is now. So a write without `If-Match`
/// goes through whatever came first, as the contract says, and one with `If-Match` gets 412
/// from its own precondition check once the version it named is gone. A row that changes
/// under every attempt is a 503.
fn until_written<T>(
    conn: &mut crate::db::DbConnection,
    mut attempt: impl FnMut(&mut crate::db::DbConnection) -> Result<Option<T>, ApiError>,
) -> Result<T, ApiError> {
    for _ in 0..ATTEMPTS {
        if let Some(written) = attempt(conn)? {
            return Ok(written);
        }
    }
    Err(ApiError::Unavailable(
        "the entity kept changing under this write; try again".into(),
    ))
}
