//! The vocabulary researchers curate: labels, diseases, codes and their search.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::TestApp;

#[actix_web::test]
async fn labels_are_created_unique_edited_and_deactivated() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let res = researcher
        .post(
            "/api/v1/labels",
            &json!({"name": "Effusion", "description": "fluid"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        res.header("location"),
        Some(format!("/api/v1/labels/{id}").as_str())
    );
    assert_eq!(
        res.body["created_by"]["username"],
        researcher.username().as_str()
    );
    assert_eq!(res.body["is_active"], true);
    for field in [
        "id",
        "name",
        "description",
        "diseases",
        "created_by",
        "is_active",
        "created_at",
        "updated_at",
    ] {
        assert!(res.body.get(field).is_some(), "Label lacks {field}");
    }

    researcher
        .post("/api/v1/labels", &json!({"name": "EFFUSION"}))
        .await
        .problem(409);
    doctor
        .post("/api/v1/labels", &json!({"name": "Mine"}))
        .await
        .problem(403);
    researcher
        .post("/api/v1/labels", &json!({"name": ""}))
        .await
        .problem(422);
    let bad_disease = researcher
        .post(
            "/api/v1/labels",
            &json!({"name": "X", "disease_ids": [uuid::Uuid::now_v7().to_string()]}),
        )
        .await;
    assert!(bad_disease.problem(422)["errors"]["disease_ids"].is_array());

    let path = format!("/api/v1/labels/{id}");
    let read = doctor.get(&path).await;
    let etag = read.header("etag").unwrap().to_owned();
    let res = researcher
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"name": "Pleural effusion"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["name"], "Pleural effusion");
    researcher
        .send(
            Method::PATCH,
            &path,
            Some(&json!({"name": "Stale"})),
            &[("if-match", &etag)],
        )
        .await
        .problem(412);
    assert_eq!(doctor.get(&path).await.body["name"], "Pleural effusion");

    let found = doctor.get("/api/v1/labels?q=PLEURAL").await;
    assert_eq!(found.body["items"].as_array().unwrap().len(), 1);

    assert_eq!(
        researcher.delete(&path).await.status,
        StatusCode::NO_CONTENT
    );
    let deleted = doctor.get(&path).await;
    assert_eq!(
        deleted.status,
        StatusCode::OK,
        "a deleted label still reads"
    );
    assert_eq!(deleted.body["is_active"], false);
    assert_eq!(doctor.get("/api/v1/labels").await.body["items"], json!([]));
    let reused = researcher
        .post("/api/v1/labels", &json!({"name": "pleural effusion"}))
        .await;
    assert_eq!(
        reused.status,
        StatusCode::CREATED,
        "the name of a deleted label may be reused"
    );
}

#[actix_web::test]
async fn diseases_link_existing_codes_only() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let res = researcher
        .post(
            "/api/v1/diseases",
            &json!({"name": "Pneumonia", "codes": [{"system": "icd-10", "code": "J18.9"}, {"system": "icd-9", "code": "486"}]}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.body["id"].as_str().unwrap().to_owned();
    let codes = res.body["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 2);
    assert!(codes
        .iter()
        .any(|c| c["system"] == "icd-10" && c["code"] == "J18.9" && c["billable"] == true));

    let missing = researcher
        .post(
            "/api/v1/diseases",
            &json!({"name": "Other", "codes": [{"system": "icd-10", "code": "Z99.89"}]}),
        )
        .await;
    assert!(missing.problem(422)["errors"]["codes"].is_array());
    let malformed = researcher
        .post(
            "/api/v1/diseases",
            &json!({"name": "Other", "codes": [{"system": "icd-10", "code": "banana"}]}),
        )
        .await;
    assert!(malformed.problem(422)["errors"]["codes"].is_array());
    researcher
        .post("/api/v1/diseases", &json!({"name": "pneumonia"}))
        .await
        .problem(409);
    doctor
        .post("/api/v1/diseases", &json!({"name": "Mine"}))
        .await
        .problem(403);

    let by_code = doctor.get("/api/v1/diseases?code=icd-10:J18.9").await;
    assert_eq!(by_code.body["items"][0]["id"], id.as_str());
    assert_eq!(
        doctor.get("/api/v1/diseases?code=icd-10:E11.9").await.body["items"],
        json!([])
    );
    assert_eq!(
        doctor.get("/api/v1/diseases?q=neumo").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    doctor.get("/api/v1/diseases?code=J18.9").await.problem(400);

    let path = format!("/api/v1/diseases/{id}");
    let res = researcher
        .patch(
            &path,
            &json!({"codes": [{"system": "icd-10", "code": "J18.9"}], "description": "lung"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["codes"].as_array().unwrap().len(), 1);
    assert_eq!(res.body["description"], "lung");
    assert_eq!(
        researcher.delete(&path).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(doctor.get(&path).await.body["is_active"], false);
}

#[actix_web::test]
async fn codes_are_validated_per_system_and_curated_by_researchers() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;

    let systems = doctor.get("/api/v1/code-systems").await;
    assert_eq!(systems.status, StatusCode::OK);
    let icd10 = systems
        .body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "icd-10")
        .unwrap()
        .clone();
    assert_eq!(icd10["code_count"], 4);
    assert!(systems
        .body
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == "snomed-ct"));

    let read = doctor.get("/api/v1/codes/icd-10/J18.9").await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body["description"], "Pneumonia, unspecified organism");
    for field in [
        "id",
        "system",
        "code",
        "description",
        "billable",
        "is_active",
    ] {
        assert!(read.body.get(field).is_some(), "Code lacks {field}");
    }
    doctor.get("/api/v1/codes/icd-10/Z00.00").await.problem(404);
    doctor.get("/api/v1/codes/loinc/1234-5").await.problem(404);

    for (system, code) in [
        ("icd-10", "J18.99999"),
        ("icd-9", "V4.5"),
        ("snomed-ct", "22298007"),
        ("loinc", "1-8"),
    ] {
        let res = researcher
            .post(
                "/api/v1/codes",
                &json!({"system": system, "code": code, "description": "x"}),
            )
            .await;
        res.problem(422);
    }
    let snomed = researcher
        .post(
            "/api/v1/codes",
            &json!({"system": "snomed-ct", "code": "233604007", "description": "Pneumonia"}),
        )
        .await;
    assert_eq!(snomed.status, StatusCode::CREATED, "{}", snomed.text);
    assert_eq!(
        snomed.header("location"),
        Some("/api/v1/codes/snomed-ct/233604007")
    );
    researcher
        .post(
            "/api/v1/codes",
            &json!({"system": "snomed-ct", "code": "233604007", "description": "again"}),
        )
        .await
        .problem(409);
    doctor
        .post(
            "/api/v1/codes",
            &json!({"system": "snomed-ct", "code": "22298006", "description": "MI"}),
        )
        .await
        .problem(403);

    let etag = read.header("etag").unwrap().to_owned();
    let path = "/api/v1/codes/icd-10/J18.9";
    let res = researcher
        .send(
            Method::PATCH,
            path,
            Some(&json!({"description": "Pneumonia, unspecified"})),
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    researcher
        .send(
            Method::PATCH,
            path,
            Some(&json!({"description": "stale"})),
            &[("if-match", &etag)],
        )
        .await
        .problem(412);
    assert_eq!(researcher.delete(path).await.status, StatusCode::NO_CONTENT);
    assert_eq!(doctor.get(path).await.body["is_active"], false);

    let prefixed = doctor.get("/api/v1/codes?system=icd-10&prefix=j18").await;
    let codes: Vec<&str> = prefixed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        vec!["J18"],
        "J18.9 is deactivated; only J18 remains under the prefix"
    );
    doctor.get("/api/v1/codes?system=loinc").await.problem(422);
}

#[actix_web::test]
async fn code_search_over_the_full_icd10_list_finds_pneumonia_first() {
    let app = TestApp::spawn().await;
    app.state
        .db
        .run(|conn| {
            let parsed =
                medlabel::codesets::parse_code_list("icd-10", medlabel::codesets::BUNDLED[0].1)
                    .map_err(medlabel::error::ApiError::internal)?;
            medlabel::codesets::import(conn, &parsed, |_| {})
                .map_err(medlabel::error::ApiError::internal)?;
            Ok::<_, medlabel::error::ApiError>(())
        })
        .await
        .unwrap();
    app.refresh_code_index().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let res = doctor
        .get("/api/v1/codes?system=icd-10&q=pneumonia&limit=50")
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let codes: Vec<&str> = res.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"J18.9"), "{codes:?}");
    assert!(
        res.body["next_cursor"].is_string(),
        "more than 50 pneumonia codes exist"
    );
    let next = doctor
        .get(&format!(
            "/api/v1/codes?system=icd-10&q=pneumonia&limit=50&cursor={}",
            res.body["next_cursor"].as_str().unwrap()
        ))
        .await;
    let more: Vec<&str> = next.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(
        more.iter().all(|c| !codes.contains(c)),
        "the second page continues the ranking"
    );

    let exact = doctor.get("/api/v1/codes?q=J18.9").await;
    assert_eq!(exact.body["items"][0]["code"], "J18.9", "{}", exact.text);
    let words = doctor
        .get("/api/v1/codes?q=fracture%20neck%20femur&system=icd-10")
        .await;
    assert!(!words.body["items"].as_array().unwrap().is_empty());
    let nothing = doctor.get("/api/v1/codes?q=%22%2A%29(").await;
    assert_eq!(
        nothing.status,
        StatusCode::OK,
        "search syntax characters are harmless"
    );
    doctor
        .get("/api/v1/codes?q=pneumonia&cursor=bogus")
        .await
        .problem(400);
}
