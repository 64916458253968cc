//! Images: upload, read, list, update, delete, download (ranges, validators, de-identified
//! copies for researchers), and diagnoses (labels on images).
//!
//! Longer than ~400 lines: upload, read, list, diagnose and download of one resource.

use std::collections::HashSet;

use actix_web::http::{Method, StatusCode};
use dicom_dictionary_std::tags;
use medlabel::auth::Role;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::fixtures::{self, contains, CANARY};
use crate::helpers::{TestApp, TestClient};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

async fn upload_png(client: &TestClient) -> String {
    let res = client.upload(&fixtures::png(8, 6), "scan.png", None).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.body["id"].as_str().unwrap().to_owned()
}

#[actix_web::test]
async fn png_jpeg_and_dicom_round_trip_byte_for_byte() {
    let app = TestApp::spawn().await;
    let doctor = app.login_as(&[Role::Doctor]).await;
    let files = [
        (
            fixtures::png(32, 24),
            "chest.png",
            "image/png",
            "png",
            (32, 24),
        ),
        (
            fixtures::jpeg(40, 30),
            "knee.jpg",
            "image/jpeg",
            "jpg",
            (40, 30),
        ),
        (
            fixtures::dicom(16, 20),
            "head.dcm",
            "application/dicom",
            "dcm",
            (20, 16),
        ),
    ];
    for (bytes, name, content_type, ext, (width, height)) in files {
        let res = doctor.upload(&bytes, name, Some("first visit")).await;
        assert_eq!(res.status, StatusCode::CREATED, "{name}: {}", res.text);
        let id = res.body["id"].as_str().unwrap();
        assert_eq!(
            res.header("location"),
            Some(format!("/api/v1/images/{id}").as_str())
        );
        assert_eq!(res.body["content_type"], content_type);
        assert_eq!(res.body["sha256"], sha256_hex(&bytes));
        assert_eq!(res.body["size_bytes"], bytes.len());
        assert_eq!(res.body["width"], width);
        assert_eq!(res.body["height"], height);
        assert_eq!(res.body["original_filename"], name);
        assert_eq!(res.body["description"], "first visit");
        assert_eq!(
            res.body["uploaded_by"]["username"],
            doctor.username().as_str()
        );
        assert_eq!(res.body["labels"], json!([]));

        let file = doctor.get(&format!("/api/v1/images/{id}/file")).await;
        assert_eq!(file.status, StatusCode::OK);
        assert_eq!(&file.bytes[..], &bytes[..], "{name}: bytes differ");
        assert_eq!(file.header("content-type"), Some(content_type));
        assert_eq!(
            file.header("content-length"),
            Some(bytes.len().to_string().as_str())
        );
        assert_eq!(
            file.header("etag"),
            Some(format!("\"{}\"", sha256_hex(&bytes)).as_str())
        );
        assert_eq!(file.header("accept-ranges"), Some("bytes"));
        assert_eq!(file.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(
            file.header("content-disposition"),
            Some(format!("attachment; filename=\"{id}.{ext}\"").as_str())
        );
    }
    assert_eq!(app.stored_objects().await.len(), 3);
}

#[actix_web::test]
async fn what_is_not_an_image_is_refused_and_leaves_nothing_behind() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let png = fixtures::png(16, 16);
    let mut fake_dicom = vec![0u8; 128];
    fake_dicom.extend_from_slice(b"DICMgarbage that is no file meta group at all");
    let mut bomb = png[..33].to_vec(); // signature + IHDR, then a lie about the size
    bomb[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    bomb.extend_from_slice(&png[33..]);
    let cases: Vec<(Vec<u8>, &str, u16)> = vec![
        (
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>".to_vec(),
            "x.png",
            415,
        ),
        (b"<html><body>hello</body></html>".to_vec(), "x.jpg", 415),
        (b"%PDF-1.7 ...".repeat(20), "x.dcm", 415),
        (png[..png.len() - 20].to_vec(), "truncated.png", 422),
        (fake_dicom, "broken.dcm", 422),
        (bomb, "bomb.png", 422),
        (Vec::new(), "empty.png", 422),
    ];
    for (bytes, name, status) in cases {
        let res = doctor.upload(&bytes, name, None).await;
        res.problem(status);
        if status == 422 {
            assert!(
                res.body["errors"]["file"].is_array(),
                "{name}: {}",
                res.text
            );
        }
    }
    let (content_type, body) = fixtures::multipart(&[("description", None, b"no file here")]);
    let res = doctor
        .send_raw(Method::POST, "/api/v1/images", &content_type, body)
        .await;
    assert!(res.problem(422)["errors"]["file"].is_array());
    doctor
        .send_raw(
            Method::POST,
            "/api/v1/images",
            "application/json",
            b"{}".to_vec(),
        )
        .await
        .problem(415);
    doctor
        .send_raw(Method::POST, "/api/v1/images", "image/png", png.clone())
        .await
        .problem(415);

    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        app.stored_objects().await.is_empty(),
        "no object left behind"
    );
    let listed = doctor.get("/api/v1/images").await;
    assert_eq!(listed.body["items"], json!([]), "no row left behind");
}

#[actix_web::test]
async fn uploads_over_the_limit_are_413_and_leave_nothing() {
    let app = TestApp::spawn_with(&[("MEDLABEL_MAX_UPLOAD_BYTES", "600")]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let big = fixtures::png(256, 256);
    assert!(big.len() > 600, "{}", big.len());
    doctor.upload(&big, "big.png", None).await.problem(413);
    let small = fixtures::png(4, 4);
    assert_eq!(
        doctor.upload(&small, "small.png", None).await.status,
        StatusCode::CREATED
    );
    actix_web::rt::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(app.stored_objects().await.len(), 1);
}

#[actix_web::test]
async fn downloads_honour_range_and_if_none_match() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let bytes = fixtures::png(20, 20);
    let id = doctor.upload(&bytes, "r.png", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/images/{id}/file");

    let part = doctor
        .send(Method::GET, &path, None, &[("range", "bytes=10-19")])
        .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&part.bytes[..], &bytes[10..20]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{}", bytes.len()).as_str())
    );
    assert_eq!(part.header("content-length"), Some("10"));
    let suffix = doctor
        .send(Method::GET, &path, None, &[("range", "bytes=-5")])
        .await;
    assert_eq!(&suffix.bytes[..], &bytes[bytes.len() - 5..]);
    let bad = doctor
        .send(
            Method::GET,
            &path,
            None,
            &[("range", &format!("bytes={}-", bytes.len() + 5))],
        )
        .await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(
        bad.header("content-range"),
        Some(format!("bytes */{}", bytes.len()).as_str())
    );

    let etag = format!("\"{}\"", sha256_hex(&bytes));
    let cached = doctor
        .send(Method::GET, &path, None, &[("if-none-match", &etag)])
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert!(cached.bytes.is_empty());
    let stale = doctor
        .send(Method::GET, &path, None, &[("if-none-match", "\"other\"")])
        .await;
    assert_eq!(stale.status, StatusCode::OK);
}

#[actix_web::test]
async fn doctors_see_only_their_own_images_and_researchers_see_all_de_identified() {
    let app = TestApp::spawn().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    let id = upload_png(&owner).await;
    let other_id = upload_png(&other).await;

    for path in [
        format!("/api/v1/images/{id}"),
        format!("/api/v1/images/{id}/file"),
        format!("/api/v1/images/{id}/labels"),
    ] {
        other.get(&path).await.problem(404);
        assert_eq!(researcher.get(&path).await.status, StatusCode::OK, "{path}");
        assert_eq!(admin.get(&path).await.status, StatusCode::OK, "{path}");
    }
    other
        .patch(
            &format!("/api/v1/images/{id}"),
            &json!({"description": "mine now"}),
        )
        .await
        .problem(404);
    other
        .delete(&format!("/api/v1/images/{id}"))
        .await
        .problem(404);
    researcher
        .patch(
            &format!("/api/v1/images/{id}"),
            &json!({"description": "x"}),
        )
        .await
        .problem(403);
    researcher
        .delete(&format!("/api/v1/images/{id}"))
        .await
        .problem(403);

    let ids = |res: &crate::helpers::TestResponse| -> HashSet<String> {
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&owner.get("/api/v1/images").await),
        HashSet::from([id.clone()])
    );
    assert_eq!(
        ids(&other.get("/api/v1/images").await),
        HashSet::from([other_id.clone()])
    );
    let all = researcher.get("/api/v1/images").await;
    assert_eq!(ids(&all), HashSet::from([id.clone(), other_id.clone()]));
    assert!(all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["original_filename"].is_null()));
    assert!(
        researcher.get(&format!("/api/v1/images/{id}")).await.body["original_filename"].is_null()
    );
    assert_eq!(
        admin.get(&format!("/api/v1/images/{id}")).await.body["original_filename"],
        "scan.png"
    );
    assert_eq!(ids(&admin.get("/api/v1/images").await).len(), 2);
}

#[actix_web::test]
async fn researchers_download_de_identified_copies() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    for (bytes, name) in [
        (fixtures::dicom(8, 8), "ct.dcm"),
        (fixtures::png(10, 10), "x.png"),
        (fixtures::jpeg(16, 16), "y.jpg"),
    ] {
        assert!(contains(&bytes, CANARY), "the fixture carries the canary");
        let id = doctor.upload(&bytes, name, None).await.body["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let own = doctor.get(&format!("/api/v1/images/{id}/file")).await;
        assert_eq!(&own.bytes[..], &bytes[..], "doctors get the original");

        let copy = researcher.get(&format!("/api/v1/images/{id}/file")).await;
        assert_eq!(copy.status, StatusCode::OK, "{name}: {}", copy.text);
        assert!(
            !contains(&copy.bytes, CANARY),
            "{name}: the canary survived de-identification"
        );
        assert_eq!(
            copy.header("etag"),
            Some(format!("\"{}\"", sha256_hex(&copy.bytes)).as_str()),
            "{name}"
        );
        assert_eq!(
            copy.header("content-length"),
            Some(copy.bytes.len().to_string().as_str())
        );
        let range = researcher
            .send(
                Method::GET,
                &format!("/api/v1/images/{id}/file"),
                None,
                &[("range", "bytes=0-3")],
            )
            .await;
        assert_eq!(
            &range.bytes[..],
            &copy.bytes[..4],
            "ranges address the served copy"
        );

        if name.ends_with(".dcm") {
            let obj = dicom_object::OpenFileOptions::new()
                .read_preamble(dicom_object::file::ReadPreamble::Always)
                .from_reader(&copy.bytes[..])
                .unwrap();
            assert_eq!(
                obj.element(tags::PATIENT_IDENTITY_REMOVED)
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim(),
                "YES"
            );
            let subject = doctor.get(&format!("/api/v1/images/{id}")).await.body["subject_id"]
                .as_str()
                .unwrap()
                .to_owned();
            for tag in [tags::PATIENT_NAME, tags::PATIENT_ID] {
                let value = obj.element(tag).unwrap().to_str().unwrap();
                assert_eq!(value.trim(), subject, "{tag} is the subject pseudonym");
            }
            for (tag, _) in fixtures::DICOM_IDENTIFYING
                .into_iter()
                .filter(|(t, _)| ![tags::PATIENT_NAME, tags::PATIENT_ID].contains(t))
            {
                let value = obj
                    .element_opt(tag)
                    .unwrap()
                    .map(|e| e.to_str().unwrap_or_default().to_string());
                assert!(
                    value.as_deref().unwrap_or("").trim().is_empty(),
                    "{tag} kept {value:?}"
                );
            }
            assert!(
                obj.tags().all(|t| t.group() % 2 == 0),
                "private tags removed"
            );
            assert_eq!(
                obj.element(tags::ROWS).unwrap().to_int::<u16>().unwrap(),
                8,
                "image data kept"
            );
        }
        if name.ends_with(".png") {
            let decoder = png::Decoder::new(std::io::Cursor::new(copy.bytes.to_vec()));
            let mut reader = decoder.read_info().expect("still a valid PNG");
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            reader.next_frame(&mut buf).expect("pixels still decode");
        }
        if name.ends_with(".jpg") {
            assert!(copy.bytes.starts_with(&[0xFF, 0xD8]) && copy.bytes.ends_with(&[0xFF, 0xD9]));
        }
    }
}

#[actix_web::test]
async fn image_updates_honour_if_match_and_deletes_hide_the_image() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let id = upload_png(&doctor).await;
    let path = format!("/api/v1/images/{id}");
    let first = doctor.get(&path).await;
    let etag = first.header("etag").unwrap().to_owned();

    let res = doctor
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"description": "left knee"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["description"], "left knee");
    let new_etag = res.header("etag").unwrap().to_owned();
    assert_ne!(new_etag, etag);

    let stale = doctor
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"description": "right knee"})),
            &[("if-match", &etag)],
        )
        .await;
    stale.problem(412);
    assert_eq!(
        doctor.get(&path).await.body["description"],
        "left knee",
        "a stale write changes nothing"
    );
    doctor
        .send(Method::DELETE, &path, None, &[("if-match", &etag)])
        .await
        .problem(412);
    doctor
        .patch(&path, &json!({"description": "x".repeat(2001)}))
        .await
        .problem(422);
    doctor
        .patch(&path, &json!({"title": "x"}))
        .await
        .problem(422);

    assert_eq!(doctor.delete(&path).await.status, StatusCode::NO_CONTENT);
    doctor.get(&path).await.problem(404);
    doctor.get(&format!("{path}/file")).await.problem(404);
    assert_eq!(doctor.get("/api/v1/images").await.body["items"], json!([]));
    doctor.get("/api/v1/images/not-a-uuid").await.problem(404);
}

#[actix_web::test]
async fn diagnoses_are_labels_on_images() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let id = upload_png(&doctor).await;
    let label = researcher
        .post("/api/v1/labels", &json!({"name": "Pneumonia"}))
        .await;
    let label_id = label.body["id"].as_str().unwrap().to_owned();
    let retired = researcher
        .post("/api/v1/labels", &json!({"name": "Retired"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    researcher
        .delete(&format!("/api/v1/labels/{retired}"))
        .await;
    let etag_before = doctor
        .get(&format!("/api/v1/images/{id}"))
        .await
        .header("etag")
        .unwrap()
        .to_owned();

    let path = format!("/api/v1/images/{id}/labels");
    let res = doctor
        .post(
            &path,
            &json!({"label_id": label_id, "note": "right lower lobe"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(
        res.header("location"),
        Some(format!("{path}/{label_id}").as_str())
    );
    assert_eq!(
        res.body["label"],
        json!({"id": label_id, "name": "Pneumonia"})
    );
    assert_eq!(res.body["note"], "right lower lobe");
    assert_eq!(
        res.body["assigned_by"]["username"],
        doctor.username().as_str()
    );

    doctor
        .post(&path, &json!({"label_id": label_id}))
        .await
        .problem(409);
    assert!(doctor
        .post(&path, &json!({"label_id": retired}))
        .await
        .problem(422)["errors"]["label_id"]
        .is_array());
    doctor
        .post(
            &path,
            &json!({"label_id": uuid::Uuid::now_v7().to_string()}),
        )
        .await
        .problem(422);
    researcher
        .post(&path, &json!({"label_id": label_id}))
        .await
        .problem(403);
    other
        .post(&path, &json!({"label_id": label_id}))
        .await
        .problem(404);

    let listed = researcher.get(&path).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
    let image = doctor.get(&format!("/api/v1/images/{id}")).await;
    assert_eq!(image.body["labels"][0]["label"]["name"], "Pneumonia");
    assert_ne!(
        image.header("etag").unwrap(),
        etag_before,
        "a diagnosis change is a change of the image"
    );

    assert_eq!(
        doctor.delete(&format!("{path}/{label_id}")).await.status,
        StatusCode::NO_CONTENT
    );
    doctor
        .delete(&format!("{path}/{label_id}"))
        .await
        .problem(404);
    assert_eq!(doctor.get(&path).await.body, json!([]));
}

#[actix_web::test]
async fn image_lists_filter_by_label_disease_code_uploader_type_and_time() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let admin = app.token_client(&[Role::Admin]).await;
    let disease = admin
        .post(
            "/api/v1/diseases",
            &json!({"name": "Pneumonia", "codes": [{"system": "icd-10", "code": "J18.9"}]}),
        )
        .await;
    let disease_id = disease.body["id"].as_str().unwrap().to_owned();
    let label = admin
        .post(
            "/api/v1/labels",
            &json!({"name": "Consolidation", "disease_ids": [disease_id]}),
        )
        .await;
    let label_id = label.body["id"].as_str().unwrap().to_owned();

    let labelled = upload_png(&doctor).await;
    let plain = upload_png(&doctor).await;
    let dicom = doctor
        .upload(&fixtures::dicom(4, 4), "a.dcm", None)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    doctor
        .post(
            &format!("/api/v1/images/{labelled}/labels"),
            &json!({"label_id": label_id}),
        )
        .await;
    let me = doctor.get("/api/v1/auth/me").await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let ids = |res: crate::helpers::TestResponse| -> HashSet<String> {
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(admin
            .get(&format!("/api/v1/images?label_id={label_id}"))
            .await),
        HashSet::from([labelled.clone()])
    );
    assert_eq!(
        ids(admin
            .get(&format!("/api/v1/images?disease_id={disease_id}"))
            .await),
        HashSet::from([labelled.clone()])
    );
    assert_eq!(
        ids(admin.get("/api/v1/images?code=icd-10:J18.9").await),
        HashSet::from([labelled.clone()])
    );
    assert!(ids(admin.get("/api/v1/images?code=icd-10:E11.9").await).is_empty());
    assert_eq!(
        ids(admin
            .get("/api/v1/images?content_type=application/dicom")
            .await),
        HashSet::from([dicom.clone()])
    );
    assert_eq!(
        ids(admin.get(&format!("/api/v1/images?uploaded_by={me}")).await).len(),
        3
    );
    assert!(ids(admin
        .get(&format!("/api/v1/images?label_id={}", uuid::Uuid::now_v7()))
        .await)
    .is_empty());
    let _ = plain;
    let future = "2999-01-01T00:00:00Z";
    let past = "2000-01-01T00:00:00Z";
    assert_eq!(
        ids(admin
            .get(&format!(
                "/api/v1/images?created_after={past}&created_before={future}"
            ))
            .await)
        .len(),
        3
    );
    assert!(ids(admin
        .get(&format!("/api/v1/images?created_after={future}"))
        .await)
    .is_empty());

    admin
        .get("/api/v1/images?created_after=yesterday")
        .await
        .problem(400);
    admin.get("/api/v1/images?label_id=nope").await.problem(400);
    admin.get("/api/v1/images?code=J18.9").await.problem(400);
    admin
        .get("/api/v1/images?content_type=text/html")
        .await
        .problem(422);
    admin.get("/api/v1/images?limit=0").await.problem(422);
}

#[actix_web::test]
async fn pages_visit_every_image_exactly_once_while_images_are_added() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let mut before = HashSet::new();
    for _ in 0..7 {
        before.insert(upload_png(&doctor).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/images?limit=3&cursor={c}"),
            None => "/api/v1/images?limit=3".to_owned(),
        };
        let page = doctor.get(&path).await;
        seen.extend(
            page.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["id"].as_str().unwrap().to_owned()),
        );
        upload_png(&doctor).await; // rows keep arriving between pages
        match page.body["next_cursor"].as_str() {
            Some(c) if seen.len() < 40 => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    let unique: HashSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "no image twice");
    assert!(
        before.is_subset(&unique),
        "every image present at the start was visited"
    );
}

/// Bytes after a JPEG's first EOI (an appended second image with its own metadata) never
/// reach a researcher, and a copy made under earlier de-identification rules is never served.
#[actix_web::test]
async fn researchers_never_get_what_follows_a_jpegs_first_eoi() {
    use object_store::ObjectStoreExt as _;
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let image = fixtures::jpeg(16, 16);
    let mut appended = image.clone();
    appended.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00, 0x16]);
    appended.extend_from_slice(b"Exif\0\0PATIENT Canary");
    appended.extend_from_slice(&[0xFF, 0xD9]);
    let body = doctor.upload(&appended, "two.jpg", None).await;
    assert_eq!(body.status, StatusCode::CREATED, "{}", body.text);
    let id = body.body["id"].as_str().unwrap().to_owned();

    // A copy left by an earlier release, at the old key, holding what should have gone.
    let key = app
        .stored_objects()
        .await
        .into_iter()
        .find(|k| k.starts_with("images/"))
        .unwrap();
    let stale = format!(
        "deidentified/{}/{}",
        key.trim_start_matches("images/"),
        "0".repeat(64)
    );
    app.state
        .storage
        .store()
        .put(
            &object_store::path::Path::from(stale.as_str()),
            appended.clone().into(),
        )
        .await
        .unwrap();

    let copy = researcher.get(&format!("/api/v1/images/{id}/file")).await;
    assert_eq!(copy.status, StatusCode::OK, "{}", copy.text);
    assert!(
        !contains(&copy.bytes, "PATIENT"),
        "the appended image reached a researcher"
    );
    assert!(!contains(&copy.bytes, CANARY));
    assert!(copy.bytes.ends_with(&[0xFF, 0xD9]));
    assert!(
        copy.bytes.len() < image.len(),
        "only the first image, without its metadata"
    );
    assert!(
        !app.stored_objects().await.contains(&stale),
        "the stale copy is deleted once the current one is made"
    );
    let again = researcher.get(&format!("/api/v1/images/{id}/file")).await;
    assert_eq!(again.bytes, copy.bytes, "the current copy is reused");
}
