//! Images and their diagnoses. Doctors work on their own images only (another doctor's image
//! is 404 everywhere); researchers read every image de-identified (no `original_filename`,
//! de-identified file copies) and change nothing; admins do everything
//! ([`crate::auth::policy`]).
//!
//! - `crud`: list, read, describe, delete, and the image's history;
//! - `diagnoses`: the labels on an image;
//! - `upload`: the streamed multipart upload;
//! - `download`: the file, with `Range` and de-identified copies.
//!
//! This file has the route table and the request types.

pub mod crud;
pub mod diagnoses;
pub mod download;
pub mod upload;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use validator::Validate;

use super::conditional::etag;
use super::nullable;
use crate::auth::{Access, Role};
pub use crate::views::images::{ImageResponse, LabelAssignmentResponse};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let read = Access::roles(&[Role::Doctor, Role::Researcher]);
    let write = Access::roles(&[Role::Doctor]);
    cfg.service(
        web::resource("/images")
            .route(web::get().to(crud::list_images).wrap(read))
            .route(web::post().to(upload::upload_image).wrap(write)),
    )
    .service(
        web::resource("/images/{id}")
            .route(web::get().to(crud::get_image).wrap(read))
            .route(web::patch().to(crud::update_image).wrap(write))
            .route(web::delete().to(crud::delete_image).wrap(write)),
    )
    .service(
        web::resource("/images/{id}/file")
            .route(web::get().to(download::download_image).wrap(read)),
    )
    .service(
        web::resource("/images/{id}/labels")
            .route(web::get().to(diagnoses::list_image_labels).wrap(read))
            .route(web::post().to(diagnoses::assign_label).wrap(write)),
    )
    .service(
        web::resource("/images/{id}/labels/{label_id}")
            .route(web::delete().to(diagnoses::unassign_label).wrap(write)),
    )
    .service(
        web::resource("/images/{id}/history").route(web::get().to(crud::image_history).wrap(read)),
    );
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
    /// A Patient's `id` (doctors and admins; 403 for researchers)
    #[param(value_type = Option<String>, format = Uuid)]
    pub patient_id: Option<String>,
    /// A subject pseudonym (`S-` + 16 base32 characters)
    #[param(value_type = Option<String>, pattern = "^S-[A-Z2-7]{16}$")]
    pub subject_id: Option<String>,
    /// A study's `id`
    #[param(value_type = Option<String>, format = Uuid)]
    pub study_id: Option<String>,
    /// Modality (0008,0060), e.g. CT
    #[param(value_type = Option<String>, min_length = 1, max_length = 16)]
    pub modality: Option<String>,
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

/// The answer for one image: its response with its ETag, and for a 201 its `Location`.
fn image_answer(response: ImageResponse, version: i32, status: StatusCode) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, etag(version)));
    if status == StatusCode::CREATED {
        res.insert_header((header::LOCATION, format!("/api/v1/images/{}", response.id)));
    }
    res.json(response)
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
    /// PNG and JPEG only: the Patient ID of the patient the image shows (a DICOM file names
    /// its patient itself).
    #[schema(nullable = false, max_length = 64)]
    patient_id: Option<String>,
    /// PNG and JPEG only: the Issuer of Patient ID (empty when none); needs `patient_id`.
    #[schema(nullable = false, max_length = 64)]
    issuer: Option<String>,
}

/// File bytes.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(dead_code)]
pub struct BinaryFile(Vec<u8>);
