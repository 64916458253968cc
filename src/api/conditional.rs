//! ETags and `If-Match`: single-entity reads carry an ETag that changes with every change of
//! the entity (its row version); `PATCH`/`DELETE` with a stale `If-Match` answer 412 and change
//! nothing. Without `If-Match` the write goes through.

use actix_web::http::header;
use actix_web::HttpRequest;

use crate::error::ApiError;

/// The ETag of an entity at `version`.
pub fn etag(version: i32) -> String {
    format!("\"v{version}\"")
}

/// What the client's `If-Match` demands.
#[derive(Debug, Clone)]
pub enum Precondition {
    None,
    Any,
    Versions(Vec<i32>),
}

impl Precondition {
    pub fn from_request(req: &HttpRequest) -> Self {
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

    /// 412 unless the entity, now at `version`, satisfies the precondition.
    pub fn check(&self, version: i32) -> Result<(), ApiError> {
        match self {
            Precondition::Versions(v) if !v.contains(&version) => Err(ApiError::PreconditionFailed),
            _ => Ok(()),
        }
    }
}
