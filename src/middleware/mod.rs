//! The HTTP layers around every request, outermost first (assembled in `startup`):
//!
//! 0. `metrics`: requests counted and timed by method, route template and status;
//! 1. `security_headers`: the contract's security headers on every response;
//! 2. `canonical_path`: the one form of the path that routing, audit and logs use (or a
//!    refusal: a path that is not UTF-8, a query holding NUL);
//! 3. `request_id`: the request id, its tracing span and `X-Request-Id`;
//! 4. `client_ip`: the client address, through trusted proxies only;
//! 5. the audit layer ([`crate::audit::middleware`]): the request's event, committed before
//!    the answer;
//! 6. `problem`: panics and errors of every inner layer answered as problem+json;
//! 7. `canonical_path::head_as_get`: HEAD routed as GET;
//!
//! then CORS, sessions, identity and authentication ([`crate::auth::authenticate`]) on
//! `/api/v1`. Each layer passes what it found to the next in request extensions.

pub mod canonical_path;
pub mod client_ip;
pub mod metrics;
pub mod problem;
pub mod request_id;
pub mod security_headers;
