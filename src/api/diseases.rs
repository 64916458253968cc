//! Diseases: list, search, read for every role; researchers and admins create, edit and
//! deactivate. A disease links codes given as `{"system", "code"}`. The writes are
//! [`crate::changes::vocabulary`]'s.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::history::{entity_page, PageQuery};
use super::pagination::{Page, PageRequest};
use super::{nullable, parse_id, present, vocabulary, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::changes::vocabulary::{TermState, TermUpdate};
use crate::codesets::{known_system, normalise_code};
use crate::error::ApiError;
use crate::history::EntityType;
use crate::models::codes;
use crate::models::diseases::{self, Disease};
use crate::state::AppState;
use crate::views::history::HistoryEntryResponse;
use crate::views::vocabulary::{disease_responses, DiseaseResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    let curate = Access::roles(&[Role::Researcher]);
    cfg.service(
        web::resource("/diseases")
            .route(web::get().to(list_diseases).wrap(read))
            .route(web::post().to(create_disease).wrap(curate)),
    )
    .service(
        web::resource("/diseases/{id}")
            .route(web::get().to(get_disease).wrap(read))
            .route(web::patch().to(update_disease).wrap(curate))
            .route(web::delete().to(delete_disease).wrap(curate)),
    )
    .service(
        web::resource("/diseases/{id}/history").route(web::get().to(disease_history).wrap(read)),
    );
}

/// `{"system", "code"}` as clients name a code.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRef {
    pub system: String,
    pub code: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListDiseasesQuery {
    pub q: Option<String>,
    /// system:code, e.g. icd-10:J18.9

    #[param(value_type = Option<String>, pattern = "^(icd-9|icd-10|snomed-ct):[0-9A-Za-z.]+$")]
    pub code: Option<String>,
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"name": "Pneumonia", "description": "Infection of the lung parenchyma", "codes": [{"system": "icd-10", "code": "J18.9"}, {"system": "icd-9", "code": "486"}]}))]
#[serde(deny_unknown_fields)]
pub struct CreateDiseaseRequest {
    #[validate(
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "super::valid_name")
    )]
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    #[serde(default)]
    pub codes: Vec<CodeRef>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDiseaseRequest {
    #[validate(
        length(min = 1, max = 200, message = "must be 1 to 200 characters"),
        custom(function = "super::valid_name")
    )]
    #[schema(min_length = 1, max_length = 200, nullable = false)]
    #[serde(default, deserialize_with = "present")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(value_type = Option<String>, nullable, max_length = 2000)]
    pub description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub codes: Option<Vec<CodeRef>>,
}

impl CodeRef {
    fn pair(self) -> (String, String) {
        (self.system, self.code)
    }
}

/// Parses `system:code` (as in `?code=icd-10:J18.9`).
pub fn parse_code_filter(raw: &str) -> Result<(String, String), ApiError> {
    let (system, code) = raw
        .split_once(':')
        .ok_or_else(|| ApiError::BadRequest("code must look like icd-10:J18.9".into()))?;
    if !known_system(system) {
        return Err(ApiError::field(
            "code",
            "unknown code system; systems are icd-9, icd-10, snomed-ct",
        ));
    }
    let code = normalise_code(system, code).map_err(|m| ApiError::field("code", m))?;
    Ok((system.to_owned(), code))
}

#[utoipa::path(
    get,
    path = "/api/v1/diseases",
    tag = "diseases",
    operation_id = "list_diseases",
    summary = "Active diseases, by name or code",
    params(
        ListDiseasesQuery
    ),
    responses(
        (status = 200, description = "A page of diseases", body = Page<DiseaseResponse>)
    )
)]
async fn list_diseases(
    state: web::Data<AppState>,
    query: web::Query<ListDiseasesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let code = query.code.as_deref().map(parse_code_filter).transpose()?;
    let q = query.q.filter(|q| !q.trim().is_empty());
    let (after, fetch) = (page.after.clone(), page.fetch());
    let responses = state
        .db
        .query(move |conn| {
            let code_id = match code {
                Some((system, code)) => match codes::find_code(conn, &system, &code) {
                    Ok(c) => Some(c.id),
                    // A filter naming nothing matches nothing.
                    Err(diesel::result::Error::NotFound) => return Ok(Vec::new()),
                    Err(e) => return Err(e),
                },
                None => None,
            };
            let rows = diseases::list(conn, q.as_deref(), code_id, after.as_deref(), fetch)?;
            disease_responses(conn, rows)
        })
        .await?;
    let body: Page<DiseaseResponse> = page.finish(responses, |d| &d.id, |d| d);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/diseases",
    tag = "diseases",
    operation_id = "create_disease",
    summary = "Create a disease (researcher, admin)",
    request_body(content = CreateDiseaseRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = DiseaseResponse, headers(("Location" = String, description = "the new entity"))),
        crate::api::responses::NameTaken
    )
)]
async fn create_disease(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateDiseaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let new = TermState {
        name: body.name,
        description: body.description,
        is_active: true,
        links: body.codes.into_iter().map(CodeRef::pair).collect(),
    };
    vocabulary::create::<Disease>(state, caller, new, "diseases").await
}

#[utoipa::path(
    get,
    path = "/api/v1/diseases/{id}",
    tag = "diseases",
    operation_id = "get_disease",
    summary = "A disease",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The disease", body = DiseaseResponse, headers(("ETag" = String, description = "changes with every change of the entity")))
    )
)]
async fn get_disease(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    vocabulary::get::<Disease>(state, parse_id(&id)?, "diseases").await
}

#[utoipa::path(
    patch,
    path = "/api/v1/diseases/{id}",
    tag = "diseases",
    operation_id = "update_disease",
    summary = "Change a disease (honours If-Match)",
    request_body(content = UpdateDiseaseRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The updated disease", body = DiseaseResponse, headers(("ETag" = String, description = "changes with every change of the entity"))),
        crate::api::responses::NameTaken,
        crate::api::responses::StaleIfMatch
    )
)]
async fn update_disease(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<UpdateDiseaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    body.validate()?;
    let update = TermUpdate {
        name: body.name,
        description: body.description,
        links: body
            .codes
            .map(|codes| codes.into_iter().map(CodeRef::pair).collect()),
    };
    vocabulary::update::<Disease>(state, caller, req, id, update, "diseases").await
}

#[utoipa::path(
    delete,
    path = "/api/v1/diseases/{id}",
    tag = "diseases",
    operation_id = "delete_disease",
    summary = "Deactivate a disease (honours If-Match)",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 204, description = "Deactivated"),
        crate::api::responses::StaleIfMatch
    )
)]
async fn delete_disease(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    vocabulary::deactivate::<Disease>(state, caller, req, parse_id(&id)?).await
}

#[utoipa::path(
    get,
    path = "/api/v1/diseases/{id}/history",
    tag = "history",
    operation_id = "list_disease_history",
    summary = "A disease's history, oldest first",
    params(
        ("id" = String, Path, description = "The entity's UUID"),
        PageQuery
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)
    )
)]
async fn disease_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    entity_page(&state, caller, EntityType::Disease, id, query.into_inner()).await
}
