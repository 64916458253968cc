//! Resolves the caller of every `/api/v1` request, before any route runs:
//! - a token in the URL (`?token=`, `?access_token=`) is refused with 401;
//! - `Authorization: Bearer <token>` must name a live token of an active user (401 otherwise);
//! - otherwise the session cookie's identity, if any, names an active user;
//! - a cookie-authenticated (or anonymous) `POST`/`PUT`/`PATCH`/`DELETE` whose `Origin`, or
//!   failing that `Referer`, is another site is refused with 403 (CSRF).
//!
//! The result is a [`CurrentUser`] in request extensions; route guards ([`super::Access`])
//! decide what it may do.

use actix_identity::Identity;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};

use super::{tokens, AuthKind, CurrentUser};
use crate::error::ApiError;
use crate::middleware::client_ip::{forwarded_param, joined_header, ClientAddress};
use crate::models::{api_tokens, users};
use crate::state::AppState;

const URL_TOKEN_PARAMS: [&str; 2] = ["token", "access_token"];

pub async fn authenticate<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    match resolve(&mut req).await {
        Ok(Some(user)) => {
            let mut extensions = req.extensions_mut();
            // The audit event names the caller.
            extensions.insert(user.actor());
            extensions.insert(user);
        }
        Ok(None) => {}
        Err(err) => return Ok(req.error_response(err).map_into_right_body()),
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

async fn resolve(req: &mut ServiceRequest) -> Result<Option<CurrentUser>, ApiError> {
    let state = req
        .app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("application state missing")))?;

    if has_token_in_url(req.query_string()) {
        return Err(ApiError::Unauthorized(
            "tokens are not accepted in the URL; send Authorization: Bearer".into(),
        ));
    }

    let user = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => Some(user_from_bearer(&state, value).await?),
        None => {
            user_from_session(
                &state,
                req.extract::<Option<Identity>>().await.ok().flatten(),
            )
            .await?
        }
    };

    let by_token = user.as_ref().is_some_and(|u| u.auth == AuthKind::Token);
    if is_unsafe(req.method()) && !by_token && !same_origin(req, &state.settings.cors_origins) {
        return Err(ApiError::Forbidden(
            "cross-site request refused (Origin does not match)".into(),
        ));
    }
    Ok(user)
}

/// True when a query parameter is named (after percent-decoding and case folding) `token` or
/// `access_token`.
fn has_token_in_url(query: &str) -> bool {
    query.split('&').any(|pair| {
        let name = pair.split('=').next().unwrap_or_default().replace('+', " ");
        let name = percent_encoding::percent_decode_str(&name).decode_utf8_lossy();
        let name = crate::text::fold_key(&name);
        URL_TOKEN_PARAMS.contains(&name.as_str())
    })
}

async fn user_from_bearer(
    state: &AppState,
    value: &header::HeaderValue,
) -> Result<CurrentUser, ApiError> {
    let invalid = || ApiError::Unauthorized("invalid, expired or revoked token".into());
    let raw = value.to_str().map_err(|_| invalid())?;
    let (scheme, token) = raw.trim().split_once(' ').ok_or_else(invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::Unauthorized(
            "only Authorization: Bearer <token> is accepted".into(),
        ));
    }
    let token_hash = tokens::digest(token.trim());
    let found = state
        .db
        .run(move |conn| {
            let Some((_, user)) = api_tokens::authenticate_token(conn, &token_hash)? else {
                return Ok::<_, ApiError>(None);
            };
            let roles = users::roles_of_user(conn, user.id)?;
            Ok(Some((user, roles)))
        })
        .await?;
    let (user, roles) = found.ok_or_else(invalid)?;
    Ok(CurrentUser::new(user, roles, AuthKind::Token))
}

async fn user_from_session(
    state: &AppState,
    identity: Option<Identity>,
) -> Result<Option<CurrentUser>, ApiError> {
    let Some(identity) = identity else {
        return Ok(None);
    };
    let Some(user_id) = identity.id().ok().and_then(|id| id.parse::<i64>().ok()) else {
        identity.logout();
        return Ok(None);
    };
    let found = state
        .db
        .run(move |conn| {
            let user = users::find_by_id(conn, user_id);
            match user {
                Ok(user) if user.is_active => {
                    let roles = users::roles_of_user(conn, user.id)?;
                    Ok(Some((user, roles)))
                }
                Ok(_) | Err(diesel::result::Error::NotFound) => Ok(None),
                Err(e) => Err(ApiError::from(e)),
            }
        })
        .await?;
    match found {
        Some((user, roles)) => Ok(Some(CurrentUser::new(user, roles, AuthKind::Session))),
        None => {
            identity.logout();
            Ok(None)
        }
    }
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The origin (`scheme://host[:port]`, lower case) the client addressed. The forwarding headers
/// (`Forwarded: host=;proto=`, RFC 7239, then `X-Forwarded-Host`/`-Proto`) are believed only
/// when the peer is a configured trusted proxy; otherwise the `Host` header and plain `http`
/// (this server does not terminate TLS).
fn request_origin(req: &ServiceRequest) -> Option<String> {
    let headers = req.headers();
    let text = |name: &str| joined_header(headers, name);
    let via_proxy = req
        .extensions()
        .get::<ClientAddress>()
        .is_some_and(|c| c.via_trusted_proxy);
    let (mut host, mut proto) = (None, None);
    if via_proxy {
        // The last element (value) is the one the proxy talking to us wrote; anything left of
        // it may come from the client.
        let forwarded = text("forwarded").unwrap_or_default();
        if let Some(last) = forwarded.rsplit(',').next() {
            host = forwarded_param(last, "host").map(str::to_owned);
            proto = forwarded_param(last, "proto").map(str::to_owned);
        }
        let last = |v: &str| v.rsplit(',').next().unwrap_or_default().trim().to_owned();
        host = host.or_else(|| text("x-forwarded-host").map(|v| last(&v)));
        proto = proto.or_else(|| text("x-forwarded-proto").map(|v| last(&v)));
    }
    let host = host
        .or_else(|| {
            headers
                .get("host")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .or_else(|| req.uri().authority().map(|a| a.to_string()))?;
    let proto = proto.unwrap_or_else(|| "http".to_owned());
    origin_of(&format!("{proto}://{host}"))
}

/// `scheme://host` without the scheme's default port (`:80` for http, `:443` for https).
fn without_default_port(origin: &str) -> &str {
    origin
        .strip_suffix(":80")
        .filter(|_| origin.starts_with("http://"))
        .or_else(|| {
            origin
                .strip_suffix(":443")
                .filter(|_| origin.starts_with("https://"))
        })
        .unwrap_or(origin)
}

/// True when the request carries no `Origin`/`Referer` (not a browser), or names the origin the
/// client addressed (scheme, host and port) or a configured CORS origin.
fn same_origin(req: &ServiceRequest, allowed: &[String]) -> bool {
    let headers = req.headers();
    let source = headers
        .get(header::ORIGIN)
        .or_else(|| headers.get(header::REFERER))
        .map(|v| v.to_str().unwrap_or("null").to_owned());
    let Some(source) = source else { return true };
    let Some(origin) = origin_of(&source) else {
        return false;
    };
    if allowed
        .iter()
        .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin))
    {
        return true;
    }
    request_origin(req)
        .is_some_and(|own| without_default_port(&own) == without_default_port(&origin))
}

/// `scheme://authority` of an Origin or Referer value, lower-cased; `None` for `null` or junk.
fn origin_of(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty()
        || !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
    {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        authority.to_ascii_lowercase()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_tokens_are_detected_by_parameter_name() {
        assert!(has_token_in_url("token=abc"));
        assert!(has_token_in_url("limit=5&ACCESS_TOKEN=abc"));
        assert!(has_token_in_url("%74oken=abc"));
        assert!(has_token_in_url("ACCESS%5FTOKEN=abc"));
        assert!(!has_token_in_url("tokens=abc&q=token"));
        assert!(!has_token_in_url(""));
    }

    #[test]
    fn origins_are_normalised() {
        assert_eq!(
            origin_of("https://App.Example.org/path?q").as_deref(),
            Some("https://app.example.org")
        );
        assert_eq!(
            origin_of("http://localhost:8080").as_deref(),
            Some("http://localhost:8080")
        );
        assert_eq!(origin_of("null"), None);
        assert_eq!(origin_of("javascript://x"), None);
        assert_eq!(without_default_port("http://a:80"), "http://a");
        assert_eq!(without_default_port("https://a:443"), "https://a");
        assert_eq!(without_default_port("http://a:443"), "http://a:443");
    }
}
