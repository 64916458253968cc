//! Response types (what the API answers) and the batch builders that assemble them from rows
//! in a constant number of queries (no N+1). Handlers, history and the CLI all answer through
//! these; rows from `models` never reach the wire directly, so internal ids, hashes and
//! storage keys cannot leak by accident.
//!
//! "View" means one thing here: how a row is shown to a caller. What a caller may see of an
//! image is decided by [`crate::auth::policy`]; the builders only apply that decision.

pub mod annotations;
pub mod datasets;
pub mod history;
pub mod images;
pub mod patients;
pub mod vocabulary;

use chrono::NaiveDateTime;
use serde::{Serialize, Serializer};

/// `{"id", "username"}`: how other entities name a user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UserRef {
    pub id: String,
    pub username: String,
}

impl UserRef {
    /// The reference to user `id` in a map from [`crate::models::users::user_refs`] (empty
    /// strings for a user that is not in it).
    pub fn of(users: &std::collections::HashMap<i64, (String, String)>, id: i64) -> Self {
        let (id, username) = users.get(&id).cloned().unwrap_or_default();
        UserRef { id, username }
    }
}

/// `{"id", "name"}`: how labels and diseases are named inside other entities.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
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
