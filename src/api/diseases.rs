//! Diseases: list, search, read for every role; researchers and admins create, edit and
//! deactivate. A disease links codes given as `{"system", "code"}`.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::codes::CodeResponse;
use super::conditional::{etag, Precondition};
use super::pagination::{Page, PageRequest};
use super::users::UserRef;
use super::{nullable, parse_id, present, rfc3339, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::codesets::{known_system, normalise_code};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, Change, EntityType};
use crate::models::codes;
use crate::models::diseases::{self, Disease};
use crate::models::users::user_refs;
use crate::state::AppState;

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
    );
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiseaseResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub codes: Vec<CodeResponse>,
    pub created_by: UserRef,
    pub is_active: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
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

/// The full responses for some diseases: their codes and creators, in two queries.
pub fn disease_views(
    conn: &mut DbConnection,
    rows: Vec<Disease>,
) -> Result<Vec<DiseaseResponse>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|d| d.id).collect();
    let creators: Vec<i64> = rows.iter().map(|d| d.created_by).collect();
    let mut codes = diseases::codes_of(conn, &ids)?;
    let users = user_refs(conn, &creators)?;
    Ok(rows
        .into_iter()
        .map(|d| {
            let (uuid, username) = users.get(&d.created_by).cloned().unwrap_or_default();
            DiseaseResponse {
                codes: codes
                    .remove(&d.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(CodeResponse::from)
                    .collect(),
                created_by: UserRef { id: uuid, username },
                id: d.uuid,
                name: d.name,
                description: d.description,
                is_active: d.is_active,
                created_at: d.created_at,
                updated_at: d.updated_at,
            }
        })
        .collect())
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

/// The ids of the named codes; any that do not exist are a field error on `codes`.
/// The ids of the active codes named by `refs`; 422 (`errors.codes`) naming every one that
/// does not exist or is inactive. Used by direct writes and reverts alike.
pub(crate) fn resolve_codes(
    conn: &mut DbConnection,
    refs: &[CodeRef],
) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    let mut missing = Vec::new();
    for r in refs {
        let found = normalise_code(&r.system, &r.code)
            .ok()
            .and_then(|code| codes::find_code(conn, &r.system, &code).ok())
            .filter(|c| c.is_active);
        match found {
            Some(c) if !ids.contains(&c.id) => ids.push(c.id),
            Some(_) => {}
            None => missing.push(format!("{}:{} does not exist", r.system, r.code)),
        }
    }
    if missing.is_empty() {
        Ok(ids)
    } else {
        Err(ApiError::Validation(
            [("codes".to_owned(), missing)].into_iter().collect(),
        ))
    }
}

fn disease_response(view: DiseaseResponse, version: i32, status: StatusCode) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, format!("/api/v1/diseases/{}", view.id)));
    }
    res.json(view)
}

fn single(conn: &mut DbConnection, disease: Disease) -> Result<(DiseaseResponse, i32), ApiError> {
    let version = disease.version;
    let view = disease_views(conn, vec![disease])?
        .pop()
        .ok_or(ApiError::NotFound)?;
    Ok((view, version))
}

/// Like [`single`], and records the disease as it is now in its history.
fn single_recorded(
    conn: &mut DbConnection,
    disease: Disease,
    change: &Change,
    action: Action,
) -> Result<(DiseaseResponse, i32), ApiError> {
    let (view, version) = single(conn, disease)?;
    change.record(conn, EntityType::Disease, &view.id, action, &view)?;
    Ok((view, version))
}

#[utoipa::path(get, path = "/api/v1/diseases", tag = "diseases", operation_id = "list_diseases", summary = "Active diseases, by name or code", params(ListDiseasesQuery), responses((status = 200, description = "A page of diseases", body = Page<DiseaseResponse>)))]
async fn list_diseases(
    state: web::Data<AppState>,
    query: web::Query<ListDiseasesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let code = query.code.as_deref().map(parse_code_filter).transpose()?;
    let q = query.q.filter(|q| !q.trim().is_empty());
    let (after, fetch) = (page.after.clone(), page.fetch());
    let views = state
        .db
        .run(move |conn| {
            let code_id = match code {
                Some((system, code)) => match codes::find_code(conn, &system, &code) {
                    Ok(c) => Some(c.id),
                    Err(diesel::result::Error::NotFound) => return Ok(Vec::new()),
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            let rows =
                diseases::list_diseases(conn, q.as_deref(), code_id, after.as_deref(), fetch)?;
            disease_views(conn, rows)
        })
        .await?;
    let body: Page<DiseaseResponse> = page.finish(views, |d| &d.id, |d| d);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(post, path = "/api/v1/diseases", tag = "diseases", operation_id = "create_disease", summary = "Create a disease (researcher, admin)", request_body(content = CreateDiseaseRequest, content_type = "application/json"), responses((status = 201, description = "Created", body = DiseaseResponse, headers(("Location" = String, description = "the new entity"))), (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn create_disease(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateDiseaseRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let change = Change::by(&caller);
    let (view, version) = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let name = body.name.trim();
                let code_ids = resolve_codes(conn, &body.codes)?;
                if diseases::name_taken(conn, name, None)? {
                    return Err(ApiError::Conflict(format!(
                        "a disease named {name:?} exists already"
                    )));
                }
                let disease =
                    diseases::insert_disease(conn, name, body.description.as_deref(), caller.id)?;
                diseases::set_disease_codes(conn, disease.id, &code_ids)?;
                single_recorded(conn, disease, &change, Action::Create)
            })
        })
        .await?;
    Ok(disease_response(view, version, StatusCode::CREATED))
}

#[utoipa::path(get, path = "/api/v1/diseases/{id}", tag = "diseases", operation_id = "get_disease", summary = "A disease", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The disease", body = DiseaseResponse, headers(("ETag" = String, description = "changes with every change of the entity")))))]
async fn get_disease(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (view, version) = state
        .db
        .run(move |conn| {
            let disease = diseases::find_disease(conn, &id)?;
            single(conn, disease)
        })
        .await?;
    Ok(disease_response(view, version, StatusCode::OK))
}

#[utoipa::path(patch, path = "/api/v1/diseases/{id}", tag = "diseases", operation_id = "update_disease", summary = "Change a disease (honours If-Match)", request_body(content = UpdateDiseaseRequest, content_type = "application/json"), params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The updated disease", body = DiseaseResponse, headers(("ETag" = String, description = "changes with every change of the entity"))), (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json"), (status = 412, description = "Stale If-Match", body = crate::error::Problem, content_type = "application/problem+json")))]
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
    let precondition = Precondition::from_request(&req);
    let change = Change::by(&caller);
    let (view, version) = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let current = diseases::find_disease(conn, &id)?;
                precondition.check(current.version)?;
                let name = body.name.as_deref().map(str::trim);
                if let Some(name) = name {
                    if current.is_active && diseases::name_taken(conn, name, Some(current.id))? {
                        return Err(ApiError::Conflict(format!(
                            "a disease named {name:?} exists already"
                        )));
                    }
                }
                let code_ids = body
                    .codes
                    .as_deref()
                    .map(|c| resolve_codes(conn, c))
                    .transpose()?;
                let description = body.description.as_ref().map(|d| d.as_deref());
                let updated = diseases::update_disease(
                    conn,
                    current.id,
                    current.version,
                    name,
                    description,
                    None,
                )?
                .ok_or(ApiError::PreconditionFailed)?;
                if let Some(code_ids) = code_ids {
                    diseases::set_disease_codes(conn, updated.id, &code_ids)?;
                }
                single_recorded(conn, updated, &change, Action::Update)
            })
        })
        .await?;
    Ok(disease_response(view, version, StatusCode::OK))
}

#[utoipa::path(delete, path = "/api/v1/diseases/{id}", tag = "diseases", operation_id = "delete_disease", summary = "Deactivate a disease (honours If-Match)", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 204, description = "Deactivated"), (status = 412, description = "Stale If-Match", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn delete_disease(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let precondition = Precondition::from_request(&req);
    let change = Change::by(&caller);
    state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let current = diseases::find_disease(conn, &id)?;
                precondition.check(current.version)?;
                if !current.is_active {
                    return Ok::<_, ApiError>(());
                }
                let updated = diseases::update_disease(
                    conn,
                    current.id,
                    current.version,
                    None,
                    None,
                    Some(false),
                )?
                .ok_or(ApiError::PreconditionFailed)?;
                single_recorded(conn, updated, &change, Action::Delete)?;
                Ok(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
