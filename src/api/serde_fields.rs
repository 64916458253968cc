//! serde helpers for request fields: present-but-not-null, nullable PATCH fields, and JSON
//! Schema integers.

use serde::{Deserialize, Deserializer};

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
            "{number} is not a whole number in the range of a 64-bit integer"
        ))),
    }
}

/// A JSON object read as `T` (serde would otherwise fill a struct from an array,
/// positionally); anything else is refused.
pub fn object<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_json::Value::deserialize(d)?;
    if !value.is_object() {
        return Err(serde::de::Error::custom("must be a JSON object"));
    }
    serde_json::from_value(value).map_err(serde::de::Error::custom)
}

/// For PATCH fields that may be set to `null`: absent -> `None`, `null` -> `Some(None)`.
pub fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}
