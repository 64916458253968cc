//! Writes of images and their diagnoses: upload, description, deletion, labels on and off,
//! revert. Every change of an image (its label set included) records the image as its editor
//! sees it after the change. Only the uploading doctor and admins change an image
//! ([`policy::may_edit_image`]): a visible image they may not change is 403, an invisible one
//! 404.

use super::snapshots::ImageV1;
use super::{until_written, Change, Precondition};
use crate::auth::policy::{self, Uploader};
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::error::ApiError;
use crate::history::{Action, EntityType};
use crate::imaging::dicom::DicomHeader;
use crate::models::images::{self, Filing, Image, ImageChanges, NewImage};
use crate::models::patients::{self, PatientFacts, StudyFacts};
use crate::models::{labels, users};
use crate::pseudonym::PseudonymKey;
use crate::views::images::{
    assignment_responses, find_visible, image_response, new_image_response, ImageResponse,
    LabelAssignmentResponse,
};

/// The live image `uuid` if the caller may change it: invisible -> 404, visible but not
/// theirs -> 403.
pub fn find_editable(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> Result<Image, ApiError> {
    images::lock_image(conn, uuid)?;
    let (image, _) = find_visible(conn, caller, uuid)?;
    authorise_edit(caller, &image)?;
    Ok(image)
}

/// 403 unless the caller may change `image`.
pub fn authorise_edit(caller: &CurrentUser, image: &Image) -> Result<(), ApiError> {
    if policy::may_edit_image(caller, Uploader::Id(image.uploaded_by)) {
        Ok(())
    } else {
        Err(ApiError::Forbidden(policy::NOT_IMAGE_EDITOR.into()))
    }
}

/// Records `image` as it is now after `action`; returns the caller's response and version.
/// Editors see the whole image, so the snapshot is complete.
fn recorded(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    image: Image,
    action: Action,
) -> Result<(ImageResponse, i32), ApiError> {
    let (response, version) = image_response(conn, caller, image)?;
    change.record(conn, EntityType::Image, &response.id, action, &response)?;
    Ok((response, version))
}

/// Records the image's state after a change of its label set (an update of the image).
fn record_diagnosis(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    image: &Image,
) -> Result<(), ApiError> {
    images::touch_image(conn, image.id)?;
    let image = images::find_live_image(conn, &image.uuid)?;
    recorded(conn, caller, change, image, Action::Update)?;
    Ok(())
}

/// What an upload turned out to be.
pub enum Uploaded {
    /// A new image (201).
    Created(ImageResponse, i32),
    /// The same SOP Instance UID with the same bytes, stored already (200): a retried upload.
    Existing(ImageResponse, i32),
}

/// Where an upload says it belongs: the DICOM header, or (PNG, JPEG) the patient the upload
/// form names.
#[derive(Debug, Clone, Copy)]
pub enum Belonging<'a> {
    Dicom(&'a DicomHeader),
    Form(Option<&'a PatientFacts>),
}

/// Files an uploaded image under its patient, study and series (API.md "Patients, studies and
/// subjects"), creating them as needed; `new.filing` is filled in here. A live image with the
/// same SOP Instance UID is answered as [`Uploaded::Existing`] when its bytes are the same and
/// the caller may change it, and 409 otherwise.
pub fn upload<'a>(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    key: &PseudonymKey,
    mut new: NewImage<'a>,
    belonging: Belonging<'a>,
) -> Result<Uploaded, ApiError> {
    let (patient, header) = match belonging {
        Belonging::Dicom(header) => (patient_of(header), Some(header)),
        Belonging::Form(patient) => (patient.cloned(), None),
    };
    let sop = header.and_then(|h| h.sop_instance_uid.as_deref());
    if let Some(sop) = sop {
        if let Some(stored) = images::find_live_by_sop(conn, sop)? {
            // Whether the bytes match is told only to who may change the stored image.
            if !policy::may_edit_image(caller, Uploader::Id(stored.uploaded_by)) {
                return Err(ApiError::Conflict(
                    "an image with this SOP Instance UID is stored already".into(),
                ));
            }
            if stored.sha256 != new.sha256 {
                return Err(ApiError::Conflict(
                    "an image with this SOP Instance UID is stored already, with other bytes"
                        .into(),
                ));
            }
            let (response, version) = image_response(conn, caller, stored)?;
            return Ok(Uploaded::Existing(response, version));
        }
    }
    let terms = crate::text::identifier_terms(
        header
            .and_then(|h| h.patients_name.as_deref())
            .or(patient.as_ref().and_then(|p| p.name.as_deref())),
        patient.as_ref().map(|p| p.patient_id.as_str()),
        header
            .and_then(|h| h.patients_birth_date.as_deref())
            .or(patient.as_ref().and_then(|p| p.birth_date.as_deref())),
        header.and_then(|h| h.accession_number.as_deref()),
    );
    let patient = match &patient {
        Some(facts) => {
            let filed = patients::file_patient(
                conn,
                facts,
                &key.subject_id(&facts.issuer, &facts.patient_id),
            )?;
            let filed = patients::fill_in(conn, filed, facts)?;
            patients::record_terms(conn, filed.id, &terms)?;
            Some(filed)
        }
        None => None,
    };
    let mut filing = Filing {
        patient_id: patient.as_ref().map(|p| p.id),
        sop_instance_uid: sop,
        redaction_terms: (!terms.is_empty()).then(|| terms.join("\n")),
        ..Default::default()
    };
    let (mut study, mut series_uid) = (None, None);
    if let Some(header) = header {
        filing.modality = header.modality.as_deref();
        filing.burned_in_annotation = header.burned_in_annotation;
        filing.number_of_frames = header
            .number_of_frames
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        if let Some(uid) = &header.study_instance_uid {
            let filed = patients::file_study(
                conn,
                &StudyFacts {
                    study_instance_uid: uid.clone(),
                    study_date: header.study_date.clone(),
                    accession_number: header.accession_number.clone(),
                    description: header.study_description.clone(),
                },
                filing.patient_id,
            )?;
            // One study is one patient's (and a series one study's): a file that names
            // another patient contradicts what is filed, and would show it the other's
            // details. A file without Patient ID joins the study as it is (API.md); a study
            // filed without a patient takes the first patient a file of it names.
            let filed = match (filed.patient_id, filing.patient_id) {
                (Some(filed_under), Some(named)) if filed_under != named => {
                    return Err(ApiError::Conflict(
                        "this file's Study Instance UID is filed under another patient".into(),
                    ));
                }
                (None, Some(named)) => {
                    let adopted = patients::adopt_study(conn, filed, named)?;
                    if adopted.patient_id != Some(named) {
                        return Err(ApiError::Conflict(
                            "this file's Study Instance UID is filed under another patient".into(),
                        ));
                    }
                    adopted
                }
                _ => filed,
            };
            filing.study_id = Some(filed.id);
            if let Some(series) = &header.series_instance_uid {
                let (series_id, series_study) =
                    patients::file_series(conn, series, filed.id, header.modality.as_deref())?;
                if series_study != filed.id {
                    return Err(ApiError::Conflict(
                        "this file's Series Instance UID is filed under another study".into(),
                    ));
                }
                filing.series_id = Some(series_id);
                series_uid = Some(series.clone());
            }
            study = Some(filed);
        }
    }
    new.filing = filing;
    let image = images::insert_image(conn, new)?;
    let (response, version) = new_image_response(conn, caller, image, patient, study, series_uid)?;
    change.record(
        conn,
        EntityType::Image,
        &response.id,
        Action::Create,
        &response,
    )?;
    Ok(Uploaded::Created(response, version))
}

/// The patient a DICOM header names: none without a Patient ID.
fn patient_of(header: &DicomHeader) -> Option<PatientFacts> {
    Some(PatientFacts {
        issuer: header.issuer_of_patient_id.clone().unwrap_or_default(),
        patient_id: header.patient_id.clone()?,
        name: header.patients_name.clone(),
        birth_date: header.patients_birth_date.clone(),
        sex: header.patients_sex.clone(),
    })
}

/// Changes image `uuid` as the client read it: its description, or its deletion.
pub fn update(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    precondition: &Precondition,
    changes: &ImageChanges<'_>,
) -> Result<(ImageResponse, i32), ApiError> {
    let updated = until_written(conn, |conn| {
        let image = find_editable(conn, caller, uuid)?;
        precondition.check(image.version)?;
        Ok(images::update_image(
            conn,
            image.id,
            image.version,
            changes,
        )?)
    })?;
    let action = if changes.delete {
        Action::Delete
    } else {
        Action::Update
    };
    recorded(conn, caller, change, updated, action)
}

/// Puts active label `label_uuid` on image `uuid` (409 when it is there already).
pub fn assign_label(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    label_uuid: &str,
    note: Option<&str>,
) -> Result<LabelAssignmentResponse, ApiError> {
    let image = find_editable(conn, caller, uuid)?;
    let label = uuid::Uuid::parse_str(label_uuid)
        .ok()
        .and_then(|u| labels::find(conn, &u.to_string()).ok())
        .filter(|l| l.is_active)
        .ok_or_else(|| ApiError::field("label_id", "no active label has this id"))?;
    let held = |conn: &mut DbConnection| -> Result<_, ApiError> {
        Ok(images::assignments_of(conn, &[image.id])?
            .remove(&image.id)
            .unwrap_or_default())
    };
    if held(conn)?.iter().any(|a| a.label_id == label.id) {
        return Err(ApiError::Conflict(format!(
            "the label {:?} is already on this image",
            label.name
        )));
    }
    images::assign_label(conn, image.id, label.id, note, caller.id)?;
    record_diagnosis(conn, caller, change, &image)?;
    let row = held(conn)?
        .into_iter()
        .find(|a| a.label_id == label.id)
        .ok_or(ApiError::NotFound)?;
    Ok(assignment_responses(conn, std::slice::from_ref(&row))?.remove(0))
}

/// Takes label `label_uuid` off image `uuid` (404 when it is not there).
pub fn unassign_label(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    label_uuid: &str,
) -> Result<(), ApiError> {
    let image = find_editable(conn, caller, uuid)?;
    let label = labels::find(conn, label_uuid)?;
    if !images::unassign_label(conn, image.id, label.id)? {
        return Err(ApiError::NotFound);
    }
    record_diagnosis(conn, caller, change, &image)
}

/// Restores image `uuid` (deleted or not) to a snapshot: live again, its description and its
/// label set. A label the image does not hold now must exist and be active, as when assigning
/// it directly (one it still holds keeps its assignment, as past assignments do); every label
/// refused is named (422 on `labels`).
pub fn revert(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    change: &Change,
    uuid: &str,
    snapshot: &ImageV1,
) -> Result<(ImageResponse, i32), ApiError> {
    images::lock_image(conn, uuid)?;
    let image = images::find_any_image(conn, uuid)?;
    authorise_edit(caller, &image)?;
    let held: Vec<i64> = images::assignments_of(conn, &[image.id])?
        .remove(&image.id)
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.label_id)
        .collect();
    let mut rows = Vec::new();
    let mut refused = Vec::new();
    for assignment in &snapshot.labels {
        let label_uuid = &assignment.label.id;
        let label = match labels::find(conn, label_uuid) {
            Ok(label) if label.is_active || held.contains(&label.id) => label,
            Ok(label) => {
                refused.push(format!(
                    "label {} ({:?}) is no longer active",
                    label.uuid, label.name
                ));
                continue;
            }
            Err(diesel::result::Error::NotFound) => {
                refused.push(format!("label {label_uuid} does not exist"));
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        let by = users::find_by_uuid(conn, &assignment.assigned_by.id)
            .map(|u| u.id)
            .unwrap_or(caller.id);
        let at = chrono::DateTime::parse_from_rfc3339(&assignment.assigned_at)
            .map(|t| t.naive_utc())
            .unwrap_or_else(|_| crate::db::now());
        rows.push((label.id, assignment.note.clone(), by, at));
    }
    if !refused.is_empty() {
        return Err(ApiError::Validation(
            [("labels".to_owned(), refused)].into_iter().collect(),
        ));
    }
    if let Some(sop) = &image.sop_instance_uid {
        if image.deleted_at.is_some() && images::find_live_by_sop(conn, sop)?.is_some() {
            return Err(ApiError::Conflict(
                "another image with this SOP Instance UID was uploaded since it was deleted".into(),
            ));
        }
    }
    images::restore_image(conn, image.id, snapshot.description.as_deref())?;
    images::replace_assignments(conn, image.id, &rows)?;
    let restored = images::find_live_image(conn, uuid)?;
    recorded(conn, caller, change, restored, Action::Revert)
}
