//! Annotations: regions on images (API.md "Annotations: regions on images"). Who: as
//! diagnoses. The uploading doctor and admins write; whoever sees the image reads, researchers
//! with the note redacted. Writes are in [`crate::changes::annotations`].

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use validator::Validate;

use super::conditional::{etag, precondition};
use super::history::{entity_page, PageQuery};
use super::pagination::Page;
use super::{nullable, parse_id, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::changes::annotations::{AnnotationPatch, AnnotationRequest};
use crate::changes::{self, Change};
use crate::error::ApiError;
use crate::geometry::{Geometry, Shape};
use crate::history::EntityType;
use crate::models::annotations;
use crate::state::AppState;
use crate::views::annotations::{annotation_responses, visible_response, AnnotationResponse};
use crate::views::history::HistoryEntryResponse;
use crate::views::images::find_visible;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    let write = Access::roles(&[Role::Doctor]);
    cfg.service(
        web::resource("/images/{id}/annotations")
            .route(web::get().to(list_annotations).wrap(read))
            .route(web::post().to(create_annotation).wrap(write)),
    )
    .service(
        web::resource("/annotations/{id}")
            .route(web::get().to(get_annotation).wrap(read))
            .route(web::patch().to(update_annotation).wrap(write))
            .route(web::delete().to(delete_annotation).wrap(write)),
    )
    .service(
        web::resource("/annotations/{id}/history")
            .route(web::get().to(annotation_history).wrap(read)),
    );
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"label_id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77", "shape": "box",
    "geometry": {"x": 120.5, "y": 80, "width": 64, "height": 48}, "frame": 0, "note": "nodule"}))]
#[serde(deny_unknown_fields)]
pub struct CreateAnnotationRequest {
    #[schema(format = Uuid)]
    pub label_id: String,
    #[schema(value_type = Shape)]
    pub shape: String,
    /// The shape's geometry, in the stored image's pixels.
    #[schema(value_type = Geometry)]
    pub geometry: Value,
    /// 0-based frame (multi-frame DICOM); 0 by default.
    #[validate(range(min = 0, max = 2147483647, message = "must be 0 or more"))]
    #[schema(minimum = 0, maximum = 2147483647)]
    #[serde(default, deserialize_with = "super::whole_number")]
    pub frame: Option<i64>,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"geometry": {"x": 120.5, "y": 80, "width": 60, "height": 40}}))]
#[serde(deny_unknown_fields)]
pub struct UpdateAnnotationRequest {
    #[schema(format = Uuid, nullable = false)]
    #[serde(default, deserialize_with = "super::present")]
    pub label_id: Option<String>,
    /// A geometry of the annotation's own shape.
    #[schema(value_type = Option<Geometry>, nullable = false)]
    #[serde(default, deserialize_with = "super::present")]
    pub geometry: Option<Value>,
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(value_type = Option<String>, nullable, max_length = 2000)]
    pub note: Option<Option<String>>,
}

/// One annotation with its ETag, and for a 201 its `Location`.
fn annotation_answer(
    response: AnnotationResponse,
    version: i32,
    status: StatusCode,
) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        res.insert_header((
            header::LOCATION,
            format!("/api/v1/annotations/{}", response.id),
        ));
    }
    res.json(response)
}

#[utoipa::path(
    get,
    path = "/api/v1/images/{id}/annotations",
    tag = "annotations",
    operation_id = "list_image_annotations",
    summary = "The annotations on an image, in the order they were made",
    params(
        ("id" = String, Path, description = "The image's UUID")
    ),
    responses(
        (status = 200, description = "Annotations", body = Vec<AnnotationResponse>)
    )
)]
pub async fn list_annotations(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body: Vec<AnnotationResponse> = state
        .db
        .query(move |conn| {
            let (image, view) = find_visible(conn, &caller, &id)?;
            let rows = annotations::of_image(conn, image.id)?;
            let responses = annotation_responses(conn, &image, view, rows)?;
            Ok(responses.into_iter().map(|(r, _)| r).collect())
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/images/{id}/annotations",
    tag = "annotations",
    operation_id = "create_annotation",
    summary = "Mark a region on an image",
    request_body(content = CreateAnnotationRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The image's UUID")
    ),
    responses(
        (status = 201, description = "Created", body = AnnotationResponse, headers(("Location" = String, description = "the new entity"), ("ETag" = String, description = "changes with every change of the entity")))
    )
)]
pub async fn create_annotation(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    body: JsonBody<CreateAnnotationRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    body.validate()?;
    let change = Change::by(&caller);
    let actor = caller.actor();
    let (response, version) = state
        .changes
        .write(actor, move |conn| {
            let request = AnnotationRequest {
                label_id: &body.label_id,
                shape: &body.shape,
                geometry: &body.geometry,
                frame: body.frame.map(|f| i32::try_from(f).unwrap_or(i32::MAX)),
                note: body.note.as_deref(),
            };
            changes::annotations::create(conn, &caller, &change, &id, &request)
        })
        .await?;
    Ok(annotation_answer(response, version, StatusCode::CREATED))
}

#[utoipa::path(
    get,
    path = "/api/v1/annotations/{id}",
    tag = "annotations",
    operation_id = "get_annotation",
    summary = "An annotation",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The annotation", body = AnnotationResponse, headers(("ETag" = String, description = "changes with every change of the entity")))
    )
)]
pub async fn get_annotation(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (response, version) = state
        .db
        .query(move |conn| visible_response(conn, &caller, &id))
        .await?;
    Ok(annotation_answer(response, version, StatusCode::OK))
}

#[utoipa::path(
    patch,
    path = "/api/v1/annotations/{id}",
    tag = "annotations",
    operation_id = "update_annotation",
    summary = "Change an annotation's label, geometry (same shape) or note (honours If-Match)",
    request_body(content = UpdateAnnotationRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The updated annotation", body = AnnotationResponse, headers(("ETag" = String, description = "changes with every change of the entity"))),
        crate::api::responses::StaleIfMatch
    )
)]
pub async fn update_annotation(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<UpdateAnnotationRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    body.validate()?;
    let change = Change::by(&caller);
    let actor = caller.actor();
    let precondition = precondition(&req);
    let (response, version) = state
        .changes
        .write(actor, move |conn| {
            let patch = AnnotationPatch {
                label_id: body.label_id.as_deref(),
                geometry: body.geometry.as_ref(),
                note: body.note.as_ref().map(|n| n.as_deref()),
            };
            changes::annotations::update(conn, &caller, &change, &id, &precondition, &patch)
        })
        .await?;
    Ok(annotation_answer(response, version, StatusCode::OK))
}

#[utoipa::path(
    delete,
    path = "/api/v1/annotations/{id}",
    tag = "annotations",
    operation_id = "delete_annotation",
    summary = "Delete an annotation (kept in history)",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 204, description = "Deleted"),
        crate::api::responses::StaleIfMatch
    )
)]
pub async fn delete_annotation(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let change = Change::by(&caller);
    let actor = caller.actor();
    let precondition = precondition(&req);
    state
        .changes
        .write(actor, move |conn| {
            changes::annotations::delete(conn, &caller, &change, &id, &precondition)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/annotations/{id}/history",
    tag = "history",
    operation_id = "list_annotation_history",
    summary = "An annotation's history, oldest first",
    params(
        ("id" = String, Path, description = "The entity's UUID"),
        PageQuery
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)
    )
)]
pub async fn annotation_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    entity_page(
        &state,
        caller,
        EntityType::Annotation,
        id,
        query.into_inner(),
    )
    .await
}
