//! Labels: list, search, read for every role; researchers and admins create, edit and
//! deactivate. DELETE deactivates: past assignments keep the label, new ones are refused, and
//! its name may be reused. The writes are [`crate::changes::vocabulary`]'s.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use validator::Validate;

use super::history::{entity_page, PageQuery};
use super::pagination::{Page, PageRequest};
use super::{nullable, parse_id, present, vocabulary, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::changes::vocabulary::{TermState, TermUpdate};
use crate::error::ApiError;
use crate::history::EntityType;
use crate::models::labels::{self, Label};
use crate::state::AppState;
use crate::views::history::HistoryEntryResponse;
use crate::views::vocabulary::{label_responses, LabelResponse};

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
    )
    .service(web::resource("/labels/{id}/history").route(web::get().to(label_history).wrap(read)));
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

#[utoipa::path(
    get,
    path = "/api/v1/labels",
    tag = "labels",
    operation_id = "list_labels",
    summary = "Active labels, optionally matching q",
    params(
        ListLabelsQuery
    ),
    responses(
        (status = 200, description = "A page of labels", body = Page<LabelResponse>)
    )
)]
async fn list_labels(
    state: web::Data<AppState>,
    query: web::Query<ListLabelsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let q = query.q.filter(|q| !q.trim().is_empty());
    let (after, fetch) = (page.after.clone(), page.fetch());
    let responses = state
        .db
        .query(move |conn| {
            let rows = labels::list(conn, q.as_deref(), None, after.as_deref(), fetch)?;
            label_responses(conn, rows)
        })
        .await?;
    let body: Page<LabelResponse> = page.finish(responses, |l| &l.id, |l| l);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/labels",
    tag = "labels",
    operation_id = "create_label",
    summary = "Create a label (researcher, admin)",
    request_body(content = CreateLabelRequest, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = LabelResponse, headers(("Location" = String, description = "the new entity"))),
        crate::api::responses::NameTaken
    )
)]
async fn create_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    body: JsonBody<CreateLabelRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    body.validate()?;
    let new = TermState {
        name: body.name,
        description: body.description,
        is_active: true,
        links: body.disease_ids,
    };
    vocabulary::create::<Label>(state, caller, new, "labels").await
}

#[utoipa::path(
    get,
    path = "/api/v1/labels/{id}",
    tag = "labels",
    operation_id = "get_label",
    summary = "A label (deleted ones still read)",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The label", body = LabelResponse, headers(("ETag" = String, description = "changes with every change of the entity")))
    )
)]
async fn get_label(
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    vocabulary::get::<Label>(state, parse_id(&id)?, "labels").await
}

#[utoipa::path(
    patch,
    path = "/api/v1/labels/{id}",
    tag = "labels",
    operation_id = "update_label",
    summary = "Change a label (honours If-Match)",
    request_body(content = UpdateLabelRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The updated label", body = LabelResponse, headers(("ETag" = String, description = "changes with every change of the entity"))),
        crate::api::responses::NameTaken,
        crate::api::responses::StaleIfMatch
    )
)]
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
    let update = TermUpdate {
        name: body.name,
        description: body.description,
        links: body.disease_ids,
    };
    vocabulary::update::<Label>(state, caller, req, id, update, "labels").await
}

#[utoipa::path(
    delete,
    path = "/api/v1/labels/{id}",
    tag = "labels",
    operation_id = "delete_label",
    summary = "Deactivate a label (honours If-Match)",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 204, description = "Deactivated"),
        crate::api::responses::StaleIfMatch
    )
)]
async fn delete_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    vocabulary::deactivate::<Label>(state, caller, req, parse_id(&id)?).await
}

#[utoipa::path(
    get,
    path = "/api/v1/labels/{id}/history",
    tag = "history",
    operation_id = "list_label_history",
    summary = "A label's history, oldest first",
    params(
        ("id" = String, Path, description = "The entity's UUID"),
        PageQuery
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)
    )
)]
async fn label_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    entity_page(&state, caller, EntityType::Label, id, query.into_inner()).await
}
