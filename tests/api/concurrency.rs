//! Writes without `If-Match` go through whatever other writes came first, however many run
//! at once (PostgreSQL runs them side by side; SQLite queues them), and each leaves its own
//! history entry. With a stale `If-Match` they answer 412.

use actix_web::http::{Method, StatusCode};
use medlabel::auth::Role;
use serde_json::json;

use crate::helpers::{TestApp, TestClient};

const WRITERS: usize = 12;

/// Sends `WRITERS` PATCHes of `path` at once, each with its own description; all must be 200,
/// and the entity must end at version 1 + `WRITERS` with that many more history entries.
async fn concurrent_patches(client: &TestClient, path: &str, history: &str) {
    let entries = |client: &TestClient| {
        let client = client.clone_client();
        let history = format!("{history}?limit=200");
        async move {
            let res = client.get(&history).await;
            res.body["items"].as_array().unwrap().len()
        }
    };
    let before = entries(client).await;
    let clients: Vec<TestClient> = (0..WRITERS).map(|_| client.clone_client()).collect();
    let bodies: Vec<serde_json::Value> = (0..WRITERS)
        .map(|i| json!({"description": format!("writer {i}")}))
        .collect();
    let answers = futures_util::future::join_all(
        clients
            .iter()
            .zip(&bodies)
            .map(|(c, body)| c.send(Method::PATCH, path, Some(body), &[])),
    )
    .await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.text);
    }
    let now = client.get(path).await;
    assert_eq!(
        now.header("etag"),
        Some(format!("\"v{}\"", 1 + WRITERS).as_str()),
        "{path}: every write applied once"
    );
    assert_eq!(
        entries(client).await,
        before + WRITERS,
        "{path}: one history entry per write"
    );
    // A write naming a version that is gone is still refused.
    let stale = client
        .send(
            Method::PATCH,
            path,
            Some(&json!({"description": "late"})),
            &[("if-match", "\"v1\"")],
        )
        .await;
    stale.problem(412);
}

#[actix_web::test]
async fn concurrent_writes_without_if_match_all_go_through() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let doctor = app.token_client(&[Role::Doctor]).await;

    let label = app.label("Nodule").await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/labels/{label}");
    concurrent_patches(&researcher, &path, &format!("{path}/history")).await;

    let disease = app.disease("Pneumonia", &["icd-10:J18.9"]).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/api/v1/diseases/{disease}");
    concurrent_patches(&researcher, &path, &format!("{path}/history")).await;

    let path = "/api/v1/codes/icd-10/J18.9";
    concurrent_patches(&researcher, path, &format!("{path}/history")).await;

    let image = doctor.upload_png().await["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/images/{image}");
    concurrent_patches(&doctor, &path, &format!("{path}/history")).await;
}

/// Writes of one image of every kind at once (labels on and off, reverts, descriptions,
/// without If-Match) never deadlock: each is answered on its merits, none with a 5xx.
#[actix_web::test]
async fn mixed_concurrent_writes_of_one_image_never_deadlock() {
    let app = TestApp::spawn().await;
    let doctor = app.token_client(&[Role::Doctor]).await;
    let labels: Vec<String> = {
        let mut ids = Vec::new();
        for name in ["Nodule", "Effusion", "Mass"] {
            ids.push(app.label(name).await["id"].as_str().unwrap().to_owned());
        }
        ids
    };
    let image = doctor.upload_png().await["id"].as_str().unwrap().to_owned();
    for label in &labels {
        let res = doctor
            .post(
                &format!("/api/v1/images/{image}/labels"),
                &json!({ "label_id": label }),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    let history = doctor.get(&format!("/api/v1/images/{image}/history")).await;
    let entries: Vec<String> = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();

    for round in 0..3 {
        let mut requests: Vec<(Method, String, Option<serde_json::Value>)> = Vec::new();
        for (i, label) in labels.iter().enumerate() {
            requests.push((
                Method::DELETE,
                format!("/api/v1/images/{image}/labels/{label}"),
                None,
            ));
            requests.push((
                Method::POST,
                format!(
                    "/api/v1/history/{}/revert",
                    entries[(i + round) % entries.len()]
                ),
                None,
            ));
            requests.push((
                Method::PATCH,
                format!("/api/v1/images/{image}"),
                Some(json!({ "description": format!("round {round} writer {i}") })),
            ));
            requests.push((
                Method::POST,
                format!("/api/v1/images/{image}/labels"),
                Some(json!({ "label_id": label })),
            ));
        }
        let clients: Vec<TestClient> = requests.iter().map(|_| doctor.clone_client()).collect();
        let answers = futures_util::future::join_all(
            clients
                .iter()
                .zip(&requests)
                .map(|(c, (method, path, body))| c.send(method.clone(), path, body.as_ref(), &[])),
        )
        .await;
        for ((method, path, _), answer) in requests.iter().zip(&answers) {
            assert!(
                !answer.status.is_server_error(),
                "{method} {path}: {} {}",
                answer.status,
                answer.text
            );
        }
    }
}

/// Deleting a code twice changes it once: one `delete` entry in its history.
#[actix_web::test]
async fn deactivating_an_inactive_code_changes_nothing() {
    let app = TestApp::spawn().await;
    app.load_codes().await;
    let researcher = app.token_client(&[Role::Researcher]).await;
    let path = "/api/v1/codes/icd-10/J18.9";
    for _ in 0..3 {
        let res = researcher.delete(path).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    }
    let history = researcher.get(&format!("{path}/history")).await;
    let deletes = history.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "delete")
        .count();
    assert_eq!(deletes, 1);
    assert_eq!(researcher.get(path).await.header("etag"), Some("\"v2\""));
}
