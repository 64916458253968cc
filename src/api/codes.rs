//! Code systems and codes: list, search, read; researchers and admins create, edit and
//! deactivate. Formats are validated per system.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::conditional::{etag, precondition};
use super::history::{entity_page, PageQuery};
use super::pagination::{Page, PageRequest};
use super::JsonBody;
use crate::auth::{Access, CurrentUser, Role};
use crate::changes::{self, Change};
use crate::codesets::{known_system, normalise_code};
use crate::error::ApiError;
use crate::history::EntityType;
use crate::models::codes::{self, Code, CodeChanges, NewCode};
use crate::state::AppState;
use crate::views::history::HistoryEntryResponse;
pub use crate::views::vocabulary::CodeResponse;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    let curate = Access::roles(&[Role::Researcher]);
    cfg.service(web::resource("/code-systems").route(web::get().to(list_code_systems).wrap(read)))
        .service(
            web::resource("/codes")
                .route(web::get().to(list_codes).wrap(read))
                .route(web::post().to(create_code).wrap(curate)),
        )
        .service(
            web::resource("/codes/{system}/{code}")
                .route(web::get().to(get_code).wrap(read))
                .route(web::patch().to(update_code).wrap(curate))
                .route(web::delete().to(delete_code).wrap(curate)),
        )
        .service(
            web::resource("/codes/{system}/{code}/history")
                .route(web::get().to(code_history).wrap(read)),
        );
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CodeSystemResponse {
    pub id: String,
    pub name: String,
    pub version: String,
    pub code_count: i64,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListCodesQuery {
    #[param(value_type = Option<String>, pattern = "^(icd-9|icd-10|snomed-ct)$")]
    pub system: Option<String>,
    pub q: Option<String>,
    pub prefix: Option<String>,
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"system": "snomed-ct", "code": "233604007", "description": "Pneumonia"}))]
#[serde(deny_unknown_fields)]
pub struct CreateCodeRequest {
    #[schema(pattern = "^(icd-9|icd-10|snomed-ct)$")]
    pub system: String,
    pub code: String,
    #[validate(length(min = 1, max = 1000, message = "must be 1 to 1000 characters"))]
    #[schema(min_length = 1, max_length = 1000)]
    pub description: String,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateCodeRequest {
    #[validate(length(min = 1, max = 1000, message = "must be 1 to 1000 characters"))]
    #[schema(min_length = 1, max_length = 1000)]
    pub description: String,
}

/// The system and code named by a path, or 404.
fn path_code(path: &(String, String)) -> Result<(String, String), ApiError> {
    let (system, code) = path;
    if !known_system(system) {
        return Err(ApiError::NotFound);
    }
    let code = normalise_code(system, code).map_err(|_| ApiError::NotFound)?;
    Ok((system.clone(), code))
}

#[utoipa::path(
    get,
    path = "/api/v1/code-systems",
    tag = "codes",
    operation_id = "list_code_systems",
    summary = "Code systems with their number of codes",
    responses(
        (status = 200, description = "Code systems", body = Vec<CodeSystemResponse>)
    )
)]
async fn list_code_systems(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let rows = state.db.query(codes::list_systems).await?;
    let body: Vec<CodeSystemResponse> = rows
        .into_iter()
        .map(|(id, name, version, code_count)| CodeSystemResponse {
            id,
            name,
            version,
            code_count,
        })
        .collect();
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/codes",
    tag = "codes",
    operation_id = "list_codes",
    summary = "Codes: by prefix, or full-text search (best matches first)",
    params(
        ListCodesQuery
    ),
    responses(
        (status = 200, description = "A page of codes", body = Page<CodeResponse>)
    )
)]
async fn list_codes(
    state: web::Data<AppState>,
    query: web::Query<ListCodesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    if let Some(system) = &query.system {
        if !known_system(system) {
            return Err(ApiError::field(
                "system",
                "unknown code system; systems are icd-9, icd-10, snomed-ct",
            ));
        }
    }
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::field("q", "must be at most 200 characters"));
    }
    let body: Page<CodeResponse> = match q {
        Some(q) => {
            // Ranked search: the cursor is the position in the ranking.
            let (limit, offset) =
                PageRequest::parse_offset(query.limit.as_deref(), query.cursor.as_deref())?;
            let rows = search(&state, q, query.system.clone(), offset, limit + 1).await?;
            PageRequest::finish_offset(rows, limit, offset, |r| r)
        }
        None => {
            let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
            let prefix = query
                .prefix
                .as_deref()
                .map(|p| p.trim().to_uppercase())
                .filter(|p| !p.is_empty());
            let (system, after, fetch) = (query.system.clone(), page.after.clone(), page.fetch());
            // A prefix listing scans the codes in the database: a few at a time, like the
            // database's searches, so a flood of them cannot hold every connection.
            let _permit = match prefix {
                Some(_) => Some(database_search_turn(&state).await?),
                None => None,
            };
            let rows = state
                .db
                .run(move |conn| {
                    Ok::<_, ApiError>(codes::list_codes(
                        conn,
                        system.as_deref(),
                        prefix.as_deref(),
                        after.as_deref(),
                        fetch,
                    )?)
                })
                .await?;
            page.finish(rows, |c| &c.uuid, CodeResponse::from)
        }
    };
    Ok(HttpResponse::Ok().json(body))
}

/// The codes at `offset..offset + limit` of the ranking of `q`: from the in-memory index
/// ([`crate::search`], no database work); while the index is not built, from the database's
/// full-text search, a few at a time ([`AppState::search_fallback`]; waiting more than 2 s is
/// 503).
async fn search(
    state: &AppState,
    q: String,
    system: Option<String>,
    offset: i64,
    limit: i64,
) -> Result<Vec<CodeResponse>, ApiError> {
    let (from, count) = (offset.max(0) as usize, limit.max(0) as usize);
    if let Some(hits) = state.code_index.search(&q, system.as_deref(), from, count) {
        return Ok(hits
            .into_iter()
            .map(|hit| CodeResponse {
                id: hit.uuid,
                system: hit.system,
                code: hit.code,
                description: hit.description,
                billable: hit.billable,
                is_active: true,
            })
            .collect());
    }
    let _permit = database_search_turn(state).await?;
    let rows = state
        .db
        .query(move |conn| codes::search_codes(conn, system.as_deref(), &q, offset, limit))
        .await?;
    Ok(rows.into_iter().map(CodeResponse::from).collect())
}

/// A turn at searching the codes in the database ([`AppState::search_fallback`]): waiting
/// more than 2 s for one is 503 with `Retry-After`.
async fn database_search_turn(
    state: &AppState,
) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    Ok(tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.search_fallback.clone().acquire_owned(),
    )
    .await
    .map_err(|_| crate::db::DbError::Busy)?
    .map_err(|e| crate::db::DbError::Blocking(e.to_string()))?)
}

fn code_response(code: Code, status: actix_web::http::StatusCode) -> HttpResponse {
    let tag = etag(code.version);
    let location = format!("/api/v1/codes/{}/{}", code.system_id, code.code);
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, tag));
    if status == actix_web::http::StatusCode::CREATED {
        res.insert_header((header::LOCATION, location));
    }
    res.json(CodeResponse::from(code))
}

#[utoipa::path(
    post,
    path = "/api/v1/codes",
    tag = "codes",
    operation_id = "create_code",
    summary = "Add a code (researcher, admin)",
    request_body(content = CreateCodeRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CodeResponse, headers(("Location" = String, description = "the new entity"))),
        (status = 409, description = "The code exists", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
async fn create_code(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let change = Change::by(&caller);
    let body = body.into_inner();
    body.validate()?;
    if !known_system(&body.system) {
        return Err(ApiError::field(
            "system",
            "unknown code system; systems are icd-9, icd-10, snomed-ct",
        ));
    }
    let code = normalise_code(&body.system, &body.code).map_err(|m| ApiError::field("code", m))?;
    let billable = body.system != "icd-10" || code.len() > 3;
    let new = NewCode::new(&body.system, &code, body.description.trim(), billable);
    let index = state.code_index.clone();
    let created = state
        .changes
        .write(caller.actor(), move |conn| {
            codes::ensure_code_systems(conn)?;
            let created = changes::codes::create(conn, &change, &new)?;
            index_on_commit(&index, &created);
            Ok::<_, ApiError>(created)
        })
        .await?;
    Ok(code_response(created, actix_web::http::StatusCode::CREATED))
}

#[utoipa::path(
    get,
    path = "/api/v1/codes/{system}/{code}",
    tag = "codes",
    operation_id = "get_code",
    summary = "A code",
    params(
        ("system" = String, Path, description = "icd-9, icd-10 or snomed-ct"),
        ("code" = String, Path, description = "e.g. J18.9")
    ),
    responses(
        (status = 200, description = "The code", body = CodeResponse, headers(("ETag" = String, description = "changes with every change of the entity")))
    )
)]
async fn get_code(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (system, code) = path_code(&path)?;
    let found = state
        .db
        .query(move |conn| codes::find_code(conn, &system, &code))
        .await?;
    Ok(code_response(found, actix_web::http::StatusCode::OK))
}

/// Hands a changed code to this instance's search index once its transaction commits.
pub(crate) fn index_on_commit(index: &crate::code_index::CodeIndex, code: &Code) {
    let (index, code) = (index.clone(), code.clone());
    crate::db::on_commit(move || index.apply(&code));
}

/// Changes the code named by the path, honouring `If-Match`.
async fn change_code(
    state: &AppState,
    req: &HttpRequest,
    caller: &CurrentUser,
    path: &(String, String),
    description: Option<String>,
    is_active: Option<bool>,
) -> Result<Code, ApiError> {
    let (system, code) = path_code(path)?;
    let precondition = precondition(req);
    let index = state.code_index.clone();
    let change = Change::by(caller);
    state
        .changes
        .write(caller.actor(), move |conn| {
            let changes = CodeChanges {
                description: description.as_deref(),
                is_active,
            };
            let changed =
                changes::codes::update(conn, &change, (&system, &code), &precondition, &changes)?;
            index_on_commit(&index, &changed);
            Ok::<_, ApiError>(changed)
        })
        .await
}

#[utoipa::path(
    patch,
    path = "/api/v1/codes/{system}/{code}",
    tag = "codes",
    operation_id = "update_code",
    summary = "Change a code's description (honours If-Match)",
    request_body(content = UpdateCodeRequest, content_type = "application/json"),
    params(
        ("system" = String, Path, description = "icd-9, icd-10 or snomed-ct"),
        ("code" = String, Path, description = "e.g. J18.9")
    ),
    responses(
        (status = 200, description = "The updated code", body = CodeResponse, headers(("ETag" = String, description = "changes with every change of the entity"))),
        crate::api::responses::StaleIfMatch
    )
)]
async fn update_code(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: JsonBody<UpdateCodeRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let updated = change_code(
        &state,
        &req,
        &caller,
        &path,
        Some(body.description.trim().to_owned()),
        None,
    )
    .await?;
    Ok(code_response(updated, actix_web::http::StatusCode::OK))
}

#[utoipa::path(
    delete,
    path = "/api/v1/codes/{system}/{code}",
    tag = "codes",
    operation_id = "delete_code",
    summary = "Deactivate a code (honours If-Match)",
    params(
        ("system" = String, Path, description = "icd-9, icd-10 or snomed-ct"),
        ("code" = String, Path, description = "e.g. J18.9")
    ),
    responses(
        (status = 204, description = "Deactivated"),
        crate::api::responses::StaleIfMatch
    )
)]
async fn delete_code(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    change_code(&state, &req, &caller, &path, None, Some(false)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/codes/{system}/{code}/history",
    tag = "history",
    operation_id = "list_code_history",
    summary = "A code's history, oldest first",
    params(
        ("system" = String, Path, description = "icd-9, icd-10 or snomed-ct"),
        ("code" = String, Path, description = "e.g. J18.9"),
        PageQuery
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)
    )
)]
async fn code_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    path: web::Path<(String, String)>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let (system, code) = path_code(&path)?;
    let uuid = state
        .db
        .query(move |conn| Ok(codes::find_code(conn, &system, &code)?.uuid))
        .await?;
    entity_page(&state, caller, EntityType::Code, uuid, query.into_inner()).await
}
