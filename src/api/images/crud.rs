//! Listing, reading, describing and deleting images, and an image's history.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use validator::Validate;

use super::{image_answer, ImageResponse, ListImagesQuery, UpdateImageRequest};
use crate::api::conditional::precondition;
use crate::api::diseases::parse_code_filter;
use crate::api::history::{entity_page, PageQuery};
use crate::api::pagination::{Page, PageRequest};
use crate::api::{parse_id, parse_query_uuid, parse_timestamp, JsonBody};
use crate::auth::policy::{self, Uploader};
use crate::auth::CurrentUser;
use crate::changes::{self, Change};
use crate::error::ApiError;
use crate::history::EntityType;
use crate::imaging::ImageKind;
use crate::models::images::{self, ImageChanges, ImageFilter};
use crate::models::{codes, diseases, labels, patients, users};
use crate::state::AppState;
use crate::views::history::HistoryEntryResponse;
use crate::views::images::{response_with_patient, responses_with_patients};

#[utoipa::path(
    get,
    path = "/api/v1/images",
    tag = "images",
    operation_id = "list_images",
    summary = "Images the caller may see",
    params(
        ListImagesQuery
    ),
    responses(
        (status = 200, description = "A page of images", body = Page<ImageResponse>)
    )
)]
pub async fn list_images(
    state: web::Data<AppState>,
    caller: CurrentUser,
    query: web::Query<ListImagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let label = query
        .label_id
        .as_deref()
        .map(|v| parse_query_uuid(v, "label_id"))
        .transpose()?;
    let disease = query
        .disease_id
        .as_deref()
        .map(|v| parse_query_uuid(v, "disease_id"))
        .transpose()?;
    let uploader = query
        .uploaded_by
        .as_deref()
        .map(|v| parse_query_uuid(v, "uploaded_by"))
        .transpose()?;
    let code = query.code.as_deref().map(parse_code_filter).transpose()?;
    let patient = query
        .patient_id
        .as_deref()
        .map(|v| parse_query_uuid(v, "patient_id"))
        .transpose()?;
    if patient.is_some() && !policy::may_see_patients(&caller) {
        return Err(ApiError::Forbidden(
            "researchers filter by subject_id; patient_id identifies the patient".into(),
        ));
    }
    let subject = query
        .subject_id
        .as_deref()
        .map(|v| {
            crate::pseudonym::is_subject_id(v)
                .then(|| v.to_owned())
                .ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "subject_id {v:?} is not a pseudonym (S- and 16 base32 characters)"
                    ))
                })
        })
        .transpose()?;
    let study = query
        .study_id
        .as_deref()
        .map(|v| parse_query_uuid(v, "study_id"))
        .transpose()?;
    if let Some(m) = &query.modality {
        if m.is_empty() || m.chars().count() > 16 {
            return Err(ApiError::field("modality", "must be 1 to 16 characters"));
        }
    }
    if let Some(ct) = &query.content_type {
        if ImageKind::from_content_type(ct).is_none() {
            return Err(ApiError::field(
                "content_type",
                "must be image/png, image/jpeg or application/dicom",
            ));
        }
    }
    let mut filter = ImageFilter {
        content_type: query.content_type.clone(),
        // Modality is a CS value: upper case by definition (PS3.5 6.2).
        modality: query.modality.as_deref().map(str::to_uppercase),
        created_after: query
            .created_after
            .as_deref()
            .map(|v| parse_timestamp(v, "created_after"))
            .transpose()?,
        created_before: query
            .created_before
            .as_deref()
            .map(|v| parse_timestamp(v, "created_before"))
            .transpose()?,
        ..Default::default()
    };
    let (after, fetch) = (page.after.clone(), page.fetch());
    let views = state
        .db
        .query(move |conn| {
            // Resolve public ids; a filter naming nothing matches nothing.
            macro_rules! resolve {
                ($found:expr) => {
                    match $found {
                        Ok(row) => Some(row.id),
                        Err(diesel::result::Error::NotFound) => return Ok(Vec::new()),
                        Err(e) => return Err(e),
                    }
                };
            }
            if let Some(label) = label {
                filter.label_id = resolve!(labels::find(conn, &label));
            }
            if let Some(disease) = disease {
                filter.disease_id = resolve!(diseases::find(conn, &disease));
            }
            if let Some((system, code)) = code {
                filter.code_id = resolve!(codes::find_code(conn, &system, &code));
            }
            if let Some(uploader) = uploader {
                filter.uploaded_by = resolve!(users::find_by_uuid(conn, &uploader));
            }
            if let Some(patient) = patient {
                filter.patient_id = resolve!(patients::find_patient(conn, &patient));
            }
            if let Some(subject) = &subject {
                let found = resolve!(patients::find_by_subject(conn, subject));
                if filter.patient_id.is_some_and(|p| Some(p) != found) {
                    return Ok(Vec::new());
                }
                filter.patient_id = found;
            }
            if let Some(study) = study {
                filter.study_id = resolve!(patients::find_study(conn, &study));
            }
            if let Some(own) = policy::own_images_only(&caller) {
                if filter.uploaded_by.is_some_and(|u| u != own) {
                    return Ok(Vec::new());
                }
                filter.uploaded_by = Some(own);
            }
            let rows = images::list_images(conn, &filter, after.as_deref(), fetch)?;
            responses_with_patients(conn, &caller, rows)
        })
        .await?;
    let body: Page<ImageResponse> = page.finish(views, |i| &i.id, |i| i);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/images/{id}",
    tag = "images",
    operation_id = "get_image",
    summary = "An image's metadata and diagnosis",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The image", body = ImageResponse, headers(("ETag" = String, description = "changes with every change of the entity")))
    )
)]
pub async fn get_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (response, version) = state
        .db
        .query(move |conn| {
            let row = images::find_live_with_patient(conn, &id)?;
            if policy::image_view(&caller, Uploader::Id(row.0.uploaded_by)).is_none() {
                return Err(diesel::result::Error::NotFound);
            }
            response_with_patient(conn, &caller, row)
        })
        .await?;
    Ok(image_answer(response, version, StatusCode::OK))
}

#[utoipa::path(
    patch,
    path = "/api/v1/images/{id}",
    tag = "images",
    operation_id = "update_image",
    summary = "Change an image's description (honours If-Match)",
    request_body(content = UpdateImageRequest, content_type = "application/json"),
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 200, description = "The updated image", body = ImageResponse, headers(("ETag" = String, description = "changes with every change of the entity"))),
        crate::api::responses::StaleIfMatch
    )
)]
pub async fn update_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody<UpdateImageRequest>,
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
            let changes = ImageChanges {
                description: body.description.as_ref().map(|d| d.as_deref()),
                delete: false,
            };
            changes::images::update(conn, &caller, &change, &id, &precondition, &changes)
        })
        .await?;
    Ok(image_answer(response, version, StatusCode::OK))
}

#[utoipa::path(
    delete,
    path = "/api/v1/images/{id}",
    tag = "images",
    operation_id = "delete_image",
    summary = "Delete an image (kept in history)",
    params(
        ("id" = String, Path, description = "The entity's UUID")
    ),
    responses(
        (status = 204, description = "Deleted"),
        crate::api::responses::StaleIfMatch
    )
)]
pub async fn delete_image(
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
            let changes = ImageChanges {
                description: None,
                delete: true,
            };
            changes::images::update(conn, &caller, &change, &id, &precondition, &changes)
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(
    get,
    path = "/api/v1/images/{id}/history",
    tag = "history",
    operation_id = "list_image_history",
    summary = "An image's history, oldest first",
    params(
        ("id" = String, Path, description = "The entity's UUID"),
        PageQuery
    ),
    responses(
        (status = 200, description = "A page of entries", body = Page<HistoryEntryResponse>)
    )
)]
pub async fn image_history(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    entity_page(&state, caller, EntityType::Image, id, query.into_inner()).await
}
