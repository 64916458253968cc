//! One error type for the whole HTTP surface, rendered as RFC 9457 problem+json.
//!
//! - Handlers, extractors and middleware return [`ApiError`]; its variants are the statuses of
//!   the contract. Validation failures carry field errors (`errors`).
//! - Lower layers have their own error types, mapped to statuses here and nowhere else:
//!   diesel's, [`crate::db::DbError`], object storage's and the upload and de-identified copy
//!   errors of [`crate::storage`].
//! - Diesel, pool and blocking-task errors convert centrally here: `NotFound` -> 404, unique
//!   violation -> 409, pool exhausted or database down -> 503, anything else -> 500.
//! - A 500 is logged with its cause chain and answered with the request id only; no SQL, paths
//!   or stack traces reach the client.
//! - actix's own errors (bad JSON, query, path, unknown route, 405, 413) are mapped to this type
//!   by the extractor configs in `startup.rs` and by `middleware::problem`.

use std::collections::BTreeMap;

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Serialize;

/// `Retry-After` (seconds, RFC 9110 section 10.2.3) of every 503: a busy or unreachable
/// database or audit log is usually back within a second or two.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 1;

/// Field name -> messages, as in the `errors` member of a validation problem.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    /// 403 with the problem type `urn:medlabel:problem/withheld`: a file withheld from
    /// researchers because its pixels may show identifying text.
    #[error("{0}")]
    Withheld(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    #[error("the entity changed since it was read (If-Match does not match)")]
    PreconditionFailed,
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("validation failed")]
    Validation(FieldErrors),
    #[error("too many requests; retry after {retry_after} seconds")]
    TooManyRequests { retry_after: u64 },
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl ApiError {
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        ApiError::Internal(err.into())
    }

    pub fn unauthorized() -> Self {
        ApiError::Unauthorized("authentication required".into())
    }

    pub fn forbidden() -> Self {
        ApiError::Forbidden("your role does not allow this".into())
    }

    /// One field error.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.insert(field.to_owned(), vec![message.into()]);
        ApiError::Validation(errors)
    }

    pub fn from_pool(err: diesel::r2d2::PoolError) -> Self {
        tracing::error!(error = %err, "database pool unavailable");
        ApiError::Unavailable("the database is unavailable".into())
    }

    fn slug(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) => "bad-request",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::Withheld(_) => "withheld",
            ApiError::NotFound => "not-found",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed => "precondition-failed",
            ApiError::PayloadTooLarge(_) => "payload-too-large",
            ApiError::UnsupportedMediaType(_) => "unsupported-media-type",
            ApiError::Validation(_) => "validation",
            ApiError::TooManyRequests { .. } => "too-many-requests",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }
}

/// The problem type slug (`urn:medlabel:problem/{slug}`) a response of `status` most often
/// carries, for documentation examples.
pub fn slug_of_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        409 => "conflict",
        412 => "precondition-failed",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        416 => "range-not-satisfiable",
        422 => "validation",
        429 => "too-many-requests",
        503 => "unavailable",
        500..=599 => "internal",
        _ => "error",
    }
}

impl From<DieselError> for ApiError {
    fn from(err: DieselError) -> Self {
        match err {
            DieselError::NotFound => ApiError::NotFound,
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                tracing::debug!(constraint = ?info.constraint_name(), "unique violation");
                ApiError::Conflict("an entity with the same unique value already exists".into())
            }
            ref lock if crate::db::is_lock_contention(lock) => {
                tracing::warn!(error = %lock, "database busy (lock held elsewhere)");
                ApiError::Unavailable("the database is busy; try again".into())
            }
            ref slow if crate::db::is_statement_timeout(slow) => {
                tracing::warn!(error = %slow, "a request's database work ran past its time limit");
                ApiError::Unavailable("the database took too long; try again".into())
            }
            DieselError::DatabaseError(DatabaseErrorKind::ClosedConnection, _) => {
                tracing::error!("database connection closed");
                ApiError::Unavailable("the database is unavailable".into())
            }
            other => ApiError::Internal(other.into()),
        }
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(err: crate::db::DbError) -> Self {
        use crate::db::DbError;
        match err {
            DbError::Busy => ApiError::Unavailable("the database is busy; try again".into()),
            DbError::Pool(err) => ApiError::from_pool(err),
            DbError::Blocking(message) => {
                ApiError::internal(anyhow::anyhow!("blocking task failed: {message}"))
            }
            DbError::Query(err) => err.into(),
        }
    }
}

impl From<object_store::Error> for ApiError {
    fn from(err: object_store::Error) -> Self {
        tracing::error!(error = %err, "object storage failed");
        ApiError::Unavailable("the image storage is unavailable".into())
    }
}

impl From<crate::storage::upload::UploadError> for ApiError {
    fn from(err: crate::storage::upload::UploadError) -> Self {
        use crate::imaging::ImageError;
        use crate::storage::upload::UploadError;
        match err {
            UploadError::Unreadable(_) => ApiError::BadRequest(err.to_string()),
            UploadError::TooLarge(_) => ApiError::PayloadTooLarge(err.to_string()),
            UploadError::Empty => ApiError::field("file", err.to_string()),
            UploadError::Image(
                ImageError::Unsupported
                | ImageError::NotAnImage(_)
                | ImageError::UnsupportedEncoding(_),
            ) => ApiError::UnsupportedMediaType(err.to_string()),
            UploadError::Image(ImageError::HeaderTooLarge(_)) => {
                ApiError::PayloadTooLarge(err.to_string())
            }
            UploadError::Image(other) => ApiError::field("file", other.to_string()),
            UploadError::Store(err) => err.into(),
        }
    }
}

impl From<crate::storage::deidentified::CopyError> for ApiError {
    fn from(err: crate::storage::deidentified::CopyError) -> Self {
        use crate::storage::deidentified::CopyError;
        match err {
            CopyError::Store(err) => {
                tracing::error!(error = %err, "object storage failed");
                ApiError::Unavailable("the image storage is unavailable".into())
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<validator::ValidationErrors> for ApiError {
    /// Field errors keyed by their path: `name`, and for a nested object `filter.modality`,
    /// for a list `codes[1].code`.
    fn from(errs: validator::ValidationErrors) -> Self {
        fn flatten(prefix: &str, errs: &validator::ValidationErrors, out: &mut FieldErrors) {
            use validator::ValidationErrorsKind;
            for (field, kind) in errs.errors() {
                let path = if prefix.is_empty() {
                    field.to_string()
                } else {
                    format!("{prefix}.{field}")
                };
                match kind {
                    ValidationErrorsKind::Field(list) => {
                        let messages = list
                            .iter()
                            .map(|e| match &e.message {
                                Some(m) => m.to_string(),
                                None => format!("is invalid ({})", e.code),
                            })
                            .collect();
                        out.insert(path, messages);
                    }
                    ValidationErrorsKind::Struct(inner) => flatten(&path, inner, out),
                    ValidationErrorsKind::List(items) => {
                        for (index, inner) in items {
                            flatten(&format!("{path}[{index}]"), inner, out);
                        }
                    }
                }
            }
        }
        let mut errors = FieldErrors::new();
        flatten("", &errs, &mut errors);
        ApiError::Validation(errors)
    }
}

/// The problem+json body (RFC 9457).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"type": "urn:medlabel:problem/validation", "title": "Unprocessable Entity", "status": 422, "detail": "validation failed", "request_id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77", "errors": {"name": ["must be 1 to 200 characters"]}}))]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status code, repeated.
    #[schema(value_type = i32, minimum = 100, maximum = 599)]
    pub status: u16,
    pub detail: String,
    pub request_id: String,
    /// Field path (`geometry.points[3]`, `body`) to what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<std::collections::HashMap<String, Vec<String>>>)]
    pub errors: Option<FieldErrors>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("urn:medlabel:problem/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            request_id: crate::telemetry::current_request_id()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            errors: None,
        }
    }

    pub fn response(&self) -> HttpResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut builder = HttpResponse::build(status);
        builder.content_type("application/problem+json");
        if status == StatusCode::UNAUTHORIZED {
            builder.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        builder.body(serde_json::to_string(self).unwrap_or_default())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::Withheld(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let detail = match self {
            ApiError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                "an internal error occurred; quote the request id when reporting it".to_owned()
            }
            ApiError::NotFound => "the resource does not exist or is not visible to you".into(),
            other => other.to_string(),
        };
        let mut problem = Problem::new(status, self.slug(), detail);
        if let ApiError::Validation(errors) = self {
            problem.errors = Some(errors.clone());
        }
        let mut response = problem.response();
        let retry_after = match self {
            ApiError::TooManyRequests { retry_after } => Some(*retry_after),
            ApiError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        };
        if let Some(value) =
            retry_after.and_then(|r| header::HeaderValue::from_str(&r.to_string()).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
