//! `GET /`: where a person or a program starting at the server's address goes next.

use actix_web::http::header::{self, Accept, Header as _};
use actix_web::{HttpRequest, HttpResponse};
use serde_json::json;

/// Browsers (an `Accept` whose most preferred type is `text/html`, RFC 9110 §12.5.1) are
/// redirected (`303 See Other`) to Swagger UI at `/docs/`; everyone else gets
/// `200 application/json` `{"name", "version", "links": {"docs", "openapi", "health"}}`; both
/// with `Vary: Accept`.
pub async fn root(req: HttpRequest) -> HttpResponse {
    let wants_html = Accept::parse(&req).ok().is_some_and(|accept| {
        accept
            .ranked()
            .first()
            .is_some_and(|m| m.essence_str() == "text/html")
    });
    // The answer depends on Accept: caches must keep the two apart (RFC 9110 §12.5.5).
    if wants_html {
        return HttpResponse::SeeOther()
            .insert_header((header::LOCATION, "/docs/"))
            .insert_header((header::VARY, "Accept"))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::VARY, "Accept"))
        .json(json!({
            "name": "medlabel",
            "version": env!("CARGO_PKG_VERSION"),
            "links": {
                "docs": "/docs/",
                "openapi": "/api/v1/openapi.json",
                "health": "/health",
            },
        }))
}
