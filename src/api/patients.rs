//! Patients (identified: doctors and admins) and subjects (pseudonymous: researchers and
//! admins), API.md "Patients, studies and subjects". Both are read-only: they are filed by
//! uploads ([`crate::changes::images::upload`]).
//!
//! - A doctor sees the patients of their own live images, and counts those images; another
//!   doctor's patient is 404. Admins see every patient.
//! - A subject is a patient under its pseudonym, with no identifier; an admin's subject also
//!   carries its `patient` (re-identification, audited like every request).
//! - Lists show patients with at least one live image (the caller's, for doctors).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::pagination::{Page, PageRequest};
use super::parse_id;
use crate::auth::{policy, Access, CurrentUser, Role};
use crate::error::ApiError;
use crate::models::patients::{self, PatientScope};
use crate::pseudonym::is_subject_id;
use crate::state::AppState;
use crate::views::patients::{
    patient_responses, subject_responses, PatientResponse, SubjectResponse,
};

pub fn configure(cfg: &mut web::ServiceConfig) {
    let doctors = Access::roles(&[Role::Doctor]);
    let researchers = Access::roles(&[Role::Researcher]);
    cfg.service(web::resource("/patients").route(web::get().to(list_patients).wrap(doctors)))
        .service(web::resource("/patients/{id}").route(web::get().to(get_patient).wrap(doctors)))
        .service(web::resource("/subjects").route(web::get().to(list_subjects).wrap(researchers)))
        .service(
            web::resource("/subjects/{subject_id}")
                .route(web::get().to(get_subject).wrap(researchers)),
        );
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListPatientsQuery {
    /// Matches the patient ID or the name (ignoring case, as names are compared)
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListSubjectsQuery {
    /// Page size (default 50)

    #[param(value_type = Option<i64>, minimum = 1, maximum = 200)]
    pub limit: Option<String>,
    /// Opaque cursor from the previous page's next_cursor
    pub cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/patients",
    tag = "patients",
    operation_id = "list_patients",
    summary = "Patients of the caller's images (doctor) or all patients (admin)",
    params(
        ListPatientsQuery
    ),
    responses(
        (status = 200, description = "A page of patients", body = Page<PatientResponse>)
    )
)]
async fn list_patients(
    state: web::Data<AppState>,
    caller: CurrentUser,
    query: web::Query<ListPatientsQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page = PageRequest::parse(query.limit.as_deref(), query.cursor.as_deref())?;
    let q = query.q.filter(|q| !q.trim().is_empty());
    if q.as_ref().is_some_and(|q| q.chars().count() > 200) {
        return Err(ApiError::field("q", "must be at most 200 characters"));
    }
    let scope = PatientScope {
        uploader: policy::own_patients_only(&caller),
    };
    let (after, fetch) = (page.after.clone(), page.fetch());
    let responses = state
        .db
        .query(move |conn| {
            let rows = patients::list_patients(conn, scope, q.as_deref(), after.as_deref(), fetch)?;
            patient_responses(conn, rows, scope.uploader)
        })
        .await?;
    let body: Page<PatientResponse> = page.finish(responses, |p| &p.id, |p| p);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/patients/{id}",
    tag = "patients",
    operation_id = "get_patient",
    summary = "One patient with their studies",
    params(
        ("id" = String, Path, description = "The patient's id (a UUID)")
    ),
    responses(
        (status = 200, description = "The patient", body = PatientResponse)
    )
)]
async fn get_patient(
    state: web::Data<AppState>,
    caller: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&id)?;
    let uploader = policy::own_patients_only(&caller);
    let response = state
        .db
        .query(move |conn| {
            let patient = patients::find_patient(conn, &id)?;
            patient_responses(conn, vec![patient], uploader)?
                .pop()
                .filter(|p| p.image_count > 0)
                .ok_or(diesel::result::Error::NotFound)
        })
        .await?;
    Ok(HttpResponse::Ok().json(response))
}

#[utoipa::path(
    get,
    path = "/api/v1/subjects",
    tag = "patients",
    operation_id = "list_subjects",
    summary = "Subjects: patients under their pseudonyms (researcher, admin)",
    params(
        ListSubjectsQuery
    ),
    responses(
        (status = 200, description = "A page of subjects, by id", body = Page<SubjectResponse>)
    )
)]
async fn list_subjects(
    state: web::Data<AppState>,
    caller: CurrentUser,
    query: web::Query<ListSubjectsQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse_keyed(
        query.limit.as_deref(),
        query.cursor.as_deref(),
        is_subject_id,
    )?;
    let reidentify = caller.is_admin();
    let (after, fetch) = (page.after.clone(), page.fetch());
    let responses = state
        .db
        .query(move |conn| {
            let rows = patients::list_subjects(conn, after.as_deref(), fetch)?;
            subject_responses(conn, rows, reidentify)
        })
        .await?;
    let body: Page<SubjectResponse> = page.finish(responses, |s| &s.id, |s| s);
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(
    get,
    path = "/api/v1/subjects/{subject_id}",
    tag = "patients",
    operation_id = "get_subject",
    summary = "One subject with their studies; an admin's read carries the patient",
    params(
        ("subject_id" = String, Path, description = "The pseudonym, S- and 16 base32 characters", pattern = "^S-[A-Z2-7]{16}$")
    ),
    responses(
        (status = 200, description = "The subject", body = SubjectResponse)
    )
)]
async fn get_subject(
    state: web::Data<AppState>,
    caller: CurrentUser,
    subject_id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let subject_id = subject_id.into_inner();
    if !is_subject_id(&subject_id) {
        return Err(ApiError::NotFound);
    }
    let reidentify = caller.is_admin();
    let response = state
        .db
        .query(move |conn| {
            let patient = patients::find_by_subject(conn, &subject_id)?;
            subject_responses(conn, vec![patient], reidentify)?
                .pop()
                .filter(|s| s.image_count > 0)
                .ok_or(diesel::result::Error::NotFound)
        })
        .await?;
    Ok(HttpResponse::Ok().json(response))
}
