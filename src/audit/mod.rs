//! The audit log: one event per request (every request but `/health`), committed before the
//! response is released.
//!
//! - `middleware`: the layer that opens a request's [`record::AuditTicket`] and, unless a
//!   change already wrote the event in its own transaction, writes it through the writer.
//! - `writer`: [`AuditLog`], the group-commit writer thread of events.
//! - `change_writer`: [`ChangeWriter`], the group-commit writer thread of changes (with their
//!   events).
//! - `record`: turning a request and its response into an event, with secrets redacted.

pub mod change_writer;
pub mod middleware;
pub mod record;
pub mod writer;

pub use change_writer::{ChangeStats, ChangeWriter};
pub use middleware::current_audit_ticket;
pub use record::Actor;
pub use writer::{AuditError, AuditLog, AuditStats};
