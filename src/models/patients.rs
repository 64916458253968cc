//! `patients`, `studies` and `series`: where images are filed (API.md "Patients, studies and
//! subjects"), and `service_keys`, the fingerprint of the pseudonym key the stored subject ids
//! were made with.
//!
//! One patient is one (issuer, patient ID) pair, one study one Study Instance UID, one series
//! one Series Instance UID. Filing is idempotent and safe under concurrent uploads: each row is
//! inserted with `ON CONFLICT DO NOTHING` and then read, so two uploads of one patient at once
//! file under the same row. The first file to name a patient or study sets its details.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::{like_pattern, new_uuid};

/// `INSERT ... ON CONFLICT DO NOTHING` (diesel offers it per backend, not on the
/// multi-backend connection).
macro_rules! insert_or_ignore {
    ($conn:expr, $table:expr, $values:expr) => {
        match $conn {
            DbConnection::Postgres(c) => diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
            DbConnection::Sqlite(c) => diesel::insert_into($table)
                .values($values)
                .on_conflict_do_nothing()
                .execute(c),
        }
    };
}
use crate::db::schema::{images, patient_terms, patients, series, service_keys, studies};
use crate::db::{now, DbConnection};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = patients)]
pub struct Patient {
    pub id: i64,
    pub uuid: String,
    pub issuer: String,
    pub patient_id: String,
    pub name: Option<String>,
    pub birth_date: Option<String>,
    pub sex: Option<String>,
    pub subject_id: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = studies)]
pub struct Study {
    pub id: i64,
    pub uuid: String,
    pub study_instance_uid: String,
    pub patient_id: Option<i64>,
    pub study_date: Option<String>,
    pub accession_number: Option<String>,
    pub description: Option<String>,
}

/// A patient as a file (or an upload form) names it. Text is trimmed and in NFC.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientFacts {
    /// Issuer of Patient ID (0010,0021); `""` when absent.
    pub issuer: String,
    /// Patient ID (0010,0020); never empty.
    pub patient_id: String,
    /// Patient's Name (0010,0010) as written (DICOM PN form, `Doe^John`).
    pub name: Option<String>,
    /// Patient's Birth Date (0010,0030) as `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// Patient's Sex (0010,0040) as written.
    pub sex: Option<String>,
}

/// A study as a file names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyFacts {
    pub study_instance_uid: String,
    /// Study Date (0008,0020) as `YYYY-MM-DD`.
    pub study_date: Option<String>,
    pub accession_number: Option<String>,
    pub description: Option<String>,
}

/// The patient of `facts`, filed now if new, with its pseudonym `subject_id`.
pub fn file_patient(
    conn: &mut DbConnection,
    facts: &PatientFacts,
    subject_id: &str,
) -> QueryResult<Patient> {
    let find = |conn: &mut DbConnection| {
        patients::table
            .filter(patients::issuer.eq(&facts.issuer))
            .filter(patients::patient_id.eq(&facts.patient_id))
            .select(Patient::as_select())
            .first(conn)
            .optional()
    };
    // Most uploads are of patients filed already: one read then.
    if let Some(found) = find(conn)? {
        return Ok(found);
    }
    let search_key = format!(
        "{}\n{}",
        crate::text::fold_key(&facts.patient_id),
        crate::text::fold_key(facts.name.as_deref().unwrap_or_default())
    );
    insert_or_ignore!(
        conn,
        patients::table,
        (
            patients::uuid.eq(new_uuid()),
            patients::issuer.eq(&facts.issuer),
            patients::patient_id.eq(&facts.patient_id),
            patients::name.eq(&facts.name),
            patients::birth_date.eq(&facts.birth_date),
            patients::sex.eq(&facts.sex),
            patients::subject_id.eq(subject_id),
            patients::search_key.eq(search_key),
            patients::created_at.eq(now()),
        )
    )?;
    find(conn)?.ok_or(diesel::result::Error::NotFound)
}

/// Gives `patient` the details of `facts` it lacks (a patient first named by an upload form
/// has no name until a DICOM file gives one); details it has are kept. Writes only when
/// something is missing. Returns the patient as it is now.
pub fn fill_in(
    conn: &mut DbConnection,
    patient: Patient,
    facts: &PatientFacts,
) -> QueryResult<Patient> {
    let missing = |have: &Option<String>, given: &Option<String>| have.is_none() && given.is_some();
    if !missing(&patient.name, &facts.name)
        && !missing(&patient.birth_date, &facts.birth_date)
        && !missing(&patient.sex, &facts.sex)
    {
        return Ok(patient);
    }
    let row = patients::table.filter(patients::id.eq(patient.id));
    if let Some(name) = &facts.name {
        let search_key = format!(
            "{}\n{}",
            crate::text::fold_key(&facts.patient_id),
            crate::text::fold_key(name)
        );
        diesel::update(row.filter(patients::name.is_null()))
            .set((patients::name.eq(name), patients::search_key.eq(search_key)))
            .execute(conn)?;
    }
    if let Some(birth_date) = &facts.birth_date {
        diesel::update(row.filter(patients::birth_date.is_null()))
            .set(patients::birth_date.eq(birth_date))
            .execute(conn)?;
    }
    if let Some(sex) = &facts.sex {
        diesel::update(row.filter(patients::sex.is_null()))
            .set(patients::sex.eq(sex))
            .execute(conn)?;
    }
    patients::table
        .find(patient.id)
        .select(Patient::as_select())
        .first(conn)
}

/// Records `terms` (identifiers some file gave) for patient `id`; known ones are skipped (one
/// read when all are known, as for every further file of a series).
pub fn record_terms(conn: &mut DbConnection, id: i64, terms: &[String]) -> QueryResult<()> {
    if terms.is_empty() {
        return Ok(());
    }
    let known: Vec<String> = patient_terms::table
        .filter(patient_terms::patient_id.eq(id))
        .select(patient_terms::term)
        .load(conn)?;
    for term in terms.iter().filter(|t| !known.contains(t)) {
        insert_or_ignore!(
            conn,
            patient_terms::table,
            (
                patient_terms::patient_id.eq(id),
                patient_terms::term.eq(term)
            )
        )?;
    }
    Ok(())
}

/// Every identifier recorded for each patient in `ids`, in one query.
pub fn terms_of(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Vec<String>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, String)> = patient_terms::table
        .filter(patient_terms::patient_id.eq_any(ids))
        .select((patient_terms::patient_id, patient_terms::term))
        .load(conn)?;
    let mut map: HashMap<i64, Vec<String>> = HashMap::new();
    for (id, term) in rows {
        map.entry(id).or_default().push(term);
    }
    Ok(map)
}

/// The study of `facts`, filed now (under `patient`) if new.
pub fn file_study(
    conn: &mut DbConnection,
    facts: &StudyFacts,
    patient: Option<i64>,
) -> QueryResult<Study> {
    let find = |conn: &mut DbConnection| {
        studies::table
            .filter(studies::study_instance_uid.eq(&facts.study_instance_uid))
            .select(Study::as_select())
            .first(conn)
            .optional()
    };
    if let Some(found) = find(conn)? {
        return Ok(found);
    }
    insert_or_ignore!(
        conn,
        studies::table,
        (
            studies::uuid.eq(new_uuid()),
            studies::study_instance_uid.eq(&facts.study_instance_uid),
            studies::patient_id.eq(patient),
            studies::study_date.eq(&facts.study_date),
            studies::accession_number.eq(&facts.accession_number),
            studies::description.eq(&facts.description),
            studies::created_at.eq(now()),
        )
    )?;
    find(conn)?.ok_or(diesel::result::Error::NotFound)
}

/// Files `study`, filed without a patient, under `patient` (unless another upload did first);
/// returns it as it is now.
pub fn adopt_study(conn: &mut DbConnection, study: Study, patient: i64) -> QueryResult<Study> {
    diesel::update(
        studies::table
            .filter(studies::id.eq(study.id))
            .filter(studies::patient_id.is_null()),
    )
    .set(studies::patient_id.eq(patient))
    .execute(conn)?;
    studies::table
        .find(study.id)
        .select(Study::as_select())
        .first(conn)
}

/// The internal id of series `series_instance_uid` and of its study, filed now (in `study`)
/// if new.
pub fn file_series(
    conn: &mut DbConnection,
    series_instance_uid: &str,
    study: i64,
    modality: Option<&str>,
) -> QueryResult<(i64, i64)> {
    let find = |conn: &mut DbConnection| {
        series::table
            .filter(series::series_instance_uid.eq(series_instance_uid))
            .select((series::id, series::study_id))
            .first(conn)
            .optional()
    };
    if let Some(found) = find(conn)? {
        return Ok(found);
    }
    insert_or_ignore!(
        conn,
        series::table,
        (
            series::series_instance_uid.eq(series_instance_uid),
            series::study_id.eq(study),
            series::modality.eq(modality),
            series::created_at.eq(now()),
        )
    )?;
    find(conn)?.ok_or(diesel::result::Error::NotFound)
}

pub fn find_patient(conn: &mut DbConnection, uuid: &str) -> QueryResult<Patient> {
    patients::table
        .filter(patients::uuid.eq(uuid))
        .select(Patient::as_select())
        .first(conn)
}

pub fn find_by_subject(conn: &mut DbConnection, subject_id: &str) -> QueryResult<Patient> {
    patients::table
        .filter(patients::subject_id.eq(subject_id))
        .select(Patient::as_select())
        .first(conn)
}

pub fn find_study(conn: &mut DbConnection, uuid: &str) -> QueryResult<Study> {
    studies::table
        .filter(studies::uuid.eq(uuid))
        .select(Study::as_select())
        .first(conn)
}

/// Patients by internal id, in one query.
pub fn patients_by_ids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Patient>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    // One id (a read, a write's answer): `=` keeps the prepared statement cached; diesel
    // prepares an `IN (...)` list anew each time.
    let query = patients::table.select(Patient::as_select());
    let rows: Vec<Patient> = match ids {
        [one] => query.filter(patients::id.eq(*one)).load(conn)?,
        _ => query.filter(patients::id.eq_any(ids)).load(conn)?,
    };
    Ok(rows.into_iter().map(|p| (p.id, p)).collect())
}

/// Studies by internal id, in one query.
pub fn studies_by_ids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, Study>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let query = studies::table.select(Study::as_select());
    let rows: Vec<Study> = match ids {
        [one] => query.filter(studies::id.eq(*one)).load(conn)?,
        _ => query.filter(studies::id.eq_any(ids)).load(conn)?,
    };
    Ok(rows.into_iter().map(|s| (s.id, s)).collect())
}

/// Series Instance UIDs by internal series id, in one query.
pub fn series_uids(conn: &mut DbConnection, ids: &[i64]) -> QueryResult<HashMap<i64, String>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let query = series::table.select((series::id, series::series_instance_uid));
    let rows: Vec<(i64, String)> = match ids {
        [one] => query.filter(series::id.eq(*one)).load(conn)?,
        _ => query.filter(series::id.eq_any(ids)).load(conn)?,
    };
    Ok(rows.into_iter().collect())
}

/// Which patients a list shows: those with a live image (of `uploader`, when given).
#[derive(Debug, Clone, Copy, Default)]
pub struct PatientScope {
    pub uploader: Option<i64>,
}

/// A page of patients in the scope, by public id, whose patient ID or name contains `q`
/// (folded as names are).
pub fn list_patients(
    conn: &mut DbConnection,
    scope: PatientScope,
    q: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Patient>> {
    let live = images::table
        .filter(images::deleted_at.is_null())
        .filter(images::patient_id.is_not_null());
    let mut query = patients::table
        .select(Patient::as_select())
        .order(patients::uuid.asc())
        .limit(limit)
        .into_boxed();
    query = match scope.uploader {
        Some(uploader) => query.filter(
            patients::id.eq_any(
                live.filter(images::uploaded_by.eq(uploader))
                    .select(images::patient_id.assume_not_null()),
            ),
        ),
        None => {
            query.filter(patients::id.eq_any(live.select(images::patient_id.assume_not_null())))
        }
    };
    if let Some(q) = q {
        query = query.filter(patients::search_key.like(like_pattern(q)).escape('\\'));
    }
    if let Some(after) = after {
        query = query.filter(patients::uuid.gt(after.to_owned()));
    }
    query.load(conn)
}

/// A page of patients with a live image, by subject id (the pseudonym orders them, so a page
/// reveals nothing of when a patient was filed).
pub fn list_subjects(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> QueryResult<Vec<Patient>> {
    let with_images = images::table
        .filter(images::deleted_at.is_null())
        .filter(images::patient_id.is_not_null())
        .select(images::patient_id.assume_not_null());
    let mut query = patients::table
        .filter(patients::id.eq_any(with_images))
        .select(Patient::as_select())
        .order(patients::subject_id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        query = query.filter(patients::subject_id.gt(after.to_owned()));
    }
    query.load(conn)
}

/// One group of [`image_counts`]: patient, study (`None`: no study), modality, images.
pub type ImageCount = (i64, Option<i64>, Option<String>, i64);

/// How many live images (of `uploader`, when given) each patient in `patient_ids` has, per
/// study and modality, in one query.
pub fn image_counts(
    conn: &mut DbConnection,
    patient_ids: &[i64],
    uploader: Option<i64>,
) -> QueryResult<Vec<ImageCount>> {
    if patient_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = images::table
        .filter(images::deleted_at.is_null())
        .filter(images::patient_id.eq_any(patient_ids))
        .group_by((images::patient_id, images::study_id, images::modality))
        .select((
            images::patient_id.assume_not_null(),
            images::study_id,
            images::modality,
            diesel::dsl::count_star(),
        ))
        .into_boxed();
    if let Some(uploader) = uploader {
        query = query.filter(images::uploaded_by.eq(uploader));
    }
    query.load(conn)
}

/// Records the fingerprint of key `name` if none is recorded, and returns the one recorded
/// (this one, or an earlier one).
pub fn record_key_fingerprint(
    conn: &mut DbConnection,
    name: &str,
    fingerprint: &str,
) -> QueryResult<String> {
    insert_or_ignore!(
        conn,
        service_keys::table,
        (
            service_keys::name.eq(name),
            service_keys::fingerprint.eq(fingerprint),
            service_keys::created_at.eq(now()),
        )
    )?;
    service_keys::table
        .find(name)
        .select(service_keys::fingerprint)
        .first(conn)
}
