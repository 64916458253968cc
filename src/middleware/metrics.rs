//! The metrics layer (outermost): counts every request and observes its duration, labelled by
//! method, route template (`/api/v1/images/{id}`, never the raw path, so the number of series
//! stays bounded; `unmatched` for paths no route serves; `other` for methods outside RFC 9110)
//! and status.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;

use crate::telemetry::{HTTP_DURATION, HTTP_REQUESTS};

pub async fn record<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let started = std::time::Instant::now();
    // Only the methods of RFC 9110 (and PATCH) become labels: a client inventing methods must
    // not grow the number of series.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" | "TRACE"
        | "CONNECT") => m.to_owned(),
        _ => "other".to_owned(),
    };
    let route = req.match_pattern();
    let outcome = next.call(req).await;
    let status = match &outcome {
        Ok(res) => res.status(),
        Err(err) => err.as_response_error().status_code(),
    };
    let labels = [
        ("method", method),
        ("route", route.unwrap_or_else(|| "unmatched".to_owned())),
        ("status", status.as_u16().to_string()),
    ];
    metrics::counter!(HTTP_REQUESTS, &labels).increment(1);
    metrics::histogram!(HTTP_DURATION, &labels).record(started.elapsed().as_secs_f64());
    outcome
}
