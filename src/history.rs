//! Recording history: every create, update, delete and revert of an image (metadata and label
//! set), a label, a disease or a code appends one JSON snapshot of the entity as it is after
//! the change, inside the same database transaction as the change itself. A change that fails
//! leaves no entry; an entry never exists without its change.

use serde::Serialize;

use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::middleware::request_context::current_request_id;
use crate::models::history::insert_history;

/// The shape of snapshots written now. A release that changes an entity's shape bumps this
/// and keeps reading (and reverting) every older version.
pub const SCHEMA_VERSION: i32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Image,
    Label,
    Disease,
    Code,
}

impl EntityType {
    pub fn name(self) -> &'static str {
        match self {
            EntityType::Image => "image",
            EntityType::Label => "label",
            EntityType::Disease => "disease",
            EntityType::Code => "code",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            EntityType::Image,
            EntityType::Label,
            EntityType::Disease,
            EntityType::Code,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Revert,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
            Action::Revert => "revert",
        }
    }
}

/// Who changes something, and in which request (so an entry links to its audit event).
#[derive(Debug, Clone)]
pub struct Change {
    pub user_id: i64,
    pub request_id: String,
}

impl Change {
    /// The change the current request makes (read on the request's task, before moving to a
    /// blocking thread).
    pub fn by(caller: &CurrentUser) -> Self {
        Change {
            user_id: caller.id,
            request_id: current_request_id()
                .map(|id| id.to_string())
                .unwrap_or_default(),
        }
    }

    /// Appends the entry for `entity` after `action`.
    pub fn record(
        &self,
        conn: &mut DbConnection,
        entity: EntityType,
        entity_id: &str,
        action: Action,
        snapshot: &impl Serialize,
    ) -> Result<(), ApiError> {
        let json = serde_json::to_string(snapshot).map_err(ApiError::internal)?;
        insert_history(
            conn,
            entity.name(),
            entity_id,
            action.name(),
            SCHEMA_VERSION,
            &json,
            self.user_id,
            &self.request_id,
        )?;
        Ok(())
    }
}
