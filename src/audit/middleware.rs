//! The audit layer. For every audited request it opens an [`AuditTicket`] (made the task's
//! [`current_audit_ticket`], so that a change can write the event inside its own transaction),
//! lets the request run, and then, unless a committed change wrote the event already, writes
//! it through the group-commit writer ([`AuditLog`], registered as `web::Data<AuditLog>`). The
//! response is released only once the event is durable; when it cannot be written the answer
//! is 503 (`audit-unavailable`) instead.
//!
//! It sits inside the request id and client address layers (whose facts the event records)
//! and outside the problem layer, so it records the status the client gets, panics included
//! (which reach it as the problem layer's [`Unanswered`] error).

use std::sync::Arc;

use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::record::{is_audited, AuditTicket, RequestFacts};
use super::writer::AuditLog;
use crate::error::{Problem, UNAVAILABLE_RETRY_AFTER_SECS};
use crate::middleware::canonical_path::RequestPath;
use crate::middleware::client_ip::ClientAddress;
use crate::middleware::problem::Unanswered;
use crate::middleware::request_id::RequestId;

tokio::task_local! {
    static TICKET: Option<Arc<AuditTicket>>;
}

/// The audit ticket of the request being served on this task, if it is audited: a change
/// writes the request's event with it, in the change's own transaction.
pub fn current_audit_ticket() -> Option<Arc<AuditTicket>> {
    TICKET.try_with(Clone::clone).ok().flatten()
}

/// The layer.
pub async fn audit<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B, BoxBody>>, actix_web::Error> {
    let ticket = ticket_for(&req).map(Arc::new);
    let log = req.app_data::<web::Data<AuditLog>>().cloned();
    let outcome = TICKET.scope(ticket.clone(), next.call(req)).await;
    let Some(ticket) = ticket else {
        return outcome.map(ServiceResponse::map_into_left_body);
    };
    // An error here is an `Unanswered` failure of the problem layer, which renders itself.
    let status = match &outcome {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    }
    .as_u16();
    if let Some(written) = ticket.written_status() {
        // A committed change wrote the event already.
        if written != status {
            tracing::warn!(
                written,
                answered = status,
                "the change's event names another status than the answer"
            );
        }
        return outcome.map(ServiceResponse::map_into_left_body);
    }
    let event = ticket.event(status, outcome.as_ref().ok().map(|res| res.request()));
    let recorded = match &log {
        Some(log) => log.record(event).await.map_err(|e| e.to_string()),
        None => Err("no audit log is registered".to_owned()),
    };
    if let Err(err) = recorded {
        tracing::error!(error = %err, "request not audited; answering 503");
        let Ok(res) = outcome else {
            return Err(Unanswered::new(StatusCode::SERVICE_UNAVAILABLE).into());
        };
        let (req, _) = res.into_parts();
        let mut unavailable = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit-unavailable",
            "the audit log is unavailable; try again",
        )
        .response();
        unavailable.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(UNAVAILABLE_RETRY_AFTER_SECS),
        );
        return Ok(ServiceResponse::new(req, unavailable).map_into_right_body());
    }
    outcome.map(ServiceResponse::map_into_left_body)
}

/// The ticket of an audited request, from what the outer layers found.
fn ticket_for(req: &ServiceRequest) -> Option<AuditTicket> {
    let extensions = req.extensions();
    let path = extensions.get::<RequestPath>()?;
    if !is_audited(&path.0) {
        return None;
    }
    let id = extensions.get::<RequestId>()?;
    let client = extensions.get::<ClientAddress>()?;
    let facts = RequestFacts::of(
        req.method().as_str(),
        &path.0,
        req.query_string(),
        req.headers(),
    );
    Some(AuditTicket::new(
        facts,
        id.id,
        id.generated,
        client.ip,
        id.started,
    ))
}
