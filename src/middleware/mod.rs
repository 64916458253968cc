//! Cross-cutting HTTP middleware.
//!
//! - `canonical_path`: the one form of a request path that routing, audit and headers use.
//!
//! - `request_context`: the outermost layer: request id, client address, tracing span, panic
//!   guard, problem+json for every error, and the security headers.

pub mod canonical_path;
pub mod request_context;
