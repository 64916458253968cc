//! Patients, studies and subjects as the API shows them (API.md "Patients, studies and
//! subjects"), and the identifiers that researchers' free text is redacted of.
//!
//! - Doctors and admins see a patient identified ([`PatientResponse`]); researchers see only
//!   its pseudonym, the subject ([`SubjectResponse`]), which carries no identifier.
//! - A page costs a constant number of queries: the rows, one grouped count of their images,
//!   and their studies.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use chrono::NaiveDateTime;
use diesel::QueryResult;
use parking_lot::Mutex;
use serde::Serialize;

use super::rfc3339;
use crate::db::DbConnection;
use crate::models::patients::{self, Patient, Study};
use crate::text::Redactor;

/// An image's patient, for doctors and admins (`Image.patient`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImagePatient {
    #[schema(format = Uuid)]
    pub id: String,
    /// Patient ID (0010,0020).
    pub patient_id: String,
    /// Issuer of Patient ID (0010,0021); `""` when the file has none.
    pub issuer: String,
    /// Patient's Name as written in the file (DICOM PN form, `Doe^John`).
    pub name: Option<String>,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub birth_date: Option<String>,
    pub sex: Option<String>,
}

/// An image's study as doctors and admins see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ImageStudyIdentified {
    #[schema(format = Uuid)]
    pub id: String,
    pub study_instance_uid: String,
    /// `YYYY-MM-DD`.
    #[schema(format = Date)]
    pub study_date: Option<String>,
    pub accession_number: Option<String>,
    pub description: Option<String>,
}

/// An image's study as researchers see it: its id only (`additionalProperties: false`, so
/// exactly one of the two study shapes matches a body).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImageStudyPseudonymous {
    #[schema(format = Uuid)]
    pub id: String,
}

/// `Image.study`: identified for doctors and admins, `{"id"}` for researchers.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ImageStudy {
    Identified(ImageStudyIdentified),
    Pseudonymous(ImageStudyPseudonymous),
}

impl ImagePatient {
    pub fn of(patient: &Patient) -> Self {
        ImagePatient {
            id: patient.uuid.clone(),
            patient_id: patient.patient_id.clone(),
            issuer: patient.issuer.clone(),
            name: patient.name.clone(),
            birth_date: patient.birth_date.clone(),
            sex: patient.sex.clone(),
        }
    }
}

impl ImageStudy {
    /// The study as a caller who sees the image whole (`identified`) or not sees it.
    pub fn of(study: &Study, identified: bool) -> Self {
        if identified {
            ImageStudy::Identified(ImageStudyIdentified {
                id: study.uuid.clone(),
                study_instance_uid: study.study_instance_uid.clone(),
                study_date: study.study_date.clone(),
                accession_number: study.accession_number.clone(),
                description: study.description.clone(),
            })
        } else {
            ImageStudy::Pseudonymous(ImageStudyPseudonymous {
                id: study.uuid.clone(),
            })
        }
    }
}

/// A study of a patient, with the modalities and number of the images the caller counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StudyResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub study_instance_uid: String,
    #[schema(format = Date)]
    pub study_date: Option<String>,
    pub accession_number: Option<String>,
    pub description: Option<String>,
    /// Distinct Modality values of its images, sorted (`["CT", "MR"]`).
    pub modalities: Vec<String>,
    pub image_count: i64,
}

/// `Patient`: identified, for doctors (the patients of their own images, counting those) and
/// admins.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PatientResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub patient_id: String,
    pub issuer: String,
    pub name: Option<String>,
    #[schema(format = Date)]
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    /// The pseudonym (`S-` + 16 base32 characters).
    #[schema(example = "S-MFRGGZDFMZTWQ2LK")]
    pub subject_id: String,
    pub studies: Vec<StudyResponse>,
    pub image_count: i64,
    #[serde(serialize_with = "rfc3339")]
    #[schema(value_type = String, format = DateTime, example = "2026-11-21T09:30:00.123Z")]
    pub created_at: NaiveDateTime,
}

/// A study of a subject: no UID, date, accession number or description.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubjectStudyResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub modalities: Vec<String>,
    pub image_count: i64,
}

/// `Subject`: a patient under its pseudonym, for researchers and admins; an admin's read
/// also carries `patient` (re-identification).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubjectResponse {
    /// The pseudonym (`S-` + 16 base32 characters).
    #[schema(example = "S-MFRGGZDFMZTWQ2LK")]
    pub id: String,
    pub studies: Vec<SubjectStudyResponse>,
    pub image_count: i64,
    /// Admins only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patient: Option<PatientResponse>,
}

/// Per patient: the image count, and per study its modalities and image count.
struct Counts {
    total: i64,
    studies: BTreeMap<i64, (BTreeSet<String>, i64)>,
}

/// The counts of the live images (of `uploader`, when given) of each patient in `rows`, and
/// their studies: two queries.
fn counts(
    conn: &mut DbConnection,
    rows: &[Patient],
    uploader: Option<i64>,
) -> QueryResult<(HashMap<i64, Counts>, HashMap<i64, Study>)> {
    let ids: Vec<i64> = rows.iter().map(|p| p.id).collect();
    let mut by_patient: HashMap<i64, Counts> = HashMap::new();
    let mut study_ids = Vec::new();
    for (patient, study, modality, n) in patients::image_counts(conn, &ids, uploader)? {
        let counts = by_patient.entry(patient).or_insert_with(|| Counts {
            total: 0,
            studies: BTreeMap::new(),
        });
        counts.total += n;
        if let Some(study) = study {
            let entry = counts.studies.entry(study).or_default();
            entry.0.extend(modality);
            entry.1 += n;
            study_ids.push(study);
        }
    }
    study_ids.sort_unstable();
    study_ids.dedup();
    let studies = patients::studies_by_ids(conn, &study_ids)?;
    Ok((by_patient, studies))
}

fn patient_response(
    patient: Patient,
    counts: Option<&Counts>,
    studies: &HashMap<i64, Study>,
) -> PatientResponse {
    let mut study_responses: Vec<StudyResponse> = counts
        .map(|c| &c.studies)
        .into_iter()
        .flatten()
        .filter_map(|(id, (modalities, n))| {
            let study = studies.get(id)?;
            Some(StudyResponse {
                id: study.uuid.clone(),
                study_instance_uid: study.study_instance_uid.clone(),
                study_date: study.study_date.clone(),
                accession_number: study.accession_number.clone(),
                description: study.description.clone(),
                modalities: modalities.iter().cloned().collect(),
                image_count: *n,
            })
        })
        .collect();
    study_responses.sort_by(|a, b| a.study_date.cmp(&b.study_date).then(a.id.cmp(&b.id)));
    PatientResponse {
        id: patient.uuid,
        patient_id: patient.patient_id,
        issuer: patient.issuer,
        name: patient.name,
        birth_date: patient.birth_date,
        sex: patient.sex,
        subject_id: patient.subject_id,
        studies: study_responses,
        image_count: counts.map_or(0, |c| c.total),
        created_at: patient.created_at,
    }
}

/// The responses for a page of patients, counting the images of `uploader` (a doctor) or
/// all (`None`), in three queries.
pub fn patient_responses(
    conn: &mut DbConnection,
    rows: Vec<Patient>,
    uploader: Option<i64>,
) -> QueryResult<Vec<PatientResponse>> {
    let (counts, studies) = counts(conn, &rows, uploader)?;
    Ok(rows
        .into_iter()
        .map(|p| {
            let c = counts.get(&p.id);
            patient_response(p, c, &studies)
        })
        .collect())
}

/// The responses for a page of subjects; with `reidentify` (admins) each carries its patient.
pub fn subject_responses(
    conn: &mut DbConnection,
    rows: Vec<Patient>,
    reidentify: bool,
) -> QueryResult<Vec<SubjectResponse>> {
    let (counts, studies) = counts(conn, &rows, None)?;
    Ok(rows
        .into_iter()
        .map(|p| {
            let c = counts.get(&p.id);
            let mut subject_studies: Vec<(Option<String>, SubjectStudyResponse)> = c
                .map(|c| &c.studies)
                .into_iter()
                .flatten()
                .filter_map(|(id, (modalities, n))| {
                    let study = studies.get(id)?;
                    Some((
                        study.study_date.clone(),
                        SubjectStudyResponse {
                            id: study.uuid.clone(),
                            modalities: modalities.iter().cloned().collect(),
                            image_count: *n,
                        },
                    ))
                })
                .collect();
            subject_studies.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
            SubjectResponse {
                id: p.subject_id.clone(),
                studies: subject_studies.into_iter().map(|(_, s)| s).collect(),
                image_count: c.map_or(0, |c| c.total),
                patient: reidentify.then(|| patient_response(p, c, &studies)),
            }
        })
        .collect())
}

/// A redactor for `terms` (see [`crate::text::identifier_terms`]); `None` when there are none.
///
/// Compiling one costs far more than using it, and the same patient's terms come back on every
/// page, so redactors are kept per term set, process-wide, up to [`REDACTOR_CACHE`] sets (then
/// the cache starts afresh).
pub fn redactor(mut terms: Vec<String>) -> Option<Redactor> {
    type Cache = Mutex<HashMap<String, Option<Redactor>>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    if terms.is_empty() {
        return None;
    }
    terms.sort_unstable();
    terms.dedup();
    let key = terms.join("\n");
    let cache = CACHE.get_or_init(Default::default);
    if let Some(found) = cache.lock().get(&key) {
        return found.clone();
    }
    let made = Redactor::new(terms);
    let mut cache = cache.lock();
    if cache.len() >= REDACTOR_CACHE {
        cache.clear();
    }
    cache.insert(key, made.clone());
    made
}

/// How many term sets' redactors are kept (each a few KiB).
const REDACTOR_CACHE: usize = 4096;
