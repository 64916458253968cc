//! The request id: a client's `X-Request-Id` is kept when it is a UUID, otherwise a UUID v7 is
//! chosen. The id is put in request extensions ([`RequestId`]) and made the task's
//! [`crate::telemetry::current_request_id`] for everything inside; every response carries it
//! back in `X-Request-Id`; the request runs inside a tracing span that names it, and one
//! `served` line with status and duration is logged when it ends.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use tracing::Instrument as _;
use uuid::Uuid;

use super::canonical_path::RequestPath;

/// `X-Request-Id`.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in request extensions.
#[derive(Debug, Clone, Copy)]
pub struct RequestId {
    pub id: Uuid,
    /// True when the server chose the id (the client sent none, or one that is not a UUID).
    pub generated: bool,
    /// When the request arrived.
    pub started: Instant,
}

/// The layer.
pub async fn assign_request_id(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let chosen = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok());
    let id = chosen.unwrap_or_else(Uuid::now_v7);
    req.extensions_mut().insert(RequestId {
        id,
        generated: chosen.is_none(),
        started,
    });
    let path = req
        .extensions()
        .get::<RequestPath>()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let span =
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path);
    let outcome = crate::telemetry::with_request_id(id, next.call(req))
        .instrument(span.clone())
        .await;
    // An error here renders itself, with the request id ([`super::problem::Unanswered`]).
    let status = match &outcome {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    tracing::info!(
        parent: &span,
        status = status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "served"
    );
    let mut res = outcome?;
    if let Ok(value) = HeaderValue::from_str(&id.to_string()) {
        res.headers_mut().insert(X_REQUEST_ID, value);
    }
    Ok(res)
}
