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

/// Serialises a UTC timestamp as RFC 3339 with milliseconds: `2026-11-21T09:30:00.123Z`.
pub fn rfc3339<S: Serializer>(at: &NaiveDateTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339_text(at))
}

/// A UTC timestamp as RFC 3339 with milliseconds, written digit by digit: chrono's `format`
/// parses its pattern again on every call, which showed in the profile of list responses (two or
/// three timestamps per item). Years outside 0-9999 go through chrono.
pub fn rfc3339_text(at: &NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    let year = at.year();
    if !(0..=9999).contains(&year) {
        return at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
    }
    let millis = at.nanosecond() / 1_000_000 % 1000;
    let mut out = String::with_capacity(24);
    let mut push = |value: u32, width: u32, after: char| {
        for place in (0..width).rev() {
            let digit = value / 10u32.pow(place) % 10;
            out.push(char::from(b'0' + digit as u8));
        }
        out.push(after);
    };
    push(year as u32, 4, '-');
    push(at.month(), 2, '-');
    push(at.day(), 2, 'T');
    push(at.hour(), 2, ':');
    push(at.minute(), 2, ':');
    push(at.second(), 2, '.');
    push(millis, 3, 'Z');
    out
}

/// Like [`rfc3339`] for optional timestamps (`null` when absent).
pub fn rfc3339_opt<S: Serializer>(at: &Option<NaiveDateTime>, s: S) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, s),
        None => s.serialize_none(),
    }
}

/// For fields that may be absent but, when present, not `null` (absent -> `None`, `null` ->
/// a validation error rather than silently "unchanged").
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// An optional integer as JSON Schema counts integers: `177` and `177.0` alike (a number with
/// a zero fractional part is an integer, JSON Schema 2020-12 section 6.1.1). Other fractions
/// and values beyond `i64` are refused.
pub fn whole_number<'de, D>(d: D) -> Result<Option<i64>, D::Error>
where
    D: Deserializer<'de>,
{
    let Some(number) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(n) = number.as_i64() {
        return Ok(Some(n));
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => {
            Ok(Some(f as i64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "{number} is not a whole number"
        ))),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_like_chrono_writes_them() {
        for text in [
            "2026-11-21T09:30:00.123",
            "0999-01-02T03:04:05.006",
            "2024-02-29T23:59:59.999",
        ] {
            let at = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.3f").unwrap();
            assert_eq!(
                rfc3339_text(&at),
                at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
            );
        }
        let far = chrono::NaiveDate::from_ymd_opt(12026, 1, 1)
            .and_then(|d| d.and_hms_milli_opt(0, 0, 0, 5))
            .unwrap();
        assert_eq!(rfc3339_text(&far), "+12026-01-01T00:00:00.005Z");
    }
}
