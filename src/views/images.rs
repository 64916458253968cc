//! Images and their label assignments as the API shows them. A caller who sees an image
//! de-identified ([`ImageView::Deidentified`]: researchers) gets no `original_filename`, no
//! patient, the study as `{"id"}` only, no series or SOP Instance UID, the description and
//! notes with the patient's identifiers `[redacted]`, and `withheld: true` when the pixels may
//! carry identifying text (API.md "Patients, studies and subjects", "De-identification").

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use serde::Serialize;

use super::patients::{redactor, ImagePatient, ImageStudy};
use super::{rfc3339, NamedRef, UserRef};
use crate::auth::policy::{self, ImageView, Uploader};
use crate::auth::CurrentUser;
use crate::db::DbConnection;
use crate::models::images::{self, Assignment, Image, ImageWithPatient};
use crate::models::patients::{self, Patient, Study};
use crate::models::users::user_refs;
use crate::text::Redactor;

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
    /// The patient (doctors and admins); `null` for researchers and where there is none.
    pub patient: Option<ImagePatient>,
    /// The patient's pseudonym, for everyone who sees the image; `null` without a patient.
    #[schema(example = "S-MFRGGZDFMZTWQ2LK")]
    pub subject_id: Option<String>,
    /// The study: whole for doctors and admins, `{"id"}` for researchers; `null` when unknown.
    pub study: Option<ImageStudy>,
    /// Series Instance UID (0020,000E); `null` for researchers.
    pub series_instance_uid: Option<String>,
    /// SOP Instance UID (0008,0018); `null` for researchers.
    pub sop_instance_uid: Option<String>,
    /// Modality (0008,0060), e.g. `CT`.
    pub modality: Option<String>,
    /// `true` (researchers only) when the file is withheld from them: its Burned In Annotation
    /// (0028,0301) is `YES`, so its pixels may show identifying text.
    pub withheld: bool,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub updated_at: NaiveDateTime,
}

/// The live image `uuid` and how the caller sees it; diesel's `NotFound` when it does not
/// exist, is deleted, or is not visible to the caller (existence is never revealed).
pub fn find_visible(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    uuid: &str,
) -> QueryResult<(Image, ImageView)> {
    let image = images::find_live_image(conn, uuid)?;
    let view = policy::image_view(caller, Uploader::Id(image.uploaded_by))
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((image, view))
}

/// The responses for some assignments, with their authors' names in one query.
pub fn assignment_responses(
    conn: &mut DbConnection,
    rows: &[Assignment],
) -> QueryResult<Vec<LabelAssignmentResponse>> {
    let ids: Vec<i64> = rows.iter().map(|a| a.assigned_by).collect();
    let users = user_refs(conn, &ids)?;
    Ok(rows
        .iter()
        .map(|a| assignment_response(a, &users, None))
        .collect())
}

fn assignment_response(
    a: &Assignment,
    users: &HashMap<i64, (String, String)>,
    redactor: Option<&Redactor>,
) -> LabelAssignmentResponse {
    LabelAssignmentResponse {
        label: NamedRef {
            id: a.label_uuid.clone(),
            name: a.label_name.clone(),
        },
        note: redacted(a.note.clone(), redactor),
        assigned_by: UserRef::of(users, a.assigned_by),
        assigned_at: a.assigned_at,
    }
}

/// The labels on `image` as a caller with `view` sees them (notes redacted for researchers).
pub fn image_assignments(
    conn: &mut DbConnection,
    image: &Image,
    view: ImageView,
) -> QueryResult<Vec<LabelAssignmentResponse>> {
    let rows = images::assignments_of(conn, &[image.id])?
        .remove(&image.id)
        .unwrap_or_default();
    let redactor = if view == ImageView::Full {
        None
    } else {
        Filings::load(conn, std::slice::from_ref(image))?.redactor(image)
    };
    let ids: Vec<i64> = rows.iter().map(|a| a.assigned_by).collect();
    let users = user_refs(conn, &ids)?;
    Ok(rows
        .iter()
        .map(|a| assignment_response(a, &users, redactor.as_ref()))
        .collect())
}

/// `text` with the identifiers of `redactor` replaced, when there is one.
fn redacted(text: Option<String>, redactor: Option<&Redactor>) -> Option<String> {
    match (text, redactor) {
        (Some(text), Some(r)) => Some(r.redact(&text)),
        (text, _) => text,
    }
}

/// The patients, studies and series UIDs a page of images is filed under, and the identifiers
/// recorded for its patients: a query per kind at most, none for images without one (and none
/// for what is not needed: patients a list loaded already, Series Instance UIDs when no image
/// is seen whole, identifiers when nothing is redacted).
pub struct Filings {
    patients: HashMap<i64, Patient>,
    studies: HashMap<i64, Study>,
    series: HashMap<i64, String>,
    terms: HashMap<i64, Vec<String>>,
}

impl Filings {
    /// Everything, for `rows` some of which are redacted.
    pub fn load(conn: &mut DbConnection, rows: &[Image]) -> QueryResult<Filings> {
        let patients = patients::patients_by_ids(conn, &ids(rows, |i| i.patient_id))?;
        Self::load_with(conn, rows, patients, true, true)
    }

    fn load_with(
        conn: &mut DbConnection,
        rows: &[Image],
        patients: HashMap<i64, Patient>,
        series: bool,
        terms: bool,
    ) -> QueryResult<Filings> {
        Ok(Filings {
            patients,
            studies: patients::studies_by_ids(conn, &ids(rows, |i| i.study_id))?,
            series: if series {
                patients::series_uids(conn, &ids(rows, |i| i.series_id))?
            } else {
                HashMap::new()
            },
            terms: if terms {
                patients::terms_of(conn, &ids(rows, |i| i.patient_id))?
            } else {
                HashMap::new()
            },
        })
    }

    /// The redactor of `image`'s free text for researchers: the identifiers its own file gave
    /// and every identifier recorded for its patient; `None` when there are none.
    pub fn redactor(&self, image: &Image) -> Option<Redactor> {
        let mut terms: Vec<String> = image.own_terms().map(str::to_owned).collect();
        if let Some(recorded) = image.patient_id.and_then(|id| self.terms.get(&id)) {
            terms.extend(recorded.iter().cloned());
        }
        redactor(terms)
    }
}

/// The distinct ids `f` gives for `rows`.
fn ids(rows: &[Image], f: fn(&Image) -> Option<i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = rows.iter().filter_map(f).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The caller's responses for a page of images: labels, user names, patients and studies in
/// a constant number of queries.
pub fn image_responses(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    rows: Vec<Image>,
) -> QueryResult<Vec<ImageResponse>> {
    let patients = patients::patients_by_ids(conn, &ids(&rows, |i| i.patient_id))?;
    let rows = rows
        .into_iter()
        .map(|image| {
            let patient = image.patient_id.and_then(|id| patients.get(&id).cloned());
            (image, patient)
        })
        .collect();
    responses_with_patients(conn, caller, rows)
}

/// Like [`image_responses`], for rows read with their patients (`models::images::list_images`,
/// `find_live_with_patient`): one query fewer.
pub fn responses_with_patients(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    rows: Vec<ImageWithPatient>,
) -> QueryResult<Vec<ImageResponse>> {
    responses_filed(conn, caller, rows, None)
}

/// The response for an image just filed, whose patient, study and series UID the caller has
/// at hand (the upload): three queries fewer inside the upload's write transaction.
pub fn new_image_response(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image: Image,
    patient: Option<Patient>,
    study: Option<Study>,
    series_uid: Option<String>,
) -> QueryResult<(ImageResponse, i32)> {
    let version = image.version;
    let filings = Filings {
        patients: patient.iter().map(|p| (p.id, p.clone())).collect(),
        studies: study.into_iter().map(|s| (s.id, s)).collect(),
        series: image.series_id.zip(series_uid).into_iter().collect(),
        terms: HashMap::new(),
    };
    let response = responses_filed(conn, caller, vec![(image, patient)], Some(filings))?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((response, version))
}

fn responses_filed(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    rows: Vec<ImageWithPatient>,
    known: Option<Filings>,
) -> QueryResult<Vec<ImageResponse>> {
    let whole = |image: &Image| {
        policy::image_view(caller, Uploader::Id(image.uploaded_by)) == Some(ImageView::Full)
    };
    let mut patients: HashMap<i64, Patient> = HashMap::new();
    let rows: Vec<Image> = rows
        .into_iter()
        .map(|(image, patient)| {
            if let Some(p) = patient {
                patients.insert(p.id, p);
            }
            image
        })
        .collect();
    let ids: Vec<i64> = rows.iter().map(|i| i.id).collect();
    let mut assignments = images::assignments_of(conn, &ids)?;
    // What free text an image has: its description, or a note on one of its labels.
    let has_free_text = |image: &Image, labels: Option<&Vec<Assignment>>| {
        image.description.is_some() || labels.is_some_and(|a| a.iter().any(|a| a.note.is_some()))
    };
    let whole_any = rows.iter().any(whole);
    // Identifiers are needed only for free text shown de-identified.
    let redacting = rows
        .iter()
        .any(|image| !whole(image) && has_free_text(image, assignments.get(&image.id)));
    let filings = match known {
        // Redacting needs the patient's recorded identifiers, which `known` does not hold.
        Some(known) if !redacting => known,
        _ => Filings::load_with(conn, &rows, patients, whole_any, redacting)?,
    };
    let mut people: Vec<i64> = rows.iter().map(|i| i.uploaded_by).collect();
    people.extend(assignments.values().flatten().map(|a| a.assigned_by));
    people.sort_unstable();
    people.dedup();
    let users = user_refs(conn, &people)?;
    Ok(rows
        .into_iter()
        .map(|image| {
            let whole = whole(&image);
            let labels = assignments.remove(&image.id).unwrap_or_default();
            let patient = image.patient_id.and_then(|id| filings.patients.get(&id));
            let study = image.study_id.and_then(|id| filings.studies.get(&id));
            let redactor = if whole || !has_free_text(&image, Some(&labels)) {
                None
            } else {
                filings.redactor(&image)
            };
            ImageResponse {
                id: image.uuid,
                uploaded_by: UserRef::of(&users, image.uploaded_by),
                description: redacted(image.description, redactor.as_ref()),
                content_type: image.content_type,
                size_bytes: image.size_bytes,
                sha256: image.sha256,
                width: image.width,
                height: image.height,
                original_filename: image.original_filename.filter(|_| whole),
                labels: labels
                    .iter()
                    .map(|a| assignment_response(a, &users, redactor.as_ref()))
                    .collect(),
                patient: patient.filter(|_| whole).map(ImagePatient::of),
                subject_id: patient.map(|p| p.subject_id.clone()),
                study: study.map(|s| ImageStudy::of(s, whole)),
                series_instance_uid: image
                    .series_id
                    .and_then(|id| filings.series.get(&id).cloned())
                    .filter(|_| whole),
                sop_instance_uid: image.sop_instance_uid.filter(|_| whole),
                modality: image.modality,
                withheld: image.burned_in_annotation && !whole,
                created_at: image.created_at,
                updated_at: image.updated_at,
            }
        })
        .collect())
}

/// The caller's response for one image read with its patient, and its version.
pub fn response_with_patient(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    row: ImageWithPatient,
) -> QueryResult<(ImageResponse, i32)> {
    let version = row.0.version;
    let response = responses_with_patients(conn, caller, vec![row])?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((response, version))
}

/// The caller's response for one image, and its version (for the ETag).
pub fn image_response(
    conn: &mut DbConnection,
    caller: &CurrentUser,
    image: Image,
) -> QueryResult<(ImageResponse, i32)> {
    let version = image.version;
    let response = image_responses(conn, caller, vec![image])?
        .pop()
        .ok_or(diesel::result::Error::NotFound)?;
    Ok((response, version))
}
