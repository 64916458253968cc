//! Labels: list, search, read for every role; researchers and admins create, edit and
//! deactivate. DELETE deactivates: past assignments keep the label, new ones are refused, and
//! its name may be reused.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};
use validator::Validate;

use super::conditional::{etag, Precondition};
use super::pagination::{Page, PageRequest};
use super::users::UserRef;
use super::{nullable, parse_id, present, rfc3339, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, Change, EntityType};
use crate::models::diseases;
use crate::models::labels::{self, Label};
use crate::models::users::user_refs;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    let curate = Access::roles(&[Role::Researcher]);
    cfg.service(
        web::resource("/labels")
            .route(web::get().to(list_labels).wrap(read))
            .route(web::post().to(create_label).wrap(curate)),
    )
    .service(
        web::resource("/labels/{id}")
            .route(web::get().to(get_label).wrap(read))
            .route(web::patch().to(update_label).wrap(curate))
            .route(web::delete().to(delete_label).wrap(curate)),
    );
}

/// `{"id", "name"}`: how labels and diseases are named inside other entities.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NamedRef {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelResponse {
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub diseases: Vec<NamedRef>,
    pub created_by: UserRef,
    pub is_active: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListLabelsQuery {
    pub q: Option<String>,
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"name": "Pleural effusion", "description": "Fluid in the pleural space", "disease_ids": ["01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77"]}))]
#[serde(deny_unknown_fields)]
pub struct CreateLabelRequest {
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
    pub disease_ids: Vec<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateLabelRequest {
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
    pub disease_ids: Option<Vec<String>>,
}

/// The full responses for some labels: their diseases and creators, in two queries.
pub fn label_views(
    conn: &mut DbConnection,
    rows: Vec<Label>,
) -> Result<Vec<LabelResponse>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|l| l.id).collect();
    let creators: Vec<i64> = rows.iter().map(|l| l.created_by).collect();
    let mut diseases = labels::diseases_of(conn, &ids)?;
    let users = user_refs(conn, &creators)?;
    Ok(rows
        .into_iter()
        .map(|l| {
            let (uuid, username) = users.get(&l.created_by).cloned().unwrap_or_default();
            LabelResponse {
                diseases: diseases
                    .remove(&l.id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|d| NamedRef {
                        id: d.uuid,
                        name: d.name,
                    })
                    .collect(),
                created_by: UserRef { id: uuid, username },
                id: l.uuid,
                name: l.name,
                description: l.description,
                is_active: l.is_active,
                created_at: l.created_at,
                updated_at: l.updated_at,
            }
        })
        .collect())
}

/// The internal ids of the named active diseases; unknown ones are a field error.
/// The ids of active diseases named by `uuids`; 422 (`errors.disease_ids`) naming every one
/// that does not exist or is inactive. Used by direct writes and reverts alike.
pub(crate) fn resolve_diseases(
    conn: &mut DbConnection,
    uuids: &[String],
) -> Result<Vec<i64>, ApiError> {
    let wanted: Vec<String> = uuids
        .iter()
        .filter_map(|u| uuid::Uuid::parse_str(u).ok())
        .map(|u| u.to_string())
        .collect();
    let found = diseases::find_diseases(conn, &wanted)?;
    let missing: Vec<String> = uuids
        .iter()
        .filter(|u| {
            !found.iter().any(|d| {
                d.is_active && uuid::Uuid::parse_str(u).is_ok_and(|p| p.to_string() == d.uuid)
            })
        })
        .map(|u| format!("{u} is not an active disease"))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::Validation(
            [("disease_ids".to_owned(), missing)].into_iter().collect(),
        ));
    }
    Ok(found.into_iter().map(|d| d.id).collect())
}

fn label_response(view: LabelResponse, version: i32, status: StatusCode) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, format!("/api/v1/labels/{}", view.id)));
    }
    res.json(view)
}

fn single(conn: &mut DbConnection, label: Label) -> Result<(LabelResponse, i32), ApiError> {
    let version = label.version;
    let view = label_views(conn, vec![label])?
        .pop()
        .ok_or(ApiError::NotFound)?;
    Ok((view, version))
}

/// Like [`single`], and records the label as it is now in its history.
fn single_recorded(
    conn: &mut DbConnection,
    label: Label,
    change: &Change,
    action: Action,
) -> Result<(LabelResponse, i32), ApiError> {
    let (view, version) = single(conn, label)?;
    change.record(conn, EntityType::Label, &view.id, action, &view)?;
    Ok((view, version))
}

#[utoipa::path(get, path = "/api/v1/labels", tag = "labels", operation_id = "list_labels", summary = "Active labels, optionally matching q", params(ListLabelsQuery), responses((status = 200, description = "A page of labels", body = Page<LabelResponse>)))]
async fn list_labels(
    state: web::Data<AppState>,
    query: web::Query<ListLabelsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let q = query.q.filter(|q| !q.trim().is_empty());
    let (after, fetch) = (page.after.clone(), page.fetch());
    let views = state
        .db
        .run(move |conn| {
            let rows = labels::list_labels(conn, q.as_deref(), after.as_deref(), fetch)?;
            label_views(conn, rows)
        })
        .await?;
    let body: Page<LabelResponse> = page.finish(views, |l| &l.id, |l| l);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(post, path = "/api/v1/labels", tag = "labels", operation_id = "create_label", summary = "Create a label (researcher, admin)", request_body(content = CreateLabelRequest, content_type = "application/json"), responses((status = 201, description = "Created", body = LabelResponse, headers(("Location" = String, description = "the new entity"))), (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn create_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateLabelRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let change = Change::by(&caller);
    let (view, version) = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let name = body.name.trim();
                let disease_ids = resolve_diseases(conn, &body.disease_ids)?;
                if labels::name_taken(conn, name, None)? {
                    return Err(ApiError::Conflict(format!(
                        "a label named {name:?} exists already"
                    )));
                }
                let label =
                    labels::insert_label(conn, name, body.description.as_deref(), caller.id)?;
                labels::set_label_diseases(conn, label.id, &disease_ids)?;
                single_recorded(conn, label, &change, Action::Create)
            })
        })
        .await?;
    Ok(label_response(view, version, StatusCode::CREATED))
}

#[utoipa::path(get, path = "/api/v1/labels/{id}", tag = "labels", operation_id = "get_label", summary = "A label (deleted ones still read)", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The label", body = LabelResponse, headers(("ETag" = String, description = "changes with every change of the entity")))))]
async fn get_label(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (view, version) = state
        .db
        .run(move |conn| {
            let label = labels::find_label(conn, &id)?;
            single(conn, label)
        })
        .await?;
    Ok(label_response(view, version, StatusCode::OK))
}

#[utoipa::path(patch, path = "/api/v1/labels/{id}", tag = "labels", operation_id = "update_label", summary = "Change a label (honours If-Match)", request_body(content = UpdateLabelRequest, content_type = "application/json"), params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The updated label", body = LabelResponse, headers(("ETag" = String, description = "changes with every change of the entity"))), (status = 409, description = "Name taken", body = crate::error::Problem, content_type = "application/problem+json"), (status = 412, description = "Stale If-Match", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn update_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<UpdateLabelRequest>,
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
                let current = labels::find_label(conn, &id)?;
                precondition.check(current.version)?;
                let name = body.name.as_deref().map(str::trim);
                if let Some(name) = name {
                    if current.is_active && labels::name_taken(conn, name, Some(current.id))? {
                        return Err(ApiError::Conflict(format!(
                            "a label named {name:?} exists already"
                        )));
                    }
                }
                let disease_ids = body
                    .disease_ids
                    .as_deref()
                    .map(|d| resolve_diseases(conn, d))
                    .transpose()?;
                let description = body.description.as_ref().map(|d| d.as_deref());
                let updated = labels::update_label(
                    conn,
                    current.id,
                    current.version,
                    name,
                    description,
                    None,
                )?
                .ok_or(ApiError::PreconditionFailed)?;
                if let Some(disease_ids) = disease_ids {
                    labels::set_label_diseases(conn, updated.id, &disease_ids)?;
                }
                single_recorded(conn, updated, &change, Action::Update)
            })
        })
        .await?;
    Ok(label_response(view, version, StatusCode::OK))
}

#[utoipa::path(delete, path = "/api/v1/labels/{id}", tag = "labels", operation_id = "delete_label", summary = "Deactivate a label (honours If-Match)", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 204, description = "Deactivated"), (status = 412, description = "Stale If-Match", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn delete_label(
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
                let current = labels::find_label(conn, &id)?;
                precondition.check(current.version)?;
                if !current.is_active {
                    return Ok::<_, ApiError>(());
                }
                let updated = labels::update_label(
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
