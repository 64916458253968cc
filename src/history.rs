//! Recording history: every create, update, delete and revert of an image (metadata and label
//! set), an annotation, a label, a disease or a code appends one JSON snapshot of the entity as it is after
//! the change, inside the same database transaction as the change itself. A change that fails
//! leaves no entry; an entry never exists without its change. The audit event of the request
//! that made the change is written in the same transaction too: a committed change always has
//! its event, even when the process dies before answering.

use std::sync::Arc;

use serde::Serialize;

use crate::audit::current_audit_ticket;
use crate::audit::record::{write_with_change, AuditTicket};
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::models::history::insert_history;
use crate::telemetry::current_request_id;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityType {
    Image,
    Label,
    Disease,
    Code,
    Annotation,
}

impl EntityType {
    pub fn name(self) -> &'static str {
        match self {
            EntityType::Image => "image",
            EntityType::Label => "label",
            EntityType::Disease => "disease",
            EntityType::Code => "code",
            EntityType::Annotation => "annotation",
        }
    }

    /// The shape version of this entity's snapshots written now. A release that changes an
    /// entity's shape bumps its number and keeps reading (and reverting) every older version
    /// (`changes::snapshots`). Images are at 2 (patient, study and series fields added).
    pub fn schema_version(self) -> i32 {
        match self {
            EntityType::Image => 2,
            EntityType::Label | EntityType::Disease | EntityType::Code | EntityType::Annotation => {
                1
            }
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [
            EntityType::Image,
            EntityType::Label,
            EntityType::Disease,
            EntityType::Code,
            EntityType::Annotation,
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
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub user_id: i64,
    pub request_id: String,
    /// The request's audit: its event is written in the change's transaction.
    audit: Option<Arc<AuditTicket>>,
    /// How the caller authenticated (`session`, `token`), for the event.
    auth: &'static str,
    /// The status the request answers when the change succeeds; by default 201 for a create,
    /// 204 for a delete, 200 otherwise.
    answer: Option<u16>,
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
            audit: current_audit_ticket(),
            auth: caller.auth.name(),
            answer: None,
        }
    }

    /// A change made outside any request (the CLI, demo data): no audit event.
    pub fn offline(user_id: i64, request_id: String) -> Self {
        Change {
            user_id,
            request_id,
            ..Default::default()
        }
    }

    /// The status the request answers when this change succeeds, where the action does not
    /// say (assigning a label is an `update` of the image answered 201).
    pub fn answering(mut self, status: u16) -> Self {
        self.answer = Some(status);
        self
    }

    /// Appends the entry for `entity` after `action`, and the request's audit event, on
    /// `conn` (inside the change's transaction). A snapshot that cannot be serialised is
    /// diesel's `SerializationError`.
    pub fn record(
        &self,
        conn: &mut DbConnection,
        entity: EntityType,
        entity_id: &str,
        action: Action,
        snapshot: &impl Serialize,
    ) -> diesel::QueryResult<()> {
        let json = serde_json::to_string(snapshot)
            .map_err(|e| diesel::result::Error::SerializationError(Box::new(e)))?;
        insert_history(
            conn,
            entity.name(),
            entity_id,
            action.name(),
            entity.schema_version(),
            &json,
            self.user_id,
            &self.request_id,
        )?;
        if let Some(ticket) = &self.audit {
            let status = self.answer.unwrap_or(match action {
                Action::Create => 201,
                Action::Delete => 204,
                Action::Update | Action::Revert => 200,
            });
            write_with_change(conn, ticket, status, self.user_id, self.auth)?;
        }
        Ok(())
    }
}
