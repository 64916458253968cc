//! The security headers of the contract, on every response (API, auth, health, documentation
//! and every error): `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
//! `Cache-Control: no-store` (every answer is private to its caller), a locked-down
//! `Content-Security-Policy` on JSON, and no `Server` header. The outermost layer.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::middleware::Next;

const JSON_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// The layer: sets [`set_security_headers`] on whatever the inner layers answer.
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let mut res = next.call(req).await?;
    set_security_headers(res.headers_mut());
    Ok(res)
}

/// Sets the security headers on `headers` (the CSP only when the body is JSON).
pub fn set_security_headers(headers: &mut HeaderMap) {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if is_json {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(JSON_CSP),
        );
    }
    headers.remove(header::SERVER);
}
