//! The outermost middleware. For every request it:
//! - assigns the request id (a client's `X-Request-Id` is kept when it is a UUID) and exposes it
//!   to the rest of the request through a task-local and [`RequestContext`];
//! - resolves the client address: the peer, or, when the peer is a trusted proxy, the rightmost
//!   `X-Forwarded-For` hop that is not itself trusted;
//! - turns a panic in any inner layer into a 500 problem with the request id;
//! - makes every error response problem+json (actix's own 404/405/413 included);
//! - sets `X-Request-Id` and the security headers of the contract.

use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use futures_util::FutureExt as _;
use ipnet::IpNet;
use tracing::Instrument as _;
use uuid::Uuid;

use super::canonical_path::{canonical_path, query_has_nul};
use crate::audit::record::{self, AuditTicket};
use crate::error::Problem;
use crate::state::AppState;

tokio::task_local! {
    static REQUEST: RequestScope;
}

/// What the rest of a request reads from its task: its id, and its audit ticket (absent for
/// requests that are not audited).
#[derive(Clone)]
struct RequestScope {
    request_id: Uuid,
    audit: Option<Arc<AuditTicket>>,
}

/// The request id of the request being served on this task, if any.
pub fn current_request_id() -> Option<Uuid> {
    REQUEST.try_with(|scope| scope.request_id).ok()
}

/// The audit ticket of the request being served on this task, if it is audited: a change
/// writes the request's event with it, in the change's own transaction.
pub fn current_audit_ticket() -> Option<Arc<AuditTicket>> {
    REQUEST.try_with(|scope| scope.audit.clone()).ok().flatten()
}

/// Facts about the request that later layers and handlers read from extensions.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext {
    pub request_id: Uuid,
    /// The client's address, IPv4-mapped IPv6 addresses unmapped (`::ffff:1.2.3.4` is
    /// `1.2.3.4`).
    pub client_ip: IpAddr,
    /// True when the peer is a configured trusted proxy: only then do forwarding headers
    /// (`X-Forwarded-For`, `-Host`, `-Proto`, `Forwarded`) mean anything.
    pub via_trusted_proxy: bool,
    pub started: Instant,
}

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const JSON_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

pub async fn request_context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Routing, audit and headers all see the canonical path: the request is rewritten to it.
    // A query holding NUL is refused here, once for every route (PostgreSQL cannot store NUL).
    let canonical = canonical_path(req.path())
        .ok()
        .filter(|canonical| canonical == req.path() || rewrite_path(&mut req, canonical).is_some());
    // A path that is not UTF-8 or holds NUL names nothing (404, as a path id that is not a
    // UUID does); a query holding NUL cannot be parsed (400).
    let refusal = match &canonical {
        None => Some(StatusCode::NOT_FOUND),
        Some(_) if query_has_nul(req.query_string()) => Some(StatusCode::BAD_REQUEST),
        Some(_) => None,
    };
    let client_id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v.trim()).ok());
    let request_id = client_id.unwrap_or_else(Uuid::now_v7);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let trusted = state
        .as_ref()
        .map(|s| s.settings.trusted_proxies.clone())
        .unwrap_or_default();
    let peer = req
        .peer_addr()
        .map(|a| a.ip().to_canonical())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let via_trusted_proxy = trusted.iter().any(|net| net.contains(&peer));
    // RFC 7239 `Forwarded` when the proxy sends it, else `X-Forwarded-For`; several lines of
    // one header are one list (RFC 9110 section 5.3), the proxy's own value last.
    let header = |name: &str| joined_header(req.headers(), name);
    let hops = match header("forwarded") {
        Some(forwarded) => forwarded_for_hops(&forwarded),
        None => header("x-forwarded-for")
            .map(|chain| {
                chain
                    .split(',')
                    .map(|hop| hop.trim().parse().ok())
                    .collect()
            })
            .unwrap_or_default(),
    };
    let client_ip = client_ip(peer, &hops, &trusted);
    let context = RequestContext {
        request_id,
        client_ip,
        via_trusted_proxy,
        started: Instant::now(),
    };
    req.extensions_mut().insert(context);

    let path = canonical
        .clone()
        .unwrap_or_else(|| record::lossy_path(req.path()));
    let ticket = record::is_audited(&path).then(|| {
        let facts = record::RequestFacts::of(
            req.method().as_str(),
            &path,
            req.query_string(),
            req.headers(),
        );
        Arc::new(AuditTicket::new(facts, context, client_id.is_none()))
    });
    let scope = RequestScope {
        request_id,
        audit: ticket.clone(),
    };
    let span = tracing::info_span!("request", request_id = %request_id, method = %req.method(), path = %path);
    // HEAD is GET without the body (RFC 9110 section 9.3.2) on every route: it is routed as
    // GET, and the HTTP layer, which saw HEAD, sends the headers only.
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    // Part of an inner service runs synchronously inside `call` (routing), part in its future:
    // a panic in either becomes a 500 problem.
    let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| {
        refusal.is_none().then(|| next.call(req))
    })) {
        Ok(None) => Ok(Err(Unanswered {
            request_id,
            status: refusal.unwrap_or(StatusCode::BAD_REQUEST),
        }
        .into())),
        Ok(Some(future)) => {
            REQUEST
                .scope(scope.clone(), AssertUnwindSafe(future).catch_unwind())
                .instrument(span.clone())
                .await
        }
        Err(panic) => Err(panic),
    };

    let status = match &outcome {
        Ok(Ok(res)) => res.status(),
        Ok(Err(err)) => err.as_response_error().status_code(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::info!(
        parent: &span,
        status = status.as_u16(),
        duration_ms = context.started.elapsed().as_secs_f64() * 1000.0,
        "served"
    );
    // The audit event is committed before anything is answered; if it cannot be, the answer
    // is 503 instead.
    // A request whose change committed has its event already (written in the change's
    // transaction).
    let mut audit_failed = false;
    let unwritten = ticket.filter(|ticket| match ticket.written_status() {
        None => true,
        Some(written) => {
            if written != status.as_u16() {
                tracing::warn!(parent: &span, written, answered = status.as_u16(), "the change's event names another status than the answer");
            }
            false
        }
    });
    if let (Some(ticket), Some(state)) = (unwritten, state.as_ref()) {
        let req = match &outcome {
            Ok(Ok(res)) => Some(res.request()),
            _ => None,
        };
        let event = ticket.event(status.as_u16(), req);
        if let Err(err) = state.audit.record(event).await {
            tracing::error!(parent: &span, error = %err, "request not audited; answering 503");
            audit_failed = true;
        }
    }
    if audit_failed {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        return match outcome {
            Ok(Ok(res)) => {
                let (req, _) = res.into_parts();
                let mut problem = Problem::new(
                    status,
                    "audit-unavailable",
                    "the audit log is unavailable; try again",
                );
                problem.request_id = request_id.to_string();
                let mut res = ServiceResponse::new(req, problem.response());
                set_headers(res.headers_mut(), request_id);
                res.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECS),
                );
                Ok(res)
            }
            _ => Err(Unanswered { request_id, status }.into()),
        };
    }
    match outcome {
        Ok(Ok(res)) => {
            let mut res =
                REQUEST.sync_scope(scope, || into_problem_if_error(res.map_into_boxed_body()));
            set_headers(res.headers_mut(), request_id);
            Ok(res)
        }
        // Inner layers answer their own errors as responses; what still arrives as an error
        // (a session-store failure, say) is answered here, with the request id.
        Ok(Err(err)) => {
            if status.is_server_error() {
                tracing::error!(parent: &span, error = %err, "request failed in middleware");
            }
            Err(Unanswered { request_id, status }.into())
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(parent: &span, panic = %message, "handler panicked");
            Err(Unanswered { request_id, status }.into())
        }
    }
}

/// Points the request at `path` (keeping its query), for the router as for every later layer.
fn rewrite_path(req: &mut ServiceRequest, path: &str) -> Option<()> {
    let path_and_query = match req.uri().query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse().ok()?);
    let uri = actix_web::http::Uri::from_parts(parts).ok()?;
    req.match_info_mut().get_mut().update(&uri);
    req.head_mut().uri = uri;
    Some(())
}

/// An error or panic that no inner layer answered: rendered as a problem with the request id
/// (never the inner error's text, which may hold internals).
#[derive(Debug)]
struct Unanswered {
    request_id: Uuid,
    status: StatusCode,
}

impl std::fmt::Display for Unanswered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request {} failed with {}", self.request_id, self.status)
    }
}

impl actix_web::ResponseError for Unanswered {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> actix_web::HttpResponse {
        let (slug, detail) = generic_problem(self.status);
        let mut problem = Problem::new(self.status, slug, detail);
        problem.request_id = self.request_id.to_string();
        let mut res = problem.response();
        set_headers(res.headers_mut(), self.request_id);
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            res.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(crate::error::UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
        res
    }
}

fn generic_problem(status: StatusCode) -> (&'static str, String) {
    match status {
        StatusCode::NOT_FOUND => ("not-found", "no such resource".to_owned()),
        StatusCode::BAD_REQUEST => (
            "bad-request",
            "the query must not contain NUL (U+0000) characters".to_owned(),
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method-not-allowed",
            "this method is not allowed on this resource".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload-too-large",
            "the request body is too large".to_owned(),
        ),
        s if s.is_server_error() => (
            "internal",
            "an internal error occurred; quote the request id when reporting it".to_owned(),
        ),
        s => (
            "error",
            s.canonical_reason().unwrap_or("error").to_lowercase(),
        ),
    }
}

/// The client address: the peer, unless the peer is a trusted proxy, in which case the
/// rightmost `X-Forwarded-For` hop that is not trusted (hops a client wrote itself sit to the
/// left of what the proxies appended, so they are never reached while the chain is trusted).
/// IPv4-mapped IPv6 addresses (RFC 4291 section 2.5.5.2, as a dual-stack `[::]` listener
/// reports IPv4 peers) are unmapped before matching and in the result.
///
/// `hops` are the forwarded addresses, client first (as `X-Forwarded-For` lists them, or the
/// `for=` of each `Forwarded` element); `None` for a hop that is not an address (`unknown`, an
/// obfuscated `_name`, junk), where the walk stops.
pub fn client_ip(peer: IpAddr, hops: &[Option<IpAddr>], trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut last = peer;
    for hop in hops.iter().rev() {
        match hop.map(|ip| ip.to_canonical()) {
            Some(ip) if is_trusted(&ip) => last = ip,
            Some(ip) => return ip,
            None => return last,
        }
    }
    last
}

/// Every line of header `name` joined into one comma-separated list (RFC 9110 section 5.3), or
/// `None` when it is absent. A line that is not visible ASCII counts as an unparseable element.
pub fn joined_header(headers: &HeaderMap, name: &str) -> Option<String> {
    let lines: Vec<&str> = headers
        .get_all(name)
        .map(|v| v.to_str().unwrap_or("unparseable"))
        .collect();
    (!lines.is_empty()).then(|| lines.join(", "))
}

/// The `for=` address of each element of an RFC 7239 `Forwarded` header, in order:
/// `for=192.0.2.60`, `for="192.0.2.60:8080"`, `for="[2001:db8::17]:4711"`; `None` where an
/// element has no address (`unknown`, `_hidden`, no `for`).
pub fn forwarded_for_hops(forwarded: &str) -> Vec<Option<IpAddr>> {
    forwarded
        .split(',')
        .map(|element| {
            let value = forwarded_param(element, "for")?;
            if let Some(bracketed) = value.strip_prefix('[') {
                return bracketed.split(']').next()?.parse().ok();
            }
            value
                .parse()
                .ok()
                .or_else(|| value.rsplit_once(':')?.0.parse().ok())
        })
        .collect()
}

/// The value of parameter `name` (case-insensitive, quotes removed) in one element of an
/// RFC 7239 `Forwarded` header (`for=...;host=...;proto=...`).
pub fn forwarded_param<'a>(element: &'a str, name: &str) -> Option<&'a str> {
    element.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"'))
    })
}

/// Gives an error response that has no JSON body (actix's own 404, 405, ...) a problem body,
/// keeping headers such as `Allow`. JSON error bodies (problems, `/health`'s 503) pass as is.
fn into_problem_if_error(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/problem+json") || v.starts_with("application/json")
        });
    if status.as_u16() < 400 || is_json {
        return res;
    }
    let (slug, detail) = generic_problem(status);
    let (req, old) = res.into_parts();
    let mut new = Problem::new(status, slug, detail).response();
    for (name, value) in old.headers() {
        if matches!(
            *name,
            header::ALLOW | header::RETRY_AFTER | header::WWW_AUTHENTICATE
        ) || name.as_str().starts_with("access-control-")
        {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    ServiceResponse::new(req, new)
}

fn set_headers(headers: &mut HeaderMap, request_id: Uuid) {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        headers.insert(X_REQUEST_ID, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Every answer (API, auth, health, documentation, errors) is private to its caller.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if is_json {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(JSON_CSP),
        );
    }
    headers.remove(header::SERVER);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn xff(chain: &str) -> Vec<Option<IpAddr>> {
        chain.split(',').map(|h| h.trim().parse().ok()).collect()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, &xff("1.2.3.4"), &[]), peer);
        assert_eq!(
            client_ip(peer, &xff("1.2.3.4"), &nets(&["10.0.0.0/8"])),
            peer
        );
    }

    #[test]
    fn trusted_proxies_yield_the_rightmost_untrusted_hop() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(proxy, &xff("6.6.6.6, 198.51.100.7, 10.0.0.1"), &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(client_ip(proxy, &[], &trusted), proxy);
        assert_eq!(client_ip(proxy, &xff("garbage"), &trusted), proxy);
    }

    #[test]
    fn forwarded_elements_name_their_clients() {
        let hops = forwarded_for_hops(
            "for=192.0.2.60;proto=https, For=\"198.51.100.7:8080\", for=\"[2001:db8::17]:4711\", for=unknown, by=1.2.3.4",
        );
        let shown: Vec<String> = hops
            .iter()
            .map(|h| h.map(|ip| ip.to_string()).unwrap_or_default())
            .collect();
        assert_eq!(
            shown,
            ["192.0.2.60", "198.51.100.7", "2001:db8::17", "", ""]
        );
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(
                proxy,
                &forwarded_for_hops("for=6.6.6.6, for=\"198.51.100.7\""),
                &trusted
            )
            .to_string(),
            "198.51.100.7"
        );
    }

    #[test]
    fn ipv4_mapped_addresses_are_unmapped() {
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let trusted = nets(&["10.0.0.0/8"]);
        assert_eq!(
            client_ip(mapped, &xff("::ffff:198.51.100.7"), &trusted).to_string(),
            "198.51.100.7"
        );
        assert_eq!(
            client_ip("::ffff:203.0.113.9".parse().unwrap(), &[], &[]).to_string(),
            "203.0.113.9"
        );
    }
}
