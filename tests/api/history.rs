//! History: a snapshot per change in the same transaction, per-entity and global listings
//! with visibility, and revert.
//!
//! Longer than ~400 lines: history and revert of every entity type.

use actix_web::http::StatusCode;
use medlabel::auth::Role;
use serde_json::{json, Value};

use crate::fixtures;
use crate::helpers::{TestApp, TestClient};

async fn entries(client: &TestClient, path: &str) -> Vec<Value> {
    let res = client.get(path).await;
    assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text);
    res.body["items"].as_array().unwrap().clone()
}

#[actix_web::test]
async fn every_change_appends_a_snapshot_of_the_state_after_it() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let created = researcher
        .post("/api/v1/labels", &json!({"name": "Nodule"}))
        .await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    let mut states = vec![created.body.clone()];
    let mut request_ids = vec![created.header("x-request-id").unwrap().to_owned()];
    for (i, name) in ["Nodule, solitary", "Pulmonary nodule", "Lung nodule"]
        .iter()
        .enumerate()
    {
        let res = researcher
            .patch(
                &format!("/api/v1/labels/{id}"),
                &json!({"name": name, "description": format!("v{i}")}),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
        states.push(res.body.clone());
        request_ids.push(res.header("x-request-id").unwrap().to_owned());
    }
    // A failing change leaves no entry.
    researcher
        .post("/api/v1/labels", &json!({"name": "Other"}))
        .await;
    researcher
        .patch(&format!("/api/v1/labels/{id}"), &json!({"name": "other"}))
        .await
        .problem(409);

    let history = entries(&researcher, &format!("/api/v1/labels/{id}/history")).await;
    assert_eq!(history.len(), 4, "one create and three updates");
    let actions: Vec<&str> = history
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["create", "update", "update", "update"],
        "oldest first"
    );
    for ((entry, state), request_id) in history.iter().zip(&states).zip(&request_ids) {
        assert_eq!(
            &entry["snapshot"], state,
            "the snapshot is the state after the change"
        );
        assert_eq!(entry["schema_version"], 1);
        assert_eq!(entry["entity_type"], "label");
        assert_eq!(entry["entity_id"], id.as_str());
        assert_eq!(
            entry["changed_by"]["username"],
            researcher.username().as_str()
        );
        assert_eq!(
            &entry["request_id"], request_id,
            "an entry links to its request's event"
        );
    }
}

#[actix_web::test]
async fn image_diagnoses_are_history_and_outlive_deletion() {
    let app = TestApp::spawn().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let label = researcher
        .post("/api/v1/labels", &json!({"name": "Fracture"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let image = owner
        .upload(&fixtures::png(4, 4), "wrist.png", None)
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    owner
        .patch(
            &format!("/api/v1/images/{image}"),
            &json!({"description": "left wrist"}),
        )
        .await;
    owner
        .post(
            &format!("/api/v1/images/{image}/labels"),
            &json!({"label_id": label}),
        )
        .await;
    owner
        .delete(&format!("/api/v1/images/{image}/labels/{label}"))
        .await;
    owner.delete(&format!("/api/v1/images/{image}")).await;

    let path = format!("/api/v1/images/{image}/history");
    let history = entries(&owner, &path).await;
    let actions: Vec<&str> = history
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        vec!["create", "update", "update", "update", "delete"]
    );
    assert_eq!(
        history[2]["snapshot"]["labels"][0]["label"]["name"],
        "Fracture"
    );
    assert_eq!(history[3]["snapshot"]["labels"], json!([]));
    assert_eq!(history[1]["snapshot"]["original_filename"], "wrist.png");
    let seen_by_researcher = entries(&researcher, &path).await;
    assert_eq!(
        seen_by_researcher.len(),
        5,
        "history still answers after deletion"
    );
    assert!(
        seen_by_researcher
            .iter()
            .all(|e| e["snapshot"]["original_filename"].is_null()),
        "de-identified"
    );
    other.get(&path).await.problem(404);

    // GET /history: a doctor sees their own images and the vocabulary, not others' images.
    let theirs = other.upload(&fixtures::png(4, 4), "x.png", None).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mine = entries(&owner, "/api/v1/history?limit=200").await;
    assert!(mine.iter().any(|e| e["entity_id"] == image.as_str()));
    assert!(mine.iter().any(|e| e["entity_type"] == "label"));
    assert!(mine.iter().all(|e| e["entity_id"] != theirs.as_str()));
    assert!(
        mine.windows(2)
            .all(|w| w[0]["id"].as_str() > w[1]["id"].as_str()),
        "newest first"
    );
    let all = entries(&researcher, "/api/v1/history?entity_type=image&limit=200").await;
    assert!(all.iter().any(|e| e["entity_id"] == theirs.as_str()));
    assert!(all.iter().all(|e| e["entity_type"] == "image"));
    let by_entity = entries(&researcher, &format!("/api/v1/history?entity_id={image}")).await;
    assert_eq!(by_entity.len(), 5);
    researcher
        .get("/api/v1/history?entity_type=patient")
        .await
        .problem(422);
    researcher
        .get("/api/v1/history?since=soon")
        .await
        .problem(400);
}

#[actix_web::test]
async fn reverting_restores_earlier_snapshots_and_refuses_deletions() {
    let app = TestApp::spawn().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let id = researcher
        .post("/api/v1/labels", &json!({"name": "Mass"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    researcher
        .patch(&format!("/api/v1/labels/{id}"), &json!({"name": "Lesion"}))
        .await;
    researcher.delete(&format!("/api/v1/labels/{id}")).await;
    let history = entries(&researcher, &format!("/api/v1/labels/{id}/history")).await;
    let (first, delete) = (
        history[0]["id"].as_str().unwrap(),
        history[2]["id"].as_str().unwrap(),
    );
    assert_eq!(history[2]["action"], "delete");

    researcher
        .post(&format!("/api/v1/history/{delete}/revert"), &json!({}))
        .await
        .problem(422);
    doctor
        .post(&format!("/api/v1/history/{first}/revert"), &json!({}))
        .await
        .problem(403);
    let restored = researcher
        .post(&format!("/api/v1/history/{first}/revert"), &json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    assert_eq!(restored.body["name"], "Mass");
    assert_eq!(
        restored.body["is_active"], true,
        "reverting to a snapshot before the delete restores it"
    );
    assert_eq!(
        researcher.get(&format!("/api/v1/labels/{id}")).await.body,
        restored.body
    );
    let history = entries(&researcher, &format!("/api/v1/labels/{id}/history")).await;
    assert_eq!(history.last().unwrap()["action"], "revert");
    assert_eq!(history.last().unwrap()["snapshot"], restored.body);
    researcher
        .post(
            &format!("/api/v1/history/{}/revert", uuid::Uuid::now_v7()),
            &json!({}),
        )
        .await
        .problem(404);
}

#[actix_web::test]
async fn a_deleted_image_comes_back_with_its_diagnosis() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let other = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let label = researcher
        .post("/api/v1/labels", &json!({"name": "Effusion"}))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let image = owner
        .upload(&fixtures::png(4, 4), "chest.png", Some("PA"))
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    owner
        .post(
            &format!("/api/v1/images/{image}/labels"),
            &json!({"label_id": label, "note": "small"}),
        )
        .await;
    owner.delete(&format!("/api/v1/images/{image}")).await;
    owner
        .get(&format!("/api/v1/images/{image}"))
        .await
        .problem(404);

    let history = entries(&owner, &format!("/api/v1/images/{image}/history")).await;
    let labelled = history[1]["id"].as_str().unwrap();
    researcher
        .post(&format!("/api/v1/history/{labelled}/revert"), &json!({}))
        .await
        .problem(403);
    other
        .post(&format!("/api/v1/history/{labelled}/revert"), &json!({}))
        .await
        .problem(404);
    let restored = owner
        .post(&format!("/api/v1/history/{labelled}/revert"), &json!({}))
        .await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.text);
    assert_eq!(restored.body["labels"][0]["label"]["name"], "Effusion");
    assert_eq!(restored.body["labels"][0]["note"], "small");
    assert_eq!(restored.body["description"], "PA");
    let read = owner.get(&format!("/api/v1/images/{image}")).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, restored.body);
    let file = owner.get(&format!("/api/v1/images/{image}/file")).await;
    assert_eq!(file.status, StatusCode::OK, "the file was kept");

    // Codes and diseases revert too.
    let disease = researcher
        .post(
            "/api/v1/diseases",
            &json!({"name": "Pneumonia", "codes": [{"system": "icd-10", "code": "J18.9"}]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    researcher
        .patch(
            &format!("/api/v1/diseases/{disease}"),
            &json!({"codes": []}),
        )
        .await;
    let first = entries(&researcher, &format!("/api/v1/diseases/{disease}/history")).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let back = researcher
        .post(&format!("/api/v1/history/{first}/revert"), &json!({}))
        .await;
    assert_eq!(back.body["codes"][0]["code"], "J18.9");
    researcher
        .patch(
            "/api/v1/codes/icd-10/E11.9",
            &json!({"description": "changed"}),
        )
        .await;
    let code_history = entries(&researcher, "/api/v1/codes/icd-10/E11.9/history").await;
    assert_eq!(
        code_history.len(),
        1,
        "bulk-imported codes start their history at their first change"
    );
    assert_eq!(code_history[0]["snapshot"]["description"], "changed");
}

/// The id of the newest history entry of `path` (an entity's history listing).
async fn newest_entry(client: &crate::helpers::TestClient, path: &str) -> String {
    entries(client, path).await.last().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[actix_web::test]
async fn reverts_obey_the_rules_of_the_direct_write_for_every_entity() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let owner = app.token_client(&[Role::Doctor]).await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let id_of = |res: &crate::helpers::TestResponse| res.body["id"].as_str().unwrap().to_owned();

    // Image: a snapshot holding a label deactivated since is 422 naming the label.
    let label = id_of(
        &researcher
            .post("/api/v1/labels", &json!({"name": "Effusion"}))
            .await,
    );
    let image = id_of(&owner.upload(&fixtures::png(4, 4), "chest.png", None).await);
    owner
        .post(
            &format!("/api/v1/images/{image}/labels"),
            &json!({"label_id": label}),
        )
        .await;
    let labelled = newest_entry(&owner, &format!("/api/v1/images/{image}/history")).await;
    owner
        .delete(&format!("/api/v1/images/{image}/labels/{label}"))
        .await;
    researcher.delete(&format!("/api/v1/labels/{label}")).await;
    let before = owner.get(&format!("/api/v1/images/{image}")).await.body;
    let res = owner
        .post(&format!("/api/v1/history/{labelled}/revert"), &json!({}))
        .await;
    let problem = res.problem(422);
    assert!(
        problem["errors"]["labels"][0]
            .as_str()
            .unwrap()
            .contains(&label),
        "{problem}"
    );
    assert_eq!(
        owner.get(&format!("/api/v1/images/{image}")).await.body,
        before,
        "nothing changed"
    );

    // Label: a snapshot linking a disease deactivated since is 422 naming it; a snapshot whose
    // name an active label holds now is 409.
    let disease = id_of(
        &researcher
            .post("/api/v1/diseases", &json!({"name": "Pneumonia"}))
            .await,
    );
    let linked = id_of(
        &researcher
            .post(
                "/api/v1/labels",
                &json!({"name": "Consolidation", "disease_ids": [disease]}),
            )
            .await,
    );
    let first = newest_entry(&researcher, &format!("/api/v1/labels/{linked}/history")).await;
    researcher
        .patch(
            &format!("/api/v1/labels/{linked}"),
            &json!({"name": "Opacity", "disease_ids": []}),
        )
        .await;
    researcher
        .delete(&format!("/api/v1/diseases/{disease}"))
        .await;
    let res = researcher
        .post(&format!("/api/v1/history/{first}/revert"), &json!({}))
        .await;
    assert!(
        res.problem(422)["errors"]["disease_ids"].is_array(),
        "{}",
        res.text
    );
    assert_eq!(
        researcher
            .get(&format!("/api/v1/labels/{linked}"))
            .await
            .body["name"],
        "Opacity"
    );
    let twin = id_of(
        &researcher
            .post("/api/v1/labels", &json!({"name": "Mass"}))
            .await,
    );
    let mass = newest_entry(&researcher, &format!("/api/v1/labels/{twin}/history")).await;
    researcher
        .patch(
            &format!("/api/v1/labels/{twin}"),
            &json!({"name": "Nodule"}),
        )
        .await;
    researcher
        .post("/api/v1/labels", &json!({"name": "MASS"}))
        .await;
    researcher
        .post(&format!("/api/v1/history/{mass}/revert"), &json!({}))
        .await
        .problem(409);

    // Disease: a snapshot naming a code deactivated since is 422 naming it.
    let coded = id_of(
        &researcher
            .post(
                "/api/v1/diseases",
                &json!({"name": "Diabetes", "codes": [{"system": "icd-10", "code": "E11.9"}]}),
            )
            .await,
    );
    let with_code = newest_entry(&researcher, &format!("/api/v1/diseases/{coded}/history")).await;
    researcher
        .patch(&format!("/api/v1/diseases/{coded}"), &json!({"codes": []}))
        .await;
    researcher.delete("/api/v1/codes/icd-10/E11.9").await;
    let res = researcher
        .post(&format!("/api/v1/history/{with_code}/revert"), &json!({}))
        .await;
    let problem = res.problem(422);
    assert!(
        problem["errors"]["codes"][0]
            .as_str()
            .unwrap()
            .contains("E11.9"),
        "{problem}"
    );
    assert_eq!(
        researcher
            .get(&format!("/api/v1/diseases/{coded}"))
            .await
            .body["codes"],
        json!([])
    );
}
