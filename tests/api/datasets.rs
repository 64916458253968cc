//! Datasets (API.md "Datasets: frozen, reproducible exports for machine learning"): freezing,
//! filters, withheld images, the archive layout of each format, byte-identical exports, the
//! CLI, and an export that stops when its client goes away.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use actix_web::http::StatusCode;
use medlabel::auth::Role;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::fixtures;
use crate::helpers::{TestApp, TestClient};

/// Every entry of a ZIP archive, by name, in archive order.
fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive)).expect("a ZIP archive");
    (0..zip.len())
        .map(|i| {
            let mut file = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            (file.name().unwrap().into_owned(), bytes)
        })
        .collect()
}

fn text(entries: &[(String, Vec<u8>)], name: &str) -> String {
    let (_, bytes) = entries
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name} in the archive"));
    String::from_utf8(bytes.clone()).unwrap()
}

struct Arranged {
    doctor: TestClient,
    researcher: TestClient,
    /// PNG 40x30, JPEG 16x8, DICOM 6x4 (columns x rows), in upload order.
    images: Vec<String>,
    withheld: String,
    labels: BTreeMap<&'static str, String>,
    /// Annotation ids: the box and polygon on the PNG, the point on the PNG, the box on frame 0
    /// of the DICOM.
    annotations: Vec<String>,
}

async fn arrange(app: &TestApp) -> Arranged {
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let mut labels = BTreeMap::new();
    for name in ["Nodule", "Effusion", "Ödem"] {
        labels.insert(
            name,
            app.label(name).await["id"].as_str().unwrap().to_owned(),
        );
    }
    let mut images = Vec::new();
    for (bytes, name) in [
        (fixtures::png(40, 30), "a.png"),
        (fixtures::jpeg(16, 8), "b.jpg"),
        (fixtures::dicom(4, 6), "c.dcm"),
    ] {
        let res = doctor.upload(&bytes, name, None).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        images.push(res.body["id"].as_str().unwrap().to_owned());
    }
    let burned = medlabel::imaging::dicom::synthetic_dicom(
        4,
        4,
        0,
        &[(
            dicom_dictionary_std::tags::BURNED_IN_ANNOTATION,
            dicom_core::VR::CS,
            "YES".to_owned(),
        )],
    )
    .unwrap();
    let withheld = doctor.upload(&burned, "burned.dcm", None).await;
    let withheld = withheld.body["id"].as_str().unwrap().to_owned();
    for (image, label) in [
        (&images[0], "Nodule"),
        (&images[0], "Ödem"),
        (&images[2], "Effusion"),
        (&withheld, "Nodule"),
    ] {
        let res = doctor
            .post(
                &format!("/api/v1/images/{image}/labels"),
                &json!({"label_id": labels[label]}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let mut annotations = Vec::new();
    for (image, label, shape, geometry) in [
        (
            &images[0],
            "Nodule",
            "box",
            json!({"x": 30, "y": 20, "width": 10, "height": 10}),
        ),
        (
            &images[0],
            "Effusion",
            "polygon",
            json!({"points": [[0, 0], [8, 0], [0, 6]]}),
        ),
        (&images[0], "Nodule", "point", json!({"x": 40, "y": 0})),
        (
            &images[2],
            "Ödem",
            "box",
            json!({"x": 0.5, "y": 1, "width": 3, "height": 2}),
        ),
    ] {
        let res = doctor
            .post(
                &format!("/api/v1/images/{image}/annotations"),
                &json!({"label_id": labels[label], "shape": shape, "geometry": geometry}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        annotations.push(res.body["id"].as_str().unwrap().to_owned());
    }
    let on_withheld = doctor
        .post(
            &format!("/api/v1/images/{withheld}/annotations"),
            &json!({"label_id": labels["Nodule"], "shape": "point", "geometry": {"x": 1, "y": 1}}),
        )
        .await;
    assert_eq!(on_withheld.status, StatusCode::CREATED);
    Arranged {
        doctor,
        researcher,
        images,
        withheld,
        labels,
        annotations,
    }
}

async fn export(client: &TestClient, dataset: &str, format: &str) -> Vec<u8> {
    let res = client
        .get(&format!(
            "/api/v1/datasets/{dataset}/export?format={format}"
        ))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{format}: {}", res.text);
    assert_eq!(res.header("content-type"), Some("application/zip"));
    assert_eq!(
        res.header("content-disposition"),
        Some(format!("attachment; filename=\"{dataset}-{format}.zip\"").as_str())
    );
    res.bytes.to_vec()
}

#[actix_web::test]
async fn a_dataset_freezes_images_diagnoses_and_annotations_and_never_changes() {
    let app = TestApp::spawn().await;
    let a = arrange(&app).await;
    let created = a
        .researcher
        .post(
            "/api/v1/datasets",
            &json!({"name": "Chest set", "description": "all of it", "filter": {}}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/api/v1/datasets/{id}").as_str())
    );
    assert_eq!(
        created.body["image_count"], 3,
        "the withheld image is left out"
    );
    assert_eq!(created.body["annotation_count"], 4);
    assert_eq!(created.body["filter"], json!({}));
    assert_eq!(
        created.body["created_by"]["username"],
        a.researcher.username()
    );
    let names: Vec<&str> = created.body["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Effusion", "Nodule", "Ödem"], "name order");
    let before: BTreeMap<&str, Vec<u8>> = [
        ("coco", export(&a.researcher, &id, "coco").await),
        ("yolo", export(&a.researcher, &id, "yolo").await),
        ("csv", export(&a.researcher, &id, "csv").await),
    ]
    .into_iter()
    .collect();
    for (format, archive) in &before {
        assert!(
            !entries(archive)
                .iter()
                .any(|(name, _)| name.contains(&a.withheld)),
            "{format}: the withheld image is not in the archive"
        );
    }

    // Everything it holds changes: edit, delete, re-label, rename, deactivate, delete an image.
    let doctor = &a.doctor;
    let res = doctor
        .patch(
            &format!("/api/v1/annotations/{}", a.annotations[0]),
            &json!({"geometry": {"x": 0, "y": 0, "width": 5, "height": 5}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    doctor
        .delete(&format!("/api/v1/annotations/{}", a.annotations[1]))
        .await;
    doctor
        .delete(&format!(
            "/api/v1/images/{}/labels/{}",
            a.images[0], a.labels["Nodule"]
        ))
        .await;
    doctor
        .post(
            &format!("/api/v1/images/{}/labels", a.images[1]),
            &json!({"label_id": a.labels["Nodule"]}),
        )
        .await;
    doctor
        .post(
            &format!("/api/v1/images/{}/annotations", a.images[1]),
            &json!({"label_id": a.labels["Nodule"], "shape": "point", "geometry": {"x": 1, "y": 1}}),
        )
        .await;
    a.researcher
        .patch(
            &format!("/api/v1/labels/{}", a.labels["Effusion"]),
            &json!({"name": "Pleural effusion"}),
        )
        .await;
    a.researcher
        .delete(&format!("/api/v1/labels/{}", a.labels["Ödem"]))
        .await;
    doctor
        .delete(&format!("/api/v1/images/{}", a.images[2]))
        .await;

    let read = a.researcher.get(&format!("/api/v1/datasets/{id}")).await;
    assert_eq!(read.body, created.body, "the dataset reads as it was made");
    let admin = app.token_client(&[Role::Admin]).await;
    for (format, archive) in &before {
        assert_eq!(
            &export(&admin, &id, format).await,
            archive,
            "{format}: the same bytes, whoever asks, whatever changed"
        );
    }
    let listed = a.researcher.get("/api/v1/datasets?limit=1").await;
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    // A new dataset sees the changes.
    let later = a
        .researcher
        .post("/api/v1/datasets", &json!({"name": "Later", "filter": {}}))
        .await;
    assert_eq!(later.body["image_count"], 2);
    assert_eq!(later.body["annotation_count"], 3);
}

#[actix_web::test]
async fn dataset_filters_select_as_the_image_list_does_and_bad_ones_are_422() {
    let app = TestApp::spawn().await;
    let a = arrange(&app).await;
    let create = |filter: Value| {
        let researcher = &a.researcher;
        async move {
            researcher
                .post("/api/v1/datasets", &json!({"name": "F", "filter": filter}))
                .await
        }
    };
    let by_label = create(json!({"label_id": a.labels["Ödem"]})).await;
    assert_eq!(by_label.status, StatusCode::CREATED, "{}", by_label.text);
    assert_eq!(by_label.body["image_count"], 1);
    assert_eq!(
        by_label.body["annotation_count"], 3,
        "every annotation of the image"
    );
    assert_eq!(
        by_label.body["filter"],
        json!({"label_id": a.labels["Ödem"]})
    );
    let by_modality = create(json!({"modality": "ot"})).await;
    assert_eq!(by_modality.body["image_count"], 1, "{}", by_modality.text);
    let none = create(json!({"created_before": "2000-01-01T00:00:00Z"})).await;
    assert_eq!(none.body["image_count"], 0);
    assert_eq!(none.body["labels"], json!([]));
    for (filter, field) in [
        (
            json!({"label_id": uuid::Uuid::now_v7().to_string()}),
            "filter.label_id",
        ),
        (json!({"label_id": "nope"}), "filter.label_id"),
        (
            json!({"disease_id": uuid::Uuid::now_v7().to_string()}),
            "filter.disease_id",
        ),
        (json!({"code": "icd-10"}), "filter.code"),
        (json!({"code": "icd-10:Q99.99"}), "filter.code"),
        (json!({"subject_id": "S-AAAA"}), "filter.subject_id"),
        (
            json!({"subject_id": "S-AAAAAAAAAAAAAAAA"}),
            "filter.subject_id",
        ),
        (
            json!({"created_after": "yesterday"}),
            "filter.created_after",
        ),
        (json!({"modality": ""}), "filter.modality"),
    ] {
        let res = create(filter.clone()).await;
        assert!(
            res.problem(422)["errors"][field].is_array(),
            "{filter} names {field}: {}",
            res.text
        );
    }
    create(json!({"uploaded_by": "x"})).await.problem(422);
    create(json!([null, null, null, null, null, null, null]))
        .await
        .problem(422);
    a.researcher
        .post("/api/v1/datasets", &json!({"name": "", "filter": {}}))
        .await
        .problem(422);
    a.researcher
        .post("/api/v1/datasets", &json!({"name": "No filter"}))
        .await
        .problem(422);
    let all = a.researcher.get("/api/v1/datasets").await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        3,
        "refusals made nothing"
    );
    let missing = uuid::Uuid::now_v7();
    a.researcher
        .get(&format!("/api/v1/datasets/{missing}"))
        .await
        .problem(404);
    a.researcher
        .get(&format!("/api/v1/datasets/{missing}/export?format=coco"))
        .await
        .problem(404);
    let id = by_label.body["id"].as_str().unwrap();
    for query in ["format=xml", "format=", ""] {
        let res = a
            .researcher
            .get(&format!("/api/v1/datasets/{id}/export?{query}"))
            .await;
        assert!(res.problem(422)["errors"]["format"].is_array(), "{query}");
    }
}

#[actix_web::test]
async fn each_format_has_the_contract_layout_with_hashes_of_every_file() {
    let app = TestApp::spawn().await;
    let a = arrange(&app).await;
    let dataset = a
        .researcher
        .post("/api/v1/datasets", &json!({"name": "Layout", "filter": {}}))
        .await
        .body;
    let id = dataset["id"].as_str().unwrap();
    let [png, jpg, dcm] = [&a.images[0], &a.images[1], &a.images[2]];
    let copies = [
        format!("images/{png}.png"),
        format!("images/{jpg}.jpg"),
        format!("images/{dcm}.dcm"),
    ];
    for format in ["coco", "yolo", "csv"] {
        let archive = export(&a.researcher, id, format).await;
        assert_eq!(
            archive,
            export(&a.researcher, id, format).await,
            "{format}: reproducible"
        );
        let files = entries(&archive);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected: Vec<String> = copies.to_vec();
        if format != "csv" {
            expected.insert(3, format!("images/{dcm}.png"));
        }
        match format {
            "coco" => expected.extend(["annotations.json".into(), "image_labels.csv".into()]),
            "yolo" => {
                expected.extend(a.images.iter().map(|i| format!("labels/{i}.txt")));
                expected.push("data.yaml".into());
            }
            _ => expected.extend(["images.csv".into(), "annotations.csv".into()]),
        }
        expected.push("dataset.json".into());
        assert_eq!(names, expected, "{format}: entries in their fixed order");
        // The copies are what a researcher downloads.
        for path in &copies {
            let image = path
                .trim_start_matches("images/")
                .split('.')
                .next()
                .unwrap();
            let download = a
                .researcher
                .get(&format!("/api/v1/images/{image}/file"))
                .await;
            let (_, bytes) = files.iter().find(|(n, _)| n == path).unwrap();
            assert_eq!(bytes.as_slice(), &download.bytes[..], "{format}: {path}");
            assert!(
                !fixtures::contains(bytes, fixtures::CANARY),
                "{path} is de-identified"
            );
        }
        let manifest: Value = serde_json::from_str(&text(&files, "dataset.json")).unwrap();
        assert_eq!(manifest["dataset"], dataset);
        assert_eq!(manifest["format"], format);
        assert_eq!(manifest["frozen_at"], dataset["created_at"]);
        let hashes = manifest["files"].as_object().unwrap();
        assert_eq!(hashes.len(), files.len() - 1);
        for (name, bytes) in &files[..files.len() - 1] {
            assert_eq!(
                hashes[name.as_str()],
                hex::encode(Sha256::digest(bytes)),
                "{format}: {name}"
            );
        }
        match format {
            "coco" => {
                let coco: Value = serde_json::from_str(&text(&files, "annotations.json")).unwrap();
                let categories: Vec<(i64, &str)> = coco["categories"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|c| (c["id"].as_i64().unwrap(), c["name"].as_str().unwrap()))
                    .collect();
                assert_eq!(categories, [(1, "Effusion"), (2, "Nodule"), (3, "Ödem")]);
                let images = coco["images"].as_array().unwrap();
                assert_eq!(images.len(), 3);
                assert_eq!(images[2]["file_name"], format!("images/{dcm}.png"));
                assert_eq!(
                    (images[2]["width"].clone(), images[2]["height"].clone()),
                    (json!(6), json!(4))
                );
                let anns = coco["annotations"].as_array().unwrap();
                assert_eq!(anns.len(), 4);
                assert_eq!(anns[0]["bbox"], json!([30.0, 20.0, 10.0, 10.0]));
                assert_eq!(anns[0]["area"], 100.0);
                assert_eq!(anns[0]["category_id"], 2);
                assert_eq!(anns[0]["iscrowd"], 0);
                assert_eq!(anns[1]["bbox"], json!([0.0, 0.0, 8.0, 6.0]));
                assert_eq!(anns[1]["area"], 24.0);
                assert_eq!(
                    anns[1]["segmentation"],
                    json!([[0.0, 0.0, 8.0, 0.0, 0.0, 6.0]])
                );
                assert_eq!(
                    anns[2]["bbox"],
                    json!([39.0, 0.0, 1.0, 1.0]),
                    "a point in the corner"
                );
                assert_eq!(anns[2]["keypoints"], json!([40.0, 0.0, 2.0]));
                assert_eq!(anns[3]["image_id"], 3);
                let diagnoses = text(&files, "image_labels.csv");
                let lines: Vec<&str> = diagnoses.lines().collect();
                assert_eq!(lines[0], "image_id,label_id,label_name");
                assert_eq!(lines.len(), 4, "{diagnoses}");
                assert_eq!(lines[1], format!("{png},{},Nodule", a.labels["Nodule"]));
                assert_eq!(lines[2], format!("{png},{},Ödem", a.labels["Ödem"]));
                // The rendered DICOM: an 8-bit grey PNG of its size.
                let (_, rendered) = files
                    .iter()
                    .find(|(n, _)| n == &format!("images/{dcm}.png"))
                    .unwrap();
                let decoder = png::Decoder::new(std::io::Cursor::new(rendered.clone()));
                let reader = decoder.read_info().unwrap();
                let info = reader.info();
                assert_eq!((info.width, info.height), (6, 4));
                assert_eq!(info.color_type, png::ColorType::Grayscale);
                assert_eq!(info.bit_depth, png::BitDepth::Eight);
            }
            "yolo" => {
                let png_labels = text(&files, &format!("labels/{png}.txt"));
                assert_eq!(
                    png_labels,
                    "1 0.875000 0.833333 0.250000 0.333333\n0 0.000000 0.000000 0.200000 0.000000 0.000000 0.200000\n",
                    "a box and a polygon; the point is left out"
                );
                assert_eq!(
                    text(&files, &format!("labels/{jpg}.txt")),
                    "",
                    "no annotations"
                );
                assert_eq!(
                    text(&files, &format!("labels/{dcm}.txt")),
                    "2 0.333333 0.500000 0.500000 0.500000\n"
                );
                let yaml = text(&files, "data.yaml");
                assert!(yaml.contains("nc: 3\n"), "{yaml}");
                assert!(
                    yaml.contains("  0: \"Effusion\"\n  1: \"Nodule\"\n  2: \"Ödem\"\n"),
                    "{yaml}"
                );
            }
            _ => {
                let images = text(&files, "images.csv");
                let mut reader = csv::Reader::from_reader(images.as_bytes());
                assert_eq!(
                    reader.headers().unwrap().iter().collect::<Vec<_>>(),
                    [
                        "image_id",
                        "subject_id",
                        "study_id",
                        "modality",
                        "width",
                        "height",
                        "content_type",
                        "labels"
                    ]
                );
                let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
                assert_eq!(rows.len(), 3);
                assert_eq!(&rows[0][0], png.as_str());
                assert_eq!(&rows[0][7], "Nodule;Ödem");
                assert_eq!(&rows[1][3], "", "null is an empty cell");
                assert_eq!(&rows[2][3], "OT");
                assert_eq!(&rows[2][4], "6");
                let annotations = text(&files, "annotations.csv");
                let mut reader = csv::Reader::from_reader(annotations.as_bytes());
                assert_eq!(
                    reader.headers().unwrap().iter().collect::<Vec<_>>(),
                    [
                        "annotation_id",
                        "image_id",
                        "label_name",
                        "shape",
                        "geometry",
                        "frame"
                    ]
                );
                let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
                assert_eq!(rows.len(), 4);
                assert_eq!(&rows[0][0], a.annotations[0].as_str());
                assert_eq!(&rows[1][3], "polygon");
                let geometry: Value = serde_json::from_str(&rows[1][4]).unwrap();
                assert_eq!(
                    geometry,
                    json!({"points": [[0, 0], [8, 0], [0, 6]]}),
                    "as sent"
                );
                assert_eq!(&rows[3][2], "Ödem");
            }
        }
    }
}

#[actix_web::test]
async fn the_cli_writes_the_same_archive_as_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let objects = dir.path().join("objects");
    std::fs::create_dir_all(&objects).unwrap();
    let storage = format!("file://{}", objects.display());
    let data = dir.path().join("data");
    let app = TestApp::spawn_with(&[
        ("STORAGE_URL", &storage),
        ("MEDLABEL_DATA_DIR", &data.display().to_string()),
    ])
    .await;
    let a = arrange(&app).await;
    let id = a
        .researcher
        .post("/api/v1/datasets", &json!({"name": "CLI", "filter": {}}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let from_api = export(&a.researcher, &id, "coco").await;
    let output = dir.path().join("out").join("coco.zip");
    std::fs::create_dir_all(output.parent().unwrap()).unwrap();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_medlabel"))
        .env_clear()
        .env("DATABASE_URL", &app.state.settings.database_url.0)
        .env("STORAGE_URL", &storage)
        .env("MEDLABEL_DATA_DIR", &data)
        .env("MEDLABEL_LOG", "warn")
        .args(["export-dataset", &id, "--format", "coco", "--output"])
        .arg(&output)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("3 images, 4 annotations"), "{stdout}");
    assert_eq!(std::fs::read(&output).unwrap(), from_api, "the same bytes");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let plain = dir.path().join("plain");
        std::fs::File::create(&plain).unwrap();
        assert_eq!(
            mode(&output),
            mode(&plain),
            "the mode any new file gets, not 0600"
        );
        std::fs::remove_file(plain).unwrap();
    }
    let leftovers: Vec<_> = std::fs::read_dir(output.parent().unwrap())
        .unwrap()
        .collect();
    assert_eq!(leftovers.len(), 1, "no partial file is left beside it");
    let unknown = std::process::Command::new(env!("CARGO_BIN_EXE_medlabel"))
        .env_clear()
        .env("DATABASE_URL", &app.state.settings.database_url.0)
        .env("STORAGE_URL", &storage)
        .env("MEDLABEL_DATA_DIR", &data)
        .args([
            "export-dataset",
            &uuid::Uuid::now_v7().to_string(),
            "--format",
            "csv",
            "--output",
        ])
        .arg(dir.path().join("none.zip"))
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no dataset"));
    assert!(!dir.path().join("none.zip").exists());
}

#[actix_web::test]
async fn a_head_request_starts_no_export() {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn().await;
    let a = arrange(&app).await;
    let id = a
        .researcher
        .post("/api/v1/datasets", &json!({"name": "Head", "filter": {}}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = app.state.storage.copy_flights().started();
    let res = a
        .researcher
        .send(
            actix_web::http::Method::HEAD,
            &format!("/api/v1/datasets/{id}/export?format=coco"),
            None,
            &[],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("application/zip"));
    actix_web::rt::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(app.state.exports_running.load(Ordering::SeqCst), 0);
    assert_eq!(
        app.state.storage.copy_flights().started(),
        before,
        "no copy was made for a HEAD"
    );
}

#[actix_web::test]
async fn a_client_that_goes_away_stops_its_export() {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    // 24 MiB of DICOM: more than the chunks in flight between exporter and client and the
    // sockets' buffers.
    for _ in 0..24 {
        let res = doctor
            .upload(&fixtures::dicom(1024, 1024), "big.dcm", None)
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let id = researcher
        .post("/api/v1/datasets", &json!({"name": "Big", "filter": {}}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = researcher.bearer.borrow().clone().unwrap();
    let address = app.address.trim_start_matches("http://").to_owned();
    let running = app.state.exports_running.clone();
    let read_some = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(&address).unwrap();
        write!(
            stream,
            "GET /api/v1/datasets/{id}/export?format=csv HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
        )
        .unwrap();
        let mut first = vec![0u8; 64 << 10];
        stream.read_exact(&mut first).unwrap();
        assert!(first.starts_with(b"HTTP/1.1 200"));
        // Gone, with most of the archive unread.
    });
    read_some.join().unwrap();
    let started = std::time::Instant::now();
    while running.load(Ordering::SeqCst) > 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "the export still runs after its client left"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let copied = app.state.storage.copy_flights().started();
    assert!(copied < 24, "it stopped early: {copied} of 24 copies made");
}

#[actix_web::test]
async fn a_dicom_that_cannot_be_rendered_is_listed_and_left_out_of_coco_and_yolo() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let label = app.label("Mark").await["id"].as_str().unwrap().to_owned();
    // RLE fragments that are not RLE: accepted (copied as they are) but not decodable.
    let sop = crate::deidentification::unique_uid();
    let file = crate::deidentification::image_file(
        "1.2.840.10008.1.2.5",
        &[(0x0008_0018, dicom_core::VR::UI, sop.as_str())],
        Some(vec![vec![0xAB; 64]]),
        |_| {},
    );
    let broken = doctor.upload(&file, "rle.dcm", None).await;
    assert_eq!(broken.status, StatusCode::CREATED, "{}", broken.text);
    let broken = broken.body["id"].as_str().unwrap().to_owned();
    let fine = doctor
        .upload(&fixtures::png(8, 8), "ok.png", None)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for image in [&broken, &fine] {
        let res = doctor
            .post(
                &format!("/api/v1/images/{image}/annotations"),
                &json!({"label_id": label, "shape": "box", "geometry": {"x": 0, "y": 0, "width": 2, "height": 2}}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let id = researcher
        .post("/api/v1/datasets", &json!({"name": "Mixed", "filter": {}}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for format in ["coco", "yolo"] {
        let files = entries(&export(&researcher, &id, format).await);
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert!(
            names.contains(&format!("images/{broken}.dcm").as_str()),
            "{names:?}"
        );
        assert!(!names.contains(&format!("images/{broken}.png").as_str()));
        let manifest: Value = serde_json::from_str(&text(&files, "dataset.json")).unwrap();
        let reason = manifest["not_rendered"][&broken]
            .as_str()
            .unwrap_or_default();
        assert!(reason.contains("frame 0 cannot be rendered"), "{manifest}");
        if format == "coco" {
            let coco: Value = serde_json::from_str(&text(&files, "annotations.json")).unwrap();
            assert_eq!(coco["images"].as_array().unwrap().len(), 1);
            assert_eq!(coco["images"][0]["medlabel_id"], fine.as_str());
            assert_eq!(coco["annotations"].as_array().unwrap().len(), 1);
            assert_eq!(coco["annotations"][0]["image_id"], 1);
        } else {
            assert!(!names.contains(&format!("labels/{broken}.txt").as_str()));
            assert!(names.contains(&format!("labels/{fine}.txt").as_str()));
        }
    }
    let csv = entries(&export(&researcher, &id, "csv").await);
    let manifest: Value = serde_json::from_str(&text(&csv, "dataset.json")).unwrap();
    assert!(
        manifest.get("not_rendered").is_none(),
        "CSV renders nothing"
    );
}
