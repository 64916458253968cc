//! The handler bodies labels and diseases share ([`crate::changes::vocabulary::Term`]): read
//! one, create, update, deactivate. `labels.rs` and `diseases.rs` keep their routes, request
//! types and OpenAPI annotations, and call these.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use super::conditional::{etag, precondition};
use crate::auth::CurrentUser;
use crate::changes::vocabulary::{self, Term, TermState, TermUpdate};
use crate::changes::Change;
use crate::error::ApiError;
use crate::state::AppState;

/// The answer for one term: its response, the ETag of `version`, and for a 201 the
/// `Location` under `/api/v1/{collection}/`.
fn term_response<T: Term>(
    response: T::Response,
    version: i32,
    status: StatusCode,
    collection: &str,
) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        let location = format!("/api/v1/{collection}/{}", T::response_id(&response));
        res.insert_header((header::LOCATION, location));
    }
    res.json(response)
}

/// `GET /{collection}/{id}`: a term, active or not.
pub(super) async fn get<T: Term>(
    state: web::Data<AppState>,
    id: String,
    collection: &'static str,
) -> Result<HttpResponse, ApiError> {
    let (response, version) = state
        .db
        .run(move |conn| {
            let row = T::find(conn, &id)?;
            vocabulary::response(conn, row)
        })
        .await?;
    Ok(term_response::<T>(
        response,
        version,
        StatusCode::OK,
        collection,
    ))
}

/// `POST /{collection}`: 201 with the new term.
pub(super) async fn create<T: Term>(
    state: web::Data<AppState>,
    caller: CurrentUser,
    new: TermState<T::LinkRef>,
    collection: &'static str,
) -> Result<HttpResponse, ApiError> {
    let change = Change::by(&caller);
    let actor = caller.actor();
    let (response, version) = state
        .changes
        .write(actor, move |conn| {
            vocabulary::create::<T>(conn, &change, &new)
        })
        .await?;
    Ok(term_response::<T>(
        response,
        version,
        StatusCode::CREATED,
        collection,
    ))
}

/// `PATCH /{collection}/{id}` (honours `If-Match`).
pub(super) async fn update<T: Term>(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: String,
    update: TermUpdate<T::LinkRef>,
    collection: &'static str,
) -> Result<HttpResponse, ApiError> {
    let change = Change::by(&caller);
    let actor = caller.actor();
    let precondition = precondition(&req);
    let (response, version) = state
        .changes
        .write(actor, move |conn| {
            vocabulary::update::<T>(conn, &change, &id, &precondition, &update)
        })
        .await?;
    Ok(term_response::<T>(
        response,
        version,
        StatusCode::OK,
        collection,
    ))
}

/// `DELETE /{collection}/{id}`: deactivates (honours `If-Match`); 204.
pub(super) async fn deactivate<T: Term>(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: String,
) -> Result<HttpResponse, ApiError> {
    let change = Change::by(&caller);
    let actor = caller.actor();
    let precondition = precondition(&req);
    state
        .changes
        .write(actor, move |conn| {
            vocabulary::deactivate::<T>(conn, &change, &id, &precondition)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
