//! Images and their diagnoses. Doctors work on their own images only (another doctor's image
//! is 404 everywhere); researchers read every image de-identified (no `original_filename`,
//! de-identified file copies) and change nothing; admins do everything.

use actix_multipart::Multipart;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::NaiveDateTime;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use validator::Validate;

use super::conditional::{etag, Precondition};
use super::diseases::parse_code_filter;
use super::labels::NamedRef;
use super::pagination::{Page, PageRequest};
use super::uploads::{sanitise_filename, storage_error, store_file_part};
use super::users::UserRef;
use super::{nullable, parse_id, rfc3339, JsonBody};
use crate::auth::{Access, CurrentUser, Role};
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, Change, EntityType};
use crate::imaging::{deidentify, ImageKind};
use crate::models::images::{self, Assignment, Image, ImageFilter, NewImage};
use crate::models::{codes, diseases, labels, users};
use crate::state::AppState;
use crate::storage::Storage;

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    let write = Access::roles(&[Role::Doctor]);
    cfg.service(
        web::resource("/images")
            .route(web::get().to(list_images).wrap(read))
            .route(web::post().to(upload_image).wrap(write)),
    )
    .service(
        web::resource("/images/{id}")
            .route(web::get().to(get_image).wrap(read))
            .route(web::patch().to(update_image).wrap(write))
            .route(web::delete().to(delete_image).wrap(write)),
    )
    .service(web::resource("/images/{id}/file").route(web::get().to(download_image).wrap(read)))
    .service(
        web::resource("/images/{id}/labels")
            .route(web::get().to(list_image_labels).wrap(read))
            .route(web::post().to(assign_label).wrap(write)),
    )
    .service(
        web::resource("/images/{id}/labels/{label_id}")
            .route(web::delete().to(unassign_label).wrap(write)),
    );
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LabelAssignmentResponse {
    pub label: NamedRef,
    pub note: Option<String>,
    pub assigned_by: UserRef,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub assigned_at: NaiveDateTime,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImageResponse {
    pub id: String,
    pub uploaded_by: UserRef,
    pub description: Option<String>,
    pub content_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub width: Option<i32>,
    pub height: Option<i32>,
    pub original_filename: Option<String>,
    pub labels: Vec<LabelAssignmentResponse>,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListImagesQuery {
    #[param(value_type = Option<String>, format = Uuid)]
    pub label_id: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub disease_id: Option<String>,
    /// system:code, e.g. icd-10:J18.9

    #[param(value_type = Option<String>, pattern = "^(icd-9|icd-10|snomed-ct):[0-9A-Za-z.]+$")]
    pub code: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub uploaded_by: Option<String>,
    #[param(value_type = Option<String>, pattern = "^(image/png|image/jpeg|application/dicom)$")]
    pub content_type: Option<String>,
    /// Inclusive lower bound on created_at

    #[param(value_type = Option<String>, format = DateTime)]
    pub created_after: Option<String>,
    /// Exclusive upper bound on created_at

    #[param(value_type = Option<String>, format = DateTime)]
    pub created_before: Option<String>,
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"description": "Chest X-ray, PA view"}))]
#[serde(deny_unknown_fields)]
pub struct UpdateImageRequest {
    #[serde(default, deserialize_with = "nullable")]
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(value_type = Option<String>, nullable, max_length = 2000)]
    pub description: Option<Option<String>>,
}

#[derive(Debug, Deserialize, Validate, utoipa::ToSchema)]
#[schema(example = json!({"label_id": "01936f0e-6d2a-7c3b-9a10-2f5e8d1c4b77", "note": "right lower lobe"}))]
#[serde(deny_unknown_fields)]
pub struct AssignLabelRequest {
    #[schema(format = Uuid)]
    pub label_id: String,
    #[validate(length(max = 2000, message = "must be at most 2000 characters"))]
    #[schema(max_length = 2000)]
    pub note: Option<String>,
}

/// How much of an image a caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Full,
    Deidentified,
}

fn view_of(caller: &CurrentUser, image: &Image) -> Option<View> {
    if caller.is_admin() || (caller.has(Role::Doctor) && image.uploaded_by == caller.id) {
        Some(View::Full)
    } else if caller.has(Role::Researcher) {
        Some(View::Deidentified)
    } else {
        None
    }
}

/// The image if the caller may see it (404 otherwise, never 403: existence is not revealed).
fn visible(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    id: &str,
) -> Result<(Image, View), ApiError> {
    let image = images::find_live_image(conn, id)?;
    let view = view_of(caller, &image).ok_or(ApiError::NotFound)?;
    Ok((image, view))
}

/// The image if the caller may change it: invisible -> 404, visible but not theirs -> 403.
fn editable(conn: &mut DbConnection, caller: &CurrentUser, id: &str) -> Result<Image, ApiError> {
    let (image, _) = visible(conn, caller, id)?;
    if caller.is_admin() || (caller.has(Role::Doctor) && image.uploaded_by == caller.id) {
        Ok(image)
    } else {
        Err(ApiError::Forbidden(
            "only the uploading doctor or an admin may change this image".into(),
        ))
    }
}

fn assignment_views(
    conn: &mut DbConnection,
    rows: &[Assignment],
) -> Result<Vec<LabelAssignmentResponse>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|a| a.assigned_by).collect();
    let users = users::user_refs(conn, &ids)?;
    Ok(rows.iter().map(|a| assignment_view(a, &users)).collect())
}

fn assignment_view(
    a: &Assignment,
    users: &std::collections::HashMap<i64, (String, String)>,
) -> LabelAssignmentResponse {
    let (id, username) = users.get(&a.assigned_by).cloned().unwrap_or_default();
    LabelAssignmentResponse {
        label: NamedRef {
            id: a.label_uuid.clone(),
            name: a.label_name.clone(),
        },
        note: a.note.clone(),
        assigned_by: UserRef { id, username },
        assigned_at: a.assigned_at,
    }
}

/// Full responses for a page of images: labels and user names in a constant number of queries.
fn image_views(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    rows: Vec<Image>,
) -> Result<Vec<ImageResponse>, ApiError> {
    let ids: Vec<i64> = rows.iter().map(|i| i.id).collect();
    let mut assignments = images::assignments_of(conn, &ids)?;
    let mut people: Vec<i64> = rows.iter().map(|i| i.uploaded_by).collect();
    people.extend(assignments.values().flatten().map(|a| a.assigned_by));
    people.sort_unstable();
    people.dedup();
    let users = users::user_refs(conn, &people)?;
    Ok(rows
        .into_iter()
        .map(|image| {
            let view = view_of(caller, &image);
            let labels = assignments.remove(&image.id).unwrap_or_default();
            let (uid, uname) = users.get(&image.uploaded_by).cloned().unwrap_or_default();
            ImageResponse {
                id: image.uuid,
                uploaded_by: UserRef {
                    id: uid,
                    username: uname,
                },
                description: image.description,
                content_type: image.content_type,
                size_bytes: image.size_bytes,
                sha256: image.sha256,
                width: image.width,
                height: image.height,
                original_filename: if view == Some(View::Full) {
                    image.original_filename
                } else {
                    None
                },
                labels: labels.iter().map(|a| assignment_view(a, &users)).collect(),
                created_at: image.created_at,
                updated_at: image.updated_at,
            }
        })
        .collect())
}

/// The caller's view of one image (for history's revert, which answers like `GET`).
pub fn image_view_of(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image: Image,
) -> Result<ImageResponse, ApiError> {
    Ok(single(conn, caller, image)?.0)
}

fn single(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image: Image,
) -> Result<(ImageResponse, i32), ApiError> {
    let version = image.version;
    let view = image_views(conn, caller, vec![image])?
        .pop()
        .ok_or(ApiError::NotFound)?;
    Ok((view, version))
}

/// Records the image as it is now (after a change of `action`) in its history, and returns
/// the caller's view of it. Editors (the owner, an admin) see the full image, so the snapshot
/// is complete.
fn single_recorded(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image: Image,
    change: &Change,
    action: Action,
) -> Result<(ImageResponse, i32), ApiError> {
    let (view, version) = single(conn, caller, image)?;
    change.record(conn, EntityType::Image, &view.id, action, &view)?;
    Ok((view, version))
}

/// Records an image's state after a change of its diagnosis (an update of the image).
fn record_current(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image_id: &str,
    change: &Change,
) -> Result<(), ApiError> {
    let image = images::find_live_image(conn, image_id)?;
    single_recorded(conn, caller, image, change, Action::Update)?;
    Ok(())
}

fn image_response(view: ImageResponse, version: i32, status: StatusCode) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, format!("/api/v1/images/{}", view.id)));
    }
    res.json(view)
}

#[utoipa::path(get, path = "/api/v1/images", tag = "images", operation_id = "list_images", summary = "Images the caller may see", params(ListImagesQuery), responses((status = 200, description = "A page of images", body = Page<ImageResponse>)))]
async fn list_images(
    state: web::Data<AppState>,
    caller: CurrentUser,
    query: web::Query<ListImagesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let label = query
        .label_id
        .as_deref()
        .map(|v| super::parse_query_uuid(v, "label_id"))
        .transpose()?;
    let disease = query
        .disease_id
        .as_deref()
        .map(|v| super::parse_query_uuid(v, "disease_id"))
        .transpose()?;
    let uploader = query
        .uploaded_by
        .as_deref()
        .map(|v| super::parse_query_uuid(v, "uploaded_by"))
        .transpose()?;
    let code = query.code.as_deref().map(parse_code_filter).transpose()?;
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
        created_after: query
            .created_after
            .as_deref()
            .map(|v| super::parse_timestamp(v, "created_after"))
            .transpose()?,
        created_before: query
            .created_before
            .as_deref()
            .map(|v| super::parse_timestamp(v, "created_before"))
            .transpose()?,
        ..Default::default()
    };
    let (after, fetch) = (page.after.clone(), page.fetch());
    let views = state
        .db
        .run(move |conn| {
            // Resolve public ids; a filter naming nothing matches nothing.
            macro_rules! resolve {
                ($found:expr) => {
                    match $found {
                        Ok(row) => Some(row.id),
                        Err(diesel::result::Error::NotFound) => return Ok(Vec::new()),
                        Err(e) => return Err(e.into()),
                    }
                };
            }
            if let Some(label) = label {
                filter.label_id = resolve!(labels::find_label(conn, &label));
            }
            if let Some(disease) = disease {
                filter.disease_id = resolve!(diseases::find_disease(conn, &disease));
            }
            if let Some((system, code)) = code {
                filter.code_id = resolve!(codes::find_code(conn, &system, &code));
            }
            if let Some(uploader) = uploader {
                filter.uploaded_by = resolve!(users::find_by_uuid(conn, &uploader));
            }
            // A doctor who is neither researcher nor admin sees only their own images.
            if !caller.is_admin() && !caller.has(Role::Researcher) {
                if filter.uploaded_by.is_some_and(|u| u != caller.id) {
                    return Ok(Vec::new());
                }
                filter.uploaded_by = Some(caller.id);
            }
            let rows = images::list_images(conn, &filter, after.as_deref(), fetch)?;
            image_views(conn, &caller, rows)
        })
        .await?;
    let body: Page<ImageResponse> = page.finish(views, |i| &i.id, |i| i);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(post, path = "/api/v1/images", tag = "images", operation_id = "upload_image", summary = "Upload a PNG, JPEG or DICOM image (streamed)", request_body(content = UploadImageForm, content_type = "multipart/form-data"), responses((status = 201, description = "Stored", body = ImageResponse, headers(("Location" = String, description = "the new entity")))))]
async fn upload_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let is_multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !is_multipart {
        return Err(ApiError::UnsupportedMediaType(
            "send the image as multipart/form-data with a `file` part".into(),
        ));
    }
    let max = state.settings.max_upload_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max.saturating_add(1 << 20)) {
        return Err(ApiError::PayloadTooLarge(format!(
            "uploads are limited to {max} bytes"
        )));
    }

    let mut multipart = Multipart::new(req.headers(), payload);
    let mut description: Option<String> = None;
    let mut stored = None;
    while let Some(field) = multipart.next().await {
        let mut field = field.map_err(|e| {
            ApiError::BadRequest(format!("the multipart body could not be read: {e}"))
        })?;
        let name = field.name().unwrap_or_default().to_owned();
        match name.as_str() {
            "file" if stored.is_none() => {
                let filename = field
                    .content_disposition()
                    .and_then(|cd| cd.get_filename())
                    .and_then(sanitise_filename);
                let key = Storage::new_image_key();
                let (file, pending) =
                    store_file_part(state.storage.store().clone(), key, &mut field, max).await?;
                stored = Some((file, pending, filename));
            }
            "file" => return Err(ApiError::field("file", "send exactly one file")),
            "description" => {
                let mut text = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(|e| {
                        ApiError::BadRequest(format!("the multipart body could not be read: {e}"))
                    })?;
                    text.extend_from_slice(&chunk);
                    if text.len() > 8 * 2000 {
                        return Err(ApiError::field(
                            "description",
                            "must be at most 2000 characters",
                        ));
                    }
                }
                let text = String::from_utf8(text)
                    .map_err(|_| ApiError::field("description", "must be UTF-8 text"))?;
                if text.contains('\0') {
                    return Err(ApiError::field("description", super::NUL_MESSAGE));
                }
                if text.chars().count() > 2000 {
                    return Err(ApiError::field(
                        "description",
                        "must be at most 2000 characters",
                    ));
                }
                description = Some(text);
            }
            other => {
                return Err(ApiError::field(
                    other,
                    "unknown part; send `file` and optionally `description`",
                ))
            }
        }
    }
    let Some((file, pending, filename)) = stored else {
        return Err(ApiError::field("file", "a `file` part is required"));
    };
    let object_key = pending.key().to_string();
    let change = Change::by(&caller);
    let result = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let image = images::insert_image(
                    conn,
                    NewImage {
                        uploaded_by: caller.id,
                        description: description.as_deref(),
                        content_type: file.kind.content_type(),
                        size_bytes: file.size as i64,
                        sha256: &file.sha256,
                        width: file.dimensions.width.map(|w| w as i32),
                        height: file.dimensions.height.map(|h| h as i32),
                        original_filename: filename.as_deref(),
                        object_key: &object_key,
                    },
                )?;
                single_recorded(conn, &caller, image, &change, Action::Create)
            })
        })
        .await;
    match result {
        Ok((view, version)) => {
            pending.keep();
            Ok(image_response(view, version, StatusCode::CREATED))
        }
        Err(err) => {
            pending.discard().await;
            Err(err)
        }
    }
}

#[utoipa::path(get, path = "/api/v1/images/{id}", tag = "images", operation_id = "get_image", summary = "An image's metadata and diagnosis", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The image", body = ImageResponse, headers(("ETag" = String, description = "changes with every change of the entity")))))]
async fn get_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (view, version) = state
        .db
        .run(move |conn| {
            let (image, _) = visible(conn, &caller, &id)?;
            single(conn, &caller, image)
        })
        .await?;
    Ok(image_response(view, version, StatusCode::OK))
}

#[utoipa::path(patch, path = "/api/v1/images/{id}", tag = "images", operation_id = "update_image", summary = "Change an image's description (honours If-Match)", request_body(content = UpdateImageRequest, content_type = "application/json"), params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The updated image", body = ImageResponse, headers(("ETag" = String, description = "changes with every change of the entity"))), (status = 412, description = "Stale If-Match", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn update_image(
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
    let precondition = Precondition::from_request(&req);
    let (view, version) = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let image = editable(conn, &caller, &id)?;
                precondition.check(image.version)?;
                let description = body.description.as_ref().map(|d| d.as_deref());
                let updated =
                    images::update_image(conn, image.id, image.version, description, false)?
                        .ok_or(ApiError::PreconditionFailed)?;
                single_recorded(conn, &caller, updated, &change, Action::Update)
            })
        })
        .await?;
    Ok(image_response(view, version, StatusCode::OK))
}

#[utoipa::path(delete, path = "/api/v1/images/{id}", tag = "images", operation_id = "delete_image", summary = "Delete an image (kept in history)", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 204, description = "Deleted"), (status = 412, description = "Stale If-Match", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn delete_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let change = Change::by(&caller);
    let precondition = Precondition::from_request(&req);
    state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let image = editable(conn, &caller, &id)?;
                precondition.check(image.version)?;
                let deleted = images::update_image(conn, image.id, image.version, None, true)?
                    .ok_or(ApiError::PreconditionFailed)?;
                single_recorded(conn, &caller, deleted, &change, Action::Delete)?;
                Ok::<_, ApiError>(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/images/{id}/labels", tag = "diagnoses", operation_id = "list_image_labels", summary = "The labels on an image", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "Assignments", body = Vec<LabelAssignmentResponse>)))]
async fn list_image_labels(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = state
        .db
        .run(move |conn| {
            let (image, _) = visible(conn, &caller, &id)?;
            let rows = images::assignments_of(conn, &[image.id])?
                .remove(&image.id)
                .unwrap_or_default();
            assignment_views(conn, &rows)
        })
        .await?;
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(post, path = "/api/v1/images/{id}/labels", tag = "diagnoses", operation_id = "assign_label", summary = "Put a label on an image", request_body(content = AssignLabelRequest, content_type = "application/json"), params(("id" = String, Path, description = "The entity's UUID")), responses((status = 201, description = "Assigned", body = LabelAssignmentResponse, headers(("Location" = String, description = "the new entity"))), (status = 409, description = "Already assigned", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn assign_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
    body: JsonBody<AssignLabelRequest>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let body = body.into_inner();
    body.validate()?;
    let change = Change::by(&caller).answering(201);
    let image_id = id.clone();
    let assignment = state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let image = editable(conn, &caller, &id)?;
                let label = uuid::Uuid::parse_str(&body.label_id)
                    .ok()
                    .and_then(|u| labels::find_label(conn, &u.to_string()).ok())
                    .filter(|l| l.is_active)
                    .ok_or_else(|| ApiError::field("label_id", "no active label has this id"))?;
                let existing = images::assignments_of(conn, &[image.id])?
                    .remove(&image.id)
                    .unwrap_or_default();
                if existing.iter().any(|a| a.label_id == label.id) {
                    return Err(ApiError::Conflict(format!(
                        "the label {:?} is already on this image",
                        label.name
                    )));
                }
                images::assign_label(conn, image.id, label.id, body.note.as_deref(), caller.id)?;
                images::touch_image(conn, image.id)?;
                record_current(conn, &caller, &image.uuid, &change)?;
                let rows = images::assignments_of(conn, &[image.id])?
                    .remove(&image.id)
                    .unwrap_or_default();
                let row = rows
                    .into_iter()
                    .find(|a| a.label_id == label.id)
                    .ok_or(ApiError::NotFound)?;
                Ok(assignment_views(conn, std::slice::from_ref(&row))?.remove(0))
            })
        })
        .await?;
    let location = format!("/api/v1/images/{image_id}/labels/{}", assignment.label.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(assignment))
}

#[utoipa::path(delete, path = "/api/v1/images/{id}/labels/{label_id}", tag = "diagnoses", operation_id = "unassign_label", summary = "Take a label off an image", params(("id" = String, Path, description = "The entity's UUID"), ("label_id" = String, Path, description = "The label's UUID")), responses((status = 204, description = "Removed")))]
async fn unassign_label(
    state: web::Data<AppState>,
    caller: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path.0)?;
    let change = Change::by(&caller).answering(204);
    let label_id = parse_id(&path.1)?;
    state
        .db
        .run(move |conn| {
            crate::db::write_transaction(conn, |conn| {
                let image = editable(conn, &caller, &id)?;
                let label = labels::find_label(conn, &label_id)?;
                if !images::unassign_label(conn, image.id, label.id)? {
                    return Err(ApiError::NotFound);
                }
                images::touch_image(conn, image.id)?;
                record_current(conn, &caller, &image.uuid, &change)?;
                Ok(())
            })
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// What a `Range` header (RFC 9110 section 14.2, parsed by `http-range-header`) asks of a
/// representation of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
enum RangeRequest {
    /// Serve the whole representation (200): no `Range`, another unit, an invalid or
    /// rejected range set (which a server may ignore), or several ranges (no multipart
    /// answers are made).
    Whole,
    /// Serve these bytes (206), `first..=last`.
    Part(u64, u64),
    /// No range of the set overlaps the representation (416).
    Unsatisfiable,
}

fn range_request(header: Option<&str>, size: u64) -> RangeRequest {
    use http_range_header::RangeUnsatisfiableError;
    let Some(value) = header else {
        return RangeRequest::Whole;
    };
    let validated =
        http_range_header::parse_range_header(value.trim()).and_then(|set| set.validate(size));
    match validated {
        Ok(ranges) => match ranges.as_slice() {
            [one] => RangeRequest::Part(*one.start(), *one.end()),
            _ => RangeRequest::Whole,
        },
        Err(RangeUnsatisfiableError::Unsatisfiable) => RangeRequest::Unsatisfiable,
        Err(_) => RangeRequest::Whole,
    }
}

/// The researcher's copy of a stored file: made once, kept in storage under a key that carries
/// its SHA-256, so that later downloads stream it like an original.
async fn deidentified_copy(
    storage: &Storage,
    image: &Image,
) -> Result<(Path, String, u64), ApiError> {
    let store = storage.store();
    let prefix = Storage::deidentified_key(&image.object_key);
    if let Some(meta) = store
        .list(Some(&prefix))
        .next()
        .await
        .transpose()
        .map_err(storage_error)?
    {
        let sha = meta.location.filename().unwrap_or_default().to_owned();
        return Ok((meta.location, sha, meta.size));
    }
    let original = store
        .get(&Path::from(image.object_key.as_str()))
        .await
        .map_err(storage_error)?;
    let bytes = original.bytes().await.map_err(storage_error)?;
    let kind = ImageKind::from_content_type(&image.content_type).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "stored image has unknown type {}",
            image.content_type
        ))
    })?;
    let copy = web::block(move || deidentify::deidentify(kind, &bytes))
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(anyhow::anyhow!("de-identification failed: {e}")))?;
    let sha = hex::encode(Sha256::digest(&copy));
    let size = copy.len() as u64;
    let location = prefix.clone().join(sha.as_str());
    store
        .put(&location, PutPayload::from(copy))
        .await
        .map_err(storage_error)?;
    Ok((location, sha, size))
}

#[utoipa::path(get, path = "/api/v1/images/{id}/file", tag = "images", operation_id = "download_image", summary = "The image file (de-identified for researchers); Range and If-None-Match supported", params(("id" = String, Path, description = "The entity's UUID")), responses((status = 200, description = "The bytes", content((BinaryFile = "application/octet-stream"), (BinaryFile = "image/png"), (BinaryFile = "image/jpeg"), (BinaryFile = "application/dicom"))), (status = 206, description = "The requested range", content((BinaryFile = "application/octet-stream"))), (status = 304, description = "Not modified (If-None-Match)"), (status = 416, description = "Range not satisfiable", body = crate::error::Problem, content_type = "application/problem+json")))]
async fn download_image(
    state: web::Data<AppState>,
    caller: CurrentUser,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let (image, view) = state
        .db
        .run(move |conn| visible(conn, &caller, &id))
        .await?;
    let kind = ImageKind::from_content_type(&image.content_type).ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!(
            "stored image has unknown type {}",
            image.content_type
        ))
    })?;
    let (location, sha, size) = match view {
        View::Full => (
            Path::from(image.object_key.as_str()),
            image.sha256.clone(),
            image.size_bytes as u64,
        ),
        View::Deidentified => deidentified_copy(&state.storage, &image).await?,
    };
    let tag = format!("\"{sha}\"");
    let disposition = format!(
        "attachment; filename=\"{}.{}\"",
        image.uuid,
        kind.extension()
    );

    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim() == "*"
                || v.split(',')
                    .any(|t| t.trim().trim_start_matches("W/") == tag)
        });
    if not_modified {
        return Ok(HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .finish());
    }

    // RFC 9110 section 13.1.5: with `If-Range`, the range is served only while the
    // representation is the one the client names, by a strong ETag; a weak tag, a date (no
    // Last-Modified is sent) or another tag gets the whole file.
    let range_applies = req
        .headers()
        .get(header::IF_RANGE)
        .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == tag));
    let range_header = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| range_applies);
    let range = match range_request(range_header, size) {
        RangeRequest::Whole => None,
        RangeRequest::Part(first, last) => Some((first, last)),
        RangeRequest::Unsatisfiable => {
            let problem = crate::error::Problem::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
                format!("the file has {size} bytes"),
            );
            let mut res = problem.response();
            if let Ok(value) = header::HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, value);
            }
            return Ok(res);
        }
    };
    let options = GetOptions {
        range: range.map(|(start, end)| GetRange::Bounded(start..end + 1)),
        ..Default::default()
    };
    let result = state
        .storage
        .store()
        .get_opts(&location, options)
        .await
        .map_err(storage_error)?;
    let stream = result
        .into_stream()
        .map_err(|e| actix_web::error::ErrorServiceUnavailable(e.to_string()));
    let mut res = match range {
        Some((start, end)) => {
            let mut res = HttpResponse::PartialContent();
            res.insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}")));
            res.no_chunking(end - start + 1);
            res
        }
        None => {
            let mut res = HttpResponse::Ok();
            res.no_chunking(size);
            res
        }
    };
    Ok(res
        .insert_header((header::CONTENT_TYPE, kind.content_type()))
        .insert_header((header::ETAG, tag))
        .insert_header((header::ACCEPT_RANGES, "bytes"))
        .insert_header((header::CONTENT_DISPOSITION, disposition))
        .streaming(stream))
}

#[cfg(test)]
mod tests {
    use super::{range_request, RangeRequest::*};

    #[test]
    fn ranges_follow_rfc_9110() {
        assert_eq!(range_request(None, 100), Whole);
        assert_eq!(range_request(Some("bytes=0-9"), 100), Part(0, 9));
        assert_eq!(range_request(Some("bytes=90-"), 100), Part(90, 99));
        assert_eq!(range_request(Some("bytes=-10"), 100), Part(90, 99));
        assert_eq!(range_request(Some("bytes=-1000"), 100), Part(0, 99));
        assert_eq!(range_request(Some("bytes=50-500"), 100), Part(50, 99));
        assert_eq!(range_request(Some("bytes=0-1,5-6"), 100), Whole);
        assert_eq!(range_request(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(range_request(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(range_request(Some("bytes=0-0"), 0), Unsatisfiable);
        // Overflowing numbers are just very large: the range ends at the last byte.
        assert_eq!(
            range_request(Some("bytes=0-99999999999999999999999"), 100),
            Part(0, 99)
        );
        assert_eq!(
            range_request(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
        // Invalid or rejected sets and other units are ignored.
        for ignored in [
            "bytes=9-3",
            "bytes=x-y",
            "items=0-1",
            "bytes=",
            "bytes=0-5,3-8",
        ] {
            assert_eq!(range_request(Some(ignored), 100), Whole, "{ignored}");
        }
    }
}

/// The multipart form of an upload. Other parts are refused (422), as unknown JSON fields
/// are: `additionalProperties: false`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadImageForm {
    /// The image: PNG, JPEG or DICOM Part 10 (decided by content).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// At most 2000 characters (a form part is text, never null).
    #[schema(nullable = false, max_length = 2000)]
    description: Option<String>,
}

/// File bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct BinaryFile(Vec<u8>);
