//! Annotations (API.md "Annotations: regions on images"): geometry rules, frames, ETags,
//! who reads and writes, redacted notes, history and revert.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::{json, Value};

use crate::fixtures;
use crate::helpers::{TestApp, TestClient};

/// A doctor with a 40x30 PNG, a researcher and an active label.
async fn setup(app: &TestApp) -> (TestClient, TestClient, String, String) {
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let image = doctor.upload(&fixtures::png(40, 30), "a.png", None).await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.text);
    let label = app.label("Nodule").await["id"].as_str().unwrap().to_owned();
    (
        doctor,
        researcher,
        image.body["id"].as_str().unwrap().to_owned(),
        label,
    )
}

fn body(label: &str, shape: &str, geometry: Value) -> Value {
    json!({"label_id": label, "shape": shape, "geometry": geometry})
}

#[actix_web::test]
async fn every_geometry_rule_is_a_422_naming_the_field_and_borders_are_inside() {
    let app = TestApp::spawn().await;
    let (doctor, _, image, label) = setup(&app).await;
    let path = format!("/api/v1/images/{image}/annotations");
    let accepted = [
        body(
            &label,
            "box",
            json!({"x": 0, "y": 0, "width": 40, "height": 30}),
        ),
        body(
            &label,
            "box",
            json!({"x": 39.5, "y": 29.25, "width": 0.5, "height": 0.75}),
        ),
        body(
            &label,
            "polygon",
            json!({"points": [[0, 0], [40, 0], [40, 30], [0, 30]]}),
        ),
        body(
            &label,
            "polygon",
            json!({"points": [[0, 0], [1, 1], [2, 2], [0, 2.5]]}),
        ),
        body(&label, "point", json!({"x": 40, "y": 30})),
        body(&label, "point", json!({"x": 0, "y": 0})),
    ];
    for request in &accepted {
        let res = doctor.post(&path, request).await;
        assert_eq!(res.status, StatusCode::CREATED, "{request}: {}", res.text);
        assert_eq!(res.body["geometry"], request["geometry"], "stored as given");
        assert_eq!(res.body["frame"], 0);
    }
    let inactive = app.label("Retired").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let admin = app.token_client(&[Role::Admin]).await;
    assert_eq!(
        admin
            .delete(&format!("/api/v1/labels/{inactive}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let many: Vec<[f64; 2]> = (0..10_001)
        .map(|i| [(i % 40) as f64, (i % 7) as f64])
        .collect();
    let refused: Vec<(Value, &str)> = vec![
        (
            body(
                &label,
                "box",
                json!({"x": 0.5, "y": 0, "width": 40, "height": 30}),
            ),
            "geometry.width",
        ),
        (
            body(
                &label,
                "box",
                json!({"x": 0, "y": 1, "width": 40, "height": 30}),
            ),
            "geometry.height",
        ),
        (
            body(
                &label,
                "box",
                json!({"x": -0.1, "y": 0, "width": 1, "height": 1}),
            ),
            "geometry.x",
        ),
        (
            body(
                &label,
                "box",
                json!({"x": 0, "y": 31, "width": 1, "height": 1}),
            ),
            "geometry.y",
        ),
        (
            body(
                &label,
                "box",
                json!({"x": 1, "y": 1, "width": 0, "height": 1}),
            ),
            "geometry.width",
        ),
        (
            body(
                &label,
                "box",
                json!({"x": 1, "y": 1, "width": 1, "height": -1}),
            ),
            "geometry.height",
        ),
        (
            body(&label, "box", json!({"x": 1, "y": 1, "width": 1})),
            "geometry",
        ),
        (
            body(
                &label,
                "box",
                json!({"x": 1, "y": 1, "width": 1, "height": 1, "z": 1}),
            ),
            "geometry",
        ),
        (
            body(&label, "box", json!({"points": [[0, 0], [1, 1], [1, 0]]})),
            "geometry",
        ),
        (
            body(&label, "polygon", json!({"points": [[0, 0], [1, 1]]})),
            "geometry.points",
        ),
        (
            body(
                &label,
                "polygon",
                json!({"points": [[0, 0], [5, 5], [10, 10]]}),
            ),
            "geometry.points",
        ),
        (
            body(
                &label,
                "polygon",
                json!({"points": [[2, 2], [2, 2], [2, 2]]}),
            ),
            "geometry.points",
        ),
        (
            body(
                &label,
                "polygon",
                json!({"points": [[0, 0], [1, 1], [41, 1]]}),
            ),
            "geometry.points[2]",
        ),
        (
            body(
                &label,
                "polygon",
                json!({"points": [[0, 0], [1, 1, 2], [4, 1]]}),
            ),
            "geometry",
        ),
        (
            body(&label, "polygon", json!({ "points": many })),
            "geometry.points",
        ),
        (
            body(&label, "point", json!({"x": 40.01, "y": 0})),
            "geometry.x",
        ),
        (
            body(&label, "point", json!({"x": 1, "y": -1})),
            "geometry.y",
        ),
        (body(&label, "point", json!({"x": 1, "y": "2"})), "geometry"),
        (body(&label, "circle", json!({"x": 1, "y": 1})), "shape"),
        (
            body(
                &uuid::Uuid::now_v7().to_string(),
                "point",
                json!({"x": 1, "y": 1}),
            ),
            "label_id",
        ),
        (
            body("not-a-uuid", "point", json!({"x": 1, "y": 1})),
            "label_id",
        ),
        (
            body(&inactive, "point", json!({"x": 1, "y": 1})),
            "label_id",
        ),
        (
            json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}, "frame": 1}),
            "frame",
        ),
        (
            json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}, "frame": -1}),
            "frame",
        ),
        (
            json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}, "note": "x".repeat(2001)}),
            "note",
        ),
    ];
    for (request, field) in &refused {
        let res = doctor.post(&path, request).await;
        let problem = res.problem(422);
        assert!(
            problem["errors"][*field].is_array(),
            "{request} should name {field}: {}",
            res.text
        );
    }
    let extra =
        json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}, "colour": "red"});
    doctor.post(&path, &extra).await.problem(422);
    let listed = doctor.get(&path).await;
    assert_eq!(
        listed.body.as_array().unwrap().len(),
        accepted.len(),
        "nothing refused was stored"
    );
    // An image whose size is unknown takes no annotations.
    app.sql("UPDATE images SET width = NULL").await;
    let res = doctor
        .post(&path, &body(&label, "point", json!({"x": 1, "y": 1})))
        .await;
    assert!(
        res.problem(422)["errors"]["geometry"].is_array(),
        "{}",
        res.text
    );
}

/// An 8-row, 6-column MONOCHROME2 DICOM declaring `declared` frames and holding `held`.
fn multi_frame(declared: &str, held: usize) -> Vec<u8> {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let attributes = [(tags::NUMBER_OF_FRAMES, VR::IS, declared.to_owned())];
    medlabel::imaging::dicom::synthetic_frames(8, 6, held, 0, &attributes).unwrap()
}

#[actix_web::test]
async fn a_multi_frame_dicom_takes_annotations_on_each_of_its_frames() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let label = app.label("Lesion").await["id"].as_str().unwrap().to_owned();
    // Frames are what the file holds: a claim of a million frames over one is one frame.
    let claims = doctor
        .upload(&multi_frame("1000000", 1), "claims.dcm", None)
        .await;
    assert_eq!(claims.status, StatusCode::CREATED, "{}", claims.text);
    let claims = format!(
        "/api/v1/images/{}/annotations",
        claims.body["id"].as_str().unwrap()
    );
    doctor
        .post(
            &claims,
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}, "frame": 1}),
        )
        .await
        .problem(422);
    let file = multi_frame("3", 3);
    let image = doctor.upload(&file, "cine.dcm", None).await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.text);
    let path = format!(
        "/api/v1/images/{}/annotations",
        image.body["id"].as_str().unwrap()
    );
    let whole = doctor
        .post(
            &path,
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 6, "y": 8}, "frame": 2.0}),
        )
        .await;
    assert_eq!(
        whole.status,
        StatusCode::CREATED,
        "2.0 is an integer: {}",
        whole.text
    );
    assert_eq!(whole.body["frame"], 2);
    doctor
        .post(
            &path,
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 6, "y": 8}, "frame": 1.5}),
        )
        .await
        .problem(422);
    for frame in 0..3 {
        let res = doctor
            .post(
                &path,
                &json!({"label_id": label, "shape": "point", "geometry": {"x": 6, "y": 8}, "frame": frame}),
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::CREATED,
            "frame {frame}: {}",
            res.text
        );
        assert_eq!(res.body["frame"], frame);
    }
    let res = doctor
        .post(
            &path,
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}, "frame": 3}),
        )
        .await;
    assert!(res.problem(422)["errors"]["frame"].is_array());
}

#[actix_web::test]
async fn annotations_are_read_changed_and_deleted_with_etags_without_touching_the_image() {
    let app = TestApp::spawn().await;
    let (doctor, _, image, label) = setup(&app).await;
    let image_etag = doctor
        .get(&format!("/api/v1/images/{image}"))
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    let created = doctor
        .post(
            &format!("/api/v1/images/{image}/annotations"),
            &json!({"label_id": label, "shape": "box", "geometry": {"x": 1, "y": 2, "width": 3, "height": 4}, "note": "first look"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/annotations/{id}").as_str())
    );
    assert_eq!(created.body["image_id"], image.as_str());
    assert_eq!(created.body["label"]["name"], "Nodule");
    assert_eq!(created.body["shape"], "box");
    assert_eq!(created.body["created_by"]["username"], doctor.username());
    let path = format!("/api/v1/annotations/{id}");
    let read = doctor.get(&path).await;
    assert_eq!(read.status, StatusCode::OK);
    let etag = read.header("etag").unwrap().to_owned();
    assert_eq!(created.header("etag"), Some(etag.as_str()));
    assert_eq!(read.body, created.body);

    let other = app.label("Mass").await["id"].as_str().unwrap().to_owned();
    let patch = json!({"label_id": other, "geometry": {"x": 0, "y": 0, "width": 40, "height": 30}, "note": null});
    let changed = doctor
        .send(Method::PATCH, &path, Some(&patch), &[("If-Match", &etag)])
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.text);
    assert_eq!(changed.body["label"]["name"], "Mass");
    assert_eq!(changed.body["note"], Value::Null);
    assert_eq!(changed.body["geometry"]["width"], 40);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    let stale = doctor
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"note": "late"})),
            &[("If-Match", &etag)],
        )
        .await;
    stale.problem(412);
    // The geometry keeps its shape.
    let reshaped = doctor
        .patch(&path, &json!({"geometry": {"x": 1, "y": 1}}))
        .await;
    assert!(reshaped.problem(422)["errors"]["geometry"].is_array());
    let outside = doctor
        .patch(
            &path,
            &json!({"geometry": {"x": 1, "y": 1, "width": 40, "height": 1}}),
        )
        .await;
    assert!(outside.problem(422)["errors"]["geometry.width"].is_array());
    assert_eq!(
        doctor.get(&path).await.body,
        changed.body,
        "refusals change nothing"
    );
    assert_eq!(
        doctor
            .get(&format!("/api/v1/images/{image}"))
            .await
            .header("etag"),
        Some(image_etag.as_str()),
        "annotations do not change the image's ETag"
    );
    let stale_delete = doctor
        .send(Method::DELETE, &path, None, &[("If-Match", &etag)])
        .await;
    stale_delete.problem(412);
    assert_eq!(doctor.delete(&path).await.status, StatusCode::NO_CONTENT);
    doctor.get(&path).await.problem(404);
    doctor
        .patch(&path, &json!({"note": "x"}))
        .await
        .problem(404);
    let listed = doctor
        .get(&format!("/api/v1/images/{image}/annotations"))
        .await;
    assert_eq!(listed.body, json!([]));
    // An annotation of a deleted image is gone with it.
    let again = doctor
        .post(
            &format!("/api/v1/images/{image}/annotations"),
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}}),
        )
        .await;
    let again = format!("/api/v1/annotations/{}", again.body["id"].as_str().unwrap());
    assert_eq!(
        doctor
            .delete(&format!("/api/v1/images/{image}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    doctor.get(&again).await.problem(404);
}

#[actix_web::test]
async fn researchers_read_every_annotation_with_the_note_redacted_and_write_none() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let (content_type, form) = fixtures::multipart(&[
        ("file", Some("p.png"), &fixtures::png(20, 20)),
        ("patient_id", None, b"ANN-PAT-77"),
    ]);
    let image = doctor
        .send_raw(Method::POST, "/api/v1/images", &content_type, form)
        .await;
    assert_eq!(image.status, StatusCode::CREATED, "{}", image.text);
    let image = image.body["id"].as_str().unwrap().to_owned();
    let label = app.label("Cyst").await["id"].as_str().unwrap().to_owned();
    let list = format!("/api/v1/images/{image}/annotations");
    let created = doctor
        .post(
            &list,
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 3, "y": 4}, "note": "compare with ANN-PAT-77 prior"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.body["note"], "compare with ANN-PAT-77 prior");

    let seen = researcher.get(&list).await;
    assert_eq!(seen.status, StatusCode::OK);
    assert_eq!(seen.body[0]["note"], "compare with [redacted] prior");
    let one = researcher.get(&format!("/api/v1/annotations/{id}")).await;
    assert_eq!(one.body["note"], "compare with [redacted] prior");
    let history = researcher
        .get(&format!("/api/v1/annotations/{id}/history"))
        .await;
    assert_eq!(history.status, StatusCode::OK);
    assert_eq!(
        history.body["items"][0]["snapshot"]["note"],
        "compare with [redacted] prior"
    );
    let all = researcher
        .get("/api/v1/history?entity_type=annotation")
        .await;
    assert!(!all.text.contains("ANN-PAT-77"), "{}", all.text);
    assert_eq!(all.body["items"].as_array().unwrap().len(), 1);
    // Researchers write nothing here.
    researcher
        .post(
            &list,
            &json!({"label_id": label, "shape": "point", "geometry": {"x": 1, "y": 1}}),
        )
        .await
        .problem(403);
    researcher
        .patch(&format!("/api/v1/annotations/{id}"), &json!({"note": "x"}))
        .await
        .problem(403);
    researcher
        .delete(&format!("/api/v1/annotations/{id}"))
        .await
        .problem(403);
    // Another doctor does not see it anywhere.
    other.get(&list).await.problem(404);
    other
        .get(&format!("/api/v1/annotations/{id}"))
        .await
        .problem(404);
    other
        .get(&format!("/api/v1/annotations/{id}/history"))
        .await
        .problem(404);
    let theirs = other.get("/api/v1/history?entity_type=annotation").await;
    assert_eq!(theirs.body["items"], json!([]));
    let owners = doctor.get("/api/v1/history?entity_type=annotation").await;
    assert_eq!(
        owners.body["items"][0]["snapshot"]["note"],
        "compare with ANN-PAT-77 prior"
    );
    // The filter on entity_type names the new type.
    doctor
        .get("/api/v1/history?entity_type=region")
        .await
        .problem(422);
}

#[actix_web::test]
async fn history_and_revert_of_annotations_obey_the_rules_of_a_direct_write() {
    let app = TestApp::spawn().await;
    let (doctor, researcher, image, label) = setup(&app).await;
    let created = doctor
        .post(
            &format!("/api/v1/images/{image}/annotations"),
            &json!({"label_id": label, "shape": "polygon", "geometry": {"points": [[0, 0], [10, 0], [0, 10]]}}),
        )
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/annotations/{id}");
    doctor
        .patch(
            &path,
            &json!({"geometry": {"points": [[1, 1], [20, 1], [1, 20]]}}),
        )
        .await;
    assert_eq!(doctor.delete(&path).await.status, StatusCode::NO_CONTENT);
    let history = doctor.get(&format!("{path}/history")).await;
    let entries = history.body["items"].as_array().unwrap().clone();
    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["create", "update", "delete"]);
    assert!(entries
        .iter()
        .all(|e| e["entity_type"] == "annotation" && e["schema_version"] == 1));
    assert_eq!(
        entries[1]["snapshot"]["geometry"]["points"][1],
        json!([20, 1])
    );
    // Reverting to the deletion is refused; to the creation restores it, recorded as a revert.
    let revert =
        |entry: &Value| format!("/api/v1/history/{}/revert", entry["id"].as_str().unwrap());
    doctor
        .post(&revert(&entries[2]), &json!({}))
        .await
        .problem(422);
    researcher
        .post(&revert(&entries[0]), &json!({}))
        .await
        .problem(403);
    let restored = doctor.post(&revert(&entries[0]), &json!({})).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    assert_eq!(
        restored.body["geometry"],
        entries[0]["snapshot"]["geometry"]
    );
    assert!(restored.header("etag").is_some());
    assert_eq!(doctor.get(&path).await.body, restored.body);
    let history = doctor.get(&format!("{path}/history")).await;
    assert_eq!(history.body["items"][3]["action"], "revert");

    // A snapshot whose label is no longer active is refused, naming it, and changes nothing.
    let admin = app.token_client(&[Role::Admin]).await;
    let other = app.label("Later").await["id"].as_str().unwrap().to_owned();
    doctor.patch(&path, &json!({"label_id": other})).await;
    assert_eq!(
        admin
            .delete(&format!("/api/v1/labels/{label}"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let before = doctor.get(&path).await.body;
    let count = doctor.get(&format!("{path}/history")).await.body["items"]
        .as_array()
        .unwrap()
        .len();
    let refused = doctor.post(&revert(&entries[1]), &json!({})).await;
    let problem = refused.problem(422);
    assert!(
        problem["errors"]["label_id"][0]
            .as_str()
            .unwrap()
            .contains("Nodule"),
        "{}",
        refused.text
    );
    assert_eq!(doctor.get(&path).await.body, before, "nothing changed");
    assert_eq!(
        doctor.get(&format!("{path}/history")).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        count,
        "no entry was written"
    );
    // Still labelled with the label it holds, a changed note goes through.
    let noted = doctor.patch(&path, &json!({"note": "kept"})).await;
    assert_eq!(noted.status, StatusCode::OK, "{}", noted.text);
    // An annotation of a deleted image cannot be restored before the image.
    doctor.delete(&path).await;
    let entry = doctor.get(&format!("{path}/history")).await.body["items"][0].clone();
    doctor.delete(&format!("/api/v1/images/{image}")).await;
    let orphan = doctor.post(&revert(&entry), &json!({})).await;
    orphan.problem(422);
}
