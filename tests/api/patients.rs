//! API.md "Patients, studies and subjects": filing DICOM and PNG uploads under patients and
//! studies, pseudonyms (the contract's formula, stable across restarts, refused with another
//! key), who sees which patient and subject, the new image filters, idempotent and conflicting
//! re-uploads, withheld files, and redaction of free text for researchers (history included).

use actix_web::http::{Method, StatusCode};
use base64::Engine as _;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use hmac::{Hmac, Mac};
use medlabel::auth::Role;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::fixtures;
use crate::helpers::{TestApp, TestClient};

/// A fixed pseudonym key (32 bytes of 0x42), base64.
fn known_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([0x42u8; 32])
}

/// The contract's formula, computed here independently of the server.
fn expected_subject(key: &[u8], issuer: &str, patient_id: &str) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(format!("{issuer}\u{0}{patient_id}").as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("S-{}", data_encoding::BASE32_NOPAD.encode(&digest[..10]))
}

/// A patient as DICOM attributes.
struct Person {
    id: &'static str,
    issuer: &'static str,
    name: &'static str,
    birth: &'static str,
}

const JANE: Person = Person {
    id: "MRN-1001",
    issuer: "HOSP",
    name: "Doe^Jane",
    birth: "19800312",
};
const OMAR: Person = Person {
    id: "MRN-2002",
    issuer: "HOSP",
    name: "Haddad^Omar",
    birth: "19671130",
};

/// A small DICOM of `person` in study `study` (a UID suffix), with a new SOP Instance UID.
fn dicom_of(person: &Person, study: &str, extra: &[(Tag, VR, String)]) -> Vec<u8> {
    let sop = format!("2.25.{}", uuid::Uuid::now_v7().as_u128());
    let mut attributes = vec![
        (tags::PATIENT_ID, VR::LO, person.id.to_owned()),
        (tags::ISSUER_OF_PATIENT_ID, VR::LO, person.issuer.to_owned()),
        (tags::PATIENT_NAME, VR::PN, person.name.to_owned()),
        (tags::PATIENT_BIRTH_DATE, VR::DA, person.birth.to_owned()),
        (tags::PATIENT_SEX, VR::CS, "O".to_owned()),
        (
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            format!("1.2.826.0.1.{study}"),
        ),
        (tags::STUDY_DATE, VR::DA, "20260105".to_owned()),
        (tags::ACCESSION_NUMBER, VR::SH, format!("ACC{study}")),
        (
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            format!("1.2.826.0.1.{study}.1"),
        ),
        (tags::MODALITY, VR::CS, "CT".to_owned()),
        (tags::SOP_INSTANCE_UID, VR::UI, sop),
    ];
    for (tag, vr, value) in extra {
        attributes.retain(|(t, _, _)| t != tag);
        attributes.push((*tag, *vr, value.clone()));
    }
    medlabel::imaging::dicom::synthetic_dicom(4, 4, 0, &attributes).unwrap()
}

async fn upload_ok(client: &TestClient, bytes: &[u8], description: Option<&str>) -> Value {
    let res = client.upload(bytes, "scan.dcm", description).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.body
}

/// Uploads a PNG naming its patient with the form parts.
async fn upload_png_of(client: &TestClient, patient_id: &str, issuer: Option<&str>) -> Value {
    let png = fixtures::png(4, 4);
    let mut parts: Vec<(&str, Option<&str>, &[u8])> = vec![
        ("file", Some("photo.png"), &png),
        ("patient_id", None, patient_id.as_bytes()),
    ];
    if let Some(issuer) = issuer {
        parts.push(("issuer", None, issuer.as_bytes()));
    }
    let (content_type, body) = fixtures::multipart(&parts);
    let res = client
        .send_raw(Method::POST, "/api/v1/images", &content_type, body)
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.body
}

fn items(page: &Value) -> &Vec<Value> {
    page["items"].as_array().expect("a page")
}

#[actix_web::test]
async fn dicom_uploads_are_filed_under_patients_and_studies_seen_by_their_doctor_only() {
    let app = TestApp::spawn().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;

    let first = upload_ok(&owner, &dicom_of(&JANE, "1", &[]), None).await;
    let second = upload_ok(&owner, &dicom_of(&JANE, "2", &[]), None).await;
    let third = upload_ok(&owner, &dicom_of(&OMAR, "3", &[]), None).await;
    assert_eq!(first["patient"]["id"], second["patient"]["id"]);
    assert_ne!(first["patient"]["id"], third["patient"]["id"]);
    assert_ne!(first["study"]["id"], second["study"]["id"]);
    assert_eq!(first["patient"]["name"], "Doe^Jane");
    assert_eq!(first["patient"]["birth_date"], "1980-03-12");
    assert_eq!(first["patient"]["issuer"], "HOSP");
    assert_eq!(first["study"]["study_date"], "2026-01-05");
    assert_eq!(first["modality"], "CT");
    assert_eq!(first["series_instance_uid"], "1.2.826.0.1.1.1");
    assert_eq!(first["withheld"], false);

    let mine = owner.get("/api/v1/patients").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.text);
    assert_eq!(items(&mine.body).len(), 2, "two patients");
    let jane = items(&mine.body)
        .iter()
        .find(|p| p["patient_id"] == JANE.id)
        .expect("Jane is listed");
    assert_eq!(jane["image_count"], 2);
    assert_eq!(jane["studies"].as_array().unwrap().len(), 2);
    assert_eq!(jane["studies"][0]["modalities"], json!(["CT"]));
    assert_eq!(jane["subject_id"], first["subject_id"]);
    let studies: usize = items(&mine.body)
        .iter()
        .map(|p| p["studies"].as_array().unwrap().len())
        .sum();
    assert_eq!(studies, 3, "three studies");

    let jane_id = jane["id"].as_str().unwrap();
    let read = owner.get(&format!("/api/v1/patients/{jane_id}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["image_count"], 2);
    other
        .get(&format!("/api/v1/patients/{jane_id}"))
        .await
        .problem(404);
    assert!(items(&other.get("/api/v1/patients").await.body).is_empty());
    researcher.get("/api/v1/patients").await.problem(403);
    assert_eq!(items(&admin.get("/api/v1/patients").await.body).len(), 2);

    // q matches the patient ID or the name, ignoring case.
    let found = owner.get("/api/v1/patients?q=haddad").await;
    assert_eq!(items(&found.body).len(), 1);
    assert_eq!(items(&found.body)[0]["patient_id"], OMAR.id);
    let by_id = owner.get("/api/v1/patients?q=mrn-1001").await;
    assert_eq!(items(&by_id.body)[0]["patient_id"], JANE.id);

    // Another doctor's image of Jane: each doctor counts their own.
    upload_ok(&other, &dicom_of(&JANE, "4", &[]), None).await;
    let theirs = other.get("/api/v1/patients").await;
    assert_eq!(items(&theirs.body).len(), 1);
    assert_eq!(items(&theirs.body)[0]["image_count"], 1);
    let read = owner.get(&format!("/api/v1/patients/{jane_id}")).await;
    assert_eq!(read.body["image_count"], 2, "the owner's own images only");
    let all = admin.get(&format!("/api/v1/patients/{jane_id}")).await;
    assert_eq!(all.body["image_count"], 3);

    // A deleted image no longer counts; a patient without live images is gone.
    let omar_image = third["id"].as_str().unwrap();
    let gone = owner.delete(&format!("/api/v1/images/{omar_image}")).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    let omar = third["patient"]["id"].as_str().unwrap();
    owner
        .get(&format!("/api/v1/patients/{omar}"))
        .await
        .problem(404);
}

#[actix_web::test]
async fn pseudonyms_follow_the_formula_join_png_and_dicom_and_survive_a_restart() {
    let key = known_key();
    let app = TestApp::spawn_with(&[("MEDLABEL_PSEUDONYM_KEY", &key)]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;

    let dicom = upload_ok(&doctor, &dicom_of(&JANE, "1", &[]), None).await;
    let subject = dicom["subject_id"].as_str().unwrap().to_owned();
    assert_eq!(subject, expected_subject(&[0x42; 32], "HOSP", "MRN-1001"));
    assert_eq!(subject.len(), 18);
    let omar = upload_ok(&doctor, &dicom_of(&OMAR, "2", &[]), None).await;
    assert_ne!(omar["subject_id"], dicom["subject_id"]);

    // A PNG that names Jane by form parts joins her patient and subject, with no study.
    let png = upload_png_of(&doctor, " MRN-1001 ", Some("HOSP")).await;
    assert_eq!(png["subject_id"], subject.as_str());
    assert_eq!(png["patient"]["id"], dicom["patient"]["id"]);
    assert_eq!(png["study"], Value::Null);
    // Without the issuer it is another patient (issuer "").
    let other = upload_png_of(&doctor, "MRN-1001", None).await;
    assert_eq!(
        other["subject_id"],
        expected_subject(&[0x42; 32], "", "MRN-1001").as_str()
    );
    // A PNG without form parts has no patient.
    let plain = doctor.upload_png().await;
    assert_eq!(plain["subject_id"], Value::Null);
    assert_eq!(plain["patient"], Value::Null);

    // Researchers see the subject on the image and under /subjects, with no identifier.
    let seen = researcher
        .get(&format!("/api/v1/images/{}", png["id"].as_str().unwrap()))
        .await;
    assert_eq!(seen.body["subject_id"], subject.as_str());
    assert_eq!(seen.body["patient"], Value::Null);
    let read = researcher.get(&format!("/api/v1/subjects/{subject}")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text);
    assert_eq!(read.body["image_count"], 2);
    assert_eq!(read.body["studies"].as_array().unwrap().len(), 1);
    assert!(read.body.get("patient").is_none(), "no re-identification");
    assert!(!read.text.contains("MRN-1001") && !read.text.contains("Doe"));
    let list = researcher.get("/api/v1/subjects?limit=1").await;
    assert_eq!(items(&list.body).len(), 1);
    let next = list.body["next_cursor"].as_str().expect("more subjects");
    let rest = researcher
        .get(&format!("/api/v1/subjects?limit=10&cursor={next}"))
        .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    assert_eq!(items(&rest.body).len(), 2, "three subjects in all");
    assert!(!list.text.contains("MRN-") && !rest.text.contains("MRN-"));
    researcher
        .get("/api/v1/subjects/S-AAAAAAAAAAAAAAAA")
        .await
        .problem(404);
    researcher
        .get("/api/v1/subjects/nonsense")
        .await
        .problem(404);
    researcher
        .get("/api/v1/subjects?cursor=bm9uc2Vuc2U")
        .await
        .problem(400);

    // An admin's read re-identifies.
    let admin = app.token_client(&[Role::Admin]).await;
    let reidentified = admin.get(&format!("/api/v1/subjects/{subject}")).await;
    assert_eq!(reidentified.body["patient"]["patient_id"], "MRN-1001");

    // A restart with the same key keeps every pseudonym.
    let restarted =
        TestApp::spawn_on((*app.state.settings).clone(), tempfile::tempdir().unwrap()).await;
    let doctor_again = restarted.token_client(&[Role::Doctor]).await;
    let again = upload_ok(&doctor_again, &dicom_of(&JANE, "9", &[]), None).await;
    assert_eq!(again["subject_id"], subject.as_str());
}

#[actix_web::test]
async fn another_pseudonym_key_on_the_same_database_is_refused() {
    let app = TestApp::spawn_with(&[("MEDLABEL_PSEUDONYM_KEY", &known_key())]).await;
    let mut settings = (*app.state.settings).clone();
    let other_key = base64::engine::general_purpose::STANDARD.encode([0x43u8; 32]);
    settings.pseudonym_key = Some(
        medlabel::pseudonym::PseudonymKey::new(
            base64::engine::general_purpose::STANDARD
                .decode(&other_key)
                .unwrap(),
        )
        .unwrap(),
    );
    let state = medlabel::state::AppState::open(settings).expect("open state");
    let refused = actix_web::web::block(move || medlabel::startup::prepare(&state))
        .await
        .unwrap()
        .expect_err("another key is refused");
    let message = refused.to_string();
    assert!(message.contains("MEDLABEL_PSEUDONYM_KEY"), "{message}");
    assert!(
        !message.contains(&other_key),
        "the key itself is never shown"
    );
}

#[actix_web::test]
async fn a_retried_upload_is_harmless_and_a_different_one_conflicts() {
    let app = TestApp::spawn().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    let file = dicom_of(&JANE, "1", &[]);
    let first = upload_ok(&owner, &file, None).await;
    let objects = app.stored_objects().await;

    let again = owner.upload(&file, "again.dcm", None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.body["id"], first["id"]);
    let by_admin = admin.upload(&file, "again.dcm", None).await;
    assert_eq!(by_admin.status, StatusCode::OK, "admins may retry too");
    assert_eq!(app.stored_objects().await, objects, "no second object");

    // The same SOP Instance UID with other bytes, or by a doctor who does not own it: 409.
    let sop = first["sop_instance_uid"].as_str().unwrap().to_owned();
    let changed = dicom_of(
        &JANE,
        "1",
        &[
            (tags::SOP_INSTANCE_UID, VR::UI, sop.clone()),
            (tags::STUDY_DESCRIPTION, VR::LO, "changed".into()),
        ],
    );
    owner.upload(&changed, "x.dcm", None).await.problem(409);
    let theirs = other.upload(&file, "x.dcm", None).await;
    let problem = theirs.problem(409);
    assert!(
        !problem["detail"].as_str().unwrap().contains("bytes"),
        "whether the bytes match is not told: {}",
        theirs.text
    );
    assert_eq!(app.stored_objects().await, objects, "nothing stored");
    let history = owner
        .get(&format!(
            "/api/v1/images/{}/history",
            first["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(items(&history.body).len(), 1, "a retry records nothing");

    // Once deleted, the instance may be sent again as a new image.
    let id = first["id"].as_str().unwrap();
    assert_eq!(
        owner.delete(&format!("/api/v1/images/{id}")).await.status,
        StatusCode::NO_CONTENT
    );
    let renewed = upload_ok(&owner, &file, None).await;
    assert_ne!(renewed["id"], first["id"]);
    // Reverting the deletion would make two live copies of one instance: 409.
    let entries = owner.get(&format!("/api/v1/images/{id}/history")).await;
    let created = items(&entries.body)[0]["id"].as_str().unwrap().to_owned();
    owner
        .post(&format!("/api/v1/history/{created}/revert"), &json!({}))
        .await
        .problem(409);
}

#[actix_web::test]
async fn form_parts_naming_a_patient_are_checked() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let png = fixtures::png(4, 4);
    let dicom = dicom_of(&JANE, "1", &[]);
    let long = "x".repeat(65);
    type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);
    let cases: Vec<(Vec<Part>, &str)> = vec![
        (
            vec![("file", Some("a.png"), &png), ("issuer", None, b"HOSP")],
            "patient_id",
        ),
        (
            vec![
                ("file", Some("a.png"), &png),
                ("patient_id", None, long.as_bytes()),
            ],
            "patient_id",
        ),
        (
            vec![("file", Some("a.png"), &png), ("patient_id", None, b"a\\b")],
            "patient_id",
        ),
        (
            vec![
                ("file", Some("a.dcm"), &dicom),
                ("patient_id", None, b"MRN-1"),
            ],
            "patient_id",
        ),
        (
            vec![
                ("file", Some("a.png"), &png),
                ("patient_id", None, "MRN\u{200B}1".as_bytes()),
            ],
            "patient_id",
        ),
        (
            vec![
                ("file", Some("a.png"), &png),
                ("patient_id", None, b"MRN-1"),
                ("patient_id", None, b"MRN-2"),
            ],
            "patient_id",
        ),
    ];
    let before = app.stored_objects().await;
    for (parts, field) in cases {
        let (content_type, body) = fixtures::multipart(&parts);
        let res = doctor
            .send_raw(Method::POST, "/api/v1/images", &content_type, body)
            .await;
        let problem = res.problem(422);
        assert!(problem["errors"][field].is_array(), "{}", res.text);
    }
    assert_eq!(app.stored_objects().await, before, "nothing stored");
}

#[actix_web::test]
async fn images_filter_by_patient_subject_study_and_modality() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let a = upload_ok(&doctor, &dicom_of(&JANE, "1", &[]), None).await;
    let b = upload_ok(
        &doctor,
        &dicom_of(&JANE, "2", &[(tags::MODALITY, VR::CS, "MR".into())]),
        None,
    )
    .await;
    let c = upload_ok(&doctor, &dicom_of(&OMAR, "3", &[]), None).await;
    doctor.upload_png().await;
    let ids = |page: &Value| -> Vec<String> {
        let mut ids: Vec<String> = items(page)
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |v: &[&Value]| -> Vec<String> {
        let mut ids: Vec<String> = v
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        ids
    };
    let subject = a["subject_id"].as_str().unwrap();
    let patient = a["patient"]["id"].as_str().unwrap();
    let study = c["study"]["id"].as_str().unwrap();
    for client in [&doctor, &researcher] {
        let page = client
            .get(&format!("/api/v1/images?subject_id={subject}"))
            .await;
        assert_eq!(ids(&page.body), sorted(&[&a, &b]));
        let page = client
            .get(&format!("/api/v1/images?study_id={study}"))
            .await;
        assert_eq!(ids(&page.body), sorted(&[&c]));
        let page = client.get("/api/v1/images?modality=MR").await;
        assert_eq!(ids(&page.body), sorted(&[&b]));
        let page = client.get("/api/v1/images?modality=mr").await;
        assert_eq!(ids(&page.body), sorted(&[&b]), "CS values are upper case");
        let page = client
            .get(&format!("/api/v1/images?subject_id={subject}&modality=CT"))
            .await;
        assert_eq!(ids(&page.body), sorted(&[&a]));
    }
    let page = doctor
        .get(&format!("/api/v1/images?patient_id={patient}"))
        .await;
    assert_eq!(ids(&page.body), sorted(&[&a, &b]));
    researcher
        .get(&format!("/api/v1/images?patient_id={patient}"))
        .await
        .problem(403);
    doctor
        .get("/api/v1/images?subject_id=not-a-subject")
        .await
        .problem(400);
    doctor
        .get("/api/v1/images?study_id=nope")
        .await
        .problem(400);
    let unknown = doctor
        .get("/api/v1/images?subject_id=S-AAAAAAAAAAAAAAAA")
        .await;
    assert!(items(&unknown.body).is_empty());
    // A doctor never sees another doctor's images of the same patient.
    let other = app.token_client(&[Role::Doctor]).await;
    let page = other
        .get(&format!("/api/v1/images?subject_id={subject}"))
        .await;
    assert!(items(&page.body).is_empty());
}

#[actix_web::test]
async fn burned_in_annotation_withholds_the_file_from_researchers_only() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let image = upload_ok(
        &doctor,
        &dicom_of(
            &JANE,
            "1",
            &[(tags::BURNED_IN_ANNOTATION, VR::CS, "YES".into())],
        ),
        None,
    )
    .await;
    let id = image["id"].as_str().unwrap();
    assert_eq!(image["withheld"], false, "the doctor sees it");
    let seen = researcher.get(&format!("/api/v1/images/{id}")).await;
    assert_eq!(seen.body["withheld"], true);
    let listed = researcher.get("/api/v1/images").await;
    assert_eq!(items(&listed.body)[0]["withheld"], true);
    let file = researcher.get(&format!("/api/v1/images/{id}/file")).await;
    let problem = file.problem(403);
    assert!(
        problem["type"].as_str().unwrap().ends_with("/withheld"),
        "{}",
        file.text
    );
    let original = doctor.get(&format!("/api/v1/images/{id}/file")).await;
    assert_eq!(original.status, StatusCode::OK);
    let history = researcher
        .get(&format!("/api/v1/images/{id}/history"))
        .await;
    assert_eq!(items(&history.body)[0]["snapshot"]["withheld"], true);
}

#[actix_web::test]
async fn researchers_read_free_text_with_the_patients_identifiers_redacted() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    let label = app.label("Nodule").await;
    let description = "jane DOE (MRN-1001, ACC1), born 12/03/1980 alias 1980-03-12 / 19800312";
    let redacted_description =
        "[redacted] [redacted] ([redacted], [redacted]), born [redacted] alias [redacted] / [redacted]";
    let image = upload_ok(&doctor, &dicom_of(&JANE, "1", &[]), Some(description)).await;
    let id = image["id"].as_str().unwrap();
    let note = "Compare with Jane's scan of 1980-03-12; Doeville is a place";
    let assigned = doctor
        .post(
            &format!("/api/v1/images/{id}/labels"),
            &json!({"label_id": label["id"], "note": note}),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::CREATED, "{}", assigned.text);
    let redacted_note = "Compare with [redacted]'s scan of [redacted]; Doeville is a place";

    // The doctor and admins read the text as written.
    for client in [&doctor, &admin] {
        let read = client.get(&format!("/api/v1/images/{id}")).await;
        assert_eq!(read.body["description"], description);
        assert_eq!(read.body["labels"][0]["note"], note);
        let history = client.get(&format!("/api/v1/images/{id}/history")).await;
        assert_eq!(
            items(&history.body)[1]["snapshot"]["labels"][0]["note"],
            note
        );
    }

    // Researchers: in reads, lists, the labels list, and both history routes.
    let read = researcher.get(&format!("/api/v1/images/{id}")).await;
    assert_eq!(read.body["description"], redacted_description);
    assert_eq!(read.body["labels"][0]["note"], redacted_note);
    let listed = researcher.get("/api/v1/images").await;
    assert_eq!(items(&listed.body)[0]["description"], redacted_description);
    let labels = researcher.get(&format!("/api/v1/images/{id}/labels")).await;
    assert_eq!(labels.body[0]["note"], redacted_note);
    for path in [
        format!("/api/v1/images/{id}/history"),
        format!("/api/v1/history?entity_type=image&entity_id={id}"),
    ] {
        let history = researcher.get(&path).await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.text);
        for entry in items(&history.body) {
            let snapshot = &entry["snapshot"];
            assert_eq!(entry["schema_version"], 2);
            assert_eq!(snapshot["description"], redacted_description);
            assert_eq!(snapshot["patient"], Value::Null);
            assert_eq!(snapshot["sop_instance_uid"], Value::Null);
            assert_eq!(snapshot["series_instance_uid"], Value::Null);
            assert_eq!(snapshot["original_filename"], Value::Null);
            assert_eq!(
                snapshot["study"]
                    .as_object()
                    .unwrap()
                    .keys()
                    .collect::<Vec<_>>(),
                vec!["id"]
            );
            assert_eq!(snapshot["subject_id"], image["subject_id"]);
        }
        let text = history.text.to_lowercase();
        for identifier in ["mrn-1001", "doe^", "jane", "19800312", "acc1"] {
            assert!(!text.contains(identifier), "{identifier} in {path}");
        }
    }
    for body in [&read.text, &listed.text, &labels.text] {
        let text = body.to_lowercase();
        for identifier in ["mrn-1001", "jane", "19800312", "1.2.826.0.1.1"] {
            assert!(!text.contains(identifier), "{identifier} in {body}");
        }
    }
}

#[actix_web::test]
async fn concurrent_uploads_file_one_patient_and_one_image_per_instance() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    // Eight new instances of one new patient and study at once: one patient, one study.
    let files: Vec<Vec<u8>> = (0..8).map(|_| dicom_of(&OMAR, "7", &[])).collect();
    let clients: Vec<TestClient> = (0..8).map(|_| doctor.clone_client()).collect();
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .zip(&files)
            .map(|(client, file)| client.upload(file, "ct.dcm", None)),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    }
    let patients: std::collections::HashSet<&str> = answers
        .iter()
        .map(|a| a.body["patient"]["id"].as_str().unwrap())
        .collect();
    let studies: std::collections::HashSet<&str> = answers
        .iter()
        .map(|a| a.body["study"]["id"].as_str().unwrap())
        .collect();
    assert_eq!((patients.len(), studies.len()), (1, 1));

    // One instance sent four times at once: one image, stored once; the others answer 200.
    let file = dicom_of(&OMAR, "8", &[]);
    let before = app.stored_objects().await.len();
    let answers = futures_util::future::join_all(
        clients[..4]
            .iter()
            .map(|client| client.upload(&file, "ct.dcm", None)),
    )
    .await;
    let created = answers
        .iter()
        .filter(|a| a.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        created,
        1,
        "{:?}",
        answers.iter().map(|a| &a.text).collect::<Vec<_>>()
    );
    for answer in &answers {
        assert!(answer.status.is_success(), "{}", answer.text);
        assert_eq!(answer.body["id"], answers[0].body["id"]);
    }
    assert_eq!(app.stored_objects().await.len(), before + 1);
}

#[actix_web::test]
async fn every_identifier_any_file_gave_is_redacted_and_a_patient_gains_missing_details() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let read = |id: &str| format!("/api/v1/images/{id}");

    // A PNG names the patient by ID only; its description names her.
    let png = fixtures::png(4, 4);
    let (content_type, body) = fixtures::multipart(&[
        ("file", Some("photo.png"), &png),
        ("patient_id", None, b"MRN-7007"),
        ("issuer", None, b"HOSP"),
        (
            "description",
            None,
            "Paula Privat, born 03/02/1961".as_bytes(),
        ),
    ]);
    let photo = doctor
        .send_raw(Method::POST, "/api/v1/images", &content_type, body)
        .await;
    assert_eq!(photo.status, StatusCode::CREATED, "{}", photo.text);
    assert_eq!(photo.body["patient"]["name"], Value::Null);
    let photo_id = photo.body["id"].as_str().unwrap().to_owned();

    // Her DICOM gives name and birth date: the patient gains them, and the PNG's text is
    // redacted of them from now on.
    let privat = Person {
        id: "MRN-7007",
        issuer: "HOSP",
        name: "Privat^Paula",
        birth: "19610203",
    };
    let ct = upload_ok(&doctor, &dicom_of(&privat, "70", &[]), None).await;
    assert_eq!(ct["patient"]["name"], "Privat^Paula");
    let seen = researcher.get(&read(&photo_id)).await;
    assert_eq!(
        seen.body["description"],
        "[redacted] [redacted], born [redacted]"
    );
    let again = doctor.get(&read(&photo_id)).await;
    assert_eq!(again.body["patient"]["name"], "Privat^Paula");
    assert_eq!(again.body["patient"]["birth_date"], "1961-02-03");

    // A later study under her new name: the new name is redacted on the old images too.
    let renamed = dicom_of(
        &privat,
        "71",
        &[(tags::PATIENT_NAME, VR::PN, "Schmidt^Zoë".into())],
    );
    upload_ok(&doctor, &renamed, None).await;
    let note = doctor
        .patch(
            &read(&photo_id),
            &json!({"description": "now Mrs SCHMIDT (zoë)"}),
        )
        .await;
    assert_eq!(note.status, StatusCode::OK, "{}", note.text);
    let seen = researcher.get(&read(&photo_id)).await;
    assert_eq!(seen.body["description"], "now Mrs [redacted] ([redacted])");

    // A DICOM without Patient ID has no patient, but the name in it is still redacted.
    let anonymous = dicom_of(
        &Person {
            id: "",
            issuer: "",
            name: "Strauß^Jürgen",
            birth: "19550505",
        },
        "72",
        &[(tags::PATIENT_ID, VR::LO, String::new())],
    );
    let unfiled = upload_ok(&doctor, &anonymous, Some("Herr STRAUSS, 05/05/1955")).await;
    assert_eq!(unfiled["patient"], Value::Null);
    let seen = researcher.get(&read(unfiled["id"].as_str().unwrap())).await;
    assert_eq!(seen.body["description"], "Herr [redacted], [redacted]");
}

#[actix_web::test]
async fn files_that_contradict_what_is_filed_or_break_their_vr_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    upload_ok(&owner, &dicom_of(&JANE, "1", &[]), None).await;
    let before = app.stored_objects().await;

    // Jane's Study Instance UID under another patient: 409, and nothing of Jane's shown.
    let claim = other
        .upload(&dicom_of(&OMAR, "1", &[]), "x.dcm", None)
        .await;
    let problem = claim.problem(409);
    assert!(!claim.text.contains("ACC1") && !claim.text.contains("MRN-1001"));
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("Study Instance UID"));
    // A series of Jane's study 1 claimed for her study 2: 409.
    let series = dicom_of(
        &JANE,
        "2",
        &[(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.1.1".into())],
    );
    owner.upload(&series, "x.dcm", None).await.problem(409);

    // Values no DICOM attribute of their VR may hold: 422 on file, on both backends.
    for (tag, vr, value) in [
        (tags::PATIENT_ID, VR::LO, "9".repeat(3000)),
        (tags::ISSUER_OF_PATIENT_ID, VR::LO, "I".repeat(65)),
        (tags::PATIENT_ID, VR::LO, "MRN\u{200B}1001".to_owned()),
        (tags::PATIENT_ID, VR::LO, "MRN\t1001".to_owned()),
        (
            tags::SOP_INSTANCE_UID,
            VR::UI,
            format!("1.{}", "2".repeat(10_000)),
        ),
        (tags::STUDY_INSTANCE_UID, VR::UI, "1.2.abc".to_owned()),
        (tags::MODALITY, VR::CS, "CT".repeat(40)),
        (tags::PATIENT_NAME, VR::PN, "Doe^".repeat(100)),
    ] {
        let utf8 = (
            tags::SPECIFIC_CHARACTER_SET,
            VR::CS,
            "ISO_IR 192".to_owned(),
        );
        let file = dicom_of(&JANE, "9", &[utf8, (tag, vr, value.clone())]);
        let res = owner.upload(&file, "bad.dcm", None).await;
        let problem = res.problem(422);
        assert!(problem["errors"]["file"].is_array(), "{tag}: {}", res.text);
    }
    assert_eq!(app.stored_objects().await, before, "nothing stored");

    // A DICOM without Patient ID joins the study as it is; a study filed without a patient
    // takes the first patient a file of it names.
    let nameless = dicom_of(&JANE, "1", &[(tags::PATIENT_ID, VR::LO, String::new())]);
    let joined = upload_ok(&owner, &nameless, None).await;
    assert_eq!(joined["patient"], Value::Null);
    assert_eq!(joined["study"]["study_instance_uid"], "1.2.826.0.1.1");
    let first = dicom_of(&OMAR, "5", &[(tags::PATIENT_ID, VR::LO, String::new())]);
    let unowned = upload_ok(&owner, &first, None).await;
    let named = upload_ok(&owner, &dicom_of(&OMAR, "5", &[]), None).await;
    assert_eq!(named["study"]["id"], unowned["study"]["id"]);
    let patient = named["patient"]["id"].as_str().unwrap();
    let listed = owner.get(&format!("/api/v1/patients/{patient}")).await;
    assert_eq!(listed.body["studies"].as_array().unwrap().len(), 1);
}
