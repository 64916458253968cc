//! Turning a request into an audit event. Secrets never reach the table: credential headers
//! are replaced by `[redacted]`, query parameters named like `token`, `password`, `secret` or
//! `key` are redacted, and request bodies are never read.

use std::collections::BTreeMap;

use actix_web::http::header::HeaderMap;
use actix_web::HttpMessage;
use actix_web::HttpRequest;
use uuid::Uuid;

use crate::auth::CurrentUser;
use crate::db::now;
use crate::middleware::request_context::RequestContext;
use crate::models::events::NewEvent;

pub const REDACTED: &str = "[redacted]";
const SECRET_HEADERS: [&str; 5] = [
    "authorization",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
];
const SECRET_PARAMS: [&str; 4] = ["token", "password", "secret", "key"];
const MAX_VALUE: usize = 1024;

/// Requests under `/api/` and `/docs` are audited; `/health` is not.
pub fn is_audited(path: &str) -> bool {
    path.starts_with("/api/") || path == "/docs" || path.starts_with("/docs/")
}

/// What a login handler tells the audit log: who logged in (on success) and the username that
/// was tried, in a safe form.
#[derive(Debug, Clone)]
pub struct LoginAttempt {
    pub username: String,
    pub user_id: Option<i64>,
}

/// The username as recorded: at most 64 characters, no control characters.
pub fn safe_username(raw: &str) -> String {
    raw.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// What is known of a request before it runs (kept for requests that never produce one).
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub method: String,
    pub path: String,
    pub query: String,
    pub user_agent: Option<String>,
    pub headers: String,
}

impl RequestFacts {
    pub fn of(method: &str, path: &str, query: &str, headers: &HeaderMap) -> Self {
        RequestFacts {
            method: method.to_owned(),
            path: truncate(path),
            query: redact_query(query),
            user_agent: headers
                .get("user-agent")
                .and_then(|v| v.to_str().ok())
                .map(truncate),
            headers: redact_headers(headers),
        }
    }
}

/// The event of a request: `req` is the request as the response carries it (with the caller
/// found by authentication), absent when no response came back (a panic).
pub fn event(
    facts: RequestFacts,
    context: &RequestContext,
    generated_id: bool,
    status: u16,
    req: Option<&HttpRequest>,
) -> NewEvent {
    let (mut user_id, mut auth) = (None, "none");
    let mut detail = None;
    if let Some(req) = req {
        let extensions = req.extensions();
        if let Some(user) = extensions.get::<CurrentUser>() {
            user_id = Some(user.id);
            auth = user.auth.name();
        }
        if let Some(login) = extensions.get::<LoginAttempt>() {
            user_id = login.user_id;
            detail = Some(serde_json::json!({ "username": login.username }).to_string());
        }
    }
    // The event's id is the request id when the server chose it (UUID v7, time-ordered); a
    // client's own id is kept as `request_id` beside a fresh event id.
    let uuid = if generated_id {
        context.request_id
    } else {
        Uuid::now_v7()
    };
    NewEvent {
        uuid: uuid.to_string(),
        request_id: context.request_id.to_string(),
        occurred_at: now(),
        user_id,
        auth: auth.to_owned(),
        method: facts.method,
        path: facts.path,
        query: facts.query,
        status: i32::from(status),
        duration_ms: context.started.elapsed().as_secs_f64() * 1000.0,
        client_ip: context.client_ip.to_string(),
        user_agent: facts.user_agent,
        headers: facts.headers,
        detail,
    }
}

fn truncate(value: &str) -> String {
    value.chars().take(MAX_VALUE).collect()
}

/// Lower-case names to values (repeated headers joined with `, `), credentials redacted.
pub fn redact_headers(headers: &HeaderMap) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        let value = if SECRET_HEADERS.contains(&name.as_str()) {
            REDACTED.to_owned()
        } else {
            truncate(&String::from_utf8_lossy(value.as_bytes()))
        };
        map.entry(name)
            .and_modify(|v| {
                if v != REDACTED {
                    v.push_str(", ");
                    v.push_str(&value);
                }
            })
            .or_insert(value);
    }
    serde_json::to_string(&map).unwrap_or_else(|_| "{}".into())
}

/// The query string with the values of secret-looking parameters replaced.
pub fn redact_query(query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    let redacted: Vec<String> = query
        .split('&')
        .map(|pair| {
            let (name, _) = pair.split_once('=').unwrap_or((pair, ""));
            let lower = name.to_ascii_lowercase();
            if SECRET_PARAMS.iter().any(|s| lower.contains(s)) {
                format!("{name}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    truncate(&redacted.join("&"))
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderName, HeaderValue};

    use super::*;

    #[test]
    fn credentials_never_survive() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer mlt_secret"),
            ("cookie", "__Host-medlabel=secret"),
            ("x-api-key", "secret"),
            ("proxy-authorization", "Basic secret"),
            ("accept", "application/json"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        headers.append(
            HeaderName::from_static("accept"),
            HeaderValue::from_static("text/csv"),
        );
        let json = redact_headers(&headers);
        assert!(!json.contains("secret"), "{json}");
        let map: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
        assert_eq!(map["authorization"], REDACTED);
        assert_eq!(map["accept"], "application/json, text/csv");

        let q =
            redact_query("limit=5&access_token=abc&Password=p&api_key=k&client_secret=s&q=token");
        assert_eq!(q, "limit=5&access_token=[redacted]&Password=[redacted]&api_key=[redacted]&client_secret=[redacted]&q=token");
        assert_eq!(redact_query(""), "");
    }

    #[test]
    fn audited_paths() {
        assert!(
            is_audited("/api/v1/labels") && is_audited("/docs") && is_audited("/docs/index.html")
        );
        assert!(!is_audited("/health") && !is_audited("/documents"));
    }
}
