//! Whole response bodies pinned as insta snapshots (`tests/api/snapshots/`): an image, a
//! label, a disease, a history entry, an event, a problem, and a DICOM image with its patient
//! as a doctor, a researcher and an admin see them. Ids, times, request ids and
//! generated usernames are redacted; everything else must match field for field, on both
//! backends. After an intended change of a body, review and accept with
//! `INSTA_UPDATE=always cargo test --test api snapshots` (or `cargo insta review`).

use actix_web::http::StatusCode;
use insta::assert_json_snapshot;
use medlabel::auth::Role;
use serde_json::{json, Value};

use crate::helpers::TestApp;

/// `body` with every UUID, RFC 3339 time and generated username replaced by a placeholder,
/// wherever it stands (ids of nested references included).
fn redacted(body: &Value) -> Value {
    match body {
        Value::String(text) if uuid::Uuid::parse_str(text).is_ok() => json!("[uuid]"),
        Value::String(text) if chrono::DateTime::parse_from_rfc3339(text).is_ok() => {
            json!("[time]")
        }
        Value::String(text) if text.starts_with("user") && text.len() == 16 => json!("[user]"),
        Value::String(text) if medlabel::pseudonym::is_subject_id(text) => json!("[subject]"),
        Value::Array(items) => Value::Array(items.iter().map(redacted).collect()),
        Value::Object(members) => Value::Object(
            members
                .iter()
                .map(|(name, value)| {
                    let value = match name.as_str() {
                        "duration_ms" => json!("[duration]"),
                        "client_ip" => json!("[ip]"),
                        "headers" | "user_agent" => json!("[headers]"),
                        _ => redacted(value),
                    };
                    (name.clone(), value)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

#[actix_web::test]
async fn main_bodies_keep_their_shape() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let admin = app.token_client(&[Role::Admin]).await;

    let disease = app.disease("Pneumonia", &["icd-10:J18.9"]).await;
    assert_json_snapshot!("disease", redacted(&disease));

    let label = app.label("Consolidation").await;
    let linked = admin
        .patch(
            &format!("/api/v1/labels/{}", label["id"].as_str().unwrap()),
            &json!({"disease_ids": [disease["id"]], "description": "Airspace opacity"}),
        )
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.text);
    assert_json_snapshot!("label", redacted(&linked.body));

    let image = doctor.upload_png().await;
    let id = image["id"].as_str().unwrap().to_owned();
    let assigned = doctor
        .post(
            &format!("/api/v1/images/{id}/labels"),
            &json!({"label_id": label["id"], "note": "right lower lobe"}),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::CREATED, "{}", assigned.text);
    let image = doctor.get(&format!("/api/v1/images/{id}")).await;
    assert_json_snapshot!("image", redacted(&image.body));

    let history = doctor.get(&format!("/api/v1/images/{id}/history")).await;
    assert_json_snapshot!("image_history_entry", redacted(&history.body["items"][1]));

    let missing = doctor
        .get("/api/v1/images/00000000-0000-7000-8000-000000000000")
        .await;
    assert_json_snapshot!("problem_not_found", redacted(missing.problem(404)));
    let invalid = admin.post("/api/v1/labels", &json!({"name": ""})).await;
    assert_json_snapshot!("problem_validation", redacted(invalid.problem(422)));

    let events = admin
        .get("/api/v1/events?path_prefix=/api/v1/images&method=POST")
        .await;
    assert_eq!(events.status, StatusCode::OK, "{}", events.text);
    let upload_event = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "/api/v1/images")
        .cloned()
        .expect("the upload's event");
    assert_json_snapshot!("event", redacted(&upload_event));

    // A DICOM filed under its patient and study, as each role sees it.
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let file = medlabel::imaging::dicom::synthetic_dicom(
        4,
        4,
        0,
        &[
            (tags::PATIENT_ID, VR::LO, "MRN0001".into()),
            (tags::ISSUER_OF_PATIENT_ID, VR::LO, "HOSP".into()),
            (tags::PATIENT_NAME, VR::PN, "Doe^Jane".into()),
            (tags::PATIENT_BIRTH_DATE, VR::DA, "19800312".into()),
            (tags::PATIENT_SEX, VR::CS, "F".into()),
            (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.1".into()),
            (tags::STUDY_DATE, VR::DA, "20260105".into()),
            (tags::ACCESSION_NUMBER, VR::SH, "A0001".into()),
            (tags::STUDY_DESCRIPTION, VR::LO, "CT chest".into()),
            (tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.1.2".into()),
            (tags::MODALITY, VR::CS, "CT".into()),
            (tags::SOP_INSTANCE_UID, VR::UI, "1.2.826.0.1.1.2.3".into()),
        ],
    )
    .unwrap();
    let filed = doctor
        .upload(&file, "ct.dcm", Some("Jane Doe, MRN0001, follow-up"))
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    assert_json_snapshot!("dicom_image_doctor", redacted(&filed.body));
    let researcher = app.token_client(&[Role::Researcher]).await;
    let seen = researcher
        .get(&format!(
            "/api/v1/images/{}",
            filed.body["id"].as_str().unwrap()
        ))
        .await;
    assert_json_snapshot!("dicom_image_researcher", redacted(&seen.body));
    let patient = doctor
        .get(&format!(
            "/api/v1/patients/{}",
            filed.body["patient"]["id"].as_str().unwrap()
        ))
        .await;
    assert_json_snapshot!("patient", redacted(&patient.body));
    let subject = admin
        .get(&format!(
            "/api/v1/subjects/{}",
            filed.body["subject_id"].as_str().unwrap()
        ))
        .await;
    assert_json_snapshot!("subject_admin", redacted(&subject.body));
}
