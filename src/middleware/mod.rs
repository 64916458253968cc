//! Cross-cutting HTTP middleware.
//!
//! - `request_context`: the outermost layer: request id, client address, tracing span, panic
//!   guard, problem+json for every error, and the security headers.

pub mod request_context;
