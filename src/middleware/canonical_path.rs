//! The one canonical form of a request path, on which routing, auditing and the security headers
//! are all decided (so that no spelling of a path reaches a route while escaping the audit log).
//!
//! Canonicalisation (RFC 3986 section 6.2.2, syntax-based normalisation):
//! 1. the path is split at its literal `/`;
//! 2. each segment is percent-decoded completely (section 2.1; upper or lower case hex); the
//!    decoded bytes must be UTF-8 without NUL, or the path is refused ([`BadPath`]: it names
//!    nothing, 404);
//! 3. empty segments (`//`) are dropped and dot segments (`.`, `..`, however encoded) are
//!    removed as section 5.2.4 says (`..` never climbs above the root);
//! 4. each segment is percent-encoded again where a path may not hold the character literally
//!    (controls, space, non-ASCII, and `"#%/<>?[\]^`{|}`), with upper-case hex (section 6.2.2.1).
//!
//! A `/` that was sent encoded (`%2F`) stays `%2F`: it is data inside a segment, never a
//! separator. A trailing `/` is kept (`/api/v1/labels/` is another resource than
//! `/api/v1/labels`).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::HttpMessage;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Characters encoded in a canonical path segment (beyond controls and non-ASCII).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A path whose percent-decoded bytes are not UTF-8, or hold NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPath;

/// The canonical form of `raw` (an origin-form path such as `/%61pi/v1//images/./x`), or
/// [`BadPath`]. A path that does not start with `/` (the asterisk-form `*` of `OPTIONS`) is
/// returned as it is.
pub fn canonical_path(raw: &str) -> Result<String, BadPath> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Ok(raw.to_owned());
    };
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for piece in rest.split('/') {
        let decoded = percent_decode_str(piece)
            .decode_utf8()
            .map_err(|_| BadPath)?;
        if decoded.contains('\0') {
            return Err(BadPath);
        }
        match decoded.as_ref() {
            "" | "." => {
                trailing_slash = true;
            }
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            segment => {
                trailing_slash = false;
                segments.push(utf8_percent_encode(segment, SEGMENT).to_string());
            }
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &segments {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

/// True when the query string holds NUL once percent-decoded (`+` is never NUL).
pub fn query_has_nul(query: &str) -> bool {
    percent_decode_str(query).any(|b| b == 0)
}

/// The request's path as every later layer names it (in request extensions): the canonical
/// path, or, for a path that has none, the raw path percent-decoded with invalid UTF-8 shown as
/// U+FFFD ([`lossy_path`]).
#[derive(Debug, Clone)]
pub struct RequestPath(pub String);

/// A request refused before routing (in request extensions), answered by
/// [`super::problem`]: a path that is not UTF-8 or holds NUL names nothing (404, as a path id
/// that is not a UUID does); a query holding NUL cannot be parsed (400; PostgreSQL cannot
/// store NUL).
#[derive(Debug, Clone, Copy)]
pub struct Refused(pub StatusCode);

/// The layer: rewrites the request to its canonical path (for the router and every later
/// layer) and notes [`RequestPath`], or [`Refused`].
pub async fn canonicalise(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let canonical = canonical_path(req.path())
        .ok()
        .filter(|canonical| canonical == req.path() || rewrite_path(&mut req, canonical).is_some());
    let refused = match &canonical {
        None => Some(StatusCode::NOT_FOUND),
        Some(_) if query_has_nul(req.query_string()) => Some(StatusCode::BAD_REQUEST),
        Some(_) => None,
    };
    let path = canonical.unwrap_or_else(|| lossy_path(req.path()));
    req.extensions_mut().insert(RequestPath(path));
    if let Some(status) = refused {
        req.extensions_mut().insert(Refused(status));
    }
    next.call(req).await
}

/// HEAD is GET without the body (RFC 9110 section 9.3.2) on every route: the layer routes it
/// as GET, and the HTTP layer, which saw HEAD, sends the headers only. It sits inside the audit
/// layer, so the event still says HEAD.
pub async fn head_as_get(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
        req.extensions_mut().insert(HeadRequest);
    }
    next.call(req).await
}

/// In a request's extensions: it came as HEAD (routed as GET). A handler whose body costs
/// work to make (a dataset export) answers the headers without starting that work.
#[derive(Debug, Clone, Copy)]
pub struct HeadRequest;

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

/// A path that could not be canonicalised, as recorded: percent-decoded where possible,
/// invalid UTF-8 shown as U+FFFD, at most 1024 characters.
pub fn lossy_path(raw: &str) -> String {
    percent_decode_str(raw)
        .decode_utf8_lossy()
        .chars()
        .take(1024)
        .collect::<String>()
        .replace('\0', "\u{FFFD}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_unchanged() {
        for path in [
            "/",
            "/health",
            "/api/v1/images",
            "/api/v1/labels/",
            "/api/v1/codes/icd-10/J18.9",
            "/api/v1/codes/icd-9/V45.81/history",
            "/docs/swagger-ui.css",
        ] {
            assert_eq!(canonical_path(path).unwrap(), path);
        }
    }

    #[test]
    fn every_spelling_of_a_path_has_one_canonical_form() {
        for variant in [
            "/%61pi/v1/images",
            "/%61%70%69/%76%31/%69mages",
            "/api/v1/%69%6D%61%67%65%73",
            "/api/v1/%69%6d%61%67%65%73",
            "//api//v1///images",
            "/api/./v1/images",
            "/api/v1/x/../images",
            "/api/v1/x/%2e%2e/images",
            "/api/v1/x/%2E%2E/images",
            "/%2e/api/v1/images",
            "/../../api/v1/images",
            "/api/v1/images/.",
        ] {
            let canonical = canonical_path(variant).unwrap();
            assert!(
                canonical == "/api/v1/images" || canonical == "/api/v1/images/",
                "{variant} -> {canonical}"
            );
        }
    }

    #[test]
    fn encoded_separators_and_specials_stay_data() {
        assert_eq!(
            canonical_path("/api%2Fv1/images").unwrap(),
            "/api%2Fv1/images"
        );
        assert_eq!(canonical_path("/api%2fv1").unwrap(), "/api%2Fv1");
        assert_eq!(canonical_path("/a%3Fb%23c").unwrap(), "/a%3Fb%23c");
        assert_eq!(canonical_path("/a%2525").unwrap(), "/a%2525");
        assert_eq!(canonical_path("/%C3%84rztin").unwrap(), "/%C3%84rztin");
        assert_eq!(canonical_path("/a%20b").unwrap(), "/a%20b");
        assert_eq!(canonical_path("*").unwrap(), "*");
    }

    #[test]
    fn non_utf8_is_refused() {
        assert_eq!(canonical_path("/api/%FF"), Err(BadPath));
        assert_eq!(canonical_path("/api/v1/codes/icd-10/J18%009"), Err(BadPath));
        assert!(query_has_nul("q=a%00b") && query_has_nul("%00=1") && !query_has_nul("q=%2500"));
    }
}
