//! Responses many operations document alike, declared once for their OpenAPI annotations
//! (`responses(..., StaleIfMatch)`). The problems every operation can answer (400, 401, 403,
//! 404, 422, 500, 503) are added to every operation by `openapi::ProblemResponses`.

/// The 412 of every write that honours `If-Match` (RFC 9110 section 13.1.1), documented once.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 412,
    description = "Stale If-Match",
    content_type = "application/problem+json"
)]
pub struct StaleIfMatch(#[allow(dead_code)] crate::error::Problem);

/// The 409 of a vocabulary write whose name an active term has, documented once.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 409,
    description = "Name taken",
    content_type = "application/problem+json"
)]
pub struct NameTaken(#[allow(dead_code)] crate::error::Problem);
