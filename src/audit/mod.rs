//! The audit log: one event per request (every request but `/health`), committed before the
//! response is released.
//!
//! - `middleware`: the layer that opens a request's [`record::AuditTicket`] and, unless a
//!   change already wrote the event in its own transaction, writes it through the writer.
//! - `writer`: [`AuditLog`], the group-commit writer thread.
//! - `record`: turning a request and its response into an event, with secrets redacted.

pub mod middleware;
pub mod record;
pub mod writer;

pub use middleware::current_audit_ticket;
pub use record::Actor;
pub use writer::{AuditError, AuditLog, AuditStats};
