//! Reading requests: the JSON body extractor (objects only, no NUL anywhere), path ids, query
//! parameters (UUIDs, RFC 3339 time bounds) and the name validator shared by request types.
//! Every function answers bad input with the problem the contract names (404 for a path id,
//! 400 or 422 for the rest).

use actix_web::web;
use chrono::NaiveDateTime;

use crate::error::ApiError;

/// A JSON request body: like `web::Json` (same limits, content type and error mapping), but it
/// must be a JSON object. (serde would otherwise fill a struct from an array, positionally.)
pub struct JsonBody<T>(pub T);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = futures_util::future::LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(
        req: &actix_web::HttpRequest,
        payload: &mut actix_web::dev::Payload,
    ) -> Self::Future {
        let json = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = json.await?.into_inner();
            if !value.is_object() {
                return Err(ApiError::field("body", "must be a JSON object").into());
            }
            if let Some(field) = field_with_nul(&value, "") {
                return Err(ApiError::field(&field, NUL_MESSAGE).into());
            }
            serde_json::from_value(value)
                .map(JsonBody)
                .map_err(|e| ApiError::field("body", e.to_string()).into())
        })
    }
}

/// The message for text holding U+0000 (PostgreSQL cannot store it; no name needs it).
pub const NUL_MESSAGE: &str = "must not contain NUL (U+0000) characters";

/// The first member (dotted path, `codes.0.code`) of a JSON body whose string value or key
/// holds a NUL character, if any. Every JSON body is checked here, before any handler runs.
fn field_with_nul(value: &serde_json::Value, at: &str) -> Option<String> {
    let join = |name: &str| {
        if at.is_empty() {
            name.to_owned()
        } else {
            format!("{at}.{name}")
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(if at.is_empty() {
            "body".into()
        } else {
            at.to_owned()
        }),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, item)| field_with_nul(item, &join(&i.to_string()))),
        serde_json::Value::Object(members) => members.iter().find_map(|(name, item)| {
            if name.contains('\0') {
                Some(join(&name.replace('\0', "")))
            } else {
                field_with_nul(item, &join(name))
            }
        }),
        _ => None,
    }
}

/// A label's or disease's name: not blank, no control, zero-width or bidirectional control
/// characters ([`crate::text::name_problem`]).
pub fn valid_name(name: &str) -> Result<(), validator::ValidationError> {
    match crate::text::name_problem(name) {
        None => Ok(()),
        Some(message) => Err(validator::ValidationError::new("name").with_message(message.into())),
    }
}

/// A path id: anything that is not a UUID names nothing (404). Returns the canonical form.
pub fn parse_id(raw: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(raw)
        .map(|u| u.to_string())
        .map_err(|_| ApiError::NotFound)
}

/// A timestamp query parameter (RFC 3339, any number of fractional digits); unparseable -> 400.
/// The bound keeps its full precision: it is only rounded *up* to the microsecond, the finest
/// instant both backends store (stored times are whole milliseconds), which changes no
/// comparison (`t >= b` and `t < b` hold for a stored `t` exactly when they hold for the
/// rounded `b`).
///
/// Digits beyond the nanosecond, which chrono drops, still count: a bound with a non-zero
/// digit there lies after the nanosecond it names, and is rounded up past it.
pub fn parse_timestamp(raw: &str, field: &str) -> Result<NaiveDateTime, ApiError> {
    let raw = raw.trim();
    let beyond_nanoseconds = raw
        .split_once('.')
        .map(|(_, rest)| rest.chars().take_while(char::is_ascii_digit).skip(9))
        .is_some_and(|mut extra| extra.any(|d| d != '0'));
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| {
            let mut at = t.naive_utc();
            if beyond_nanoseconds {
                at += chrono::TimeDelta::nanoseconds(1);
            }
            crate::db::ceil_to(at, chrono::TimeDelta::microseconds(1))
        })
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
