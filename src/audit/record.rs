//! Turning a request into an audit event. Secrets never reach the table: credential headers
//! are replaced by `[redacted]`, query parameters named like `token`, `password`, `secret` or
//! `key` are redacted, and request bodies are never read.
//!
//! Longer than ~400 lines: a third of it is the unit tests of the redaction rules, kept beside
//! the rules they pin down.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::net::IpAddr;
use std::time::Instant;

use actix_web::http::header::HeaderMap;
use actix_web::HttpMessage;
use actix_web::HttpRequest;
use uuid::Uuid;

use crate::db::{now, DbConnection};
use crate::models::events::NewEvent;

pub const REDACTED: &str = "[redacted]";
/// Header names whose values are always credentials.
const SECRET_HEADERS: [&str; 7] = [
    "authorization",
    "authentication",
    "cookie",
    "set-cookie",
    "proxy-authorization",
    "x-api-key",
    "x-amz-security-token",
];
/// A query parameter (or header) whose folded name contains one of these is a secret.
const SECRET_WORDS: [&str; 10] = [
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "key",
    "auth",
    "session",
    "signature",
    "credential",
];
const MAX_VALUE: usize = 1024;

/// Every request is audited except `/health`; `path` is the canonical path
/// ([`crate::middleware::canonical_path`]), so no spelling of an `/api/` or `/docs` path escapes.
pub fn is_audited(path: &str) -> bool {
    path != "/health"
}

/// True when a name (of a query parameter or header), percent-decoded (`+` as space, as in
/// `application/x-www-form-urlencoded`) and case-folded, contains a secret word.
///
/// Decoding repeats until nothing changes (at most four times), so a name encoded twice
/// (`%2574oken`, as a proxy that re-encodes forwards it) is found too.
pub fn is_secret_name(name: &str) -> bool {
    let folded = crate::text::fold_key(&fully_decoded(name));
    SECRET_WORDS.iter().any(|word| folded.contains(word))
}

/// Query text percent-decoded (`+` as space) until nothing changes, at most four times.
fn fully_decoded(text: &str) -> String {
    let mut text = text.replace('+', " ");
    for _ in 0..4 {
        if !text.contains('%') {
            break;
        }
        let decoded = percent_encoding::percent_decode_str(&text)
            .decode_utf8_lossy()
            .into_owned();
        if decoded == text {
            break;
        }
        text = decoded;
    }
    text
}

/// `name=value` pairs as they appear in queries, URLs inside header values, `Forwarded`
/// parameters and cookie-like headers.
fn pair_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(r"([^ \t\r\n?&;,=]+)[ \t]*=[ \t]*([^&;, \t\r\n#]*)")
            .expect("a valid pattern")
    })
}

/// The user information of a URL (`scheme://user:password@host`).
fn userinfo_pattern() -> &'static regex::Regex {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| {
        regex::Regex::new(r"([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#@ \t\r\n]*@")
            .expect("a valid pattern")
    })
}

/// Text with the value of every `name=value` pair whose name is secret-like replaced, and the
/// user information of every URL in it replaced: what a header value or a query may carry.
pub fn redact_text(text: &str) -> String {
    let mut out = std::borrow::Cow::Borrowed(text);
    if out.contains('@') {
        if let std::borrow::Cow::Owned(replaced) =
            userinfo_pattern().replace_all(&out, format!("${{1}}{REDACTED}@"))
        {
            out = replaced.into();
        }
    }
    if out.contains('=') {
        if let std::borrow::Cow::Owned(replaced) =
            pair_pattern().replace_all(&out, |caps: &regex::Captures<'_>| {
                if is_secret_name(&caps[1]) {
                    format!("{}={REDACTED}", &caps[1])
                } else {
                    caps[0].to_owned()
                }
            })
        {
            out = replaced.into();
        }
    }
    truncate(&out)
}

/// Who made the request, as authentication found it (in request extensions): the event's
/// user and how they authenticated (`session`, `token`).
#[derive(Debug, Clone, Copy)]
pub struct Actor {
    pub user_id: i64,
    pub auth: &'static str,
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
            query: redact_patient_identifiers(path, &redact_query(query)),
            user_agent: headers
                .get("user-agent")
                .map(|v| redact_text(&String::from_utf8_lossy(v.as_bytes()))),
            headers: redact_headers(headers),
        }
    }
}

/// The audit of one request in flight, shared by the audit layer and any change
/// the request makes. A change writes the request's event inside its own transaction (so no
/// committed change is ever without its event, whatever happens after the commit) and marks
/// the ticket once that transaction has committed; the middleware then writes nothing more.
/// Every other request's event is written by the middleware through the group commit.
#[derive(Debug)]
pub struct AuditTicket {
    facts: RequestFacts,
    request_id: Uuid,
    client_ip: IpAddr,
    started: Instant,
    /// The event's id: the request id when the server chose it (UUID v7, time-ordered); a
    /// fresh v7 beside a client's own request id.
    event_uuid: Uuid,
    /// The status recorded by a committed change's event, if one was written.
    written: std::sync::atomic::AtomicU16,
}

impl AuditTicket {
    /// The ticket of request `request_id` (`generated_id`: chosen by the server, not the
    /// client) from `client_ip`, which arrived at `started`.
    pub fn new(
        facts: RequestFacts,
        request_id: Uuid,
        generated_id: bool,
        client_ip: IpAddr,
        started: Instant,
    ) -> Self {
        AuditTicket {
            facts,
            request_id,
            client_ip,
            started,
            event_uuid: if generated_id {
                request_id
            } else {
                Uuid::now_v7()
            },
            written: std::sync::atomic::AtomicU16::new(0),
        }
    }

    /// The status of the event a committed change wrote for this request, if any.
    pub fn written_status(&self) -> Option<u16> {
        match self.written.load(std::sync::atomic::Ordering::Acquire) {
            0 => None,
            status => Some(status),
        }
    }

    pub(super) fn mark_written(&self, status: u16) {
        self.written
            .store(status, std::sync::atomic::Ordering::Release);
    }

    /// The event as the middleware writes it: `req` is the request as the response carries it
    /// (with the caller found by authentication), absent when no response came back.
    pub fn event(&self, status: u16, req: Option<&HttpRequest>) -> NewEvent {
        let (mut user_id, mut auth) = (None, "none");
        let mut detail = None;
        if let Some(req) = req {
            let extensions = req.extensions();
            if let Some(actor) = extensions.get::<Actor>() {
                user_id = Some(actor.user_id);
                auth = actor.auth;
            }
            if let Some(login) = extensions.get::<LoginAttempt>() {
                user_id = login.user_id;
                detail = Some(serde_json::json!({ "username": login.username }).to_string());
            }
        }
        self.event_with(status, user_id, auth, detail)
    }

    pub(super) fn event_with(
        &self,
        status: u16,
        user_id: Option<i64>,
        auth: &str,
        detail: Option<String>,
    ) -> NewEvent {
        let facts = &self.facts;
        NewEvent {
            uuid: self.event_uuid.to_string(),
            request_id: self.request_id.to_string(),
            occurred_at: now(),
            user_id,
            auth: auth.to_owned(),
            method: facts.method.clone(),
            path: facts.path.clone(),
            query: facts.query.clone(),
            status: i32::from(status),
            duration_ms: self.started.elapsed().as_secs_f64() * 1000.0,
            client_ip: self.client_ip.to_string(),
            user_agent: facts.user_agent.clone(),
            headers: facts.headers.clone(),
            detail,
        }
    }
}

/// Writes the request's event inside the change's transaction on `conn`, with the status the
/// request will answer, and marks the ticket once the outermost write transaction commits
/// ([`crate::db::on_commit`]). Outside a transaction it does nothing (the middleware writes the
/// event). Writing it twice in one transaction stores it once.
pub fn write_with_change(
    conn: &mut DbConnection,
    ticket: &Arc<AuditTicket>,
    status: u16,
    user_id: i64,
    auth: &str,
) -> diesel::QueryResult<()> {
    if ticket.written_status().is_some() || !crate::db::in_transaction(conn)? {
        return Ok(());
    }
    let event = ticket.event_with(status, Some(user_id), auth, None);
    crate::models::events::insert_event_in_change(conn, &event)?;
    let ticket = Arc::clone(ticket);
    crate::db::on_commit(move || ticket.mark_written(status));
    Ok(())
}

fn truncate(value: &str) -> String {
    value.chars().take(MAX_VALUE).collect()
}

/// Lower-case names to values (repeated headers joined with `, `), credentials redacted.
pub fn redact_headers(headers: &HeaderMap) -> String {
    let mut map: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.as_str().to_ascii_lowercase();
        // Header names are ASCII tokens, lower-cased by the HTTP layer: no decoding or folding.
        let secret_name =
            SECRET_WORDS.iter().any(|word| name.contains(word)) || name.contains("cookie");
        let value = if SECRET_HEADERS.contains(&name.as_str()) || secret_name {
            REDACTED.to_owned()
        } else if name == "referer" {
            redact_url(&String::from_utf8_lossy(value.as_bytes()))
        } else {
            // Any other value may hold a URL or parameters (`X-Original-URL`, `Origin`,
            // `Forwarded`): secret-named parameters and URL credentials are redacted.
            redact_text(&String::from_utf8_lossy(value.as_bytes()))
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
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if is_secret_name(name) || userinfo_pattern().is_match(&fully_decoded(value)) {
                format!("{name}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    truncate(&redacted.join("&"))
}

/// The patient list, whose `q` holds a patient ID or name.
const PATIENT_SEARCH_PATH: &str = "/api/v1/patients";

/// A (redacted) query with what may be a patient identifier redacted too, since patient
/// identifiers never reach the events: `q` of the patient list (a patient ID or name), and a
/// `patient_id` that is not a UUID (an MRN typed where the patient's id belongs).
fn redact_patient_identifiers(path: &str, query: &str) -> String {
    if query.is_empty() {
        return String::new();
    }
    query
        .split('&')
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let name_key = crate::text::fold_key(&fully_decoded(name));
            let identifying = (name_key == "q" && path.starts_with(PATIENT_SEARCH_PATH))
                || (name_key == "patient_id"
                    && uuid::Uuid::parse_str(&fully_decoded(value)).is_err());
            if identifying {
                format!("{name}={REDACTED}")
            } else {
                pair.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A URL (a `Referer`) with its query redacted as a request's own query is; the fragment is
/// dropped (a fragment can carry an OAuth token).
pub fn redact_url(url: &str) -> String {
    redact_text(url.split('#').next().unwrap_or_default())
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
        let headers = HeaderMap::new();
        let search = RequestFacts::of("GET", "/api/v1/patients", "q=Doe&limit=5&%71=MRN", &headers);
        assert_eq!(search.query, "q=[redacted]&limit=5&%71=[redacted]");
        let labels = RequestFacts::of("GET", "/api/v1/labels", "q=Doe", &headers);
        assert_eq!(labels.query, "q=Doe");
        let typed = RequestFacts::of(
            "GET",
            "/api/v1/images",
            "patient_id=MRN-0042&subject_id=S-AAAAAAAAAAAAAAAA",
            &headers,
        );
        assert_eq!(
            typed.query,
            "patient_id=[redacted]&subject_id=S-AAAAAAAAAAAAAAAA"
        );
        let id = "patient_id=01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77";
        assert_eq!(
            RequestFacts::of("GET", "/api/v1/images", id, &headers).query,
            id
        );
    }

    #[test]
    fn secret_names_are_found_after_decoding_and_folding() {
        for name in [
            "pass%77ord",
            "%74oken",
            "%54OKEN",
            "API_KEY",
            "db_pwd",
            "passwd",
            "x-session",
            "sig%6Eature",
            "aws+credential",
            "%C5%BFecret",
            "Authorization",
            "oauth",
            "%2574oken",
            "%252574oken",
        ] {
            let q = redact_query(&format!("a=1&{name}=live-value&{name}=again"));
            assert!(
                !q.contains("live-value") && !q.contains("again"),
                "{name}: {q}"
            );
            assert!(q.starts_with("a=1&"), "{q}");
        }
        for name in ["limit", "q", "cursor", "since", "label_id", "%71"] {
            assert_eq!(redact_query(&format!("{name}=x")), format!("{name}=x"));
        }
    }

    #[test]
    fn urls_and_parameters_in_any_header_are_redacted() {
        for (name, value) in [
            ("referer", "http://user:R4pass@host.example/x"),
            ("x-original-url", "/api/v1/labels?token=live1"),
            ("x-rewrite-url", "/x?a=1&pass%77ord=live2"),
            ("origin", "https://app.example/?token=live3"),
            ("forwarded", "for=10.0.0.1;token=live4"),
            ("cookie2", "sid=live5"),
            ("referer", "https://a.example/?%2574oken=live6"),
            ("x-note", "see ftp://anon:live7@files.example/"),
        ] {
            let mut headers = HeaderMap::new();
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
            let json = redact_headers(&headers);
            assert!(
                !json.contains("live") && !json.contains("R4pass"),
                "{name}: {json}"
            );
        }
        assert_eq!(redact_text("limit=5, q=x"), "limit=5, q=x");
        assert!(!redact_text("token = live8").contains("live"));
        assert!(!redact_text("pwd\t=live9").contains("live"));
        for q in [
            "url=https://u:live10@h",
            "url=https%3A%2F%2Fu%3Alive11%40h",
            "next=https%253A%252F%252Fu%253Alive12%2540h",
        ] {
            assert!(!redact_query(q).contains("live"), "{q}");
        }
        assert_eq!(redact_query("url=https://h/x"), "url=https://h/x");
        assert_eq!(redact_text("curl/8.5 (x86_64)"), "curl/8.5 (x86_64)");
    }

    #[test]
    fn credential_like_headers_and_referer_queries_are_redacted() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-auth-token", "live1"),
            ("x-access-token", "live2"),
            ("x-amz-security-token", "live3"),
            ("x-csrf-token", "live4"),
            ("authentication", "live5"),
            (
                "referer",
                "https://app.example/x?page=2&access_token=live6#id_token=live7",
            ),
            ("user-agent", "curl/8"),
        ] {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let json = redact_headers(&headers);
        assert!(!json.contains("live"), "{json}");
        assert!(json.contains("page=2") && json.contains("curl/8"), "{json}");
    }

    #[test]
    fn audited_paths() {
        assert!(
            is_audited("/api/v1/labels") && is_audited("/docs") && is_audited("/docs/index.html")
        );
        assert!(is_audited("/documents") && is_audited("/") && is_audited("/api%2Fv1"));
        assert!(!is_audited("/health"));
    }
}
