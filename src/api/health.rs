//! `GET /health`: no auth, not audited; 503 naming the failing part.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::state::AppState;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    pub status: &'static str,
    pub database: &'static str,
    pub storage: &'static str,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    operation_id = "health",
    summary = "Liveness of the service, its database and storage",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "A part is unavailable", body = Health)
    )
)]
pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    let (database_ok, storage_ok) =
        futures_util::join!(state.db.is_healthy(), state.storage.is_healthy());
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let body = Health {
        status: word(database_ok && storage_ok),
        database: word(database_ok),
        storage: word(storage_ok),
    };
    if database_ok && storage_ok {
        HttpResponse::Ok().json(body)
    } else {
        // Like every 503 here: come back in a moment (RFC 9110 section 10.2.3).
        HttpResponse::ServiceUnavailable()
            .insert_header((
                actix_web::http::header::RETRY_AFTER,
                crate::error::UNAVAILABLE_RETRY_AFTER_SECS,
            ))
            .json(body)
    }
}
