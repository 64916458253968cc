//! The HTTP API, one module per resource. Each module has its handlers, its request/response
//! types and a `configure` that registers its routes with the access each one needs.

pub mod auth;
pub mod codes;
pub mod conditional;
pub mod diseases;
pub mod events;
pub mod groups;
pub mod health;
pub mod history;
pub mod images;
pub mod labels;
pub mod pagination;
pub mod uploads;
pub mod users;

use actix_web::web;
use chrono::NaiveDateTime;
use serde::{Deserialize, Deserializer, Serializer};

use crate::error::ApiError;

/// Registers every `/api/v1` route (the scope and its middleware are set up in `startup`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    auth::configure(cfg);
    users::configure(cfg);
    groups::configure(cfg);
    codes::configure(cfg);
    diseases::configure(cfg);
    labels::configure(cfg);
    images::configure(cfg);
    events::configure(cfg);
    history::configure(cfg);
}

/// A path id: anything that is not a UUID names nothing (404). Returns the canonical form.
pub fn parse_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound)
}

/// A timestamp query parameter (RFC 3339); unparseable -> 400.
pub fn parse_timestamp(raw: &str, field: &str) -> Result<NaiveDateTime, ApiError> {
    chrono::DateTime::parse_from_rfc3339(raw.trim())
        .map(|t| t.naive_utc())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{field} must be an RFC 3339 timestamp like 2026-11-21T09:30:00Z"
            ))
        })
}

/// A UUID query parameter, in canonical form; unparseable -> 400 (a path id is 404 instead).
pub fn parse_query_uuid(raw: &str, field: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw.trim())
        .map(|u| u.to_string())
        .map_err(|_| ApiError::BadRequest(format!("{field} must be a UUID")))
}

/// Serialises a UTC timestamp as RFC 3339 with milliseconds: `2026-11-21T09:30:00.123Z`.
pub fn rfc3339<S: Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&at.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

/// Like [`rfc3339`] for optional timestamps (`null` when absent).
pub fn rfc3339_opt<S: Serializer>(at: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

/// For PATCH fields that may be set to `null`: absent -> `None`, `null` -> `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
