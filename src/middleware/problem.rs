//! Every error is a problem+json body (RFC 9457) with the request id, whoever produced it:
//! - a request refused before routing ([`super::canonical_path::Refused`]) is answered here;
//! - a panic in any inner layer or handler (in the synchronous routing part of `call` or in
//!   its future) becomes a 500 problem, logged with its message;
//! - an error an inner layer returns instead of answering (a session-store failure, say) is
//!   answered with a generic problem for its status, never the inner error's text.
//!   Both leave this layer as an [`Unanswered`] error (the request was consumed by the layer
//!   that failed), which renders itself completely: problem body, request id and security
//!   headers;
//! - actix's own error responses without a JSON body (unknown route 404, 405, 413) get one,
//!   keeping headers such as `Allow`.
//!
//! It sits inside the audit layer, so the audit log records the status the client gets.

use std::panic::AssertUnwindSafe;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use futures_util::FutureExt as _;
use uuid::Uuid;

use super::canonical_path::Refused;
use super::request_id::X_REQUEST_ID;
use super::security_headers::set_security_headers;
use crate::error::{Problem, UNAVAILABLE_RETRY_AFTER_SECS};

/// The layer.
pub async fn problem_bodies(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let refused = req.extensions().get::<Refused>().map(|r| r.0);
    if let Some(status) = refused {
        let detail = match status {
            StatusCode::BAD_REQUEST => "the query must not contain NUL (U+0000) characters",
            _ => "no such resource",
        };
        let problem = Problem::new(status, generic_problem(status).0, detail);
        return Ok(req.into_response(problem.response()));
    }
    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| next.call(req))) {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    match outcome {
        Ok(Ok(res)) => Ok(into_problem_if_error(res.map_into_boxed_body())),
        Ok(Err(err)) => {
            let status = err.as_response_error().status_code();
            if status.is_server_error() {
                tracing::error!(error = %err, "request failed in middleware");
            }
            Err(Unanswered::new(status).into())
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %message, "handler panicked");
            Err(Unanswered::new(StatusCode::INTERNAL_SERVER_ERROR).into())
        }
    }
}

/// An error or panic that no inner layer answered: rendered as a generic problem for its
/// status with the request id and every header a response gets (never the inner error's text,
/// which may hold internals).
#[derive(Debug)]
pub struct Unanswered {
    request_id: Uuid,
    status: StatusCode,
}

impl Unanswered {
    /// The failure of the current request ([`crate::telemetry::current_request_id`]).
    pub fn new(status: StatusCode) -> Self {
        Unanswered {
            request_id: crate::telemetry::current_request_id().unwrap_or_default(),
            status,
        }
    }
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request {} failed with {}", self.request_id, self.status)
    }
}

impl actix_web::ResponseError for Unanswered {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let (slug, detail) = generic_problem(self.status);
        let mut problem = Problem::new(self.status, slug, detail);
        problem.request_id = self.request_id.to_string();
        let mut res = problem.response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        if let Ok(value) = HeaderValue::from_str(&self.request_id.to_string()) {
            res.headers_mut().insert(X_REQUEST_ID, value);
        }
        set_security_headers(res.headers_mut());
        res
    }
}

/// The problem answered for `status` when nothing more specific is known.
fn generic_response(status: StatusCode) -> actix_web::HttpResponse {
    let (slug, detail) = generic_problem(status);
    let mut res = Problem::new(status, slug, detail).response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        res.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
        );
    }
    res
}

fn generic_problem(status: StatusCode) -> (&'static str, String) {
    match status {
        StatusCode::NOT_FOUND => ("not-found", "no such resource".to_owned()),
        StatusCode::BAD_REQUEST => (
            "bad-request",
            "the request cannot be accepted as sent".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this method is not allowed on this resource".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "the request body is too large".to_owned(),
        ),
        s if s.is_server_error() => (
            "internal",
            "an internal error occurred; quote the request id when reporting it".to_owned(),
        ),
        s => (
            "error",
            s.canonical_reason().unwrap_or("error").to_lowercase(),
        ),
    }
}

/// Gives an error response that has no JSON body (actix's own 404, 405, ...) a problem body,
/// keeping headers such as `Allow`. JSON error bodies (problems, `/health`'s 503) pass as is.
fn into_problem_if_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/problem+json") || v.starts_with("application/json")
        });
    if status.as_u16() < 400 || is_json {
        return res;
    }
    let (req, old) = res.into_parts();
    let mut new = generic_response(status);
    for (name, value) in old.headers() {
        if matches!(
            *name,
            header::ALLOW | header::RETRY_AFTER | header::WWW_AUTHENTICATE
        ) || name.as_str().starts_with("access-control-")
        {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, new)
}
