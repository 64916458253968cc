//! The labels on an image (its diagnosis): list, put on, take off. Each change is an update
//! of the image in its history.

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use validator::Validate;

use super::{AssignLabelRequest, LabelAssignmentResponse};
use crate::api::{parse_id, JsonBody};
use crate::auth::CurrentUser;
use crate::changes::{self, Change};
use crate::error::ApiError;
use crate::state::AppState;
use crate::views::images::{find_visible, image_assignments};

#[utoipa::path(
    get,
    path = "/api/v1/images/{id}/labels",
    tag = "diagnoses",
    operation_id = "list_image_labels",
    summary = "The labels on an image",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "Assignments", body = Vec<LabelAssignmentResponse>)
    )
)]
pub async fn list_image_labels(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = state
        .db
        .query(move |conn| {
            let (image, view) = find_visible(conn, &caller, &id)?;
            image_assignments(conn, &image, view)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    post,
    path = "/api/v1/images/{id}/labels",
    tag = "diagnoses",
    operation_id = "assign_label",
    summary = "Put a label on an image",
    request_body(content = AssignLabelRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 201, description = "Assigned", body = LabelAssignmentResponse, headers(("Location" = String, description = "the new entity"))),
        (status = 409, description = "Already assigned", body = crate::error::Problem, content_type = "application/problem+json")
    )
)]
pub async fn assign_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    body: JsonBody<AssignLabelRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    body.validate()?;
    let change = Change::by(&caller).answering(201);
    let actor = caller.actor();
    let image_id = id.clone();
    let assignment: LabelAssignmentResponse = state
        .changes
        .write(actor, move |conn| {
            changes::images::assign_label(
                conn,
                &caller,
                &change,
                &id,
                &body.label_id,
                body.note.as_deref(),
            )
        })
        .await?;
    let location = format!("/api/v1/images/{image_id}/labels/{}", assignment.label.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(assignment))
}

#[utoipa::path(
    delete,
    path = "/api/v1/images/{id}/labels/{label_id}",
    tag = "diagnoses",
    operation_id = "unassign_label",
    summary = "Take a label off an image",
    params(
        ("id" = String, Path, description = "The entity's UUID"),
        ("label_id" = String, Path, description = "The label's UUID")
    ),
    responses(
        (status = 204, description = "Removed")
    )
)]
pub async fn unassign_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path.0)?;
    let change = Change::by(&caller).answering(204);
    let actor = caller.actor();
    let label_id = parse_id(&path.1)?;
    state
        .changes
        .write(actor, move |conn| {
            changes::images::unassign_label(conn, &caller, &change, &id, &label_id)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
