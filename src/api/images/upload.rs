//! `POST /images`: the multipart upload, streamed into storage ([`crate::storage::upload`])
//! and filed once the file is known good; a failed upload leaves nothing stored.

use actix_multipart::Multipart;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt as _;

use super::{image_answer, ImageResponse, UploadImageForm};
use crate::api::NUL_MESSAGE;
use crate::auth::CurrentUser;
use crate::changes::images::{Belonging, Uploaded};
use crate::changes::{self, Change};
use crate::error::ApiError;
use crate::models::images::NewImage;
use crate::models::patients::PatientFacts;
use crate::state::AppState;
use crate::storage::upload::store_file_part;
use crate::storage::Storage;

#[utoipa::path(
    post,
    path = "/api/v1/images",
    tag = "images",
    operation_id = "upload_image",
    summary = "Upload a PNG, JPEG or DICOM image (streamed)",
    request_body(content = UploadImageForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "Stored", body = ImageResponse, headers(("Location" = String, description = "the new entity")))
    )
)]
pub async fn upload_image(
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
    let mut patient_id: Option<String> = None;
    let mut issuer: Option<String> = None;
    let mut stored = None;
    // A part refused after the file was stored removes the file before the answer (not later,
    // from a background task), so a refused upload has left nothing stored when it answers.
    let parts: Result<(), ApiError> = async {
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
                        store_file_part(
                            state.storage.store().clone(),
                            key,
                            &mut field,
                            max,
                            state.settings.max_dicom_header_bytes,
                        )
                        .await?;
                    stored = Some((file, pending, filename));
                }
                "file" => return Err(ApiError::field("file", "send exactly one file")),
                "description" | "patient_id" | "issuer" => {
                    let (slot, max) = match name.as_str() {
                        "description" => (&mut description, 2000),
                        "patient_id" => (&mut patient_id, 64),
                        _ => (&mut issuer, 64),
                    };
                    if slot.is_some() {
                        return Err(ApiError::field(&name, "send this part once"));
                    }
                    *slot = Some(text_part(&mut field, &name, max).await?);
                }
                other => {
                    return Err(ApiError::field(
                        other,
                        "unknown part; send `file` and optionally `description`, `patient_id`, `issuer`",
                    ))
                }
            }
        }
        Ok(())
    }
    .await;
    if let Err(err) = parts {
        if let Some((_, pending, _)) = stored {
            pending.discard().await;
        }
        return Err(err);
    }
    let Some((file, pending, filename)) = stored else {
        return Err(ApiError::field("file", "a `file` part is required"));
    };
    let form_patient = match form_patient(patient_id, issuer) {
        Ok(patient) => patient,
        Err(err) => {
            pending.discard().await;
            return Err(err);
        }
    };
    if form_patient.is_some() && file.dicom.is_some() {
        pending.discard().await;
        return Err(ApiError::field(
            "patient_id",
            "a DICOM file names its patient itself; send patient_id and issuer with PNG or JPEG only",
        ));
    }
    let object_key = pending.key().to_string();
    let change = Change::by(&caller);
    let actor = caller.actor();
    let key = state.pseudonym_key.clone();
    let stored_bytes = file.size;
    let upload = move |conn: &mut crate::db::DbConnection| {
        crate::db::write_transaction(conn, |conn| {
            let belonging = match &file.dicom {
                Some(header) => Belonging::Dicom(header),
                None => Belonging::Form(form_patient.as_ref()),
            };
            changes::images::upload(
                conn,
                &caller,
                &change,
                &key,
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
                    filing: Default::default(),
                },
                belonging,
            )
        })
    };
    // Two uploads of one SOP Instance UID at once: the second waits on the first's unique
    // index entry and fails; run once more, and it finds the first (200 or 409).
    // The file is in storage already: only its row joins a batch of the change writer.
    let result = state
        .changes
        .write(actor, move |conn| match upload(conn) {
            Err(ApiError::Conflict(_)) => upload(conn),
            other => other,
        })
        .await;
    match result {
        Ok(Uploaded::Created(view, version)) => {
            pending.keep();
            metrics::counter!(crate::telemetry::UPLOAD_BYTES).increment(stored_bytes);
            Ok(image_answer(view, version, StatusCode::CREATED))
        }
        Ok(Uploaded::Existing(view, version)) => {
            pending.discard().await;
            Ok(image_answer(view, version, StatusCode::OK))
        }
        Err(err) => {
            pending.discard().await;
            Err(err)
        }
    }
}

/// The patient named by the form parts `patient_id` and `issuer` (PNG and JPEG), trimmed and
/// in NFC as DICOM values are read, so that the image joins the same patient as that
/// patient's DICOM files. `issuer` without `patient_id` is 422.
fn form_patient(
    patient_id: Option<String>,
    issuer: Option<String>,
) -> Result<Option<PatientFacts>, ApiError> {
    let clean = |v: Option<String>| v.map(|v| crate::text::nfc(v.trim()));
    let (patient_id, issuer) = (clean(patient_id), clean(issuer));
    // As a DICOM LO value holds them (PS3.5 6.2), and without invisible characters, so two
    // IDs that look the same are the same.
    for (field, value) in [("patient_id", &patient_id), ("issuer", &issuer)] {
        let Some(value) = value.as_deref().filter(|v| !v.is_empty()) else {
            continue;
        };
        if let Some(problem) = crate::text::name_problem(value) {
            return Err(ApiError::field(field, problem));
        }
        if value.contains('\\') {
            return Err(ApiError::field(field, "must not contain a backslash"));
        }
    }
    match patient_id.filter(|p| !p.is_empty()) {
        Some(patient_id) => Ok(Some(PatientFacts {
            issuer: issuer.unwrap_or_default(),
            patient_id,
            ..Default::default()
        })),
        None if issuer.as_deref().is_some_and(|i| !i.is_empty()) => Err(ApiError::field(
            "patient_id",
            "an issuer names no patient without a patient_id",
        )),
        None => Ok(None),
    }
}

/// Reads a text form part of at most `max` characters (UTF-8, no NUL): 422 on `name` otherwise.
async fn text_part(
    field: &mut actix_multipart::Field,
    name: &str,
    max: usize,
) -> Result<String, ApiError> {
    let too_long = || ApiError::field(name, format!("must be at most {max} characters"));
    let mut text = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest(format!("the multipart body could not be read: {e}"))
        })?;
        text.extend_from_slice(&chunk);
        if text.len() > 4 * max {
            return Err(too_long());
        }
    }
    let text = String::from_utf8(text).map_err(|_| ApiError::field(name, "must be UTF-8 text"))?;
    if text.contains('\0') {
        return Err(ApiError::field(name, NUL_MESSAGE));
    }
    if text.chars().count() > max {
        return Err(too_long());
    }
    Ok(text)
}

/// The client's file name as harmless metadata: no path, no control characters, 255 characters
/// at most; `None` when nothing is left.
pub fn sanitise_filename(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).take(255).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        assert_eq!(
            sanitise_filename("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            sanitise_filename("C:\\scans\\chest\u{0}.png").as_deref(),
            Some("chest.png")
        );
        assert_eq!(sanitise_filename("  ").as_deref(), None);
        assert_eq!(sanitise_filename(".hidden").as_deref(), Some("hidden"));
        assert_eq!(
            sanitise_filename(&"a".repeat(300)).map(|s| s.len()),
            Some(255)
        );
    }
}
