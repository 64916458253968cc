//! ETags and `If-Match` (RFC 9110 sections 8.8.3 and 13.1.1): single-entity reads carry an
//! ETag that changes with every change of the entity (its row version); `PATCH`/`DELETE` with
//! a stale `If-Match` answer 412 and change nothing ([`Precondition::check`]). Without
//! `If-Match` the write goes through.

use actix_web::http::header;
use actix_web::HttpRequest;

pub use crate::changes::Precondition;

/// The ETag of an entity at `version`.
pub fn etag(version: i32) -> String {
    format!("\"v{version}\"")
}

/// What the request's `If-Match` demands.
pub fn precondition(req: &HttpRequest) -> Precondition {
    let Some(value) = req
        .headers()
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return Precondition::None;
    };
    if value.trim() == "*" {
        return Precondition::Any;
    }
    let versions = value
        .split(',')
        .filter_map(|tag| {
            tag.trim()
                .strip_prefix("\"v")?
                .strip_suffix('"')?
                .parse()
                .ok()
        })
        .collect();
    Precondition::Versions(versions)
}
